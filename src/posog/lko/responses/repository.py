"""Write side of responses. Callers own the transaction (the unit of work); nothing here commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.responses.model import PendingCompletion, SurveyResponse


class ResponseRepository:
    """Responses inside one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, response: SurveyResponse) -> None:
        """Insert a response. A second response for the card, or a reused idempotency key, fails with
        ``IntegrityError`` (here or at commit): the unique constraints decide between concurrent
        submissions, not a read before the write. Its link completion is pending from now on (due at
        once: the request itself completes it, the recovery only after a grace)."""
        self._session.add(response)
        self._session.add(
            PendingCompletion(
                response_id=response.id,
                created_at=response.submitted_at,
                attempts=0,
                next_attempt_at=response.submitted_at,
            )
        )
        await self._session.flush()

    async def by_idempotency_key(self, idempotency_key: str) -> SurveyResponse | None:
        return await self._session.scalar(
            select(SurveyResponse).where(SurveyResponse.idempotency_key == idempotency_key)
        )

    async def completion_tokens(self, response_ids: list[str]) -> dict[str, str | None]:
        """The tokens the pending completions of ``response_ids`` need (None: settled meanwhile)."""
        query = select(SurveyResponse.id, SurveyResponse.completion_token).where(SurveyResponse.id.in_(response_ids))
        return {row.id: row.completion_token for row in await self._session.execute(query)}

    async def settle_completion(
        self, response_id: str, *, completed_at: datetime | None, refusal: str | None = None
    ) -> None:
        """Record the module's answer to the completion and forget the token, which is no longer needed."""
        await self._session.execute(
            update(SurveyResponse)
            .where(SurveyResponse.id == response_id)
            .values(completion_token=None, link_completed_at=completed_at, link_refusal=refusal)
        )
