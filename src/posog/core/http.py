"""The HTTP error envelope shared by every system's API: ``{"error": {"code", "message"}}`` for
every failure, FastAPI's own shapes never leak, and nothing unexpected answers with a stack trace.

Every status an operation can answer is declared in its OpenAPI ``responses`` with the envelope
(:func:`error_responses`). An unexpected exception — in an endpoint, a dependency or a middleware —
is answered 500 in the envelope and logged by :func:`log_unexpected`: its class, the route and where
it was raised, never its message, which may hold request data; :class:`ServerErrorBoundary` keeps the
server from logging it a second time with the message."""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from posog.core.appstate import need
from posog.core.db import Database
from posog.core.envelope import ApiError as ApiError
from posog.core.envelope import ErrorEnvelope as ErrorEnvelope

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

# What each status means in the OpenAPI documents, unless the route says more.
_DESCRIPTIONS: dict[int, str] = {
    400: "Некорректный запрос",
    401: "Нет действительного сервисного ключа",
    403: "Вызывающей системе операция не разрешена",
    404: "Не найдено",
    409: "Операция невозможна в текущем состоянии",
    410: "Больше не действует",
    422: "Некорректные параметры или тело запроса: названо каждое ошибочное поле",
    429: "Слишком много запросов, см. Retry-After",
    503: "Сервис или вызываемая им система временно недоступны, см. Retry-After",
}

# The statuses every service-authenticated operation can answer: no or an unknown key, an operation
# not granted, and a malformed request.
SERVICE_ERRORS = (401, 403, 422)


