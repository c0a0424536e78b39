"""Read side: the day-grain rollups summed at query time for any scope, period and grouping (weeks,
months, regions and the country are sums of days, regions and organisations — of counts, never of
ratios)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.ratings.figures import Totals
from posog.analytics.rollups.model import CriterionRollup, Organization, Rollup

GROUPINGS = frozenset({"day", "region_code", "inn", "type_code", "survey_level"})


@dataclass(frozen=True)
class Filters:
    """Which rollup rows are in scope (None: all). Dates are service dates, inclusive."""

    region_code: str | None = None
    inn: str | None = None
    type_code: str | None = None
    survey_level: str | None = None
    date_from: date | None = None
    date_to: date | None = None


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _conditions(table: Table, filters: Filters) -> list[Any]:
    conditions: list[Any] = []
    for name in ("region_code", "inn", "type_code", "survey_level"):
        value = getattr(filters, name)
        if value is not None:
            conditions.append(table.c[name] == value)
    if filters.date_from is not None:
        conditions.append(table.c.day >= filters.date_from)
    if filters.date_to is not None:
        conditions.append(table.c.day <= filters.date_to)
    return conditions


async def totals_by(session: AsyncSession, filters: Filters, by: Sequence[str] = ()) -> dict[tuple[Any, ...], Totals]:
    """Summed counts and ratings in scope, per value of the ``by`` columns (one entry ``()`` without)."""
    if not set(by) <= GROUPINGS:
        raise ValueError(f"cannot group by {by}")
    found: dict[tuple[Any, ...], Totals] = defaultdict(Totals)
    rollups = _table(Rollup)
    keys = [rollups.c[name] for name in by]
    query = (
        select(
            *keys,
            func.sum(rollups.c.services),
            func.sum(rollups.c.notified),
            func.sum(rollups.c.responses),
        )
        .where(*_conditions(rollups, filters))
        .group_by(*keys)
    )
    width = len(by)
    for row in await session.execute(query):
        if row[width] is None:  # SUM over no rows
            continue
        found[tuple(row[:width])].add_counts(int(row[width]), int(row[width + 1]), int(row[width + 2]))
    criteria = _table(CriterionRollup)
    keys = [criteria.c[name] for name in by]
    query = (
        select(*keys, criteria.c.criterion, *(func.sum(criteria.c[f"n{value}"]) for value in range(1, 6)))
        .where(*_conditions(criteria, filters))
        .group_by(*keys, criteria.c.criterion)
    )
    for row in await session.execute(query):
        found[tuple(row[:width])].add_ratings(str(row[width]), [int(n) for n in row[width + 1 :]])
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
