"""Read side: the rollups summed at query time for any scope, period and grouping (weeks, months,
regions and the country are sums of days, months, regions and organisations — of counts, never of
ratios), from the month grain where it can answer and the day grain for the rest."""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, Table, TextClause, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.ratings.figures import Totals
from posog.analytics.rollups.model import (
    CriterionRollup,
    MonthCriterionRollup,
    MonthRollup,
    Organization,
    OrgMonthCriterionRollup,
    OrgMonthRollup,
    Rollup,
)

GROUPINGS = frozenset({"day", "month", "region_code", "inn", "type_code", "survey_level"})


@dataclass(frozen=True)
class Filters:
    """Which rollup rows are in scope (None: all). Dates are service dates, inclusive."""

    region_code: str | None = None
    inn: str | None = None
    type_code: str | None = None
    survey_level: str | None = None
    date_from: date | None = None
    date_to: date | None = None


_FILTERED = ("region_code", "inn", "type_code", "survey_level")  # the Filters that are columns


@dataclass(frozen=True)
class Plan:
    """How to sum a period from the two grains: the whole months ``months`` (first days, inclusive) from
    the month grain, the day ranges ``days`` from the day grain."""

    months: tuple[date, date] | None
    days: tuple[tuple[date, date], ...]


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def plan(date_from: date | None, date_to: date | None, first_day: date, last_day: date) -> Plan:
    """The period ``date_from..date_to`` (None: open) over data in scope that lies within ``first_day..
    last_day``, cut into whole months and day ranges. A month is taken whole when the period covers
    every day of it that can hold data in scope — so the current month counts as whole for a period up
    to today, and the first month of the data for a period from before it; only the month at either end
    of the period that it cuts through is summed from days."""
    low = first_day if date_from is None else max(date_from, first_day)
    high = last_day if date_to is None else min(date_to, last_day)
    if low > high:
        return Plan(None, ())

    def whole(month: date) -> bool:
        return low <= max(month, first_day) and high >= min(month_end(month), last_day)

    first_month, last_month = month_start(low), month_start(high)
    days: list[tuple[date, date]] = []
    if not whole(first_month):
        days.append((low, min(month_end(first_month), high)))
        first_month = month_end(first_month) + timedelta(days=1)
    if last_month >= first_month and not whole(last_month):
        days.append((max(last_month, low), high))
        last_month = month_start(last_month - timedelta(days=1))
    months = (first_month, last_month) if first_month <= last_month else None
    return Plan(months, tuple(days))


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


_DAY_GRAIN = (_table(Rollup), _table(CriterionRollup), "day")
_ORG_MONTH_GRAIN = (_table(OrgMonthRollup), _table(OrgMonthCriterionRollup), "month")
_MONTH_GRAIN = (_table(MonthRollup), _table(MonthCriterionRollup), "month")


def _conditions(table: Table, filters: Filters) -> list[Any]:
    return [table.c[name] == getattr(filters, name) for name in _FILTERED if getattr(filters, name) is not None]


async def scope_bounds(session: AsyncSession, filters: Filters) -> tuple[date, date] | None:
    """The first and last service day with data in the scope of ``filters`` (their dates ignored), or
    None when there is none. Index look-ups: the day grain's key starts with the day, and the region
    and ИНН have indexes of their own beginning with them."""
    counts = _table(Rollup)
    row = (
        await session.execute(
            select(func.min(counts.c.day), func.max(counts.c.day)).where(*_conditions(counts, filters))
        )
    ).one()
    if row[0] is None:
        return None
    return _as_date(row[0]), _as_date(row[1])


def _as_date(value: Any) -> date:
    # SQLite returns min()/max() of a date column as its ISO text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


Segment = tuple[tuple[Table, Table, str], date | None, date | None]