def error_responses(
    *statuses: int,
    described: Mapping[int, str] | None = None,
    models: Mapping[int, type[BaseModel]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering ``statuses`` in the envelope (or in ``models[status]``,
    an envelope with more fields), each with its description (``described`` overrides the default)::

        @router.get("/x", responses=error_responses(*SERVICE_ERRORS, 404, described={404: "Анкета не найдена"}))
    """
    described = described or {}
    models = models or {}
    return {
        status: {
            "model": models.get(status, ErrorEnvelope),
            "description": described.get(status) or _DESCRIPTIONS.get(status, "Ошибка"),
        }
        for status in sorted(set(statuses) | set(described) | set(models))
    }


def printable(value: str, limit: int = 64) -> str:
    """``value`` cut to ``limit`` characters with control characters shown as «�»: for echoing what a
    client sent in a message."""
    return "".join(ch if ch.isprintable() else "�" for ch in value[:limit])


class _AnyPath(Convertor[str]):
    """Any remainder of a path, line breaks included (Starlette's ``path`` stops at a ``\\n``)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# ``{name:posog_any_path}`` in a route or mount path.
register_url_convertor("posog_any_path", _AnyPath())

# Set in the request's scope once an unexpected exception was answered and logged.
_LOGGED = "posog.unexpected_error_logged"


def route_template(scope: Scope) -> str:
    """The route a request matched, as its name and template below its router (``get_survey_link
    /survey-links/{token}``): a path may hold a token or other request data. Before routing (an error
    in a middleware): the path, cut short."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return f"{getattr(route, 'name', '?')} {template}"
    return printable(str(scope.get("path", "?")), 200)


def _origin(exc: BaseException) -> list[str]:
    """Where ``exc`` was raised: the last frames as ``file:line function`` — no values, no message."""
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    shown = []
    for frame in frames:
        filename = frame.filename
        for marker in ("/site-packages/", "/src/"):
            if marker in filename:
                filename = filename.rsplit(marker, 1)[1]
                break
        shown.append(f"{filename}:{frame.lineno} {frame.name}")
    return shown


def log_unexpected(
    exc: BaseException, scope: Scope, *, system: str, route: str | None = None, event: str = "api.unexpected_error"
) -> None:
    """Log an unexpected exception without anything a request could have put in it: its class (and
    the classes of its causes), the method and route template, and the frames it was raised from."""
    causes: list[str] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        causes.append(cause.__class__.__name__)
        cause = cause.__cause__ or cause.__context__
    log.error(
        event,
        system=system,
        method=scope.get("method"),
        route=route if route is not None else route_template(scope),
        error=exc.__class__.__name__,
        causes=causes,
        origin=_origin(exc),
    )
    scope[_LOGGED] = True


class ServerErrorBoundary:
    """The outermost layer of a served app. Starlette re-raises an exception after the app's 500
    handler answered it, for the server to log — and uvicorn logs it with its message and traceback,
    which may hold request data. An exception already answered and logged (:func:`log_unexpected`)
    stops here; any other is logged the same way (the server then answers 500 if nothing was sent)."""

    def __init__(self, app: ASGIApp, *, system: str = "web") -> None:
        self.app = app
        self.system = system

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            if not scope.get(_LOGGED):
                log_unexpected(exc, scope, system=self.system)


def install_error_handlers(app: FastAPI, *, system: str, unexpected_message: str) -> None:
    """Answer every error of ``app`` in the envelope; ``system`` names the app in logs."""

    async def unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected(exc, request.scope, system=system)
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
    elif exc.status_code == 400:
        # FastAPI's only 400 of its own: a body it could not even decode (e.g. not UTF-8).
        code, message = "bad_request", "Некорректный запрос: тело запроса не удалось прочитать как JSON в UTF-8"
    else:
        code, message = _STATUS_CODES.get(exc.status_code, ("http_error", "Ошибка запроса"))
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = list(dict.fromkeys((_path(error), _describe(error)) for error in exc.errors()))
    error = ApiError(code="validation_error", message=f"Некорректный запрос: {'; '.join(text for _, text in problems)}")
    # A route whose 422 lists its problems (ЛКО's drafts, imports) lists these the same way.
    documented = getattr(request.scope.get("route"), "responses", {}).get(422, {}).get("model")
    for_request = getattr(documented, "for_request_problems", None)
    if for_request is not None:
        body: BaseModel = for_request(error, problems)
        return JSONResponse(body.model_dump(mode="json"), status_code=422)
    return JSONResponse(ErrorEnvelope(error=error).model_dump(), status_code=422)


def _path(error: Mapping[str, Any]) -> str:
    """Where a validation problem is, e.g. ``type_code`` in the body; the body as a whole: ``""``."""
    location: Sequence[Any] = error.get("loc", ())
    if not location or (location[0] == "body" and error.get("type") == "json_invalid"):
        return ""
    return ".".join(str(part) for part in location[1:])


_LOCATIONS = {"query": "параметр", "path": "часть адреса", "header": "заголовок", "body": "поле"}


def _describe(error: Mapping[str, Any]) -> str:
    """One validation problem in Russian, e.g. «параметр «level»: допустимые значения — …»."""
    location: Sequence[Any] = error.get("loc", ())
    kind = error.get("type", "")
    if location and location[0] == "body" and (len(location) == 1 or kind == "json_invalid"):
        return _describe_body(kind)
    where = _LOCATIONS.get(str(location[0]), "значение") if location else "значение"
    field = ".".join(str(part) for part in location[1:]) or "?"
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
    elif kind == "greater_than_equal":
        problem = f"не меньше {context.get('ge')}"
    elif kind == "less_than_equal":
        problem = f"не больше {context.get('le')}"
    elif kind == "string_too_short" and context.get("min_length") == 1:
        problem = "не может быть пустым"
    elif kind == "string_too_short":
        problem = f"не короче {context.get('min_length')} символов"
    elif kind == "string_pattern_mismatch":
        problem = f"недопустимый формат (ожидается {context.get('pattern')})"
    else:
        problem = _PROBLEMS.get(kind, "недопустимое значение")
    received = error.get("input")
    if kind != "missing" and isinstance(received, str | int):
        shown = "".join(ch if ch.isprintable() else "�" for ch in str(received)[:50])
        problem += f" (получено «{shown}»)"
    return f"{where} «{field}»: {problem}"


# Pydantic's other error kinds a request can meet, in Russian (its own messages are English).
_PROBLEMS = {
    "string_type": "должен быть строкой",
    "string_unicode": "должен быть строкой в UTF-8",
    "string_sub_type": "должен быть строкой",
    "bool_type": "должен быть true или false",
    "bool_parsing": "должен быть true или false",
    "float_type": "должен быть числом",
    "float_parsing": "должен быть числом",
    "dict_type": "должен быть JSON-объектом",
    "model_type": "должен быть JSON-объектом",
    "model_attributes_type": "должен быть JSON-объектом",
    "list_type": "должен быть списком",
    "extra_forbidden": "неизвестное поле",
    "date_type": "должен быть датой ГГГГ-ММ-ДД",
    "date_parsing": "должен быть датой ГГГГ-ММ-ДД",
    "date_from_datetime_parsing": "должен быть датой ГГГГ-ММ-ДД",
    "date_from_datetime_inexact": "должен быть датой ГГГГ-ММ-ДД",
    "greater_than": "слишком мал",
    "less_than": "слишком велик",
    "enum": "недопустимое значение",
}


def _describe_body(kind: str) -> str:
    """A problem of the request body as a whole: missing, not JSON, or JSON of the wrong shape."""
    if kind == "missing":
        return "тело запроса обязательно, но не передано (ожидается JSON, Content-Type: application/json)"
    if kind == "json_invalid":
        return "тело запроса не является корректным JSON"
    return "тело запроса должно быть JSON-объектом (Content-Type: application/json)"


def operations_router(*, system: str, unavailable_message: str) -> APIRouter:
    """Liveness (``/healthz``), readiness (``/readyz``: the app's :class:`Database` answers) and Prometheus
    ``/metrics`` — the same for every system's app."""
    from prometheus_client import generate_latest
    from sqlalchemy import text

    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", responses=error_responses(503, described={503: "База данных недоступна"}))
    async def readyz(request: Request) -> Response:
        """Readiness: the database answers."""
        try:
            async with need(request, Database).engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("api.readyz.database_unavailable", system=system, error=exc.__class__.__name__)
            return error_response(503, "not_ready", unavailable_message)
        return JSONResponse({"status": "ok"})

    @router.get(
        "/metrics",
        response_class=PrometheusText,
        responses={200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        """Prometheus exposition of this process's metrics (text format 0.0.4)."""
        return PrometheusText(generate_latest())

    return router


PROMETHEUS_TEXT = "text/plain; version=0.0.4"


class PrometheusText(Response):
    """The Prometheus text exposition format, version 0.0.4 (what ``generate_latest`` writes)."""

    media_type = PROMETHEUS_TEXT
