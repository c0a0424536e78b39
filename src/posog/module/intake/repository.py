"""Cards and intake's records on one unit of work (``uow.cards``, ``uow.intake``): the statements, and
their PostgreSQL specifics (``= ANY``, ``COPY``, ``ON CONFLICT``), live here; the handlers say what to
store. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from posog.core.db import Repository, insert_rows
from posog.module.intake.model import CARD_WAITING, REDRIVEN, FactConflict, IntakeAttempt, RejectedFact, ServiceCard

_LOOKUP_CHUNK = 500


class CardRepository(Repository):
    """Service cards."""

    async def known(self, card_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``card_id`` → (payload hash, status) of the cards on record among ``card_ids``."""
        found: dict[str, tuple[str, str]] = {}
        ids = list(dict.fromkeys(card_ids))
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            rows = await self.session.execute(
                select(ServiceCard.card_id, ServiceCard.payload_hash, ServiceCard.status).where(
                    self.among(ServiceCard.card_id, ids[start : start + _LOOKUP_CHUNK])
                )
            )
            found.update({r.card_id: (r.payload_hash, r.status) for r in rows})
        return found

    async def get(self, card_id: str) -> ServiceCard | None:
        return (await self.session.execute(select(ServiceCard).where(ServiceCard.card_id == card_id))).scalar()

    async def waiting(self, type_code: str, level: str, *, limit: int) -> list[ServiceCard]:
        """Up to ``limit`` cards waiting for a questionnaire for (type, level), oldest first, locked
        for this unit (``FOR UPDATE SKIP LOCKED``: concurrent releases take different cards). Changes
        made to them are written at commit."""
        query = (
            select(ServiceCard)
            .where(
                ServiceCard.type_code == type_code,
                ServiceCard.survey_level == level,
                ServiceCard.status == CARD_WAITING,
            )
            .order_by(ServiceCard.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(query)).scalars().all())

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """New cards: one statement (COPY on PostgreSQL)."""
        await insert_rows(self.session, ServiceCard.__table__, rows)  # type: ignore[arg-type]


class IntakeRepository(Repository):
    """Conflicts, rejected facts and attempts: what intake records besides cards."""

    async def add_conflicts(self, rows: list[dict[str, Any]]) -> None:
        """Conflict records; the same payload under the same card_id twice is one record."""
        if rows:
            await self.session.execute(self.insert_ignoring(FactConflict, ["card_id", "payload_hash"]), rows)

    async def add_rejections(self, rows: list[dict[str, Any]]) -> None:
        """Rejected facts; the same body twice is one record."""
        if rows:
            await self.session.execute(self.insert_ignoring(RejectedFact, ["raw_hash"]), rows)

    async def rejected(self, ids: Sequence[str]) -> dict[str, RejectedFact]:
        rows = (await self.session.execute(select(RejectedFact).where(RejectedFact.id.in_(list(ids))))).scalars()
        return {row.id: row for row in rows}

    async def record_redrive(self, rejected_id: str, reasons: list[dict[str, str]] | None, now: datetime) -> None:
        """One more attempt at a rejected fact: its new reasons, or ``redriven`` when it went through."""
        values: dict[str, Any] = {"attempts": RejectedFact.attempts + 1, "updated_at": now}
        if reasons is None:
            values["status"] = REDRIVEN
        else:
            values["reasons"] = reasons
        await self.session.execute(update(RejectedFact).where(RejectedFact.id == rejected_id).values(**values))

    async def count_attempt(self, raw_hash: str, now: datetime) -> int:
        """One more attempt at handling the body with this hash alone; how many so far."""
        await self.session.execute(
            self.insert_ignoring(IntakeAttempt, ["raw_hash"]),
            [{"raw_hash": raw_hash, "attempts": 0, "last_attempt_at": now}],
        )
        attempts = await self.session.scalar(
            update(IntakeAttempt)
            .where(IntakeAttempt.raw_hash == raw_hash)
            .values(attempts=IntakeAttempt.attempts + 1, last_attempt_at=now)
            .returning(IntakeAttempt.attempts)
        )
        return int(attempts or 0)
