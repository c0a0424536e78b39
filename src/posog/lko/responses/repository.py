"""Write side of responses on a unit of work (``uow.responses``). Nothing here commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from posog.core.db import Repository
from posog.core.outbox import Outbox
from posog.lko.responses.model import COMPLETIONS, PendingCompletion, SurveyResponse


class ResponseRepository(Repository):
    """Responses and their pending link completions."""

    async def add(self, response: SurveyResponse) -> None:
        """Insert a response. A second response for the card, or a reused idempotency key, fails with
        ``IntegrityError`` (here or at commit): the unique constraints decide between concurrent
        submissions, not a read before the write. Its link completion is pending from now on (due at
        once: the request itself completes it, the recovery only after a grace)."""
        self.session.add(response)
        self.session.add(
            PendingCompletion(
                response_id=response.id,
                created_at=response.submitted_at,
                attempts=0,
                next_attempt_at=response.submitted_at,
            )
        )
        await self.session.flush()

    async def by_idempotency_key(self, idempotency_key: str) -> SurveyResponse | None:
        return await self.session.scalar(
            select(SurveyResponse).where(SurveyResponse.idempotency_key == idempotency_key)
        )

    async def completion_tokens(self, response_ids: list[str]) -> dict[str, str | None]:
        """The tokens the pending completions of ``response_ids`` need (None: settled meanwhile)."""
        query = select(SurveyResponse.id, SurveyResponse.completion_token).where(SurveyResponse.id.in_(response_ids))
        return {row.id: row.completion_token for row in await self.session.execute(query)}

    async def settle_completion(
        self, response_id: str, *, completed_at: datetime | None, refusal: str | None = None, at: datetime
    ) -> None:
        """Record the module's answer to the completion (``completed_at``, or its final ``refusal``),
        forget the token, which is no longer needed, and mark the pending completion sent at ``at``."""
        await self.session.execute(
            update(SurveyResponse)
            .where(SurveyResponse.id == response_id)
            .values(completion_token=None, link_completed_at=completed_at, link_refusal=refusal)
        )
        await self.completions().mark_sent(self.session, [response_id], at=at)

    def completions(self) -> Outbox[PendingCompletion]:
        """The delivery engine over the pending completions (its outcomes in this unit's session)."""
        return Outbox(self._uow.db, COMPLETIONS)
