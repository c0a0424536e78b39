"""ЛКО ПОС ОГ application (SPEC §7): composes the feature routers. Every ``/api/v1`` route is
authenticated with a service bearer key (:mod:`posog.core.service_auth`, operations in ``auth.py``);
every error is ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from datetime import timedelta

import structlog
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from posog.core.appstate import provide
from posog.core.clientaddr import TrustedProxies
from posog.core.clock import Clock, utcnow
from posog.core.db import Database
from posog.core.http import error_response, error_responses, install_error_handlers
from posog.core.service_auth import ServiceKeyring
from posog.lko.accounts.handlers import SessionPolicy
from posog.lko.auth import SERVICE_OPERATIONS
from posog.lko.deps import DatabaseDep
from posog.lko.org_types.api import router as org_types_router
from posog.lko.pages.setup import install_pages
from posog.lko.questionnaires.announcements import AnnouncementRelay
from posog.lko.questionnaires.api import router as questionnaires_router
from posog.lko.responses.api import router as responses_router
from posog.lko.responses.handlers import CompletionRecovery
from posog.lko.state import LkoState
from posog.module.client import ModuleClient
from posog.settings import Settings

log = structlog.get_logger(__name__)


def create_app(
    db: Database, settings: Settings, *, module: ModuleClient | None = None, clock: Clock = utcnow
) -> FastAPI:
    """The ЛКО application over ``db``, accepting the service keys of ``settings``; ``module`` is how
    ЛКО calls the module (announcing publications, completing links). It serves the REST API under
    ``/api/v1`` and the cabinet's pages at ``/``."""
    app = FastAPI(
        title="ЛКО ПОС ОГ",
        version="1.0.0",
        description="Личный кабинет организации: типы организаций, анкеты, ответы граждан (SPEC §7, v1).",
        docs_url=None,  # no Swagger UI: FastAPI loads it from a CDN; /openapi.json stays
        redoc_url=None,
    )
    state = LkoState(
        db=db,
        settings=settings,
        clock=clock,
        session_policy=SessionPolicy.from_settings(settings),
        trusted_proxies=TrustedProxies(settings.trusted_proxies),
        # Publications are announced to the module through state.module, whatever it is at the time.
        announcements=AnnouncementRelay(
            db, lambda: state.module, clock=clock, lease=timedelta(seconds=settings.announcement_lease_s)
        ),
        module=module,
        # Made with the app, not at its first request: the submissions nudge it, a worker runs it.
        recovery=CompletionRecovery.from_settings(db, module, settings) if module is not None else None,
    )
    provide(app, state)
    provide(app, db)
    provide(app, ServiceKeyring(settings.service_keys, SERVICE_OPERATIONS))
    install_error_handlers(app, system="lko", unexpected_message="Внутренняя ошибка ЛКО, повторите запрос позже")
    app.include_router(_health_router())
    # API routers of the features — register new ones here.
    app.include_router(org_types_router, prefix="/api/v1")
    app.include_router(questionnaires_router, prefix="/api/v1")
    app.include_router(responses_router, prefix="/api/v1")
    # The cabinet's pages (after the API's error handlers, which it extends with HTML pages).
    install_pages(app)
    return app


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", responses=error_responses(503, described={503: "База данных ЛКО недоступна"}))
    async def readyz(db: DatabaseDep) -> Response:
        """Readiness: the database answers."""
        try:
            async with db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("lko.readyz.database_unavailable", error=exc.__class__.__name__)
            return error_response(503, "not_ready", "База данных ЛКО недоступна")
        return JSONResponse({"status": "ok"})

    return router
