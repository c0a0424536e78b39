"""Read side of survey links: a link with the card it rates, found by the hash of its token — and, on
PostgreSQL, the one-statement form that also opens it (the hot path of ``GET /survey-links/{token}``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.core.db import Database
from posog.module.intake.model import ServiceCard
from posog.module.links import pgpool
from posog.module.links.lifecycle import COMPLETE, OPEN, sql_move
from posog.module.links.model import SurveyLink


@dataclass(frozen=True)
class LinkWithCard:
    """A link and the anonymous part of its card (never the sealed personal data)."""

    link_id: str
    state: str
    expires_at: datetime
    questionnaire_id: str
    questionnaire_version: int
    response_id: str | None
    card_id: str
    survey_level: str
    service_date: date
    service_name: str | None
    org_name: str
    org_address: str
    inn: str
    ogrn: str
    kpp: str | None
    type_code: str
    region_code: str


async def find_link(session: AsyncSession, token_hash: str) -> LinkWithCard | None:
    """The link whose token hashes to ``token_hash``, with its card: one lookup by a unique index
    (whatever the token looked like, so unknown and malformed tokens cost the same)."""
    query = (
        select(
            SurveyLink.id.label("link_id"),
            SurveyLink.state,
            SurveyLink.expires_at,
            SurveyLink.questionnaire_id,
            SurveyLink.questionnaire_version,
            SurveyLink.response_id,
            ServiceCard.card_id,
            ServiceCard.survey_level,
            ServiceCard.service_date,
            ServiceCard.service_name,
            ServiceCard.org_name,
            ServiceCard.org_address,
            ServiceCard.inn,
            ServiceCard.ogrn,
            ServiceCard.kpp,
            ServiceCard.type_code,
            ServiceCard.region_code,
        )
        .join(ServiceCard, ServiceCard.card_id == SurveyLink.card_id)
        .where(SurveyLink.token_hash == token_hash)
    )
    row = (await session.execute(query)).first()
    return None if row is None else LinkWithCard(**row._mapping)


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


async def find_and_open_link_postgresql(
    db: Database, token_hash: str, *, now: datetime, changed_at: datetime, open_versions: Iterable[str]
) -> tuple[LinkWithCard, bool] | None:
    """PostgreSQL only: :func:`find_link`, and the link opened at ``now`` (``changed_at`` stamped) when
    it is issued or notified, not expired, and its pinned ``questionnaire_id:version`` is among
    ``open_versions``. Returns the link as it was before, and whether this call opened it. One
    statement, its own transaction, on the database's asyncpg pool (:mod:`posog.module.links.pgpool`)."""
    # One text parameter rather than a text[]: asyncpg's array encoding costs ≈2 µs per element.
    row = await pgpool.fetchrow(db, _OPEN_SQL, token_hash, now, changed_at, ",".join(open_versions))
    if row is None:
        return None
    values = dict(row.items())
    opened_now = bool(values.pop("opened_now"))
    return LinkWithCard(**values), opened_now


_COMPLETE_SET, _COMPLETE_FROM = sql_move(COMPLETE, alias="module_survey_links", at="$2", changed_at="$4")
_COMPLETE_SQL = f"""
UPDATE module_survey_links
SET {_COMPLETE_SET}, response_id = $3
WHERE token_hash = $1 AND {_COMPLETE_FROM} AND expires_at > $2
RETURNING id
"""  # noqa: S608 (the lifecycle's constants, no input)


async def complete_link_postgresql(
    db: Database, token_hash: str, *, response_id: str, now: datetime, changed_at: datetime
) -> bool:
    """PostgreSQL only: complete the live, unexpired link of ``token_hash`` with ``response_id`` in one
    statement (its own transaction) on the asyncpg pool; False when no such link (the caller finds out
    why). The move is lifecycle.COMPLETE."""
    return await pgpool.fetchrow(db, _COMPLETE_SQL, token_hash, now, response_id, changed_at) is not None
