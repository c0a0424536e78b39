"""The module's public contracts: the inbound ОГ fact (SPEC §3, v1), the outbound ГЭПС notification
(SPEC §4, v1) and the link-data answer for ЛКП (SPEC §6, v1).

Validation reports every failure as ``field: reason`` (e.g. ``organization.inn: bad_checksum``). The
checks that need the clock or the directory run with a :class:`FactContext`; a message body is read
under limits by :func:`posog.module.intake.parsing.read_fact`."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from posog.core import ids, regions
from posog.lko.contracts import QuestionnaireDocument
from posog.module.ias_export import documents as _ias_documents

SurveyLevel = Literal["federal", "regional", "municipal"]
CARD_ID_PATTERN = r"^[\w.:/\-]+$"
FACT_SCHEMA = "og.fact/1"
GEPS_SCHEMA = "geps.notification/1"

_NAME = re.compile(r"^[А-ЯЁа-яёA-Za-z][А-ЯЁа-яёA-Za-z'’ .\-]*$")

# C0 and C1 control characters (NUL included), DEL and the Unicode line/paragraph separators: no field
# of a fact may hold them. PostgreSQL refuses NUL in text outright, and the others break logs, CSV and
# XLSX exports and the pages that show the field.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# The check itself runs outside the model (``posog.module.intake.parsing``): a Python validator on
# every field doubles what pydantic-core costs per fact (measured: 29 → 56 µs).
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Identifier = Annotated[str, StringConstraints(max_length=100)]
# A ФРГУ (федеральный реестр госуслуг) id of an authority, a service or a procedure: digits only (ИАС
# МКГУ identifies the rated service by them). Optional in og.fact/1.
FrguId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20, pattern=r"^[0-9]+$")]


def _id_check(check: Any, value: str) -> str:
    try:
        result: str = check(value)
    except ids.IdError as exc:
        raise PydanticCustomError(exc.reason, "{reason}", {"reason": exc.reason}) from None
    return result


def _context(info: ValidationInfo) -> FactContext | None:
    return info.context if isinstance(info.context, FactContext) else None


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: dt.date
    name: Text | None = None
    code: Code | None = None
    frgu_service_id: FrguId | None = None
    frgu_procedure_id: FrguId | None = None

    @field_validator("date")
    @classmethod
    def _within_horizon(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        context = _context(info)
        if context is not None:
            if value > context.today:
                raise PydanticCustomError("in_future", "the service date is in the future")
            if value < context.today - timedelta(days=context.horizon_days):
                raise PydanticCustomError("too_old", "the service date is beyond the horizon")
        return value


class Organization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text
    address: Text
    inn: Identifier
    ogrn: Identifier
    kpp: Identifier | None = None
    type_code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    region_code: Identifier | None = None
    frgu_authority_id: FrguId | None = None

    @field_validator("type_code")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        context = _context(info)
        if context is not None and context.known_types is not None and value not in context.known_types:
            raise PydanticCustomError("unknown_type", "not in the organisation-type directory")
        return value

    @field_validator("inn")
    @classmethod
    def _inn(cls, value: str) -> str:
        return _id_check(ids.validate_inn, value)

    @field_validator("kpp")
    @classmethod
    def _kpp(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        return _id_check(ids.validate_kpp, value.strip())

    @field_validator("region_code")
    @classmethod
    def _region_code(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().zfill(2)
        if not regions.is_region_code(value):
            raise PydanticCustomError("unknown_region", "unknown region code")
        return value

    @model_validator(mode="after")
    def _entity_kind(self) -> Organization:
        # ИНН of 10 digits: a legal entity with ОГРН (13) and КПП. 12 digits: an individual
        # entrepreneur with ОГРНИП (15) and no КПП.
        errors: list[tuple[str, str]] = []
        if len(self.inn) == 10:
            try:
                self.ogrn = ids.validate_ogrn(self.ogrn)
            except ids.IdError as exc:
                errors.append(("ogrn", exc.reason))
            if self.kpp is None:
                errors.append(("kpp", "required"))
        else:
            try:
                self.ogrn = ids.validate_ogrnip(self.ogrn)
            except ids.IdError as exc:
                errors.append(("ogrn", exc.reason))
            if self.kpp is not None:
                errors.append(("kpp", "not_allowed_for_individual"))
        if errors:
            raise ValidationError.from_exception_data(
                "Organization",
                [
                    {
                        "type": PydanticCustomError(reason, "{reason}", {"reason": reason}),
                        "loc": (field,),
                        "input": getattr(self, field),  # never echoed (problems_from drops inputs)
                    }
                    for field, reason in errors
                ],
            )
        return self


class Citizen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    last_name: Name
    first_name: Name
    middle_name: Name | None = None
    birth_date: date
    snils: Identifier

    @field_validator("last_name", "first_name", "middle_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise PydanticCustomError("bad_format", "letters, spaces, hyphens and apostrophes only")
        return value

    @field_validator("birth_date")
    @classmethod
    def _plausible(cls, value: date) -> date:
        if value.year < 1900:
            raise PydanticCustomError("implausible", "birth date before 1900")
        return value

    @field_validator("snils")
    @classmethod
    def _snils(cls, value: str) -> str:
        return _id_check(ids.validate_snils, value)


class OgFact(BaseModel):
    """A fact of a provided service (вид сведений ОГ), schema ``og.fact/1``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"$id": "og.fact/1"})
    schema_: Literal["og.fact/1"] = Field(alias="schema")
    message_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    card_id: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=CARD_ID_PATTERN)
    ]
    survey_level: SurveyLevel
    service: Service
    organization: Organization
    citizen: Citizen

    @model_validator(mode="after")
    def _born_before_service(self) -> OgFact:
        if self.citizen.birth_date > self.service.date:
            raise ValidationError.from_exception_data(
                "OgFact",
                [
                    {
                        "type": PydanticCustomError("after_service_date", "born after the service"),
                        "loc": ("citizen", "birth_date"),
                        "input": None,
                    }
                ],
            )
        return self

    def resolved_region(self) -> str | None:
        """The organisation's region: its code, else from the address, the КПП or the ИНН."""
        org = self.organization
        return _resolve_region(org.region_code, org.address, org.kpp, org.inn)


