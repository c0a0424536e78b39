"""What one card or one response adds to the rollups, and the arithmetic of deltas — pure functions,
shared by the incremental path and the rebuild so both count the same way.

Ratings on other scales than 5 are **normalised** to 1..5 before they are counted: ``1 + (v − 1)·4 /
(scale − 1)``, rounded half up (a 10-point 8 → 4.11 → 4, a 10-point 9 → 4.56 → 5, a 3-point 2 → 3).
So every criterion has one distribution 1..5, positive (4–5) and negative (1–2) shares mean the same
thing whatever the questionnaire, and the mean is on the 5-point scale. A 5-point rating is counted as
given. Answers that are not whole numbers within 1..scale are not counted (ЛКО validates them; a bad
one here would be a bug upstream, not a rating)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any, NamedTuple

from posog.lko.contracts import CRITERIA, AnswerValue, QuestionnaireDocument, scale_of

SCALE = 5
VALUES = (1, 2, 3, 4, 5)


class Grain(NamedTuple):
    """The rollup key: (service day, region, ИНН, organisation type, survey level). A tuple: hashed,
    compared and sorted in C — a page of 500 items makes thousands of dictionary look-ups by grain."""

    day: date
    region_code: str
    inn: str
    type_code: str
    survey_level: str


# The three grains the rollups are kept at, by their key columns: the day grain, and two coarser ones
# summed from it by the same deltas — the month per organisation, and the month per (region, type, level)
# without the organisation. Keys of the coarser grains are plain tuples in these columns' order.
DAY = ("day", "region_code", "inn", "type_code", "survey_level")
ORG_MONTH = ("month", "region_code", "inn", "type_code", "survey_level")
MONTH = ("month", "region_code", "type_code", "survey_level")

GrainKey = tuple[Any, ...]


def coarsen(grain: Grain, key: tuple[str, ...]) -> GrainKey:
    """``grain`` at the grain with the key columns ``key``."""
    if key == DAY:
        return grain
    month = grain.day.replace(day=1)
    if key == ORG_MONTH:
        return (month, grain.region_code, grain.inn, grain.type_code, grain.survey_level)
    return (month, grain.region_code, grain.type_code, grain.survey_level)


@dataclass(frozen=True)
class Contribution:
    """What one item adds at its grain. Ratings are ``(criterion, value 1..5)`` pairs."""

    grain: Grain
    services: int = 0
    notified: int = 0
    responses: int = 0
    ratings: tuple[tuple[str, int], ...] = ()
    delivery_failed: int = 0


def card_contribution(
    *,
    service_date: date,
    region_code: str,
    inn: str,
    type_code: str,
    survey_level: str,
    notified: bool,
    delivery_failed: bool = False,
) -> Contribution:
    """A card is one service, one notified service once its citizen was notified, and one failed
    delivery when ЕПГУ could not deliver its ГЭПС notification."""
    return Contribution(
        Grain(service_date, region_code, inn, type_code, survey_level),
        services=1,
        notified=int(notified),
        delivery_failed=int(delivery_failed),
    )


def response_contribution(
    *,
    service_date: date,
    region_code: str,
    inn: str,
    type_code: str,
    survey_level: str,
    ratings: Iterable[tuple[str, int]],
) -> Contribution:
    """A response is one response and its criterion ratings, counted at the day of the service rated
    (so responses and notifications of the same services meet in one bucket: the response rate)."""
    return Contribution(
        Grain(service_date, region_code, inn, type_code, survey_level),
        responses=1,
        ratings=tuple((criterion, value) for criterion, value in ratings),
    )


def normalise(value: int, scale: int) -> int:
    """A rating ``value`` on 1..``scale`` as a value on 1..5 (see the module docstring)."""
    if scale == SCALE:
        return value
    exact = 1 + Fraction(value - 1) * (SCALE - 1) / (scale - 1)
    return int(exact + Fraction(1, 2))  # half up; exact is positive, so int() floors


def criterion_ratings(answers: dict[str, AnswerValue], questionnaire: QuestionnaireDocument) -> list[tuple[str, int]]:
    """The criterion ratings of a response: for each rating question of the pinned version that names a
    criterion and was answered with a whole number within its scale, ``(criterion, value 1..5)``."""
    found: list[tuple[str, int]] = []
    for question in questionnaire.questions:
        if question.kind != "rating" or question.criterion is None or question.criterion not in CRITERIA:
            continue
        scale = scale_of(question)  # ЛКО's default when the question names none
        value = answers.get(question.id)
        if scale < 2 or isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= scale:
            continue
        found.append((question.criterion, normalise(value, scale)))
    return found


@dataclass
class Deltas:
    """Changes to apply to the rollups, summed per key: counts ``[services, notified, responses,
    delivery_failed]`` per grain, and ``[n1, …, n5]`` per (grain, criterion)."""

    counts: dict[Grain, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    criteria: dict[tuple[Grain, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 5))

    def add(self, contribution: Contribution, sign: int = 1) -> None:
        counts = self.counts[contribution.grain]
        counts[0] += sign * contribution.services
        counts[1] += sign * contribution.notified
        counts[2] += sign * contribution.responses
        counts[3] += sign * contribution.delivery_failed
        for criterion, value in contribution.ratings:
            self.criteria[(contribution.grain, criterion)][value - 1] += sign

    def replace(self, old: Contribution | None, new: Contribution | None) -> None:
        """The delta of an item that was ``old`` (None: unseen) and is now ``new`` (None: gone)."""
        if old == new:
            return
        if old is not None:
            self.add(old, -1)
        if new is not None:
            self.add(new, +1)

    def counts_at(self, key: tuple[str, ...]) -> dict[GrainKey, list[int]]:
        """:attr:`counts` summed at the grain ``key`` (:data:`DAY`, :data:`ORG_MONTH` or :data:`MONTH`)."""
        found: dict[GrainKey, list[int]]
        if key == DAY:
            found = dict(self.counts.items())
            return found
        found = defaultdict(lambda: [0, 0, 0, 0])
        for grain, (services, notified, responses, delivery_failed) in self.counts.items():
            sums = found[coarsen(grain, key)]
            sums[0] += services
            sums[1] += notified
            sums[2] += responses
            sums[3] += delivery_failed
        return found

    def criteria_at(self, key: tuple[str, ...]) -> dict[tuple[GrainKey, str], list[int]]:
        """:attr:`criteria` summed at the grain ``key``."""
        found: dict[tuple[GrainKey, str], list[int]]
        if key == DAY:
            found = dict(self.criteria.items())
            return found
        coarser = {grain: coarsen(grain, key) for grain in self.counts}  # every rated grain is counted
        found = {}
        for (grain, criterion), (n1, n2, n3, n4, n5) in self.criteria.items():
            at = (coarser[grain], criterion)
            sums = found.get(at)
            if sums is None:
                found[at] = [n1, n2, n3, n4, n5]
            else:
                sums[0] += n1
                sums[1] += n2
                sums[2] += n3
                sums[3] += n4
                sums[4] += n5
        return found

    def decreases(self) -> bool:
        """Whether anything decreased: only then can a rollup row (of any grain) fall to zero."""
        return any(min(c) < 0 for c in self.counts.values()) or any(min(n) < 0 for n in self.criteria.values())

    def count_rows(self, key: tuple[str, ...] = DAY) -> list[dict[str, Any]]:
        """The count rows to add at the grain ``key``, in key order (writers lock rollup rows in one
        order: no deadlocks)."""
        rows: list[dict[str, Any]] = []
        for grain, (services, notified, responses, delivery_failed) in sorted(self.counts_at(key).items()):
            if services or notified or responses or delivery_failed:
                row = dict(zip(key, grain, strict=True))
                counts = {"services": services, "notified": notified, "responses": responses}
                rows.append(row | counts | {"delivery_failed": delivery_failed})
        return rows

    def criterion_rows(self, key: tuple[str, ...] = DAY) -> list[dict[str, Any]]:
        """The criterion rows to add at the grain ``key``, in (key, criterion) order."""
        rows: list[dict[str, Any]] = []
        for (grain, criterion), (n1, n2, n3, n4, n5) in sorted(self.criteria_at(key).items()):
            if n1 or n2 or n3 or n4 or n5:
                row = dict(zip(key, grain, strict=True))
                row["criterion"] = criterion
                row["count"] = n1 + n2 + n3 + n4 + n5
                row["sum"] = n1 + 2 * n2 + 3 * n3 + 4 * n4 + 5 * n5
                rows.append(row | {"n1": n1, "n2": n2, "n3": n3, "n4": n4, "n5": n5})
        return rows

    def shrinking_grains(self, key: tuple[str, ...] = DAY) -> list[GrainKey]:
        """Keys at the grain ``key`` where something decreased: rows there may have reached zero."""
        grains = {grain for grain, c in self.counts_at(key).items() if min(c) < 0}
        grains |= {grain for (grain, _), n in self.criteria_at(key).items() if min(n) < 0}
        return sorted(grains)
