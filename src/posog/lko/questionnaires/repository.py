"""Write side of questionnaires. Callers own the transaction (the unit of work); nothing here commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from posog.core.db import insert_ignoring
from posog.lko.contracts import QuestionnaireDraft, SurveyLevel
from posog.lko.questionnaires.model import Questionnaire, QuestionnaireVersion, freeze


def insert_ignoring_conflicts(dialect: str, table: Table, rows: list[dict[str, Any]]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` (any unique constraint) for SQLite and PostgreSQL, so that
    concurrent processes inserting the same rows never fail."""
    return insert_ignoring(dialect, table).values(rows)  # type: ignore[attr-defined]


class QuestionnaireRepository:
    """Questionnaires and their versions inside one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    @property
    def _dialect(self) -> str:
        return self._session.get_bind().dialect.name

    async def get(self, questionnaire_id: str) -> Questionnaire | None:
        """The questionnaire, or None."""
        return await self._session.get(Questionnaire, questionnaire_id)

    async def add_published_if_absent(
        self,
        *,
        questionnaire_id: str,
        type_code: str,
        level: SurveyLevel,
        draft: QuestionnaireDraft,
        now: datetime,
    ) -> bool:
        """Insert a questionnaire already published as active version 1, unless its id is taken or
        another questionnaire is active for (type, level). True if this call inserted it."""
        document = freeze(questionnaire_id, 1, type_code, level, draft)
        questionnaires: Table = Questionnaire.__table__  # type: ignore[assignment]
        versions: Table = QuestionnaireVersion.__table__  # type: ignore[assignment]
        inserted = await self._session.execute(
            insert_ignoring_conflicts(
                self._dialect,
                questionnaires,
                [
                    {
                        "id": questionnaire_id,
                        "type_code": type_code,
                        "level": level,
                        "title": draft.title,
                        "status": "active",
                        "draft": draft.model_dump(mode="json", exclude_none=True),
                        "active_version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            ).returning(questionnaires.c.id)
        )
        if inserted.first() is None:
            return False
        await self._session.execute(
            insert_ignoring_conflicts(
                self._dialect,
                versions,
                [
                    {
                        "questionnaire_id": questionnaire_id,
                        "version": 1,
                        "document": document.model_dump(mode="json", exclude_none=True),
                        "published_at": now,
                    }
                ],
            )
        )
        return True
