"""Analytics HTTP API (SPEC §8, v1): summary, ratings and time series of the rollups, for ЛКО's cabinet
and the module's ИАС export. Every ``/api/v1`` route is service-authenticated (callers ``lko`` and
``module``, operation ``analytics:read``) and role-scoped when ЛКО passes a cabinet user's scope
(``scope_role``, ``scope_region``, ``scope_inn``; see :mod:`posog.analytics.scope`). Every error is
``{"error": {"code", "message"}}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from datetime import date
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.cache import AnswerCache, rollups_version
from posog.analytics.contracts import (
    Bucket,
    CallerScope,
    Level,
    Period,
    RatingLevel,
    Ratings,
    Scope,
    ScopeRole,
    Summary,
    Timeseries,
)
from posog.analytics.ratings import reports
from posog.analytics.ratings.queries import Filters, scope_bounds
from posog.analytics.scope import ScopeViolation, Target, for_figures, for_ratings
from posog.core.appstate import need, provide
from posog.core.db import Database
from posog.core.http import SERVICE_ERRORS, error_responses, install_error_handlers, operations_router
from posog.core.service_auth import ServiceKeyring, require_service
from posog.settings import Settings

log = structlog.get_logger(__name__)


# Which operations each calling system may perform on analytics.
SERVICE_OPERATIONS: dict[str, frozenset[str]] = {
    "lko": frozenset({"analytics:read"}),
    "module": frozenset({"analytics:read"}),
}

_REGION = r"^\d{2}$"
_INN = r"^(\d{10}|\d{12})$"
_TYPE_CODE = r"^[a-z0-9_\-]+$"
_ERRORS: dict[int | str, dict[str, Any]] = error_responses(
    *SERVICE_ERRORS,
    described={
        403: "Операция не разрешена вызывающей системе или вне области видимости пользователя",
        422: "Некорректные параметры запроса",
    },
)

SurveyLevelParam = Literal["federal", "regional", "municipal"]


def _fail(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"code": code, "message": message})


async def caller_scope(
    scope_role: Annotated[ScopeRole | None, Query(description="Роль пользователя кабинета")] = None,
    scope_region: Annotated[str | None, Query(pattern=_REGION, description="Регион регионального оператора")] = None,
    scope_inn: Annotated[str | None, Query(pattern=_INN, description="ИНН пользователя организации")] = None,
) -> CallerScope | None:
    """The cabinet user's scope ЛКО passes along, or None when the calling system asks for itself."""
    if scope_role is None:
        if scope_region is not None or scope_inn is not None:
            raise _fail(422, "bad_scope", "Параметры scope_region и scope_inn указываются вместе со scope_role")
        return None
    if scope_role == "regional" and scope_region is None:
        raise _fail(422, "bad_scope", "Для роли regional нужен параметр scope_region")
    if scope_role == "organization" and scope_inn is None:
        raise _fail(422, "bad_scope", "Для роли organization нужен параметр scope_inn")
    return CallerScope(role=scope_role, region_code=scope_region, inn=scope_inn)


CallerScopeDep = Annotated[CallerScope | None, Depends(caller_scope)]
RegionParam = Annotated[str | None, Query(pattern=_REGION, description="Код субъекта РФ (две цифры)")]
InnParam = Annotated[str | None, Query(pattern=_INN, description="ИНН организации")]
FromParam = Annotated[date | None, Query(alias="from", description="Дата услуги с (включительно)")]
ToParam = Annotated[date | None, Query(alias="to", description="Дата услуги по (включительно)")]
TypeParam = Annotated[str | None, Query(max_length=40, pattern=_TYPE_CODE, description="Тип организации")]
SurveyLevelQuery = Annotated[SurveyLevelParam | None, Query(description="Уровень опроса")]


def _period(date_from: date | None, date_to: date | None) -> Period:
    if date_from is not None and date_to is not None and date_from > date_to:
        raise _fail(422, "bad_period", "Начало периода позже его конца")
    return Period(from_=date_from, to=date_to)


def _figures_target(scope: CallerScope | None, level: Level, region_code: str | None, inn: str | None) -> Target:
    try:
        target = for_figures(scope, level, region_code, inn)
    except ScopeViolation as exc:
        raise _fail(403, "scope_violation", exc.message) from None
    if level == "country" and (target.region_code is not None or target.inn is not None):
        raise _fail(422, "bad_request", "Для уровня country параметры region_code и inn не указываются")
    if level == "region":
        if target.region_code is None:
            raise _fail(422, "region_code_required", "Для уровня region нужен параметр region_code")
        if target.inn is not None:
            raise _fail(422, "bad_request", "Для уровня region параметр inn не указывается")
    if level == "organization" and target.inn is None:
        raise _fail(422, "inn_required", "Для уровня organization нужен параметр inn")
    return target


OUTSIDE_REGION = "Региональному оператору доступны только организации своего региона"


async def _check_reach(session: AsyncSession, scope: CallerScope | None, target: Target) -> None:
    """A regional operator may ask for an organisation only if it has served in the operator's region:
    otherwise the answer (zeros, and the organisation's name) would tell about an organisation outside
    the scope. 403 ``scope_violation``, the same whether the ИНН is known elsewhere or nowhere."""
    if scope is None or scope.role != "regional" or target.inn is None:
        return
    if await scope_bounds(session, Filters(region_code=scope.region_code, inn=target.inn)) is None:
        raise _fail(403, "scope_violation", OUTSIDE_REGION)


