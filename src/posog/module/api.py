"""The module's HTTP API: operations endpoints (health, readiness, metrics) and the service calls
other systems make — ЛКО announces a published questionnaire so waiting cards get their links."""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from posog.core.appstate import provide
from posog.core.clientaddr import TrustedProxies
from posog.core.clock import Clock, utcnow
from posog.core.db import Database
from posog.core.http import SERVICE_ERRORS, error_response, error_responses, install_error_handlers, operations_router
from posog.core.ratelimit import InMemoryRateLimiter, RateLimiter, RedisRateLimiter, make_rate_limiter
from posog.core.service_auth import ServiceKeyFirstRoute, ServiceKeyring, require_service
from posog.lko.client import LkoError
from posog.module.contracts import ReleaseResult, SurveyLevel
from posog.module.intake.feed import router as cards_feed_router
from posog.module.links.api import router as links_router
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.fastpath import LinkFastPath, link_token
from posog.module.links.release import WaitingCardsReleaser
from posog.module.state import ModuleState, module_state
from posog.settings import Settings

log = structlog.get_logger(__name__)

# Which operations each calling system may perform on the module.
SERVICE_OPERATIONS: dict[str, frozenset[str]] = {
    "lko": frozenset({"cards:release", "links:read", "links:complete"}),
    "lkp": frozenset({"links:read"}),
    "analytics": frozenset({"cards:read"}),
}


class ModuleApp(FastAPI):
    """The module's FastAPI app, with a lean path for its hottest request: ``GET
    /api/v1/survey-links/{token}`` is answered by :class:`~posog.module.links.fastpath.LinkFastPath`
    before the middleware stack and routing, with the route's own answers (see there for what it
    hands back to the full app). ``link_fast_path = False`` sends every request through FastAPI."""

    link_fast_path: bool = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._links = LinkFastPath(self)
        self._telemetry_off = False
        self._telemetry_checked_until = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = link_token(scope) if self.link_fast_path else None
        if token is not None and self._stack_is_plain(scope) and await self._links(scope, receive, send, token):
            return
        await super().__call__(scope, receive, send)

    def _stack_is_plain(self, scope: Scope) -> bool:
        """Nothing in the app's stack that the fast path would skip is in use: no middleware added,
        no debug pages, no ``root_path``, and FastAPI's native telemetry off (its providers are asked
        at most once a second: that check alone costs ≈3 µs, a few per cent of the request)."""
        if self.user_middleware or self.debug or self.root_path or "fastapi.telemetry" in scope:
            return False
        now = time.monotonic()
        if now >= self._telemetry_checked_until:
            self._telemetry_off = not self._native_telemetry.enabled()
            self._telemetry_checked_until = now + 1.0
        return self._telemetry_off


LKO_UNAVAILABLE = "ЛКО сейчас недоступен: ссылки для ожидающих карточек будут выданы при повторном запросе"


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # As ЛКО constrains an organisation type's code: a code it could never have is refused here (422),
    # not passed on for ЛКО to refuse.
    type_code: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_\-]+$")]
    level: SurveyLevel


def make_link_attempts(settings: Settings) -> InMemoryRateLimiter | RedisRateLimiter:
    """The limiter of failed link look-ups (``POSOG_LINK_ATTEMPTS_PER_MINUTE`` per client)."""
    return make_rate_limiter(settings, name="link-attempts", limit=settings.link_attempts_per_minute, window_s=60)


def create_app(
    db: Database,
    releaser: WaitingCardsReleaser,
    settings: Settings,
    *,
    catalog: QuestionnaireCatalog | None = None,
    clock: Clock = utcnow,
    link_attempts: RateLimiter | None = None,
) -> FastAPI:
    # No Swagger/ReDoc pages: FastAPI loads them from a CDN, and nothing may load from outside at run
    # time. The OpenAPI document itself is served at /openapi.json.
    app = ModuleApp(title="Модуль оценки качества ПОС ОГ", version="1.0.0", docs_url=None, redoc_url=None)
    provide(app, db)
    provide(app, ServiceKeyring(settings.service_keys, SERVICE_OPERATIONS))
    provide(
        app,
        ModuleState(
            db=db,
            releaser=releaser,
            catalog=catalog,
            clock=clock,
            # bootstrap passes the limiter it closes
            link_attempts=link_attempts or make_link_attempts(settings),
            trusted_proxies=TrustedProxies(settings.trusted_proxies),
        ),
    )
    install_error_handlers(app, system="module", unexpected_message="Внутренняя ошибка модуля, повторите позже")
    app.include_router(operations_router(system="module", unavailable_message="База данных модуля недоступна"))
    app.include_router(_cards_router(), prefix="/api/v1")
    app.include_router(cards_feed_router, prefix="/api/v1")
    app.include_router(links_router, prefix="/api/v1")
    return app


def _cards_router() -> APIRouter:
    router = APIRouter(tags=["cards"], route_class=ServiceKeyFirstRoute)

    @router.post(
        "/cards/release",
        response_model=ReleaseResult,
        responses=error_responses(*SERVICE_ERRORS, 400, 503, described={503: "ЛКО недоступен, повторите позже"}),
        dependencies=[Depends(require_service("cards:release"))],
    )
    async def release(body: ReleaseRequest, request: Request) -> Response | ReleaseResult:
        """ЛКО published a questionnaire for (type, level): issue links for the cards waiting for it."""
        releaser = module_state(request).releaser
        try:
            counts = await releaser.release(body.type_code, body.level)
        except LkoError as exc:
            # ЛКО could not be asked for the active questionnaire (unreachable, or refused the call):
            # nothing was released; ЛКО's announcement relay asks again.
            log.warning("cards.release.lko_unavailable", error=str(exc))
            return error_response(503, "lko_unavailable", LKO_UNAVAILABLE, headers={"Retry-After": "30"})
        return ReleaseResult(type_code=body.type_code, level=body.level, issued=counts.issued, late=counts.late)

    return router
