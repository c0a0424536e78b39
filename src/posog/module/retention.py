"""Purging personal data after its time (SPEC §10): the citizen's ФИО, birth date and СНИЛС are kept only
for the link's life plus ``POSOG_PII_RETENTION_DAYS``; then they are erased and the anonymous card stays
(organisation, service, dates, link state — what analytics and ИАС МКГУ need).

When a card's personal data is due:
- a card with a link — the link expired (or would have: a completed link counts from its expiry too)
  more than the retention ago;
- a late card (its survey period ended before a link could be issued) — created more than the
  retention ago;
- a card still waiting for a questionnaire — its service is older than the fact horizon (no link can
  come any more) plus the retention.

Everything else that holds a sealed copy goes too: sent ГЭПС notifications of the outbox and those that
failed for good (deleted), the payloads of rejected facts (erased; the reasons stay, the fact can no
longer be re-driven), recorded conflicts (deleted) and documents left in the СМЭВ web service's inbound
spool (deleted; they live seconds unless the worker stopped), each once older than the retention. Work is
done in batches, each its own transaction, so a purge never holds long locks; running it twice, or in
two processes, is harmless.

The broker's copies go at the same age: the facts' dead-letter queue is declared with the retention as
its message TTL, and the purge also drops, from its head, every dead letter older than the retention
(for a queue declared before it had a TTL, or a policy that sets none)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, or_, select, update

from posog.core.bus import BusError, MessageBus
from posog.core.clock import Clock, today
from posog.core.db import Database
from posog.module.intake.dead_letters import DEAD_LETTERED_AT_HEADER
from posog.module.intake.model import (
    CARD_LATE,
    CARD_WAITING,
    FactConflict,
    IntakeAttempt,
    RejectedFact,
    ServiceCard,
)
from posog.module.links.model import LINK_STATES, SurveyLink
from posog.module.notifications.model import OutboxMessage
from posog.module.smev.spool import SmevSpooled

log = structlog.get_logger(__name__)

PURGED = "purged"  # the status of a rejected fact whose payload was erased


@dataclass
class PurgeResult:
    cards: int = 0
    notifications: int = 0
    rejected: int = 0
    conflicts: int = 0
    dead_letters: int = 0
    spooled: int = 0

    @property
    def total(self) -> int:
        return self.cards + self.notifications + self.rejected + self.conflicts + self.dead_letters + self.spooled


def dead_lettered_at(headers: dict[str, str]) -> datetime | None:
    """When a message was dead-lettered: intake's own header, else the broker's ``x-death`` record."""
    stamp = headers.get(DEAD_LETTERED_AT_HEADER)
    if stamp is None and "x-death" in headers:
        try:
            deaths = json.loads(headers["x-death"])
            stamp = deaths[0]["time"] if isinstance(deaths, list) and deaths else None
        except (ValueError, KeyError, TypeError):
            stamp = None
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class PiiPurger:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        retention_days: int,
        horizon_days: int,
        batch_size: int = 1000,
        bus: MessageBus | None = None,
        dead_letter_queue: str | None = None,
    ) -> None:
        self._bus = bus
        self._dead_letter_queue = dead_letter_queue
        self._db = db
        self._clock = clock
        self._retention = timedelta(days=retention_days)
        self._horizon = timedelta(days=horizon_days)
        self._batch = batch_size

    async def purge_once(self) -> PurgeResult:
        """Everything due now, batch after batch."""
        result = PurgeResult()
        while n := await self._cards_with_links():
            result.cards += n
        while n := await self._cards_without_links():
            result.cards += n
        while n := await self._sent_notifications():
            result.notifications += n
        while n := await self._rejected_payloads():
            result.rejected += n
        while n := await self._conflicts():
            result.conflicts += n
        while n := await self._spooled():
            result.spooled += n
        result.dead_letters = await self._dead_letters()
        await self._attempts()
        if result.total:
            log.info(
                "module.pii_purged",
                cards=result.cards,
                notifications=result.notifications,
                rejected=result.rejected,
                conflicts=result.conflicts,
                dead_letters=result.dead_letters,
                spooled=result.spooled,
            )
        return result

    async def run(self, interval_s: float = 3600.0) -> None:
        """Purge now, then every ``interval_s``, until cancelled; a failed round is retried next time."""
        while True:
            try:
                await self.purge_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away: nothing is lost, the next round retries
                log.warning("module.pii_purge_failed", error=type(exc).__name__)
            await asyncio.sleep(interval_s)

    # --- One batch of each kind -----------------------------------------------------------------

    async def _erase_cards(self, ids: list[str]) -> int:
        if not ids:
            return 0
        async with self._db.uow() as uow:
            await uow.session.execute(
                update(ServiceCard)
                .where(ServiceCard.id.in_(ids), ServiceCard.pii_purged_at.is_(None))
                .values(pii=None, pii_key_id=None, snils_hash=None, pii_purged_at=self._clock())
            )
            await uow.commit()
        return len(ids)

    async def _cards_with_links(self) -> int:
        cutoff = self._clock() - self._retention
        async with self._db.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(ServiceCard.id)
                        .join(SurveyLink, SurveyLink.card_id == ServiceCard.card_id)
                        # every state, so that the (state, expires_at) index serves the range
                        .where(SurveyLink.state.in_(LINK_STATES), SurveyLink.expires_at < cutoff)
                        .where(ServiceCard.pii_purged_at.is_(None))
                        .limit(self._batch)
                    )
                ).all()
            )
        return await self._erase_cards(ids)

    async def _cards_without_links(self) -> int:
        now = self._clock()
        oldest_waiting = today(lambda: now) - self._horizon - self._retention
        async with self._db.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(ServiceCard.id)
                        .where(ServiceCard.pii_purged_at.is_(None))
                        .where(
                            or_(
                                (ServiceCard.status == CARD_LATE) & (ServiceCard.created_at < now - self._retention),
                                (ServiceCard.status == CARD_WAITING) & (ServiceCard.service_date < oldest_waiting),
                            )
                        )
                        .limit(self._batch)
                    )
                ).all()
            )
        return await self._erase_cards(ids)

    async def _sent_notifications(self) -> int:
        cutoff = self._clock() - self._retention
        async with self._db.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(OutboxMessage.id)
                        .where(OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < cutoff)
                        .limit(self._batch)
                    )
                ).all()
            )
            # And those that failed for good (ЕПГУ could not deliver them: dead, never sent). Few: the
            # unsent rows' partial index finds them.
            ids += list(
                (
                    await uow.session.scalars(
                        select(OutboxMessage.id)
                        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.dead_at < cutoff)
                        .limit(self._batch)
                    )
                ).all()
            )
            if ids:
                await uow.session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
                await uow.commit()
        return len(ids)

    async def _rejected_payloads(self) -> int:
        now = self._clock()
        async with self._db.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(RejectedFact.id)
                        .where(RejectedFact.status != PURGED, RejectedFact.received_at < now - self._retention)
                        .limit(self._batch)
                    )
                ).all()
            )
            if ids:
                await uow.session.execute(
                    update(RejectedFact)
                    .where(RejectedFact.id.in_(ids))
                    .values(payload=b"", pii_key_id="", status=PURGED, updated_at=now)
                )
                await uow.commit()
        return len(ids)

    async def _conflicts(self) -> int:
        cutoff = self._clock() - self._retention
        async with self._db.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(FactConflict.id).where(FactConflict.received_at < cutoff).limit(self._batch)
                    )
                ).all()
            )
            if ids:
                await uow.session.execute(delete(FactConflict).where(FactConflict.id.in_(ids)))
                await uow.commit()
        return len(ids)

    async def _spooled(self) -> int:
        """A document of the СМЭВ web service's inbound spool lives seconds; one still there after the
        retention (its worker stopped for that long, or it could be neither handled nor kept) holds
        personal data no longer than any other copy: erased, and said loudly."""
        cutoff = self._clock() - self._retention
        async with self._db.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(SmevSpooled.id).where(SmevSpooled.received_at < cutoff).limit(self._batch)
                    )
                ).all()
            )
            if ids:
                await uow.session.execute(delete(SmevSpooled).where(SmevSpooled.id.in_(ids)))
                await uow.commit()
                log.error("module.pii_purged_unprocessed_spool", documents=len(ids))
        return len(ids)

    async def _dead_letters(self) -> int:
        if self._bus is None or self._dead_letter_queue is None:
            return 0
        cutoff = self._clock() - self._retention

        def expired(headers: dict[str, str]) -> bool:
            moment = dead_lettered_at(headers)
            return moment is not None and moment < cutoff

        try:
            return await self._bus.drop_head_while(self._dead_letter_queue, expired)
        except BusError as exc:  # the broker is away: the next round tries again (and the TTL works)
            log.warning("module.pii_purge_dead_letters_failed", error=type(exc).__name__)
            return 0

    async def _attempts(self) -> None:
        """Attempt counts hold only a hash; they go with the rejected facts' age."""
        async with self._db.uow() as uow:
            await uow.session.execute(
                delete(IntakeAttempt).where(IntakeAttempt.last_attempt_at < self._clock() - self._retention)
            )
            await uow.commit()