async def _answer(
    request: Request, session: AsyncSession, key: Hashable, compute: Callable[[], Awaitable[BaseModel]]
) -> Response:
    """The answer to ``key``, serialised: from this process's cache when the rollups have not changed
    since it was computed (:mod:`posog.analytics.cache`), else ``compute()``. The route's
    ``response_model`` documents it; the JSON is pydantic's own (``by_alias``, as FastAPI would give it),
    kept as bytes — FastAPI would validate the whole answer again before serialising it."""

    async def serialised() -> bytes:
        return (await compute()).model_dump_json(by_alias=True).encode()

    answers = need(request, AnswerCache)
    if answers.enabled:
        body = await answers.get(key, await rollups_version(session), serialised)
    else:
        body = await serialised()
    return Response(body, media_type="application/json")


def create_app(db: Database, settings: Settings) -> FastAPI:
    """The analytics application over ``db``, accepting the service keys of ``settings``."""
    # No Swagger/ReDoc pages (FastAPI loads them from a CDN); /openapi.json stays.
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title="Модуль аналитики ПОС ОГ",
        version="1.0.0",
        description="Показатели качества услуг по стране, регионам и организациям (SPEC §8, v1).",
    )
    provide(app, db)
    provide(app, settings)
    provide(app, ServiceKeyring(settings.service_keys, SERVICE_OPERATIONS))
    provide(app, AnswerCache(settings.analytics_cache_entries))
    install_error_handlers(app, system="analytics", unexpected_message="Внутренняя ошибка модуля аналитики")
    app.include_router(
        operations_router(system="analytics", unavailable_message="База данных модуля аналитики недоступна")
    )
    app.include_router(_analytics_router(), prefix="/api/v1/analytics")
    return app


def _analytics_router() -> APIRouter:
    router = APIRouter(tags=["analytics"], responses=_ERRORS, dependencies=[Depends(require_service("analytics:read"))])

    @router.get("/summary", response_model=Summary)
    async def summary(
        request: Request,
        scope: CallerScopeDep,
        level: Annotated[Level, Query(description="country | region | organization")] = "country",
        region_code: RegionParam = None,
        inn: InnParam = None,
        date_from: FromParam = None,
        date_to: ToParam = None,
        type_code: TypeParam = None,
        survey_level: SurveyLevelQuery = None,
    ) -> Response:
        """The SPEC §8 figures of the country, a region or an organisation for a period of service dates."""
        period = _period(date_from, date_to)
        target = _figures_target(scope, level, region_code, inn)
        filters = Filters(target.region_code, target.inn, type_code, survey_level, date_from, date_to)
        answer_scope = Scope(
            level=level, region_code=target.region_code, inn=target.inn, type_code=type_code, survey_level=survey_level
        )
        db = need(request, Database)
        async with db.uow() as uow:
            await _check_reach(uow.session, scope, target)
            key = ("summary", answer_scope.model_dump_json(), filters, period.model_dump_json())
            return await _answer(
                request, uow.session, key, lambda: reports.summary(uow.session, answer_scope, filters, period)
            )

    @router.get("/ratings", response_model=Ratings)
    async def ratings(
        request: Request,
        scope: CallerScopeDep,
        level: Annotated[RatingLevel, Query(description="region | organization")] = "region",
        region_code: RegionParam = None,
        date_from: FromParam = None,
        date_to: ToParam = None,
        type_code: TypeParam = None,
        survey_level: SurveyLevelQuery = None,
    ) -> Response:
        """Regions, or organisations (of one region with ``region_code``), ranked by satisfaction index;
        groups under the configured minimum of responses are flagged ``small_sample`` and not ranked."""
        period = _period(date_from, date_to)
        try:
            region = for_ratings(scope, level, region_code)
        except ScopeViolation as exc:
            raise _fail(403, "scope_violation", exc.message) from None
        filters = Filters(region, None, type_code, survey_level, date_from, date_to)
        answer_scope = Scope(
            level="country" if region is None else "region",
            region_code=region,
            type_code=type_code,
            survey_level=survey_level,
        )
        settings = need(request, Settings)
        db = need(request, Database)
        minimum = settings.analytics_min_responses
        async with db.uow() as uow:
            key = ("ratings", level, answer_scope.model_dump_json(), filters, period.model_dump_json(), minimum)
            return await _answer(
                request,
                uow.session,
                key,
                lambda: reports.ratings(uow.session, level, answer_scope, filters, period, min_responses=minimum),
            )

    @router.get("/timeseries", response_model=Timeseries)
    async def timeseries(
        request: Request,
        scope: CallerScopeDep,
        level: Annotated[Level, Query(description="country | region | organization")] = "country",
        bucket: Annotated[Bucket, Query(description="day | week | month")] = "day",
        region_code: RegionParam = None,
        inn: InnParam = None,
        date_from: FromParam = None,
        date_to: ToParam = None,
        type_code: TypeParam = None,
        survey_level: SurveyLevelQuery = None,
    ) -> Response:
        """The figures per day, ISO week or month; every bucket of the period, empty ones included."""
        period = _period(date_from, date_to)
        target = _figures_target(scope, level, region_code, inn)
        filters = Filters(target.region_code, target.inn, type_code, survey_level, date_from, date_to)
        answer_scope = Scope(
            level=level, region_code=target.region_code, inn=target.inn, type_code=type_code, survey_level=survey_level
        )
        db = need(request, Database)
        async with db.uow() as uow:
            await _check_reach(uow.session, scope, target)
            key = ("timeseries", answer_scope.model_dump_json(), filters, period.model_dump_json(), bucket)
            try:
                return await _answer(
                    request,
                    uow.session,
                    key,
                    lambda: reports.timeseries(uow.session, answer_scope, filters, period, bucket),
                )
            except reports.PeriodTooLong:
                raise _fail(
                    422, "period_too_long", f"Слишком много интервалов (больше {reports.MAX_POINTS}): сузьте период"
                ) from None

    return router