@functools.lru_cache(maxsize=8192)
def _resolve_region(region_code: str | None, address: str, kpp: str | None, inn: str) -> str | None:
    """:func:`posog.core.regions.resolve_region`, remembered per organisation: facts come from a few
    organisations over and over, and resolving from the address tokenises it against every subject."""
    return regions.resolve_region(region_code=region_code, address=address, kpp=kpp, inn=inn)


@dataclass(frozen=True)
class FactContext:
    """What validation needs beyond the message: today's date, the horizon, the type directory."""

    today: date
    horizon_days: int
    known_types: frozenset[str] | None = None


@dataclass(frozen=True)
class FactProblem:
    """One validation failure: the field path and a machine-readable reason."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


_REASONS = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "literal_error": "not_allowed",
    "string_type": "bad_type",
    "dict_type": "bad_type",
    "model_type": "bad_type",
    "model_attributes_type": "bad_type",
    "date_type": "bad_date",
    "date_parsing": "bad_date",
    "date_from_datetime_parsing": "bad_date",
    "date_from_datetime_inexact": "bad_date",
    "string_too_short": "required",
    "string_too_long": "too_long",
    "string_pattern_mismatch": "bad_format",
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
}


def problems_from(error: ValidationError) -> list[FactProblem]:
    """Turn pydantic's errors into ``field: reason`` pairs without echoing any input value."""
    found: list[FactProblem] = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(part) for part in item["loc"] if not isinstance(part, int)) or "payload"
        loc = loc.replace("schema_", "schema")
        reason = _REASONS.get(item["type"], item["type"])
        problem = FactProblem(loc, reason)
        if problem not in found:
            found.append(problem)
    return found


# --- Outbound ---------------------------------------------------------------------------------


class Recipient(BaseModel):
    snils: str
    last_name: str
    first_name: str
    middle_name: str | None = None


