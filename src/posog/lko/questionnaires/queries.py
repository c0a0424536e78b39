"""Read side of questionnaires: what the module, ЛКП and the cabinet ask for."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.contracts import QuestionnaireDocument, SurveyLevel
from posog.lko.questionnaires.model import Questionnaire, QuestionnaireVersion


async def active_document(session: AsyncSession, type_code: str, level: SurveyLevel) -> QuestionnaireDocument | None:
    """The active version of the questionnaire active for (organisation type, level), or None."""
    query = (
        select(QuestionnaireVersion)
        .join(
            Questionnaire,
            and_(
                Questionnaire.id == QuestionnaireVersion.questionnaire_id,
                Questionnaire.active_version == QuestionnaireVersion.version,
            ),
        )
        .where(
            Questionnaire.type_code == type_code,
            Questionnaire.level == level,
            Questionnaire.status == "active",
        )
    )
    version = await session.scalar(query)
    return None if version is None else version.to_document()


async def version_document(session: AsyncSession, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
    """One published version, or None."""
    stored = await session.get(QuestionnaireVersion, (questionnaire_id, version))
    return None if stored is None else stored.to_document()


async def type_codes_with_active(session: AsyncSession, level: SurveyLevel) -> set[str]:
    """Organisation types that have an active questionnaire at ``level``."""
    query = select(Questionnaire.type_code).where(Questionnaire.level == level, Questionnaire.status == "active")
    return set(await session.scalars(query))


async def existing_ids(session: AsyncSession, questionnaire_ids: list[str]) -> set[str]:
    """Which of ``questionnaire_ids`` exist, whatever their status."""
    if not questionnaire_ids:
        return set()
    query = select(Questionnaire.id).where(Questionnaire.id.in_(questionnaire_ids))
    return set(await session.scalars(query))
