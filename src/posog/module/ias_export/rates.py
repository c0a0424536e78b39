"""Individual ratings in the vashkontrol "rates" form, version 1.2.0 (SPEC §9)::

    <forms xmlns="http://vashkontrol.ru/service/rates/1.2.0">
      <form>
        <foreign-id>response id in ПОС ОГ (never personal data)</foreign-id>
        <data>
          <authority><name>организация</name><inn>ИНН</inn></authority>
          <service><name>услуга</name><code>код услуги</code></service>
          <date>YYYY-MM-DD (date of the service)</date>
          <okato>ОКАТО of the organisation's subject (see okato.py)</okato>
        </data>
        <rates><rate indicator-id="1" value-id="5"/> …</rates>
      </form>
    </forms>

Our five criteria (Постановление № 1284) → the form's five indicators, ``value-id`` = the rating 1..5
(ratings given on another scale are normalised to 1..5 as analytics does: ``1 + (v − 1)·4/(scale − 1)``,
rounded half up):

    service_time → 1 время предоставления услуги
    queue_time   → 2 время ожидания в очереди
    staff        → 3 вежливость и компетентность сотрудника
    comfort      → 4 комфортность условий в помещении
    information  → 5 доступность информации о порядке предоставления услуги

A criterion the citizen did not rate has no ``rate``; a response without any criterion rating has no
``form``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Final

from posog.lko.contracts import AnswerValue, QuestionnaireDocument, scale_of

NAMESPACE: Final = "http://vashkontrol.ru/service/rates/1.2.0"
INDICATORS: Final[dict[str, int]] = {"service_time": 1, "queue_time": 2, "staff": 3, "comfort": 4, "information": 5}
SCALE: Final = 5


@dataclass(frozen=True)
class RateForm:
    """One response as a form: the organisation, the service and its ratings by criterion."""

    foreign_id: str
    authority_name: str
    authority_inn: str
    service_name: str
    service_code: str | None
    service_date: date
    okato: str | None
    ratings: Mapping[str, int]


def normalise(value: int, scale: int) -> int:
    if scale == SCALE:
        return value
    exact = 1 + Fraction(value - 1) * (SCALE - 1) / (scale - 1)
    return int((Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def criterion_ratings(questionnaire: QuestionnaireDocument, answers: Mapping[str, AnswerValue]) -> dict[str, int]:
    """criterion → rating 1..5 for each rating question bound to a criterion and answered with a whole
    number within its scale (the first such question of a criterion wins)."""
    found: dict[str, int] = {}
    for question in questionnaire.questions:
        if question.kind != "rating" or question.criterion is None or question.criterion in found:
            continue
        value = answers.get(question.id)
        scale = scale_of(question)
        if scale < 2 or isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= scale:
            continue
        found[question.criterion] = normalise(value, scale)
    return found


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, _q(tag))
    element.text = value
    return element


def rates_xml(forms: Iterable[RateForm]) -> bytes:
    """The XML document (UTF-8, with declaration) of ``forms``."""
    ET.register_namespace("", NAMESPACE)
    root = ET.Element(_q("forms"))
    for form in forms:
        element = ET.SubElement(root, _q("form"))
        _text(element, "foreign-id", form.foreign_id)
        data = ET.SubElement(element, _q("data"))
        authority = ET.SubElement(data, _q("authority"))
        _text(authority, "name", form.authority_name)
        _text(authority, "inn", form.authority_inn)
        service = ET.SubElement(data, _q("service"))
        _text(service, "name", form.service_name)
        if form.service_code:
            _text(service, "code", form.service_code)
        _text(data, "date", form.service_date.isoformat())
        if form.okato:
            _text(data, "okato", form.okato)
        rates = ET.SubElement(element, _q("rates"))
        for criterion, indicator in INDICATORS.items():
            value = form.ratings.get(criterion)
            if value is not None:
                ET.SubElement(rates, _q("rate"), {"indicator-id": str(indicator), "value-id": str(value)})
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
