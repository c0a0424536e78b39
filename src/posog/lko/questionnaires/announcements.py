"""Announcing publications to the module, so the cards that waited for a questionnaire get their links.

Publishing writes an ``lko_announcements`` row in the same transaction as the new version (nothing is
lost if the module is down or the process dies); after the commit the row is sent through the
module's contract (:meth:`ModuleClient.release_waiting_cards`) and marked sent. Rows the module did not
take are retried with backoff: after each publication, at start-up and periodically
(:meth:`AnnouncementRelay.run`). The table is the ``lko-announcements`` delivery of the one engine
(:mod:`posog.core.outbox`), which claims, leases and schedules; the relay supplies the call. Several
processes may relay at once: a row is claimed with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)
before the call, and releasing twice is harmless — the module releases only the cards still
waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy import Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.clock import Clock, utcnow
from posog.core.db import Base, Database, UTCDateTime, UUIDStr, new_uuid
from posog.core.outbox import Delivery, DeliveryColumns, Failure, Outbox
from posog.lko.contracts import SurveyLevel
from posog.module.contracts import ReleaseResult
from posog.settings import Settings

log = structlog.get_logger(__name__)


class Announcement(DeliveryColumns, Base):
    """ "(type, level) has a newly published questionnaire" — to be told to the module."""

    __tablename__ = "lko_announcements"
    __table_args__ = (Index("ix_lko_announcements_due", "sent_at", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(UUIDStr(), primary_key=True)
    questionnaire_id: Mapped[str] = mapped_column(UUIDStr())
    version: Mapped[int] = mapped_column(Integer)
    type_code: Mapped[str] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # NOT NULL as before the engine (0002): a sent row keeps its last due time.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued: Mapped[int | None] = mapped_column(Integer)
    late: Mapped[int | None] = mapped_column(Integer)


ANNOUNCEMENTS = Delivery("lko-announcements", Announcement)


def new_announcement(questionnaire_id: str, version: int, type_code: str, level: str, *, now: datetime) -> Announcement:
    """A pending announcement, due now (add it in the publishing transaction)."""
    return Announcement(
        id=new_uuid(),
        questionnaire_id=questionnaire_id,
        version=version,
        type_code=type_code,
        level=level,
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )


class ReleasePort(Protocol):
    """The module's side of the contract (``ModuleClient`` in production, fakes in tests)."""

    async def release_waiting_cards(self, type_code: str, level: SurveyLevel) -> ReleaseResult: ...


@dataclass(frozen=True)
class AnnouncementOutcome:
    announcement_id: str
    type_code: str
    level: str
    sent: bool
    issued: int = 0
    late: int = 0
    error: str | None = None


class AnnouncementRelay:
    """Sends pending announcements to the module; ``module`` gives the client to use now (None: not
    connected, nothing is sent)."""

    def __init__(
        self,
        db: Database,
        module: Callable[[], ReleasePort | None],
        *,
        clock: Clock = utcnow,
        lease: timedelta = timedelta(seconds=60),
        base_backoff: timedelta = timedelta(seconds=5),
        max_backoff: timedelta = timedelta(minutes=10),
        batch_size: int = 50,
    ) -> None:
        self._db = db
        self._module = module
        self._clock = clock
        self._lease = lease
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._batch_size = batch_size
        self.outbox = Outbox(
            db, ANNOUNCEMENTS, base_s=base_backoff.total_seconds(), cap_s=max_backoff.total_seconds(), clock=clock
        )

    @classmethod
    def from_settings(
        cls, db: Database, module: ReleasePort, settings: Settings, *, clock: Clock = utcnow
    ) -> AnnouncementRelay:
        """The relay of ``posog worker lko-announcements`` (ЛКО's servers run one each as well)."""
        return cls(db, lambda: module, clock=clock, lease=timedelta(seconds=settings.announcement_lease_s))

    async def send_pending(self, *, now: datetime | None = None) -> list[AnnouncementOutcome]:
        """Send every announcement due at ``now`` (default: the clock); returns what happened to each."""
        module = self._module()
        if module is None:
            return []
        claimed = await self._claim(now or self._clock())
        if not claimed:
            return []
        # One call per (type, level), however many announcements wait for it.
        results: dict[tuple[str, str], ReleaseResult | str] = {}
        for key in dict.fromkeys((a.type_code, a.level) for a in claimed):
            level: SurveyLevel = key[1]  # type: ignore[assignment]
            try:
                results[key] = await module.release_waiting_cards(key[0], level)
            except Exception as exc:  # any failure: retried later, never lost
                results[key] = f"{exc.__class__.__name__}: {str(exc)[:400]}"
                log.warning(
                    "lko.announcements.release_failed", type_code=key[0], survey_level=key[1], error=results[key]
                )
        return await self._settle(claimed, results, now or self._clock())

    async def _claim(self, now: datetime) -> list[Announcement]:
        return await self.outbox.claim_due(self._batch_size, lease=self._lease, now=now)

    async def _settle(
        self, claimed: list[Announcement], results: dict[tuple[str, str], ReleaseResult | str], now: datetime
    ) -> list[AnnouncementOutcome]:
        outcomes: list[AnnouncementOutcome] = []
        async with self._db.uow() as uow:
            for claim in claimed:
                row = await uow.session.get(Announcement, claim.id)
                if row is None or row.sent_at is not None:
                    continue
                result = results[(claim.type_code, claim.level)]
                if isinstance(result, ReleaseResult):
                    self.outbox.sent(row, at=now)
                    row.issued, row.late = result.issued, result.late
                    outcomes.append(
                        AnnouncementOutcome(row.id, row.type_code, row.level, True, result.issued, result.late)
                    )
                else:
                    self.outbox.failed(row, Failure(row.id, row.attempts, result), now=now)
                    outcomes.append(AnnouncementOutcome(row.id, row.type_code, row.level, False, error=result))
            await uow.commit()
        for outcome in outcomes:
            if outcome.sent:
                log.info(
                    "lko.announcements.sent",
                    type_code=outcome.type_code,
                    survey_level=outcome.level,
                    issued=outcome.issued,
                    late=outcome.late,
                )
        return outcomes

    async def send_after_publication(self, announcement_id: str) -> AnnouncementOutcome | None:
        """Right after a publication's commit: send what is pending (this one among it) and say what
        happened to this one — None if it stays pending (the module did not take it, or another
        process is sending it). Never raises: the relay retries later."""
        try:
            outcomes = await self.send_pending()
        except Exception:
            log.exception("lko.announcements.send_failed")
            return None
        return next((o for o in outcomes if o.announcement_id == announcement_id and o.sent), None)

    async def pending_count(self) -> int:
        """How many announcements the module has not received yet."""
        async with self._db.uow() as uow:
            query = select(func.count()).select_from(Announcement).where(Announcement.sent_at.is_(None))
            return int(await uow.session.scalar(query) or 0)

    async def run(self, interval_s: float) -> None:
        """Send pending announcements now and every ``interval_s`` seconds, until cancelled."""
        while True:
            try:
                await self.send_pending()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down for a while; keep trying
                log.exception("lko.announcements.relay_error")
            await self.outbox.observe_quietly()  # the delivery's gauges, after each round
            await asyncio.sleep(interval_s)
