"""The SPEC §8 formulas over summed counts — pooled by construction: every figure is a ratio of sums
of counts, so a region is never the mean of its organisations' means."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from posog.analytics.contracts import CriterionFigures, Figures
from posog.lko.contracts import CRITERIA

VALUES = (1, 2, 3, 4, 5)


def rounded(value: Fraction | None, places: int) -> float | None:
    """``value`` (≥ 0) rounded half up to ``places`` decimals, exactly, from the fraction: integer
    arithmetic, then the nearest float to that decimal (what ``float("0.6667")`` gives)."""
    if value is None:
        return None
    scale: int = 10**places
    numerator, denominator = int(value.numerator), int(value.denominator)
    return ((2 * numerator * scale + denominator) // (2 * denominator)) / scale


def ratio(numerator: int, denominator: int) -> Fraction | None:
    return None if denominator == 0 else Fraction(numerator, denominator)


@dataclass
class Totals:
    """Summed counts of one scope: services, notified, responses, failed ГЭПС deliveries, and ratings
    per criterion per value."""

    services: int = 0
    notified: int = 0
    responses: int = 0
    criteria: dict[str, list[int]] = field(default_factory=dict)
    delivery_failed: int = 0

    def add_counts(self, services: int, notified: int, responses: int, delivery_failed: int = 0) -> None:
        self.services += services
        self.notified += notified
        self.responses += responses
        self.delivery_failed += delivery_failed

    def add_ratings(self, criterion: str, distribution: list[int]) -> None:
        known = self.criteria.setdefault(criterion, [0] * 5)
        for index, count in enumerate(distribution):
            known[index] += count

    def merge(self, other: Totals) -> None:
        self.add_counts(other.services, other.notified, other.responses, other.delivery_failed)
        for criterion, distribution in other.criteria.items():
            self.add_ratings(criterion, distribution)

    @property
    def ratings(self) -> int:
        return sum(sum(distribution) for distribution in self.criteria.values())

    @property
    def positive(self) -> int:
        return sum(distribution[3] + distribution[4] for distribution in self.criteria.values())

    def satisfaction(self) -> Fraction | None:
        """Ratings of 4–5 over all criterion ratings (exact, for ranking)."""
        return ratio(self.positive, self.ratings)


def criterion_figures(distribution: list[int]) -> CriterionFigures:
    count = sum(distribution)
    total = sum(value * n for value, n in zip(VALUES, distribution, strict=True))
    return CriterionFigures(
        count=count,
        mean=rounded(ratio(total, count), 2),
        positive_share=rounded(ratio(distribution[3] + distribution[4], count), 4),
        negative_share=rounded(ratio(distribution[0] + distribution[1], count), 4),
        distribution={str(value): n for value, n in zip(VALUES, distribution, strict=True)},
    )


def figure_fields(totals: Totals) -> dict[str, Any]:
    """The fields of :class:`Figures` for ``totals``, to build it or a model extending it (``Summary``,
    ``RatingItem``, ``TimeseriesPoint``) directly; every criterion of Постановление № 1284 is present,
    unrated ones empty."""
    return {
        "services": totals.services,
        "notified": totals.notified,
        "responses": totals.responses,
        "response_rate": rounded(ratio(totals.responses, totals.notified), 4),
        "criteria": {
            criterion: criterion_figures(totals.criteria.get(criterion, [0] * 5))
            for criterion in (*CRITERIA, *sorted(set(totals.criteria) - set(CRITERIA)))
        },
        "satisfaction_index": rounded(totals.satisfaction(), 4),
        "delivery_failed": totals.delivery_failed,
        "delivery_failure_rate": rounded(ratio(totals.delivery_failed, totals.notified), 4),
    }


def figures(totals: Totals) -> Figures:
    """The figures of ``totals`` (:func:`figure_fields`)."""
    return Figures(**figure_fields(totals))
