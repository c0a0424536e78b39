"""ЛКП ПОС ОГ application: the citizen's survey pages. ЛКП keeps nothing durable — link data comes from
the module (SPEC §6), answers go to ЛКО (SPEC §7); both through their HTTP clients."""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posog.core.appstate import provide
from posog.core.clientaddr import TrustedProxies
from posog.core.http import log_unexpected
from posog.lko.client import LkoClient
from posog.lkp.pages import LkpServices, render_problem, router
from posog.module.client import ModuleClient
from posog.settings import Settings
from posog.web.security import SecurityHeadersMiddleware, hsts_max_age
from posog.web.templating import make_templates, static_files

log = structlog.get_logger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def create_app(module: ModuleClient, lko: LkoClient, settings: Settings) -> FastAPI:
    """The ЛКП app: ``/s/{token}`` (the survey; POST submits it), ``/s/{token}/done``, ``/static``."""
    app = FastAPI(title="ЛКП ПОС ОГ", docs_url=None, redoc_url=None, openapi_url=None)
    provide(
        app,
        LkpServices(
            module=module,
            lko=lko,
            templates=make_templates(TEMPLATES_DIR),
            trusted_proxies=TrustedProxies(settings.trusted_proxies),
        ),
    )
    app.mount("/static", static_files(), name="static")
    app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _http_error_page)
    # Added last = outermost: every response, the error pages included, carries the headers.
    app.add_middleware(_ErrorPageMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hsts_max_age_s=hsts_max_age(settings))
    return app


async def _http_error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = "method_not_allowed" if exc.status_code == 405 else "page_not_found"
    return render_problem(request, code, status=exc.status_code if exc.status_code in (404, 405) else 404)


def _route_of(scope: Scope) -> str:
    """The route template of a request (``/s/{token}``), so a log line never holds a token."""
    router_ = scope.get("router")
    for route in getattr(router_, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "?"))
    return "?"


class _ErrorPageMiddleware:
    """Anything unexpected answers with the «что-то пошло не так» page (500) instead of a stack trace,
    and is logged with the route template, not the path (which holds the token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_unexpected(exc, scope, system="lkp", route=_route_of(scope), event="lkp.unexpected_error")
            if started:
                raise
            response = render_problem(Request(scope), "internal_error")
            await response(scope, receive, send)
