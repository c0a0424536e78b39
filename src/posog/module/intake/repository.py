"""Intake's write side on one unit of work: the statements, and their PostgreSQL specifics (``= ANY``,
``COPY``, ``ON CONFLICT``), live here; the handler says what to store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posog.core.db import among, insert_ignoring
from posog.module.intake.bulk import insert_rows
from posog.module.intake.model import REDRIVEN, FactConflict, IntakeAttempt, RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage

_LOOKUP_CHUNK = 500


class IntakeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._dialect = session.get_bind().dialect.name

    async def known_cards(self, card_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``card_id`` → (payload hash, status) of the cards on record among ``card_ids``."""
        found: dict[str, tuple[str, str]] = {}
        ids = list(dict.fromkeys(card_ids))
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            rows = await self._session.execute(
                select(ServiceCard.card_id, ServiceCard.payload_hash, ServiceCard.status).where(
                    among(self._dialect, ServiceCard.card_id, ids[start : start + _LOOKUP_CHUNK])
                )
            )
            found.update({r.card_id: (r.payload_hash, r.status) for r in rows})
        return found

    async def card(self, card_id: str) -> ServiceCard | None:
        return (await self._session.execute(select(ServiceCard).where(ServiceCard.card_id == card_id))).scalar()

    async def add_cards(
        self, cards: list[dict[str, Any]], links: list[dict[str, Any]], outbox: list[dict[str, Any]]
    ) -> None:
        """New cards, their links and notifications: one statement per table (COPY on PostgreSQL)."""
        await insert_rows(self._session, ServiceCard.__table__, cards)  # type: ignore[arg-type]
        await insert_rows(self._session, SurveyLink.__table__, links)  # type: ignore[arg-type]
        await insert_rows(self._session, OutboxMessage.__table__, outbox)  # type: ignore[arg-type]

    async def add_conflicts(self, rows: list[dict[str, Any]]) -> None:
        """Conflict records; the same payload under the same card_id twice is one record."""
        if rows:
            await self._session.execute(insert_ignoring(self._dialect, FactConflict, ["card_id", "payload_hash"]), rows)

    async def add_rejections(self, rows: list[dict[str, Any]]) -> None:
        """Rejected facts; the same body twice is one record."""
        if rows:
            await self._session.execute(insert_ignoring(self._dialect, RejectedFact, ["raw_hash"]), rows)

    async def rejected(self, ids: Sequence[str]) -> dict[str, RejectedFact]:
        rows = (await self._session.execute(select(RejectedFact).where(RejectedFact.id.in_(list(ids))))).scalars()
        return {row.id: row for row in rows}

    async def record_redrive(self, rejected_id: str, reasons: list[dict[str, str]] | None, now: datetime) -> None:
        """One more attempt at a rejected fact: its new reasons, or ``redriven`` when it went through."""
        values: dict[str, Any] = {"attempts": RejectedFact.attempts + 1, "updated_at": now}
        if reasons is None:
            values["status"] = REDRIVEN
        else:
            values["reasons"] = reasons
        await self._session.execute(update(RejectedFact).where(RejectedFact.id == rejected_id).values(**values))

    async def count_attempt(self, raw_hash: str, now: datetime) -> int:
        """One more attempt at handling the body with this hash alone; how many so far."""
        await self._session.execute(
            insert_ignoring(self._dialect, IntakeAttempt, ["raw_hash"]),
            [{"raw_hash": raw_hash, "attempts": 0, "last_attempt_at": now}],
        )
        attempts = await self._session.scalar(
            update(IntakeAttempt)
            .where(IntakeAttempt.raw_hash == raw_hash)
            .values(attempts=IntakeAttempt.attempts + 1, last_attempt_at=now)
            .returning(IntakeAttempt.attempts)
        )
        return int(attempts or 0)