def _segment_sql(segment: Segment, index: int, filtered: Sequence[str], by: Sequence[str]) -> str:
    """The two ``SELECT``s of one grain's rows in scope between ``:first_<index>`` and ``:last_<index>``
    (its time column: a day, or a month's first day; omitted when the segment has none), filtered on
    the columns ``filtered`` (``:<column>``) and grouped by the ``by`` columns — counts, then criterion
    ratings — in one shape for ``UNION ALL``: the ``by`` values, the criterion (NULL for counts), three
    counts, five ratings, the failed ГЭПС deliveries (NULL where the other kind). On the day grain a
    ``month`` grouping is by day."""
    (counts, criteria, time), first, last = segment
    columns = [time if name in ("day", "month") else name for name in by]
    conditions = [f"{name} = :{name}" for name in filtered]
    if first is not None:
        conditions.append(f"{time} >= :first_{index}")
    if last is not None:
        conditions.append(f"{time} <= :last_{index}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    keys = "".join(f"{column}, " for column in columns)
    count_sums = "sum(services), sum(notified), sum(responses)"
    rating_sums = ", ".join(f"sum(n{value})" for value in range(1, 6))
    group = f" GROUP BY {', '.join(columns)}" if columns else ""
    return (
        f"SELECT {keys}NULL, {count_sums}, NULL, NULL, NULL, NULL, NULL, sum(delivery_failed)"  # noqa: S608
        f" FROM {counts.name}{where}{group}"
        f" UNION ALL SELECT {keys}criterion, NULL, NULL, NULL, {rating_sums}, NULL FROM {criteria.name}{where}"
        f" GROUP BY {keys}criterion"
    )


# Statements by shape (grains, which filters and bounds are set, grouping): a few dozen in all, each
# written once — building and compiling an expression per request was a tenth of the server's CPU.
_STATEMENTS: dict[tuple[Any, ...], TextClause] = {}


def _statement(segments: Sequence[Segment], filters: Filters, by: Sequence[str]) -> tuple[TextClause, dict[str, Any]]:
    filtered = [name for name in _FILTERED if getattr(filters, name) is not None]
    shape = (
        tuple((grain[2], grain[0].name, first is None, last is None) for grain, first, last in segments),
        tuple(filtered),
        tuple(by),
    )
    statement = _STATEMENTS.get(shape)
    if statement is None:
        sql = " UNION ALL ".join(_segment_sql(segment, n, filtered, by) for n, segment in enumerate(segments))
        dates = [
            bindparam(f"{edge}_{n}", type_=Date())
            for n, (_grain, first, last) in enumerate(segments)
            for edge, value in (("first", first), ("last", last))
            if value is not None
        ]
        statement = _STATEMENTS.setdefault(shape, text(sql).bindparams(*dates))
    params: dict[str, Any] = {name: getattr(filters, name) for name in filtered}
    for n, (_grain, first, last) in enumerate(segments):
        if first is not None:
            params[f"first_{n}"] = first
        if last is not None:
            params[f"last_{n}"] = last
    return statement, params


def _aligned(filters: Filters) -> bool:
    """Whether the period starts on a month's first day and ends on a month's last (or is open there):
    then its months are whole whatever the data, and no bounds are needed to cut it."""
    starts = filters.date_from is None or filters.date_from.day == 1
    ends = filters.date_to is None or filters.date_to == month_end(filters.date_to)
    return starts and ends


async def totals_by(
    session: AsyncSession,
    filters: Filters,
    by: Sequence[str] = (),
    *,
    bounds: tuple[date, date] | None = None,
) -> dict[tuple[Any, ...], Totals]:
    """Summed counts and ratings in scope, per value of the ``by`` columns (one entry ``()`` without;
    ``month`` groups by the first day of the service date's month).

    Groupings by day are summed from the day grain. Everything else from a month grain for the whole
    months of the period — per organisation for an organisation's figures or a grouping by
    organisation, the one without organisations otherwise (the country, a region, a type, per region,
    per month) — and from the day grain for the days of the month at either end that the period cuts
    through (:func:`plan`; ``bounds``, the scope's first and last day of data, saves a query when the
    caller has it; a period of whole months needs none). One statement: the parts as ``UNION ALL``."""
    if not set(by) <= GROUPINGS:
        raise ValueError(f"cannot group by {by}")
    segments: list[Segment] = []
    months = _ORG_MONTH_GRAIN if filters.inn is not None or "inn" in by else _MONTH_GRAIN
    if "day" in by:
        segments.append((_DAY_GRAIN, filters.date_from, filters.date_to))
    elif bounds is None and _aligned(filters):
        first, last = filters.date_from, filters.date_to
        segments.append((months, first, None if last is None else month_start(last)))
    else:
        bounds = bounds or await scope_bounds(session, filters)
        if bounds is not None:
            cut = plan(filters.date_from, filters.date_to, *bounds)
            if cut.months is not None:
                segments.append((months, *cut.months))
            segments += [(_DAY_GRAIN, first, last) for first, last in cut.days]
    found: dict[tuple[Any, ...], Totals] = defaultdict(Totals)
    if segments:
        width = len(by)
        fold = [index for index, name in enumerate(by) if name == "month"]  # a day (or a month) → its month
        days = [index for index, name in enumerate(by) if name == "day"]  # SQLite: ISO text
        statement, params = _statement(segments, filters, by)
        for row in await session.execute(statement, params):
            key = list(row[:width])
            for index in fold:
                key[index] = month_start(_as_date(key[index]))
            for index in days:
                key[index] = _as_date(key[index])
            if row[width] is None:
                if row[width + 1] is not None:  # SUM over no rows: nothing
                    found[tuple(key)].add_counts(
                        int(row[width + 1]), int(row[width + 2]), int(row[width + 3]), int(row[width + 9])
                    )
            else:
                found[tuple(key)].add_ratings(str(row[width]), [int(n) for n in row[width + 4 : width + 9]])
    if not by and () not in found:
        found[()] = Totals()
    return dict(found)


async def organizations(session: AsyncSession, inns: Sequence[str]) -> dict[str, Organization]:
    """Display names (and home regions) of the given ИНН."""
    found: dict[str, Organization] = {}
    for start in range(0, len(inns), 500):
        chunk = list(inns[start : start + 500])
        rows = await session.scalars(select(Organization).where(Organization.inn.in_(chunk)))
        found.update({row.inn: row for row in rows})
    return found
