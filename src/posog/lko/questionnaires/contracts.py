"""Shapes of the questionnaire administration API (``questionnaires:write``): lists, details with the
version history, validation problems and the outcome of a publication."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel

from posog.lko.contracts import ApiError, QuestionnaireDocument, QuestionnaireDraft, SurveyLevel
from posog.lko.questionnaires.queries import QuestionnaireDetail, QuestionnaireSummary


class QuestionnaireSummaryOut(BaseModel):
    id: str
    type_code: str
    level: SurveyLevel
    title: str
    status: str
    active_version: int | None
    latest_version: int | None
    unpublished_changes: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, summary: QuestionnaireSummary) -> QuestionnaireSummaryOut:
        return cls(**summary.__dict__)


class QuestionnaireList(BaseModel):
    """``GET /api/v1/questionnaires``."""

    items: list[QuestionnaireSummaryOut]


class VersionOut(BaseModel):
    version: int
    title: str
    questions: int
    published_at: datetime


class QuestionnaireDetailOut(QuestionnaireSummaryOut):
    """``GET /api/v1/questionnaires/{id}``: the questionnaire, its editable draft and every published
    version (newest first; each readable at ``…/versions/{version}``)."""

    draft: QuestionnaireDraft
    versions: list[VersionOut]

    @classmethod
    def of_detail(cls, detail: QuestionnaireDetail) -> QuestionnaireDetailOut:
        return cls(
            **detail.summary.__dict__,
            draft=detail.draft,
            versions=[VersionOut(**v.__dict__) for v in detail.versions],
        )


class ProblemOut(BaseModel):
    path: str
    message: str


class DraftProblems(BaseModel):
    """422: the content cannot be saved or published, every problem named (Russian)."""

    error: ApiError
    problems: list[ProblemOut]

    @classmethod
    def for_request_problems(cls, error: ApiError, problems: Sequence[tuple[str, str]]) -> DraftProblems:
        """A malformed request (no JSON object as the body): its problems, as a draft's are listed."""
        return cls(error=error, problems=[ProblemOut(path=path, message=message) for path, message in problems])


class ReleaseOut(BaseModel):
    """Whether the module got the announcement: ``sent`` (with its counts) or ``pending`` (it will be
    re-sent until the module takes it)."""

    status: str
    issued: int | None = None
    late: int | None = None


class PublicationOut(BaseModel):
    """``POST /api/v1/questionnaires/{id}/publish``."""

    questionnaire: QuestionnaireDocument
    withdrawn: list[str]
    release: ReleaseOut
