"""ЛКО's public contracts (SPEC §7, v1): the shapes other systems may rely on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# The shared v1 error envelope, re-exported: ЛКО's contracts name it.
from posog.core.envelope import ApiError as ApiError
from posog.core.envelope import ErrorEnvelope as ErrorEnvelope

# The rules for a citizen's answers, re-exported: ЛКП checks its form with the ones ЛКО stores by.
from posog.lko.answers import ANSWER_CODES as ANSWER_CODES
from posog.lko.answers import AnswerCheck as AnswerCheck
from posog.lko.answers import AnswerCode as AnswerCode
from posog.lko.answers import AnswerProblem as AnswerProblem
from posog.lko.answers import check_answers as check_answers
from posog.lko.answers import clean_text as clean_text
from posog.lko.answers import normalize_text as normalize_text
from posog.lko.answers import scale_of as scale_of
from posog.lko.answers import text_limit as text_limit

SurveyLevel = Literal["federal", "regional", "municipal"]
QuestionKind = Literal["rating", "single_choice", "multiple_choice", "text", "yes_no"]
Criterion = Literal["service_time", "queue_time", "staff", "comfort", "information"]

CRITERIA: dict[str, str] = {
    "service_time": "Время предоставления услуги",
    "queue_time": "Время ожидания в очереди",
    "staff": "Вежливость и компетентность сотрудника",
    "comfort": "Комфортность условий в помещении",
    "information": "Доступность информации о порядке предоставления услуги",
}


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(min_length=1, max_length=40)]
    text: Annotated[str, Field(min_length=1, max_length=500)]


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]
    kind: QuestionKind
    text: Annotated[str, Field(min_length=1, max_length=1000)]
    required: bool = False
    scale: int | None = None
    criterion: Criterion | None = None
    options: tuple[Option, ...] | None = None
    max_length: int | None = None
    hint: str | None = None

    @property
    def answer_scale(self) -> int:
        """The top of a rating's scale: ``scale``, or ЛКО's default (:func:`scale_of`)."""
        return scale_of(self)

    @property
    def answer_limit(self) -> int:
        """The longest text answer taken: ``max_length``, or ЛКО's default (:func:`text_limit`)."""
        return text_limit(self)


class QuestionnaireDocument(BaseModel):
    """A published, immutable questionnaire version (SPEC §7 document v1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    version: int
    type_code: str
    level: SurveyLevel
    title: str
    validity_days: int = 30
    questions: tuple[Question, ...]


class OrgType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_\-]+$")]
    name: Annotated[str, Field(min_length=1, max_length=300)]
    sphere: str | None = None
    active: bool = True


class OrgTypeList(BaseModel):
    """``GET /api/v1/org-types``: the organisation-type directory."""

    items: list[OrgType]


class QuestionnaireDraft(BaseModel):
    """The editable content of a questionnaire; publishing freezes it into a ``QuestionnaireDocument``
    together with the questionnaire's id, type, level and the new version number."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: Annotated[str, Field(min_length=1, max_length=300)]
    validity_days: Annotated[int, Field(ge=1, le=365)] = 30
    questions: tuple[Question, ...]


# --- Responses (SPEC §7 v1) ---------------------------------------------------------------------

AnswerValue = int | str | bool | list[str] | None


class ResponseSubmission(BaseModel):
    """``POST /api/v1/responses`` body (ЛКП → ЛКО)."""

    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(min_length=16, max_length=128)]
    idempotency_key: Annotated[str, Field(min_length=8, max_length=128)]
    answers: dict[str, AnswerValue]


class StoredResponse(BaseModel):
    """A citizen's stored response (201 of ``POST /api/v1/responses``, items of the paged list).
    No personal data: the card id, the organisation and the answers."""

    id: str
    card_id: str
    questionnaire_id: str
    questionnaire_version: int
    type_code: str
    survey_level: SurveyLevel
    inn: str
    ogrn: str
    kpp: str | None
    region_code: str
    org_name: str
    service_date: str
    answers: dict[str, AnswerValue]
    submitted_at: str


class ResponsePage(BaseModel):
    items: list[StoredResponse]
    next_cursor: str | None = None


class FieldErrors(BaseModel):
    """422 of ``POST /api/v1/responses``: per-question Russian messages."""

    error: ApiError
    fields: dict[str, str] = Field(default_factory=dict)


# --- Questionnaire status (extension of SPEC §7 v1) ----------------------------------------------


class QuestionnaireState(BaseModel):
    """``GET /api/v1/questionnaires/{id}/status``: whether a questionnaire still collects answers.

    Published versions stay readable forever (responses recorded against them must remain
    interpretable), so a version being readable says nothing about whether citizens may still answer
    it. ``collecting`` does: true while the questionnaire is ``active``; false once it is withdrawn
    (or was never published). A newer published version does not stop collection: links keep the
    version they pinned. ``status`` is informative (``draft``, ``active``, ``withdrawn`` today; more
    may come) — callers decide by ``collecting``."""

    model_config = ConfigDict(frozen=True)
    id: str
    status: str
    active_version: int | None = None
    collecting: bool


class ActiveVersion(BaseModel):
    """One (organisation type, level) and the questionnaire version citizens get for it now."""

    model_config = ConfigDict(frozen=True)
    type_code: str
    level: SurveyLevel
    questionnaire_id: str
    version: int


class ActiveVersions(BaseModel):
    """``GET /api/v1/questionnaires/active-versions`` (extension of SPEC §7 v1): every active
    questionnaire's (type, level) and version, without the documents — versions never change, so a
    caller fetches each one once (``…/versions/{version}``) and asks this small list again to learn of
    publications and withdrawals. An active questionnaire collects answers; one not listed does not.
    What ``/questionnaires/active`` and ``/questionnaires/{id}/status`` answer, for all of them in
    one request."""

    model_config = ConfigDict(frozen=True)
    items: list[ActiveVersion]
