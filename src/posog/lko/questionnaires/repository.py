"""Write side of questionnaires on a unit of work (``uow.questionnaires``). Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select

from posog.core.db import Repository
from posog.lko.contracts import QuestionnaireDocument, QuestionnaireDraft, SurveyLevel
from posog.lko.questionnaires.announcements import Announcement
from posog.lko.questionnaires.model import Questionnaire, QuestionnaireVersion, freeze


class QuestionnaireRepository(Repository):
    """Questionnaires, their versions and the announcements of their publications."""

    async def get(self, questionnaire_id: str) -> Questionnaire | None:
        """The questionnaire, or None."""
        return await self.session.get(Questionnaire, questionnaire_id)

    async def locked(self, questionnaire_id: str) -> Questionnaire | None:
        """The questionnaire, locked for this unit (``FOR UPDATE``), or None."""
        return await self.session.scalar(
            select(Questionnaire).where(Questionnaire.id == questionnaire_id).with_for_update()
        )

    def add(self, questionnaire: Questionnaire) -> None:
        self.session.add(questionnaire)

    async def latest_version(self, questionnaire_id: str) -> int:
        """The highest version published (0: none yet)."""
        latest = await self.session.scalar(
            select(func.max(QuestionnaireVersion.version)).where(
                QuestionnaireVersion.questionnaire_id == questionnaire_id
            )
        )
        return latest or 0

    async def active_besides(self, questionnaire: Questionnaire) -> Sequence[Questionnaire]:
        """The other questionnaires active for ``questionnaire``'s (type, level), locked."""
        return (
            await self.session.scalars(
                select(Questionnaire)
                .where(
                    Questionnaire.type_code == questionnaire.type_code,
                    Questionnaire.level == questionnaire.level,
                    Questionnaire.status == "active",
                    Questionnaire.id != questionnaire.id,
                )
                .with_for_update()
            )
        ).all()

    async def add_version(self, document: QuestionnaireDocument, *, published_at: datetime) -> None:
        """Store the published version ``document``. The changes made so far (the questionnaires it
        replaces withdrawn) are written first: one active questionnaire per (type, level) is a unique
        index, which a concurrent publication may violate here (``IntegrityError``) or at commit."""
        await self.session.flush()
        self.session.add(
            QuestionnaireVersion(
                questionnaire_id=document.id,
                version=document.version,
                document=document.model_dump(mode="json", exclude_none=True),
                published_at=published_at,
            )
        )

    def announce(self, announcement: Announcement) -> None:
        """Record the announcement of a publication (sent to the module after the commit)."""
        self.session.add(announcement)

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
        inserted = await self.session.execute(
            self._insert_ignoring(
                questionnaires,
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
                },
            ).returning(questionnaires.c.id)
        )
        if inserted.first() is None:
            return False
        await self.session.execute(
            self._insert_ignoring(
                versions,
                {
                    "questionnaire_id": questionnaire_id,
                    "version": 1,
                    "document": document.model_dump(mode="json", exclude_none=True),
                    "published_at": now,
                },
            )
        )
        return True

    def _insert_ignoring(self, table: Table, row: dict[str, Any]) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` (any unique constraint): concurrent processes inserting
        the same row never fail."""
        return self.insert_ignoring(table).values([row])  # type: ignore[attr-defined]
