"""Write side of responses. Callers own the transaction (the unit of work); nothing here commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.responses.model import SurveyResponse


class ResponseRepository:
    """Responses inside one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, response: SurveyResponse) -> None:
        """Insert a response. A second response for the card, or a reused idempotency key, fails with
        ``IntegrityError`` (here or at commit): the unique constraints decide between concurrent
        submissions, not a read before the write."""
        self._session.add(response)
        await self._session.flush()

    async def by_idempotency_key(self, idempotency_key: str) -> SurveyResponse | None:
        return await self._session.scalar(
            select(SurveyResponse).where(SurveyResponse.idempotency_key == idempotency_key)
        )

    async def pending_completions(self, *, submitted_before: datetime, limit: int) -> list[SurveyResponse]:
        """Responses whose link completion the module has not confirmed yet, oldest first."""
        query = (
            select(SurveyResponse)
            .where(SurveyResponse.completion_token.isnot(None), SurveyResponse.submitted_at <= submitted_before)
            .order_by(SurveyResponse.submitted_at)
            .limit(limit)
        )
        return list(await self._session.scalars(query))

    async def settle_completion(
        self, response_id: str, *, completed_at: datetime | None, refusal: str | None = None
    ) -> None:
        """Record the module's answer to the completion and forget the token, which is no longer needed."""
        await self._session.execute(
            update(SurveyResponse)
            .where(SurveyResponse.id == response_id)
            .values(completion_token=None, link_completed_at=completed_at, link_refusal=refusal)
        )
