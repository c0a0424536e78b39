"""The forms of ИАС МКГУ and how our questionnaires' ratings map onto them (INTEGRATION.md §4).

ИАС serves its forms: for a type of service (``serviceType``, e.g. ``direct``) and a version, the
indicators and, for each, the values a citizen may choose, each with its own id. A ``rate`` carries those
ids — never the rating itself. The form in use is configuration (``POSOG_IAS_FORM_TYPE``), read, in
this order, from ``POSOG_IAS_FORMS_FILE`` (forms in the shape ИАС serves them), from the forms last
fetched from ИАС (``module_ias_forms``, ``posog export forms --refresh``), else the federal form "direct"
0.0.4 built in (:data:`posog.module.ias_export.documents.FEDERAL_FORM_DIRECT`).

The mapping, :class:`FormMapping`: each of our five criteria (ПП № 1284) is the indicator whose
``criterion`` the form document names, else the one whose title says it (:data:`CRITERION_TITLES`); a
rating 1..5 is the indicator's value whose ``rating`` the document names, else the value at that place
of the indicator's values as served, worst to best («Очень плохо» … «Отлично»; an indicator with another
number of values takes the rating scaled onto them). A criterion no indicator matches is unmapped: its
ratings are not sent (a rating left with no ``rate`` at all is listed as ``no_mapping``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from posog.module.ias_export.documents import FEDERAL_FORM_DIRECT, Rate

CRITERIA: Final = ("service_time", "queue_time", "staff", "comfort", "information")
# How a form's indicator titles name our criteria (lower case, any of the phrases).
CRITERION_TITLES: Final[dict[str, tuple[str, ...]]] = {
    "service_time": ("время предоставления",),
    "queue_time": ("время ожидания",),
    "staff": ("вежливость", "компетентность"),
    "comfort": ("комфортность",),
    "information": ("доступность информации",),
}
SCALE: Final = 5


class FormError(ValueError):
    """A form document that cannot be used (the message says what is wrong)."""


@dataclass(frozen=True)
class FormValue:
    id: int
    title: str
    rating: int | None = None


@dataclass(frozen=True)
class FormIndicator:
    id: int
    title: str
    values: tuple[FormValue, ...]
    criterion: str | None = None


@dataclass(frozen=True)
class IasForm:
    service_type: str
    version: str
    indicators: tuple[FormIndicator, ...]

    @property
    def name(self) -> str:
        return f"{self.service_type} {self.version}"

    def document(self) -> dict[str, Any]:
        """The form in the shape ИАС serves it (and ``module_ias_forms`` keeps)."""
        return {
            "serviceType": self.service_type,
            "version": self.version,
            "indicators": [
                {
                    "id": i.id,
                    "title": i.title,
                    **({"criterion": i.criterion} if i.criterion else {}),
                    "values": [
                        {"id": v.id, "title": v.title, **({"rating": v.rating} if v.rating else {})} for v in i.values
                    ],
                }
                for i in self.indicators
            ],
        }

    def value_ids(self) -> dict[int, frozenset[int]]:
        return {i.id: frozenset(v.id for v in i.values) for i in self.indicators}


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FormError(f"{what}: a positive integer id expected, got {value!r}")
    return value


def form_from_document(document: Any) -> IasForm:
    """A form from a document in the shape ИАС serves (``serviceType``, ``version``, ``indicators`` with
    ``id``, ``title``, ``values`` [{``id``, ``title``}]; optional ``criterion`` and ``rating``)."""
    if not isinstance(document, dict):
        raise FormError("a form is a JSON object")
    service_type, version = document.get("serviceType"), document.get("version")
    if not isinstance(service_type, str) or not service_type or not isinstance(version, str) or not version:
        raise FormError("a form needs serviceType and version (strings)")
    raw = document.get("indicators")
    if not isinstance(raw, list) or not raw:
        raise FormError(f"form {service_type} {version}: no indicators")
    indicators = []
    for item in raw:
        if not isinstance(item, dict):
            raise FormError(f"form {service_type} {version}: an indicator is not an object")
        indicator_id = _positive(item.get("id"), "indicator id")
        values_raw = item.get("values")
        if not isinstance(values_raw, list) or not values_raw:
            raise FormError(f"indicator {indicator_id}: no values")
        values = []
        for value in values_raw:
            if not isinstance(value, dict):
                raise FormError(f"indicator {indicator_id}: a value is not an object")
            rating = value.get("rating")
            values.append(
                FormValue(
                    _positive(value.get("id"), f"indicator {indicator_id}: value id"),
                    str(value.get("title") or ""),
                    rating if isinstance(rating, int) and not isinstance(rating, bool) and rating > 0 else None,
                )
            )
        criterion = item.get("criterion")
        indicators.append(
            FormIndicator(
                indicator_id,
                str(item.get("title") or ""),
                tuple(values),
                criterion if criterion in CRITERIA else None,
            )
        )
    return IasForm(service_type, version, tuple(indicators))


def forms_from_json(text: str) -> list[IasForm]:
    """One form or a list of forms (a forms file, ИАС's answer)."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise FormError(f"not JSON: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("forms"), list):
        document = document["forms"]
    items = document if isinstance(document, list) else [document]
    return [form_from_document(item) for item in items]


def forms_from_file(path: Path) -> list[IasForm]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FormError(f"POSOG_IAS_FORMS_FILE {path}: {exc.strerror}") from None
    return forms_from_json(text)


DEFAULT_FORM: Final = form_from_document(FEDERAL_FORM_DIRECT)


def _version_key(version: str) -> tuple[int | str, ...]:
    return tuple(int(part) if part.isdigit() else part for part in version.split("."))


def choose(forms: Sequence[IasForm], service_type: str) -> IasForm | None:
    """The newest version of ``service_type`` among ``forms``."""
    found = [f for f in forms if f.service_type == service_type]
    return max(found, key=lambda f: _version_key(f.version)) if found else None


@dataclass(frozen=True)
class FormMapping:
    """criterion → indicator, rating → value id, for one form."""

    form: IasForm
    source: str  # "file", "ias" (fetched), "default"
    indicators: Mapping[str, FormIndicator] = field(default_factory=dict)

    @property
    def unmapped(self) -> list[str]:
        return [c for c in CRITERIA if c not in self.indicators]

    def value_id(self, indicator: FormIndicator, rating: int) -> int:
        """The value of ``indicator`` that a rating 1..5 is."""
        rated = {v.rating: v.id for v in indicator.values if v.rating is not None}
        if rated:
            if rating in rated:
                return rated[rating]
            raise FormError(f"indicator {indicator.id} has no value for the rating {rating}")
        count = len(indicator.values)
        place = rating - 1 if count == SCALE else round((rating - 1) * (count - 1) / (SCALE - 1))
        return indicator.values[place].id

    def rates(self, ratings: Mapping[str, int]) -> tuple[Rate, ...]:
        """The ``rate`` elements of criterion ratings (1..5), in the form's order of indicators."""
        by_indicator = {indicator.id: criterion for criterion, indicator in self.indicators.items()}
        found = []
        for indicator in self.form.indicators:
            criterion = by_indicator.get(indicator.id)
            if criterion is not None and criterion in ratings:
                found.append(Rate(indicator.id, self.value_id(indicator, ratings[criterion])))
        return tuple(found)


def mapping(form: IasForm, source: str) -> FormMapping:
    found: dict[str, FormIndicator] = {}
    for indicator in form.indicators:
        if indicator.criterion and indicator.criterion not in found:
            found[indicator.criterion] = indicator
    for criterion in CRITERIA:
        if criterion in found:
            continue
        for indicator in form.indicators:
            title = indicator.title.lower()
            taken = any(indicator is other for other in found.values())
            if not taken and any(phrase in title for phrase in CRITERION_TITLES[criterion]):
                found[criterion] = indicator
                break
    return FormMapping(form, source, found)
