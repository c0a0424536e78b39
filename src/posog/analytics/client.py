"""The HTTP client ЛКО and the module use to ask analytics (SPEC §8). In the embedded mode it holds an
in-process transport over the analytics app, so the code path is the production one."""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from posog.analytics.contracts import Bucket, CallerScope, Level, RatingLevel, Ratings, Summary, Timeseries

M = TypeVar("M", bound=BaseModel)


class AnalyticsError(Exception):
    """Analytics could not be reached or answered something unexpected (retry later)."""


class AnalyticsRefused(Exception):
    """Analytics refused the request: ``code`` (e.g. ``scope_violation``, ``validation_error``) and a
    Russian ``message`` fit to show a cabinet user."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


class AnalyticsClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def summary(
        self,
        *,
        level: Level = "country",
        region_code: str | None = None,
        inn: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        type_code: str | None = None,
        survey_level: str | None = None,
        scope: CallerScope | None = None,
    ) -> Summary:
        """The figures of the country, a region or an organisation; ``scope`` is the cabinet user's."""
        params = _params(
            level=level,
            region_code=region_code,
            inn=inn,
            date_from=date_from,
            date_to=date_to,
            type_code=type_code,
            survey_level=survey_level,
            scope=scope,
        )
        return await self._get("/api/v1/analytics/summary", params, Summary)

    async def ratings(
        self,
        *,
        level: RatingLevel = "region",
        region_code: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        type_code: str | None = None,
        survey_level: str | None = None,
        scope: CallerScope | None = None,
    ) -> Ratings:
        """Regions or organisations ranked by satisfaction index."""
        params = _params(
            level=level,
            region_code=region_code,
            date_from=date_from,
            date_to=date_to,
            type_code=type_code,
            survey_level=survey_level,
            scope=scope,
        )
        return await self._get("/api/v1/analytics/ratings", params, Ratings)

    async def timeseries(
        self,
        *,
        bucket: Bucket = "day",
        level: Level = "country",
        region_code: str | None = None,
        inn: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        type_code: str | None = None,
        survey_level: str | None = None,
        scope: CallerScope | None = None,
    ) -> Timeseries:
        """The figures per day, ISO week or month."""
        params = _params(
            bucket=bucket,
            level=level,
            region_code=region_code,
            inn=inn,
            date_from=date_from,
            date_to=date_to,
            type_code=type_code,
            survey_level=survey_level,
            scope=scope,
        )
        return await self._get("/api/v1/analytics/timeseries", params, Timeseries)

    async def _get(self, path: str, params: dict[str, str], model: type[M]) -> M:
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise AnalyticsError(f"analytics unreachable: {exc.__class__.__name__}") from exc
        if response.status_code == 200:
            return model.model_validate_json(response.content)
        if 400 <= response.status_code < 500:
            try:
                error = response.json()["error"]
                refusal = AnalyticsRefused(response.status_code, str(error["code"]), str(error["message"]))
            except (ValueError, KeyError, TypeError):
                refusal = None
            if refusal is not None:
                raise refusal
        raise AnalyticsError(f"analytics answered {response.status_code} for {path}")


def _params(
    *, scope: CallerScope | None, date_from: date | None, date_to: date | None, **values: Any
) -> dict[str, str]:
    params = {name: str(value) for name, value in values.items() if value is not None}
    if date_from is not None:
        params["from"] = date_from.isoformat()
    if date_to is not None:
        params["to"] = date_to.isoformat()
    if scope is not None:
        params["scope_role"] = scope.role
        if scope.region_code is not None:
            params["scope_region"] = scope.region_code
        if scope.inn is not None:
            params["scope_inn"] = scope.inn
    return params
