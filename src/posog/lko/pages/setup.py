"""Installing the cabinet's pages on the ЛКО app: static files, security headers, page errors in HTML
(the API keeps its JSON envelope) and the pages' routers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from posog.core.http import log_unexpected
from posog.lko.pages import auth, home, org_types, questionnaires, responses
from posog.lko.pages.web import (
    FormRefused,
    LoginRequired,
    PageNotFound,
    build_templates,
    href,
    is_api_request,
    optional_principal,
    render,
)
from posog.lko.reports import pages as reports
from posog.lko.state import lko_state
from posog.web.security import SecurityHeadersMiddleware, hsts_max_age
from posog.web.templating import static_files

log = structlog.get_logger(__name__)

_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    404: ("Страница не найдена", "Такой страницы нет или она вам недоступна."),
    405: ("Действие недоступно", "Эта страница не принимает такой запрос."),
    413: ("Слишком большой запрос", "Загрузите файл поменьше."),
}


def install_pages(app: FastAPI) -> None:
    """Add the cabinet to ``app`` (call after the API's error handlers are installed)."""
    state = lko_state(app)
    state.templates = build_templates()
    app.add_middleware(
        SecurityHeadersMiddleware,
        cacheable_prefixes=("/static/", "/api/", "/assets/"),
        hsts_max_age_s=hsts_max_age(state.settings),
    )
    app.mount("/static", static_files(), name="static")
    _install_error_pages(app)
    for module in (auth, home, org_types, questionnaires, responses, reports):
        app.include_router(module.router)


def error_page(request: Request, status_code: int, title: str, message: str, principal: Any = None) -> HTMLResponse:
    return render(
        request,
        "lko/error.html",
        {"title": title, "message": message, "status_code": status_code},
        principal=principal,
        status_code=status_code,
    )


def _install_error_pages(app: FastAPI) -> None:
    api_http_error = app.exception_handlers[StarletteHTTPException]
    api_unexpected = app.exception_handlers[Exception]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if is_api_request(request):
            return await _call(api_http_error, request, exc)
        title, message = _HTTP_ERRORS.get(exc.status_code, ("Ошибка запроса", "Запрос не может быть выполнен."))
        return error_page(request, exc.status_code, title, message, await _principal_or_none(request))

    async def not_found(request: Request, exc: Exception) -> Response:
        title, message = _HTTP_ERRORS[404]
        return error_page(request, 404, title, message, await _principal_or_none(request))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FormRefused)
        log.warning("lko.pages.form_refused", path=request.url.path, reason=exc.message)
        return error_page(
            request,
            403,
            "Запрос отклонён",
            f"{exc.message} Обновите страницу и повторите действие.",
            await _principal_or_none(request),
        )

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        query = {"next": exc.next_path, "msg": "session_expired" if exc.expired else None}
        return RedirectResponse(href(request, "login", query), status_code=303)

    async def unexpected(request: Request, exc: Exception) -> Response:
        if is_api_request(request):
            return await _call(api_unexpected, request, exc)
        log_unexpected(exc, request.scope, system="lko", event="lko.pages.unexpected_error")
        return error_page(request, 500, "Внутренняя ошибка", "Что-то пошло не так. Повторите позже.")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(PageNotFound, not_found)
    app.add_exception_handler(FormRefused, refused)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Exception, unexpected)


async def _call(handler: Callable[[Request, Exception], Any], request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    response: Response = await result if inspect.isawaitable(result) else result
    return response


async def _principal_or_none(request: Request) -> Any:
    try:
        return await optional_principal(request)
    except Exception:  # an error page must render even when the database is down
        return None
