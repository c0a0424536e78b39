"""The month grains (SPEC §8 figures at scale): the rollups kept per (month, region, ИНН, type,
level) and per (month, region, type, level) beside the day grain always sum to it — after a rebuild,
after deltas that add and take away — and every answer read through them (whole months from a month
grain, the cut months from days) equals the sum of the day rows it stands for, for any scope, period
and grouping."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from posog.analytics.ratings.figures import Totals
from posog.analytics.ratings.queries import Filters, plan, scope_bounds, totals_by
from posog.analytics.rollups.items import Deltas, card_contribution, response_contribution
from posog.analytics.rollups.model import CardItem, ResponseItem
from posog.analytics.rollups.repository import apply_deltas
from tests.integration.analytics_fixture import analytics_stack, card_item, response_item, table_rows
from tests.integration.test_analytics_incremental import as_text, with_months
from tests.support import BACKENDS

pytestmark = pytest.mark.integration

CRITERIA = ["service_time", "queue_time", "staff", "comfort", "information"]
REGIONS = ["77", "16", "50"]
INNS = {"7703012345": "77", "7704012345": "77", "1655012345": "16", "5012345678": "50"}
TYPES = ["mfc", "school", "clinic"]
LEVELS = ["federal", "regional", "municipal"]
FIRST, LAST = date(2026, 7, 20), date(2026, 11, 18)


def _items(rng: random.Random, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cards, responses = [], []
    span = (LAST - FIRST).days
    for number in range(n):
        inn = rng.choice(list(INNS))
        grain = {
            "inn": inn,
            "region_code": INNS[inn],
            "type_code": rng.choice(TYPES),
            "survey_level": rng.choice(LEVELS),
            "service_date": FIRST + timedelta(days=rng.randint(0, span)),
        }
        cards.append(card_item(f"C-{number}", grain, notified=rng.random() < 0.8))
        if rng.random() < 0.5:
            ratings = [[criterion, rng.randint(1, 5)] for criterion in rng.sample(CRITERIA, 3)]
            responses.append(
                response_item(f"C-{number}", grain, ratings, questionnaire_id="00000000-0000-0000-0000-000000000001")
            )
    return cards, responses


def _reference(
    count_rows: list[tuple[Any, ...]], criterion_rows: list[tuple[Any, ...]], filters: Filters, by: tuple[str, ...]
) -> dict[tuple[Any, ...], Totals]:
    """The answer summed here from the day rows alone (the day grain is the truth the month grain keeps)."""

    def selected(row: tuple[Any, ...]) -> dict[str, Any] | None:
        day = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0]))
        values = {"day": day, "month": day.replace(day=1), "region_code": row[1], "inn": row[2]}
        values |= {"type_code": row[3], "survey_level": row[4]}
        for name in ("region_code", "inn", "type_code", "survey_level"):
            if getattr(filters, name) is not None and values[name] != getattr(filters, name):
                return None
        if filters.date_from is not None and day < filters.date_from:
            return None
        if filters.date_to is not None and day > filters.date_to:
            return None
        return values

    found: dict[tuple[Any, ...], Totals] = defaultdict(Totals)
    for row in count_rows:
        if (values := selected(row)) is not None:
            found[tuple(values[name] for name in by)].add_counts(*(int(v) for v in row[5:8]))
    for row in criterion_rows:
        if (values := selected(row)) is not None:
            found[tuple(values[name] for name in by)].add_ratings(str(row[5]), [int(v) for v in row[8:13]])
    if not by:
        found.setdefault((), Totals())
    return dict(found)


def _random_filters(rng: random.Random) -> Filters:
    def some_day() -> date | None:
        if rng.random() < 0.25:
            return None
        return date(2026, 7, 1) + timedelta(days=rng.randint(0, 180))

    date_from, date_to = some_day(), some_day()
    if date_from is not None and date_to is not None and date_from > date_to:
        date_from, date_to = date_to, date_from
    return Filters(
        region_code=rng.choice([None, None, *REGIONS]),
        inn=rng.choice([None, None, None, None, *INNS]),
        type_code=rng.choice([None, None, *TYPES]),
        survey_level=rng.choice([None, None, *LEVELS]),
        date_from=date_from,
        date_to=date_to,
    )


GROUPINGS: list[tuple[str, ...]] = [
    (),
    ("region_code",),
    ("month",),
    ("inn",),
    ("day",),
    ("type_code", "month"),
    ("survey_level",),
]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_answer_equals_the_sum_of_its_day_rows(backend: str, tmp_path: Path) -> None:
    rng = random.Random(2026)
    cards, responses = _items(rng, 900)
    async with analytics_stack(backend, tmp_path) as system:
        async with system.db.uow() as uow:
            await uow.session.execute(insert(CardItem), cards)
            await uow.session.execute(insert(ResponseItem), responses)
            await uow.commit()
        await system.analytics.pipeline.rebuild()
        tables = await as_text(system)
        assert tables == with_months(
            {name: tables[name] for name in ("analytics_rollups", "analytics_criterion_rollups")}
        )
        assert len(tables["analytics_month_rollups"]) < len(tables["analytics_org_month_rollups"])
        assert len(tables["analytics_org_month_rollups"]) < len(tables["analytics_rollups"])
        count_rows = await table_rows(system, "analytics_rollups")
        criterion_rows = await table_rows(system, "analytics_criterion_rollups")

        checked = 0
        async with system.db.uow() as uow:
            cases = [(_random_filters(rng), rng.choice(GROUPINGS)) for _ in range(150)]
            cases += [
                (Filters(date_from=date(2026, 10, 27), date_to=date(2026, 11, 25)), ()),  # the last 30 days
                (Filters(date_from=date(2026, 8, 1), date_to=date(2026, 10, 31)), ("region_code",)),  # a quarter
                (Filters(date_from=date(2026, 8, 2), date_to=date(2026, 10, 30)), ("month",)),
                (Filters(date_from=date(2026, 9, 10), date_to=date(2026, 9, 12)), ()),  # inside one month
                (Filters(date_from=date(2026, 12, 1)), ()),  # after the data
                (Filters(region_code="16", type_code="clinic", date_to=date(2026, 7, 1)), ("month",)),
                (Filters(), ("month",)),
            ]
            for filters, by in cases:
                answer = await totals_by(uow.session, filters, by)
                assert answer == _reference(count_rows, criterion_rows, filters, by), (filters, by)
                checked += sum(totals.responses for totals in answer.values())
        assert checked > 1000  # the cases did meet data


@pytest.mark.parametrize("backend", BACKENDS)
async def test_month_rows_follow_deltas_that_add_and_take_away(backend: str, tmp_path: Path) -> None:
    """A card and a response counted, then taken away again: their month rows go with their day rows."""
    grain = {
        "service_date": date(2026, 10, 31),
        "region_code": "77",
        "inn": "7703012345",
        "type_code": "mfc",
        "survey_level": "federal",
    }
    card = card_contribution(**grain, notified=True)
    other_day = card_contribution(**{**grain, "service_date": date(2026, 10, 2)}, notified=False)
    response = response_contribution(**grain, ratings=[("staff", 5), ("comfort", 2)])
    async with analytics_stack(backend, tmp_path) as system:
        for changes in ([(card, 1), (other_day, 1), (response, 1)], [(card, -1), (response, -1)]):
            deltas = Deltas()
            for contribution, sign in changes:
                deltas.add(contribution, sign)
            async with system.db.uow() as uow:
                await apply_deltas(uow.session, deltas)
                await uow.commit()
            tables = await as_text(system)
            assert tables == with_months(
                {name: tables[name] for name in ("analytics_rollups", "analytics_criterion_rollups")}
            )
        # services, notified, responses, failed ГЭПС deliveries
        assert tables["analytics_month_rollups"] == [("2026-10-01", "77", "mfc", "federal", "1", "0", "0", "0")]
        assert tables["analytics_org_month_rollups"] == [
            ("2026-10-01", "77", "7703012345", "mfc", "federal", "1", "0", "0", "0")
        ]
        assert tables["analytics_month_criterion_rollups"] == []
        assert tables["analytics_org_month_criterion_rollups"] == []
        async with system.db.uow() as uow:
            assert await scope_bounds(uow.session, Filters(region_code="77")) == (date(2026, 10, 2), date(2026, 10, 2))
            assert await scope_bounds(uow.session, Filters(region_code="16")) is None


def test_a_period_is_cut_into_whole_months_and_the_days_of_the_months_it_cuts() -> None:
    """Every day of the period that can hold data is summed exactly once; a month is read whole whenever
    the period covers all of its days with data — only the months at the period's two ends can be cut."""
    rng = random.Random(7)
    start = date(2025, 12, 1)
    for _ in range(3000):
        first_day = start + timedelta(days=rng.randint(0, 200))
        last_day = first_day + timedelta(days=rng.randint(0, 200))
        date_from = rng.choice([None, start + timedelta(days=rng.randint(0, 420))])
        date_to = rng.choice([None, start + timedelta(days=rng.randint(0, 420))])
        cut = plan(date_from, date_to, first_day, last_day)

        covered: list[date] = []
        if cut.months is not None:
            month = cut.months[0]
            assert month.day == 1
            assert cut.months[1].day == 1
            assert month <= cut.months[1]
            while month <= cut.months[1]:
                day = month
                while day.month == month.month:
                    if first_day <= day <= last_day:
                        covered.append(day)
                    day += timedelta(days=1)
                month = day
        assert len(cut.days) <= 2
        for low, high in cut.days:
            assert low <= high
            assert (low.year, low.month) == (high.year, high.month)
            covered += [low + timedelta(days=n) for n in range((high - low).days + 1)]
        low = max(date_from or first_day, first_day)
        high = min(date_to or last_day, last_day)
        wanted = [low + timedelta(days=n) for n in range((high - low).days + 1)] if low <= high else []
        assert sorted(covered) == wanted, (date_from, date_to, first_day, last_day, cut)
        if date_from is None and date_to is None:
            assert cut.days == ()  # all the data: whole months only
        if date_to is not None and date_to >= last_day and (date_from is None or date_from <= first_day):
            assert cut.days == ()
