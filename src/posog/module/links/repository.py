"""Write side of survey links on a unit of work (``uow.links``): every statement that moves a link
goes through the lifecycle (:func:`~posog.module.links.lifecycle.move`, or ``sql_move`` for the
hand-written SQL below), and what differs by database is here, chosen once when the unit of work is
built (:func:`link_repository`):

* :class:`LinkRepository` — SQLAlchemy on the unit's session, any database;
* :class:`PostgresLinkRepository` — the same, with the link hot path (open a link, complete it) as
  one statement each on a lean asyncpg pool (:mod:`posog.module.links.pgpool`) in a transaction of its
  own, beside the unit's session (which, unused, is never opened)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select

from posog.core.clock import utcnow
from posog.core.db import Repository, UnitOfWork, UTCDateTime, insert_rows
from posog.module.links import pgpool
from posog.module.links.lifecycle import (
    COMPLETE,
    DELIVER,
    FAIL_DELIVERY,
    NOTIFY,
    OPEN,
    Transition,
    move,
    sql_move,
)
from posog.module.links.model import SurveyLink
from posog.module.links.queries import LinkWithCard, find_link


def notified_by(now: datetime) -> ColumnElement[datetime]:
    """``notified_at`` of a link whose notification ЕПГУ answered for (or that failed for good): set if it
    was not — a status may overtake the relay's commit — so that every failed or delivered notification
    is among the notified ones analytics counts (the failure rate is a share of them)."""
    return func.coalesce(SurveyLink.notified_at, literal(now, UTCDateTime()))


class LinkRepository(Repository):
    """Survey links inside one unit of work; nothing here commits."""

    async def find(self, token_hash: str) -> LinkWithCard | None:
        """The link whose token hashes to ``token_hash``, with its card (one indexed lookup)."""
        return await find_link(self.session, token_hash)

    async def find_and_open(
        self, token_hash: str, *, now: datetime, open_versions: Iterable[str]
    ) -> tuple[LinkWithCard, bool] | None:
        """The link of ``token_hash`` as it was, and whether it was opened at ``now`` along with the
        look-up — which a store may do when the link is issued or notified, not expired and its pinned
        ``questionnaire_id:version`` is among ``open_versions``. Here: never (the caller opens it after
        its checks, with :meth:`move`)."""
        link = await self.find(token_hash)
        return None if link is None else (link, False)

    async def by_card(self, card_id: str) -> SurveyLink | None:
        return await self.session.scalar(select(SurveyLink).where(SurveyLink.card_id == card_id))

    async def by_token(self, token_hash: str) -> SurveyLink | None:
        return await self.session.scalar(select(SurveyLink).where(SurveyLink.token_hash == token_hash))

    async def move(
        self, transition: Transition, link_id: str, *, at: datetime, from_state: str | None = None, **values: Any
    ) -> bool:
        """Move the link ``link_id`` by ``transition`` (only from ``from_state``, if given); whether it moved."""
        where = [SurveyLink.id == link_id]
        if from_state is not None:
            where.append(SurveyLink.state == from_state)
        result = await self.session.execute(move(transition, *where, at=at, **values))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def complete(self, token_hash: str, *, response_id: str, now: datetime) -> bool:
        """Complete the live, unexpired link of ``token_hash`` with ``response_id``; False when there is
        no such link (the caller finds out why)."""
        completed = await self.session.execute(
            move(
                COMPLETE,
                SurveyLink.token_hash == token_hash,
                SurveyLink.expires_at > now,
                at=now,
                response_id=response_id,
            ).returning(SurveyLink.id)
        )
        return completed.first() is not None

    async def notify(self, card_ids: Sequence[str], *, at: datetime) -> None:
        """The links of ``card_ids`` were notified at ``at`` (those still issued move to ``notified``)."""
        if card_ids:
            await self.session.execute(move(NOTIFY, self.among(SurveyLink.card_id, list(card_ids)), at=at))

    async def deliver(self, card_id: str, *, at: datetime) -> None:
        """ЕПГУ delivered the notification of ``card_id``'s link (lifecycle.DELIVER; counted as notified
        at ``at`` if the relay's commit was overtaken)."""
        await self.session.execute(move(DELIVER, SurveyLink.card_id == card_id, at=at, notified_at=notified_by(at)))

    async def fail_delivery(self, card_id: str, *, reason: str, at: datetime) -> None:
        """The notification of ``card_id``'s link failed for good with ``reason`` (lifecycle.FAIL_DELIVERY;
        counted among the notified, as every failure is). A delivered link stays delivered."""
        await self.session.execute(
            move(
                FAIL_DELIVERY,
                SurveyLink.card_id == card_id,
                at=at,
                notified_at=notified_by(at),
                delivery_failure_reason=reason,
            )
        )

    async def state_of(self, card_id: str) -> str | None:
        """The state of ``card_id``'s link, None when the card has none."""
        return await self.session.scalar(select(SurveyLink.state).where(SurveyLink.card_id == card_id))

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """New links (rows built by :func:`~posog.module.links.issuing.issue_link`): one statement."""
        await insert_rows(self.session, SurveyLink.__table__, rows)  # type: ignore[arg-type]


