"""Read side of questionnaires: what the module, ЛКП and the cabinet ask for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.contracts import (
    ActiveVersion,
    ActiveVersions,
    QuestionnaireDocument,
    QuestionnaireDraft,
    QuestionnaireState,
    SurveyLevel,
)
from posog.lko.questionnaires.model import Questionnaire, QuestionnaireStatus, QuestionnaireVersion


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


async def active_versions(session: AsyncSession) -> ActiveVersions:
    """Every active questionnaire's (type, level) and the version citizens get: one row each, as
    :func:`active_document` finds them one at a time."""
    rows = await session.execute(
        select(Questionnaire.type_code, Questionnaire.level, Questionnaire.id, Questionnaire.active_version)
        .where(Questionnaire.status == "active", Questionnaire.active_version.is_not(None))
        .order_by(Questionnaire.type_code, Questionnaire.level)
    )
    return ActiveVersions(
        items=[
            ActiveVersion(type_code=type_code, level=level, questionnaire_id=str(qid), version=version)
            for type_code, level, qid, version in rows
        ]
    )


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


async def questionnaire_state(session: AsyncSession, questionnaire_id: str) -> QuestionnaireState | None:
    """Whether the questionnaire collects answers (only an active one does), or None if unknown."""
    row = (
        await session.execute(
            select(Questionnaire.status, Questionnaire.active_version).where(Questionnaire.id == questionnaire_id)
        )
    ).first()
    if row is None:
        return None
    status, active_version = row
    return QuestionnaireState(
        id=questionnaire_id, status=status, active_version=active_version, collecting=status == "active"
    )


# --- The cabinet's and the administrators' views --------------------------------------------------------


@dataclass(frozen=True)
class QuestionnaireSummary:
    """A questionnaire in lists: its status, the version citizens get, the latest one, and whether the
    draft holds changes not yet published."""

    id: str
    type_code: str
    level: SurveyLevel
    title: str
    status: QuestionnaireStatus
    active_version: int | None
    latest_version: int | None
    unpublished_changes: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VersionSummary:
    version: int
    title: str
    questions: int
    published_at: datetime


@dataclass(frozen=True)
class QuestionnaireDetail:
    summary: QuestionnaireSummary
    draft: QuestionnaireDraft
    versions: list[VersionSummary]  # newest first


def content_of(document: QuestionnaireDocument) -> QuestionnaireDraft:
    """The editable content a published document was frozen from."""
    return QuestionnaireDraft(title=document.title, validity_days=document.validity_days, questions=document.questions)


def _summary(questionnaire: Questionnaire, latest: QuestionnaireVersion | None) -> QuestionnaireSummary:
    draft = QuestionnaireDraft.model_validate(questionnaire.draft)
    unpublished = latest is None or content_of(latest.to_document()) != draft
    return QuestionnaireSummary(
        id=questionnaire.id,
        type_code=questionnaire.type_code,
        level=questionnaire.level,  # type: ignore[arg-type]
        title=questionnaire.title,
        status=questionnaire.status,  # type: ignore[arg-type]
        active_version=questionnaire.active_version if questionnaire.status == "active" else None,
        latest_version=None if latest is None else latest.version,
        unpublished_changes=unpublished,
        created_at=questionnaire.created_at,
        updated_at=questionnaire.updated_at,
    )


def _latest_versions() -> Any:
    return (
        select(QuestionnaireVersion.questionnaire_id, func.max(QuestionnaireVersion.version).label("version"))
        .group_by(QuestionnaireVersion.questionnaire_id)
        .subquery()
    )


async def list_questionnaires(
    session: AsyncSession,
    *,
    type_code: str | None = None,
    level: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[QuestionnaireSummary]:
    """Questionnaires by organisation type and level, the active one first; optionally filtered."""
    latest = _latest_versions()
    query = (
        select(Questionnaire, QuestionnaireVersion)
        .outerjoin(latest, latest.c.questionnaire_id == Questionnaire.id)
        .outerjoin(
            QuestionnaireVersion,
            and_(
                QuestionnaireVersion.questionnaire_id == Questionnaire.id,
                QuestionnaireVersion.version == latest.c.version,
            ),
        )
        .order_by(
            Questionnaire.type_code,
            Questionnaire.level,
            case((Questionnaire.status == "active", 0), (Questionnaire.status == "draft", 1), else_=2),
            Questionnaire.updated_at.desc(),
        )
        .limit(limit)
    )
    if type_code:
        query = query.where(Questionnaire.type_code == type_code)
    if level:
        query = query.where(Questionnaire.level == level)
    if status:
        query = query.where(Questionnaire.status == status)
    rows = await session.execute(query)
    return [_summary(questionnaire, version) for questionnaire, version in rows.all()]


async def questionnaire_detail(session: AsyncSession, questionnaire_id: str) -> QuestionnaireDetail | None:
    """A questionnaire with its draft and its version history, or None."""
    questionnaire = await session.get(Questionnaire, questionnaire_id)
    if questionnaire is None:
        return None
    versions = list(
        await session.scalars(
            select(QuestionnaireVersion)
            .where(QuestionnaireVersion.questionnaire_id == questionnaire_id)
            .order_by(QuestionnaireVersion.version.desc())
        )
    )
    return QuestionnaireDetail(
        summary=_summary(questionnaire, versions[0] if versions else None),
        draft=QuestionnaireDraft.model_validate(questionnaire.draft),
        versions=[
            VersionSummary(
                version=v.version,
                title=str(v.document.get("title", "")),
                questions=len(v.document.get("questions") or ()),
                published_at=v.published_at,
            )
            for v in versions
        ],
    )


async def active_questionnaire_for(session: AsyncSession, type_code: str, level: str) -> QuestionnaireSummary | None:
    """The questionnaire active for (type, level), if any."""
    found = await list_questionnaires(session, type_code=type_code, level=level, status="active", limit=1)
    return found[0] if found else None