class GepsNotification(BaseModel):
    """A notification to the citizen's Госуслуги account (вид сведений ГЭПС), ``geps.notification/1``."""

    model_config = ConfigDict(populate_by_name=True)
    schema_: Literal["geps.notification/1"] = Field(default="geps.notification/1", alias="schema")
    notification_id: str
    card_id: str
    recipient: Recipient
    title: str
    text: str
    link: str
    expires_at: str
    # The service's ФРГУ id when the fact carried one (INTEGRATION §3: ``FrguServiceId`` of the СМЭВ form).
    frgu_service_id: str | None = None


# --- Link data for ЛКП (SPEC §6) --------------------------------------------------------------


class LinkService(BaseModel):
    date: dt.date
    name: str | None


class LinkOrganization(BaseModel):
    name: str
    address: str
    inn: str
    ogrn: str
    kpp: str | None
    # Extensions beyond SPEC §6 v1 (ЛКО stores them with the response; no personal data).
    region_code: str
    type_code: str


class LinkData(BaseModel):
    """``GET /api/v1/survey-links/{token}`` → 200 (SPEC §6 v1): the pinned questionnaire enriched with
    the card and the organisation the citizen rates. Never any personal data."""

    card_id: str
    expires_at: dt.datetime
    survey_level: SurveyLevel
    state: str
    service: LinkService
    organization: LinkOrganization
    questionnaire: QuestionnaireDocument


# SPEC §6 error codes → HTTP status.
LINK_ERRORS: dict[str, int] = {
    "link_not_found": 404,
    "link_expired": 410,
    "survey_completed": 410,
    "link_revoked": 410,
    "questionnaire_unavailable": 409,
    "too_many_requests": 429,
}


class CompleteLink(BaseModel):
    """``POST /api/v1/survey-links/{token}/complete`` (ЛКО → module): the response that used the link.
    Idempotent for the same ``response_id``; another response id for a completed link → 409."""

    model_config = ConfigDict(extra="forbid")
    response_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ReleaseResult(BaseModel):
    """Answer of ``POST /api/v1/cards/release``: how many waiting cards got links or were too late."""

    type_code: str
    level: SurveyLevel
    issued: int
    late: int


# --- Cards feed for analytics (no personal data) ----------------------------------------------

FeedLinkState = Literal[
    "none",
    "waiting",
    "late",
    "issued",
    "notified",
    "opened",
    "completed",
    "expired",
    "revoked",
    "delivered",
    "delivery_failed",
]


class CardFeedItem(BaseModel):
    """One service card as analytics sees it: the organisation, the service and the link's progress —
    never the citizen (no ФИО, СНИЛС or birth date). ``link_state`` is the link's state, or ``waiting``
    (no questionnaire yet), ``late`` (the survey period ended before a link could be issued), ``none``;
    ``notified`` stays true once the citizen was notified, whatever happened next. ``delivery_failed``:
    ЕПГУ reported that the ГЭПС notification could not be delivered (and no later status said it was);
    it stays true when the link expires. ``updated_at`` is the moment of the card's latest change (of
    the card or of its link): the feed's order."""

    card_id: str
    inn: str
    ogrn: str
    kpp: str | None
    org_name: str
    region_code: str
    type_code: str
    survey_level: SurveyLevel
    service_date: date
    created_at: dt.datetime
    link_state: FeedLinkState
    notified: bool
    updated_at: dt.datetime
    delivery_failed: bool = False
    # The card's ФРГУ ids, when the fact gave them (og.fact/1's optional service.frgu_service_id,
    # service.frgu_procedure_id, organization.frgu_authority_id): what ИАС МКГУ identifies a service by.
    frgu_service_id: str | None = None
    frgu_procedure_id: str | None = None
    frgu_authority_id: str | None = None


class CardFeedPage(BaseModel):
    """``GET /api/v1/cards/feed?since=<cursor>&limit=`` (module → analytics): cards changed after the
    position ``since`` (none: from the beginning), in the order of their latest change.
    ``next_cursor`` is the position after the last item (the given cursor when there is nothing new);
    ``has_more`` says whether another page is waiting right now. A card appears again whenever it
    changes, with its whole current state: consumers upsert by ``card_id``."""

    items: list[CardFeedItem]
    next_cursor: str | None
    has_more: bool


# ИАС МКГУ's XML messages (RatesRequest 1.2.0 and the rest, INTEGRATION.md §4): the module builds them,
# the ИАС emulator reads them.
ias_documents = _ias_documents
