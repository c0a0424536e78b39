"""Use cases of questionnaires: create a draft, edit it, publish it as a new immutable version, withdraw.
Each takes a command and a unit of work (:class:`~posog.lko.uow.LkoUnitOfWork`) and commits.
Announcing a publication to the module happens after the commit, from the ``lko_announcements`` row
written here (see :mod:`.announcements`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from posog.core.db import new_uuid
from posog.lko.contracts import QuestionnaireDocument, QuestionnaireDraft, SurveyLevel
from posog.lko.questionnaires.announcements import new_announcement
from posog.lko.questionnaires.model import LEVELS, Questionnaire, freeze
from posog.lko.questionnaires.validation import DraftInvalid, Problem, validate_content
from posog.lko.uow import LkoUnitOfWork

log = structlog.get_logger(__name__)

LEVEL_NAMES: dict[str, str] = {"federal": "федеральный", "regional": "региональный", "municipal": "муниципальный"}


class QuestionnaireNotFound(Exception):
    """No questionnaire with this id."""


class QuestionnaireRefused(Exception):
    """The operation is not possible in the questionnaire's state; ``message`` is Russian."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CreateQuestionnaire:
    """A new questionnaire for (organisation type, level); ``content`` is checked by
    :func:`validate_content` (title, validity_days, questions)."""

    type_code: str
    level: str
    content: Any


@dataclass(frozen=True)
class EditDraft:
    """Replace the draft of ``questionnaire_id`` with ``content`` (checked as on creation)."""

    questionnaire_id: str
    content: Any


@dataclass(frozen=True)
class PublishQuestionnaire:
    """Publish the draft of ``questionnaire_id`` as its next version."""

    questionnaire_id: str


@dataclass(frozen=True)
class WithdrawQuestionnaire:
    """Stop giving ``questionnaire_id`` to citizens."""

    questionnaire_id: str


@dataclass(frozen=True)
class Publication:
    document: QuestionnaireDocument  # the new immutable version, now active
    withdrawn: list[str]  # ids of the questionnaires it replaced for (type, level)
    announcement_id: str


def _stored(draft: QuestionnaireDraft) -> dict[str, Any]:
    return draft.model_dump(mode="json", exclude_none=True)


async def create_questionnaire(command: CreateQuestionnaire, uow: LkoUnitOfWork, *, now: datetime) -> str:
    """Create a draft questionnaire; returns its id. Raises :class:`DraftInvalid`."""
    problems: list[Problem] = []
    if command.level not in LEVELS:
        problems.append(
            Problem("level", f"Уровень опроса «{str(command.level)[:40]}» неизвестен; допустимые: {', '.join(LEVELS)}")
        )
    org_type = await uow.org_types.get(command.type_code) if isinstance(command.type_code, str) else None
    if org_type is None:
        problems.append(Problem("type_code", f"Типа организации «{str(command.type_code)[:40]}» нет в справочнике"))
    elif not org_type.active:
        problems.append(Problem("type_code", f"Тип организации «{org_type.code}» отключён в справочнике"))
    try:
        draft = validate_content(command.content, type_code=command.type_code, level=command.level)
    except DraftInvalid as invalid:
        problems.extend(invalid.problems)
    if problems:
        raise DraftInvalid(problems)
    questionnaire = Questionnaire(
        id=new_uuid(),
        type_code=command.type_code,
        level=command.level,
        title=draft.title,
        status="draft",
        draft=_stored(draft),
        active_version=None,
        created_at=now,
        updated_at=now,
    )
    uow.questionnaires.add(questionnaire)
    await uow.commit()
    log.info("lko.questionnaires.created", questionnaire_id=questionnaire.id, type_code=command.type_code)
    return questionnaire.id


async def _locked(uow: LkoUnitOfWork, questionnaire_id: str) -> Questionnaire:
    questionnaire = await uow.questionnaires.locked(questionnaire_id)
    if questionnaire is None:
        raise QuestionnaireNotFound(questionnaire_id)
    return questionnaire


async def edit_draft(command: EditDraft, uow: LkoUnitOfWork, *, now: datetime) -> QuestionnaireDraft:
    """Replace the draft's content. The published versions are untouched; the active one stays what
    citizens get until the draft is published. Raises :class:`QuestionnaireNotFound`, :class:`DraftInvalid`."""
    questionnaire = await _locked(uow, command.questionnaire_id)
    draft = validate_content(command.content, type_code=questionnaire.type_code, level=questionnaire.level)
    questionnaire.draft = _stored(draft)
    questionnaire.title = draft.title
    questionnaire.updated_at = now
    await uow.commit()
    return draft


async def publish_questionnaire(command: PublishQuestionnaire, uow: LkoUnitOfWork, *, now: datetime) -> Publication:
    """Freeze the draft into version n+1 and make it the one citizens get for (type, level). Any other
    questionnaire active for (type, level) is withdrawn in the same transaction, and an announcement
    for the module is recorded with it. Raises :class:`QuestionnaireNotFound`, :class:`DraftInvalid`,
    :class:`QuestionnaireRefused`."""
    questionnaire = await _locked(uow, command.questionnaire_id)
    org_type = await uow.org_types.get(questionnaire.type_code)
    if org_type is None or not org_type.active:
        raise QuestionnaireRefused(
            "org_type_inactive",
            f"Тип организации «{questionnaire.type_code}» отключён в справочнике: анкету для него не опубликовать",
        )
    level: SurveyLevel = questionnaire.level  # type: ignore[assignment]
    draft = validate_content(questionnaire.draft, type_code=questionnaire.type_code, level=level)
    version = await uow.questionnaires.latest_version(questionnaire.id) + 1
    others = await uow.questionnaires.active_besides(questionnaire)
    for other in others:
        other.status = "withdrawn"
        other.updated_at = now
    document = freeze(questionnaire.id, version, questionnaire.type_code, level, draft)
    announcement = new_announcement(questionnaire.id, version, questionnaire.type_code, level, now=now)
    try:
        # The old one is withdrawn before the new one becomes active (one active per type and level).
        await uow.questionnaires.add_version(document, published_at=now)
        questionnaire.status = "active"
        questionnaire.active_version = version
        questionnaire.title = draft.title
        questionnaire.draft = _stored(draft)
        questionnaire.updated_at = now
        uow.questionnaires.announce(announcement)
        await uow.commit()
    except IntegrityError:
        raise QuestionnaireRefused(
            "concurrent_publication",
            "Одновременно с вами опубликована другая версия или анкета для этого типа и уровня; обновите страницу "
            "и повторите",
        ) from None
    withdrawn = [other.id for other in others]
    log.info(
        "lko.questionnaires.published",
        questionnaire_id=questionnaire.id,
        version=version,
        type_code=questionnaire.type_code,
        survey_level=level,
        withdrawn=withdrawn,
    )
    return Publication(document=document, withdrawn=withdrawn, announcement_id=announcement.id)


async def withdraw_questionnaire(command: WithdrawQuestionnaire, uow: LkoUnitOfWork, *, now: datetime) -> None:
    """Stop giving the questionnaire to citizens. Its versions stay readable (answers refer to them);
    links already issued keep their pinned version. Raises :class:`QuestionnaireNotFound`,
    :class:`QuestionnaireRefused` (not active)."""
    questionnaire = await _locked(uow, command.questionnaire_id)
    if questionnaire.status != "active":
        raise QuestionnaireRefused("not_active", "Анкета не опубликована — снимать с публикации нечего")
    questionnaire.status = "withdrawn"
    questionnaire.updated_at = now
    await uow.commit()
    log.info("lko.questionnaires.withdrawn", questionnaire_id=questionnaire.id)
