"""ЛКО REST API v1 (SPEC §7), read side: organisation types and questionnaires for the module, ЛКП and
analytics. Every ``/api/v1`` route is authenticated with a service bearer key (``auth.py``); every
error is ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from posog.core.db import Database, UnitOfWork
from posog.core.http import error_response, install_error_handlers
from posog.core.service_auth import ServiceKeyring, require_service
from posog.lko.auth import SERVICE_OPERATIONS
from posog.lko.contracts import ErrorEnvelope, OrgTypeList, QuestionnaireDocument, SurveyLevel
from posog.lko.org_types.queries import list_org_types
from posog.lko.questionnaires.queries import active_document, version_document
from posog.settings import Settings

log = structlog.get_logger(__name__)

IMMUTABLE_CACHE = "public, max-age=86400, immutable"
_MAX_VERSION = 2**31 - 1  # the INTEGER column's range; beyond it nothing can exist
_TYPE_CODE_PATTERN = r"^[a-z0-9_\-]+$"

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "Нет действительного сервисного ключа"},
    403: {"model": ErrorEnvelope, "description": "Вызывающей системе операция не разрешена"},
    422: {"model": ErrorEnvelope, "description": "Некорректные параметры запроса"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorEnvelope, "description": "Анкета не найдена"}}


def create_app(db: Database, settings: Settings) -> FastAPI:
    """The ЛКО application over ``db``, accepting the service keys of ``settings``."""
    app = FastAPI(
        title="ЛКО ПОС ОГ",
        version="1.0.0",
        description="Личный кабинет организации: справочник типов организаций и анкеты (SPEC §7, v1).",
    )
    app.state.db = db
    app.state.service_keyring = ServiceKeyring(settings.service_keys, SERVICE_OPERATIONS)
    install_error_handlers(app, system="lko", unexpected_message="Внутренняя ошибка ЛКО, повторите запрос позже")
    app.include_router(_health_router())
    app.include_router(_api_router(), prefix="/api/v1")
    return app


# --- dependencies -----------------------------------------------------------------------------------


def _database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _unit_of_work(db: Annotated[Database, Depends(_database)]) -> AsyncIterator[UnitOfWork]:
    # Read-only routes never commit; the unit of work rolls back on exit.
    async with db.uow() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(_unit_of_work)]


# --- routes -----------------------------------------------------------------------------------------


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"model": ErrorEnvelope}})
    async def readyz(db: Annotated[Database, Depends(_database)]) -> Response:
        """Readiness: the database answers."""
        try:
            async with db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("lko.readyz.database_unavailable", error=exc.__class__.__name__)
            return error_response(503, "not_ready", "База данных ЛКО недоступна")
        return JSONResponse({"status": "ok"})

    return router


def _api_router() -> APIRouter:
    router = APIRouter(responses=_ERRORS)

    @router.get(
        "/org-types",
        response_model=OrgTypeList,
        tags=["org-types"],
        dependencies=[Depends(require_service("org-types:read"))],
    )
    async def get_org_types(uow: UowDep) -> OrgTypeList:
        """The organisation-type directory, inactive types included (see ``active``)."""
        return OrgTypeList(items=await list_org_types(uow.session))

    @router.get(
        "/questionnaires/active",
        response_model=QuestionnaireDocument,
        responses=_NOT_FOUND,
        tags=["questionnaires"],
        dependencies=[Depends(require_service("questionnaires:read"))],
    )
    async def get_active_questionnaire(
        request: Request,
        uow: UowDep,
        type_code: Annotated[
            str,
            Query(min_length=1, max_length=40, pattern=_TYPE_CODE_PATTERN, description="Код типа организации"),
        ],
        level: Annotated[SurveyLevel, Query(description="Уровень опроса")],
    ) -> Response:
        """The active version of the questionnaire for (organisation type, level), or 404
        ``questionnaire_not_found``. It changes when a new version is published, so it may be cached
        only with revalidation."""
        document = await active_document(uow.session, type_code, level)
        if document is None:
            raise _questionnaire_not_found(
                f"Нет действующей анкеты для типа организации «{type_code}» и уровня «{level}»"
            )
        return _document_response(request, document, cache_control="no-cache")

    @router.get(
        "/questionnaires/{questionnaire_id}/versions/{version}",
        response_model=QuestionnaireDocument,
        responses=_NOT_FOUND,
        tags=["questionnaires"],
        dependencies=[Depends(require_service("questionnaires:read"))],
    )
    async def get_questionnaire_version(request: Request, uow: UowDep, questionnaire_id: str, version: int) -> Response:
        """One published version. Versions never change, so it may be cached for a day."""
        canonical_id = _canonical_uuid(questionnaire_id)
        document = None
        if canonical_id is not None and 1 <= version <= _MAX_VERSION:
            document = await version_document(uow.session, canonical_id, version)
        if document is None:
            raise _questionnaire_not_found(f"Версия {version} анкеты {questionnaire_id[:64]} не найдена")
        return _document_response(request, document, cache_control=IMMUTABLE_CACHE)

    return router


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _questionnaire_not_found(message: str) -> HTTPException:
    return HTTPException(404, detail={"code": "questionnaire_not_found", "message": message})


def _document_response(request: Request, document: QuestionnaireDocument, *, cache_control: str) -> Response:
    body = document.model_dump_json(exclude_none=True).encode("utf-8")
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
