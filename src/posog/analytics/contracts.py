"""Analytics' public contracts (SPEC §8, v1): the answers of ``/api/v1/analytics/summary``, ``/ratings``
and ``/timeseries``, which ЛКО's cabinet and the module's ИАС export rely on.

Figures (SPEC §8), always pooled over the ratings in scope — never a mean of means:

- ``services``: cards (provided services); ``notified``: of them, those whose citizen was notified;
  ``responses``: stored responses; all counted at the date of the service.
- ``response_rate`` = responses / notified (null when nothing was notified).
- per criterion: ``count`` of ratings, ``distribution`` of values 1..5, ``mean`` (2 decimals),
  ``positive_share`` = share of 4–5, ``negative_share`` = share of 1–2 (null without ratings).
  Ratings given on other scales are normalised to 1..5 (see ``posog.analytics.rollups.items``).
- ``satisfaction_index`` = ratings of 4–5 over all criterion ratings in scope, every criterion
  together (null without ratings).
- ``delivery_failed``: of the notified services, those whose ГЭПС notification ЕПГУ reported it could
  not deliver (INTEGRATION §3); ``delivery_failure_rate`` = delivery_failed / notified (null when
  nothing was notified).

Shares, rates and the index carry 4 decimals, rounded half up."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["country", "region", "organization"]
RatingLevel = Literal["region", "organization"]
Bucket = Literal["day", "week", "month"]
ScopeRole = Literal["federal", "regional", "organization"]


class CriterionFigures(BaseModel):
    """One criterion's ratings in scope."""

    count: int
    mean: float | None
    positive_share: float | None
    negative_share: float | None
    distribution: dict[str, int] = Field(description='Ratings per value, keys "1".."5"')


class Figures(BaseModel):
    """The SPEC §8 figures of one scope and period. ``criteria`` always has the five criteria of
    Постановление № 1284 (``service_time``, ``queue_time``, ``staff``, ``comfort``, ``information``)."""

    services: int
    notified: int
    responses: int
    response_rate: float | None
    criteria: dict[str, CriterionFigures]
    satisfaction_index: float | None
    delivery_failed: int = 0
    delivery_failure_rate: float | None = None


class Scope(BaseModel):
    """What the figures cover: the level, and the filters that applied (null: all)."""

    level: Level
    region_code: str | None = None
    region_name: str | None = None
    inn: str | None = None
    org_name: str | None = None
    type_code: str | None = None
    survey_level: str | None = None


class Period(BaseModel):
    """Service dates covered, inclusive (null: open)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: dt.date | None = Field(default=None, alias="from")
    to: dt.date | None = None


class Summary(Figures):
    """``GET /api/v1/analytics/summary``."""

    scope: Scope
    period: Period


class RatingItem(Figures):
    """One region or organisation of a rating. ``rank`` is null for groups with fewer responses than
    ``min_responses`` (``small_sample``) and for groups without criterion ratings."""

    rank: int | None
    small_sample: bool
    region_code: str | None
    region_name: str | None
    inn: str | None = None
    org_name: str | None = None


class Ratings(BaseModel):
    """``GET /api/v1/analytics/ratings``: ranked by satisfaction index, ties broken by more responses
    (equal on both: the same rank); ranked items first, then the unranked by responses."""

    level: RatingLevel
    scope: Scope
    period: Period
    min_responses: int
    items: list[RatingItem]


class TimeseriesPoint(Figures):
    """One bucket: ``start``..``end`` inclusive (ISO weeks start on Monday), clipped to the period."""

    start: dt.date
    end: dt.date


class Timeseries(BaseModel):
    """``GET /api/v1/analytics/timeseries``: every bucket of the period, empty ones included."""

    scope: Scope
    period: Period
    bucket: Bucket
    points: list[TimeseriesPoint]


class CallerScope(BaseModel):
    """Whose eyes the figures are for, when ЛКО asks for a cabinet user: a federal operator (all),
    a regional operator (one region), an organisation user (one ИНН). Sent as the query parameters
    ``scope_role``, ``scope_region``, ``scope_inn``; without them the calling system itself asks."""

    model_config = ConfigDict(frozen=True)
    role: ScopeRole
    region_code: str | None = None
    inn: str | None = None
