"""Our questionnaires' criterion ratings, the input of the vashkontrol ``RatesRequest`` 1.2.0
(:mod:`posog.module.ias_export.documents` builds it; :mod:`posog.module.ias_export.forms` turns each
criterion rating into the indicator and value ids of ИАС's form — never the rating itself).

A rating question bound to one of the five criteria (Постановление № 1284) and answered with a whole
number within its scale gives that criterion's rating, normalised to 1..5 as analytics does
(``1 + (v − 1)·4/(scale − 1)``, rounded half up). A criterion the citizen did not rate has no ``rate``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Final

from posog.lko.contracts import AnswerValue, QuestionnaireDocument, scale_of
from posog.module.ias_export.documents import RATES_NS

NAMESPACE: Final = RATES_NS
SCALE: Final = 5


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