# One round trip: the link with its card, and — if it may be opened now (issued or notified, not
# expired, its pinned version known to be answerable: among ``$4``, comma-separated) — the link moved
# to ``opened`` in the same statement (lifecycle.OPEN, written by ``sql_move``). ``found`` reads
# the snapshot before the update; the UPDATE re-checks the state on the row it locks, so of concurrent
# first openings exactly one sets ``opened_at``. The UPDATE finds its row by the token's unique index
# itself (``u.token_hash = $1``): joined only through ``found``, the generic plan PostgreSQL switches
# to after five executions could, without fresh statistics, scan every issued link by
# ``ix_module_survey_links_state_expiry`` (≈0.6 ms of the server's CPU at 1 000 links, growing with them).
#
# ``relaxed``: this statement's transaction commits without waiting for its WAL to reach the disk
# (``synchronous_commit`` off for this transaction only — ``set_config(…, true)``; the connection's own
# setting, and so every other statement on it, e.g. a completion, is untouched). Waiting for the flush
# was what limited first openings (≈2 200/s on the benchmark machine, p99 ≈ 50–190 ms, the pool's
# connections all waiting for fsyncs). What a crash of PostgreSQL may lose is the last fraction of a
# second of openings, never a later write: WAL is flushed in order, so a completion that was
# confirmed also made every opening before it durable. A lost opening leaves its link issued/notified
# — it still opens, can be answered and completed (completion accepts those states) — and only its
# first ``opened_at`` is set again by the next opening.
_OPEN_SET, _OPEN_FROM = sql_move(OPEN, alias="u", at="$2", changed_at="$3")
_OPEN_SQL = f"""
WITH found AS (
    SELECT l.id AS link_id, l.state, l.expires_at, l.questionnaire_id, l.questionnaire_version,
           l.response_id, c.card_id, c.survey_level, c.service_date, c.service_name, c.org_name,
           c.org_address, c.inn, c.ogrn, c.kpp, c.type_code, c.region_code
    FROM module_survey_links AS l
    JOIN module_service_cards AS c ON c.card_id = l.card_id
    WHERE l.token_hash = $1
), opened AS (
    UPDATE module_survey_links AS u
    SET {_OPEN_SET}
    FROM found
    WHERE u.token_hash = $1
      AND u.id = found.link_id
      AND {_OPEN_FROM}
      AND u.expires_at > $2
      AND (found.questionnaire_id || ':' || found.questionnaire_version::text) = ANY(string_to_array($4, ','))
    RETURNING u.id
), relaxed AS (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
)
SELECT found.*, EXISTS (SELECT 1 FROM opened) AS opened_now FROM found, relaxed
"""  # noqa: S608 (the lifecycle's constants, no input)


_COMPLETE_SET, _COMPLETE_FROM = sql_move(COMPLETE, alias="module_survey_links", at="$2", changed_at="$4")
_COMPLETE_SQL = f"""
UPDATE module_survey_links
SET {_COMPLETE_SET}, response_id = $3
WHERE token_hash = $1 AND {_COMPLETE_FROM} AND expires_at > $2
RETURNING id
"""  # noqa: S608 (the lifecycle's constants, no input)


class PostgresLinkRepository(LinkRepository):
    """:class:`LinkRepository` with the hot path over asyncpg: :meth:`find_and_open` and :meth:`complete`
    are one statement each, in a transaction of their own (committed by the statement), on the
    database's lean pool."""

    async def find_and_open(
        self, token_hash: str, *, now: datetime, open_versions: Iterable[str]
    ) -> tuple[LinkWithCard, bool] | None:
        # One text parameter rather than a text[]: asyncpg's array encoding costs ≈2 µs per element.
        row = await pgpool.fetchrow(self._uow.db, _OPEN_SQL, token_hash, now, utcnow(), ",".join(open_versions))
        if row is None:
            return None
        values = dict(row.items())
        opened_now = bool(values.pop("opened_now"))
        return LinkWithCard(**values), opened_now

    async def complete(self, token_hash: str, *, response_id: str, now: datetime) -> bool:
        row = await pgpool.fetchrow(self._uow.db, _COMPLETE_SQL, token_hash, now, response_id, utcnow())
        return row is not None


def link_repository(uow: UnitOfWork) -> LinkRepository:
    """The links of ``uow``: with the asyncpg hot path on PostgreSQL through asyncpg, else plain."""
    return PostgresLinkRepository(uow) if uow.db.on_asyncpg else LinkRepository(uow)
