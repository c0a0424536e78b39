"""Signing in and out. A wrong login and a wrong password get the same message. Repeated failures
from one client make its next attempts wait (429 with ``Retry-After``, the wait in seconds on the
page); only very many failures of a login from every client lock it (see
:func:`posog.lko.accounts.handlers.sign_in`). The login form is protected by a double-submit token
(there is no session yet); every other form by the session's synchronizer token."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from posog.core.clientaddr import TrustedProxies
from posog.core.russian import moscow_time
from posog.lko.accounts.handlers import SignedIn, sign_in, sign_out
from posog.lko.pages.web import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormRefused,
    check_same_origin,
    checked_form,
    database,
    href,
    now,
    optional_principal,
    read_form,
    render,
    root_path,
    safe_next,
    text_field,
)
from posog.lko.state import lko_state
from posog.lko.uow import LkoUnitOfWork

router = APIRouter(include_in_schema=False)

INVALID_CREDENTIALS = "Неверный логин или пароль."


def _client(request: Request) -> str:
    """The address sign-in failures are counted under: the peer, or what a trusted proxy vouches for."""
    proxies: TrustedProxies | None = lko_state(request).trusted_proxies
    if proxies is None:
        return request.client.host if request.client else "unknown"
    return proxies.client_of(request.scope)


def _cookie_path(request: Request) -> str:
    return root_path(request) or "/"


def _secure(request: Request) -> bool:
    settings = lko_state(request).settings
    return settings.cabinet_cookies_secure


def _login_page(
    request: Request,
    token: str,
    *,
    error: str | None = None,
    login: str = "",
    next_path: str | None = None,
    retry_after_s: int | None = None,
) -> HTMLResponse:
    response = render(
        request,
        "lko/login.html",
        {"login_token": token, "error": error, "login": login, "next": next_path or ""},
        status_code=429 if retry_after_s is not None else 200,
    )
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path=_cookie_path(request),
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/login", name="login")
async def login_form(request: Request) -> Response:
    """The login page (the signed-in go to their start page)."""
    if await optional_principal(request) is not None:
        return RedirectResponse(href(request, "dashboard"), status_code=303)
    token = request.cookies.get(LOGIN_COOKIE) or ""
    if not (20 <= len(token) <= 64):
        token = secrets.token_urlsafe(32)
    return _login_page(request, token, next_path=safe_next(request, request.query_params.get("next")))


@router.post("/login", name="login_submit")
async def login_submit(request: Request) -> Response:
    """Check the credentials; on success open a session (a fresh id: no fixation) and go on."""
    check_same_origin(request)
    form = await read_form(request)
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    form_token = text_field(form, CSRF_FIELD, limit=100)
    if not cookie_token or not hmac.compare_digest(cookie_token.encode(), form_token.encode()):
        raise FormRefused(
            "Форма входа устарела или отправлена с другого сайта. Откройте страницу входа заново "
            "(в браузере должны быть разрешены cookie)."
        )
    login = text_field(form, "login", limit=200)
    password = text_field(form, "password", limit=1000)
    next_path = safe_next(request, text_field(form, "next", limit=2000))
    policy = lko_state(request).session_policy
    client = _client(request)
    async with LkoUnitOfWork(database(request)) as uow:
        outcome = await sign_in(uow, login, password, client=client, now=now(request), policy=policy)
    if not isinstance(outcome, SignedIn):
        error, retry_after = INVALID_CREDENTIALS, None
        if outcome.reason == "throttled":
            error, retry_after = (
                f"Слишком много попыток входа, повторите через {outcome.retry_after_s} с.",
                outcome.retry_after_s,
            )
        elif outcome.reason == "locked":
            until = moscow_time(outcome.locked_until) if outcome.locked_until else ""
            error = (
                "Вход под этим логином заблокирован после множества неудачных попыток. "
                f"Обратитесь к администратору кабинета или повторите после {until} (МСК)."
            )
            retry_after = outcome.retry_after_s
        return _login_page(
            request,
            secrets.token_urlsafe(32),
            error=error,
            login=login[:100],
            next_path=next_path,
            retry_after_s=retry_after,
        )
    response = RedirectResponse(next_path or href(request, "dashboard"), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        outcome.session_id,
        path=_cookie_path(request),
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_COOKIE, path=_cookie_path(request), secure=_secure(request), httponly=True)
    return response


@router.post("/logout", name="logout")
async def logout(request: Request) -> Response:
    """End the session (a form post with the CSRF token: a link elsewhere cannot sign anyone out)."""
    principal = await optional_principal(request)
    response = RedirectResponse(href(request, "login", {"msg": "signed_out"}), status_code=303)
    if principal is not None:
        await checked_form(request, principal)
        session_id = request.cookies.get(SESSION_COOKIE, "")
        async with database(request).uow() as uow:
            await sign_out(uow, session_id)
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request), secure=_secure(request), httponly=True)
    return response
