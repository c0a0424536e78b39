"""The three answers of the analytics API, computed from the rollups of a scope and period."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.contracts import (
    Bucket,
    Period,
    RatingItem,
    RatingLevel,
    Ratings,
    Scope,
    Summary,
    Timeseries,
    TimeseriesPoint,
)
from posog.analytics.ratings.figures import Totals, figure_fields
from posog.analytics.ratings.queries import Filters, month_end, month_start, organizations, scope_bounds, totals_by
from posog.analytics.rollups.model import Organization
from posog.core import regions

MAX_POINTS = 1000


class PeriodTooLong(ValueError):
    """More buckets than one answer may carry."""


def region_name(code: str | None) -> str | None:
    region = None if code is None else regions.get_region(code)
    return None if region is None else region.name


async def describe(session: AsyncSession, scope: Scope) -> Scope:
    """``scope`` with the names of its region and organisation."""
    org_name = None
    if scope.inn is not None:
        known = (await organizations(session, [scope.inn])).get(scope.inn)
        org_name = None if known is None else known.org_name
    return scope.model_copy(update={"region_name": region_name(scope.region_code), "org_name": org_name})


async def summary(session: AsyncSession, scope: Scope, filters: Filters, period: Period) -> Summary:
    totals = (await totals_by(session, filters))[()]
    return Summary(scope=await describe(session, scope), period=period, **figure_fields(totals))


async def ratings(
    session: AsyncSession, level: RatingLevel, scope: Scope, filters: Filters, period: Period, *, min_responses: int
) -> Ratings:
    """Regions or organisations in scope, ranked (see :class:`posog.analytics.contracts.Ratings`)."""
    key = "region_code" if level == "region" else "inn"
    groups = {group[0]: totals for group, totals in (await totals_by(session, filters, (key,))).items()}
    names = await organizations(session, sorted(groups)) if level == "organization" else {}
    items = [
        _rating_item(level, group, groups[group], names, rank, min_responses)
        for group, rank in ranking(groups, min_responses=min_responses)
    ]
    return Ratings(
        level=level, scope=await describe(session, scope), period=period, min_responses=min_responses, items=items
    )


def ranking(groups: Mapping[str, Totals], *, min_responses: int) -> list[tuple[str, int | None]]:
    """Groups in rating order with their ranks: by satisfaction index (exact), then by more responses;
    equal on both share a rank (1, 2, 2, 4). Groups under ``min_responses`` or without criterion ratings
    follow unranked (None), by responses."""

    def merit(group: str) -> tuple[Fraction, int]:
        satisfaction = groups[group].satisfaction()
        assert satisfaction is not None
        return satisfaction, groups[group].responses

    rankable = [g for g, t in groups.items() if t.responses >= min_responses and t.satisfaction() is not None]
    ranked = sorted(rankable, key=lambda g: (-merit(g)[0], -merit(g)[1], g))
    unranked = sorted(set(groups) - set(rankable), key=lambda g: (-groups[g].responses, g))
    order: list[tuple[str, int | None]] = []
    rank, previous = 0, None
    for position, group in enumerate(ranked, start=1):
        if merit(group) != previous:
            rank, previous = position, merit(group)
        order.append((group, rank))
    return order + [(group, None) for group in unranked]


def _rating_item(
    level: RatingLevel,
    group: str,
    totals: Totals,
    names: Mapping[str, Organization],
    rank: int | None,
    min_responses: int,
) -> RatingItem:
    region_code: str | None = group
    inn = org_name = None
    if level == "organization":
        known = names.get(group)
        inn = group
        region_code = None if known is None else known.region_code
        org_name = None if known is None else known.org_name
    return RatingItem(
        rank=rank,
        small_sample=totals.responses < min_responses,
        region_code=region_code,
        region_name=region_name(region_code),
        inn=inn,
        org_name=org_name,
        **figure_fields(totals),
    )


def bucket_start(day: date, bucket: Bucket) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return month_start(day)
    return day


def bucket_end(start: date, bucket: Bucket) -> date:
    if bucket == "week":
        return start + timedelta(days=6)
    if bucket == "month":
        return month_end(start)
    return start


def buckets(first: date, last: date, bucket: Bucket) -> Iterator[tuple[date, date]]:
    """The buckets covering ``first``..``last``, each clipped to it."""
    start = bucket_start(first, bucket)
    while start <= last:
        end = bucket_end(start, bucket)
        yield max(start, first), min(end, last)
        start = end + timedelta(days=1)


async def timeseries(
    session: AsyncSession, scope: Scope, filters: Filters, period: Period, bucket: Bucket
) -> Timeseries:
    """Figures per day, ISO week or month of the period (or of the data in scope, where the period is
    open). Months are summed per month (mostly from the month grain), days and weeks per day."""
    bounds = await scope_bounds(session, filters)
    first = period.from_ or (bounds[0] if bounds else None)
    last = period.to or (bounds[1] if bounds else None)
    points: list[TimeseriesPoint] = []
    if first is not None and last is not None and first <= last:
        spans = []
        for span in buckets(first, last, bucket):
            spans.append(span)
            if len(spans) > MAX_POINTS:
                raise PeriodTooLong(f"more than {MAX_POINTS} buckets")
        grouping = "month" if bucket == "month" else "day"
        found = {
            group[0]: totals
            for group, totals in (await totals_by(session, filters, (grouping,), bounds=bounds)).items()
        }
        for start, end in spans:
            totals = Totals()
            if bucket == "month":
                totals.merge(found.get(month_start(start), Totals()))
            else:
                day = start
                while day <= end:
                    if day in found:
                        totals.merge(found[day])
                    day += timedelta(days=1)
            points.append(TimeseriesPoint(start=start, end=end, **figure_fields(totals)))
    return Timeseries(scope=await describe(session, scope), period=period, bucket=bucket, points=points)
