"""ЛКО's public contracts (SPEC §7, v1): the shapes other systems may rely on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class ApiError(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ApiError


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
