"""The HTTP error envelope shared by every system's API: ``{"error": {"code", "message"}}`` for
every failure, FastAPI's own shapes never leak, and nothing unexpected answers with a stack trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)

_STATUS_CODES = {
    400: ("bad_request", "Некорректный запрос"),
    401: ("unauthorized", "Требуется аутентификация"),
    403: ("forbidden", "Доступ запрещён"),
    404: ("not_found", "Ресурс не найден"),
    405: ("method_not_allowed", "Метод не поддерживается для этого адреса"),
    406: ("not_acceptable", "Запрошенный формат ответа не поддерживается"),
    413: ("payload_too_large", "Слишком большой запрос"),
    415: ("unsupported_media_type", "Неподдерживаемый тип содержимого"),
    429: ("too_many_requests", "Слишком много запросов, повторите позже"),
}


def install_error_handlers(app: FastAPI, *, system: str, unexpected_message: str) -> None:
    """Answer every error of ``app`` in the envelope; ``system`` names the app in logs."""

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("api.unexpected_error", system=system, path=request.url.path)
        return error_response(500, "internal_error", unexpected_message)

    # Starlette's class also covers its own 404/405 for unknown routes and methods.
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, unexpected)


def error_response(status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error in the v1 envelope ``{"error": {"code", "message"}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, Mapping) and {"code", "message"} <= detail.keys():
        code, message = str(detail["code"]), str(detail["message"])
    else:
        code, message = _STATUS_CODES.get(exc.status_code, ("http_error", "Ошибка запроса"))
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(_describe(error) for error in exc.errors())
    return error_response(422, "validation_error", f"Некорректный запрос: {problems}")


_LOCATIONS = {"query": "параметр", "path": "часть адреса", "header": "заголовок", "body": "поле"}


def _describe(error: Mapping[str, Any]) -> str:
    """One validation problem in Russian, e.g. «параметр «level»: допустимые значения — …»."""
    location: Sequence[Any] = error.get("loc", ())
    where = _LOCATIONS.get(str(location[0]), "значение") if location else "значение"
    field = ".".join(str(part) for part in location[1:]) or "?"
    kind = error.get("type", "")
    context: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "missing":
        problem = "обязателен, но не указан"
    elif kind == "literal_error":
        expected = str(context.get("expected", "")).replace(" or ", ", ")
        problem = f"допустимые значения — {expected}"
    elif kind in {"int_parsing", "int_type", "int_from_float"}:
        problem = "должен быть целым числом"
    elif kind == "string_too_long":
        problem = f"не длиннее {context.get('max_length')} символов"
    elif kind == "string_too_short":
        problem = f"не короче {context.get('min_length')} символов"
    elif kind == "string_pattern_mismatch":
        problem = f"недопустимый формат (ожидается {context.get('pattern')})"
    else:
        problem = str(error.get("msg", "недопустимое значение"))
    received = error.get("input")
    if kind != "missing" and isinstance(received, str | int):
        shown = "".join(ch if ch.isprintable() else "�" for ch in str(received)[:50])
        problem += f" (получено «{shown}»)"
    return f"{where} «{field}»: {problem}"


def operations_router(*, system: str, unavailable_message: str) -> APIRouter:
    """Liveness (``/healthz``), readiness (``/readyz``: the app's ``state.db`` answers) and Prometheus
    ``/metrics`` — the same for every system's app."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from sqlalchemy import text

    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> Response:
        """Readiness: the database answers."""
        try:
            async with request.app.state.db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("api.readyz.database_unavailable", system=system, error=exc.__class__.__name__)
            return error_response(503, "not_ready", unavailable_message)
        return JSONResponse({"status": "ok"})

    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus exposition of this process's metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
