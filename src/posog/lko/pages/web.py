"""What every cabinet page shares: the signed-in user (session cookie), CSRF checks of forms, the page
errors (login required, not found, refused) and rendering with the shared layout.

Pages outside a user's role or scope answer 404, exactly as ids that do not exist, so a URL tells
nobody what exists outside their scope."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.regions import get_region
from posog.core.russian import moscow_date, moscow_time, numeric_date
from posog.lko.accounts.handlers import resolve_session
from posog.lko.accounts.model import CabinetPrincipal
from posog.lko.state import lko_state
from posog.web.templating import make_templates

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
SESSION_COOKIE = "posog_lko_session"
LOGIN_COOKIE = "posog_lko_login"
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 3000
MAX_UPLOAD_BYTES = 2 * 1024 * 1024

# Paths (below the app's root) answered by the API's JSON error envelope rather than HTML pages.
API_PREFIXES = ("/api/", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/static/")

# Fixed notices shown after a redirect (``?msg=``); never text a user typed.
NOTICES: dict[str, str] = {
    "signed_out": "Вы вышли из кабинета.",
    "session_expired": "Сеанс завершён. Войдите снова.",
    "created": "Анкета создана. Отредактируйте вопросы и опубликуйте её.",
    "saved": "Черновик сохранён. Опубликуйте его, чтобы граждане получали новую версию.",
    "published": "Анкета опубликована: новая версия стала действующей.",
    "published_pending": (
        "Анкета опубликована. Модуль оценки пока недоступен: ожидающие анкеты услуги получат ссылки, "
        "как только он ответит (повтор выполняется автоматически)."
    ),
    "withdrawn": "Анкета снята с публикации.",
    "org_type_added": "Тип организации добавлен.",
    "org_type_saved": "Изменения сохранены.",
    "imported": "Импорт выполнен.",
}


class LoginRequired(Exception):
    """No valid session: go to the login page, then back to ``next_path``."""

    def __init__(self, next_path: str | None, *, expired: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.expired = expired


class PageNotFound(Exception):
    """The page does not exist — or is outside the user's scope, which looks the same."""


class FormRefused(Exception):
    """A state-changing form without the right CSRF token or from another site (403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def app_path(request: Request) -> str:
    """The request's path below the app's mount point (``/lko`` in the combined server)."""
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_api_request(request: Request) -> bool:
    path = app_path(request)
    return path.startswith(API_PREFIXES) or path in ("/healthz", "/readyz", "/docs", "/redoc")


def root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def href(request: Request, name: str, query: Mapping[str, Any] | None = None, **path_params: Any) -> str:
    """The path of a named route (mount prefix included), with an optional query string."""
    path = request.url_for(name, **path_params).path
    pairs = {key: value for key, value in (query or {}).items() if value not in (None, "")}
    return f"{path}?{urlencode(pairs)}" if pairs else path


def redirect(
    request: Request, name: str, query: Mapping[str, Any] | None = None, **path_params: Any
) -> RedirectResponse:
    """303 See Other to a named page (after a form post)."""
    return RedirectResponse(href(request, name, query, **path_params), status_code=303)


def safe_next(request: Request, candidate: str | None) -> str | None:
    """``candidate`` if it is a path of this cabinet (no open redirects), else None."""
    if not candidate or len(candidate) > 2000:
        return None
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not candidate.startswith("/") or candidate.startswith("//"):
        return None
    if "\\" in candidate or any(ord(ch) < 32 for ch in candidate):
        return None
    root = root_path(request)
    if root and not (candidate == root or candidate.startswith(root + "/")):
        return None
    return candidate


# --- Who is signed in --------------------------------------------------------------------------------

_UNRESOLVED = object()


def database(request: Request) -> Database:
    db = lko_state(request).db
    return db


def _clock(request: Request) -> Clock:
    clock = lko_state(request).clock
    return clock


def now(request: Request) -> datetime:
    return _clock(request)()


async def optional_principal(request: Request) -> CabinetPrincipal | None:
    """The signed-in user of this request, or None (resolved once per request)."""
    cached = getattr(request.state, "principal", _UNRESOLVED)
    if cached is not _UNRESOLVED:
        return cast(CabinetPrincipal | None, cached)
    principal = None
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id and len(session_id) <= 128:
        policy = lko_state(request).session_policy
        async with database(request).uow() as uow:
            principal = await resolve_session(uow, session_id, now=now(request), policy=policy)
    request.state.principal = principal
    return principal


async def signed_in(request: Request) -> CabinetPrincipal:
    """The signed-in user, or a redirect to the login page that comes back here."""
    principal = await optional_principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        expired = SESSION_COOKIE in request.cookies
        raise LoginRequired(target if request.method == "GET" else None, expired=expired)
    return principal


Principal = Annotated[CabinetPrincipal, Depends(signed_in)]


def not_found() -> NoReturn:
    """Answer 404: the page does not exist, or is outside the user's scope (indistinguishable)."""
    raise PageNotFound()


def require(allowed: bool) -> None:
    """Pages outside the user's role answer 404, as pages that do not exist."""
    if not allowed:
        not_found()


# --- Forms -------------------------------------------------------------------------------------------


def check_same_origin(request: Request) -> None:
    """Refuse a form posted from another site, as the browser reports it: ``Sec-Fetch-Site`` other than
    same-origin (or none: typed by the user), or an ``Origin`` of another host. ``Origin: null`` is no
    evidence either way — browsers send it for every form under ``Referrer-Policy: no-referrer`` — so
    then the token alone decides."""
    fetch_site = request.headers.get("sec-fetch-site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        raise FormRefused("Форма отправлена с другого сайта.")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc.lower() != host.lower():
        raise FormRefused("Форма отправлена с другого сайта.")


async def read_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_UPLOAD_BYTES)
    except Exception as exc:  # malformed or oversized bodies
        raise FormRefused("Форма не может быть прочитана: слишком большая или повреждённая.") from exc


async def checked_form(request: Request, principal: CabinetPrincipal) -> FormData:
    """The posted form, after checking its CSRF token against the session's (synchronizer token)."""
    check_same_origin(request)
    form = await read_form(request)
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), principal.csrf_token.encode()):
        raise FormRefused("В форме нет действительного ключа защиты (CSRF).")
    return form


def text_field(form: FormData, name: str, *, limit: int = 10_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


# --- Rendering ---------------------------------------------------------------------------------------


def build_templates() -> Jinja2Templates:
    """The cabinet's templates (its own folder, then the shared ones), with its helpers."""
    templates = make_templates(TEMPLATES_DIR)
    templates.env.globals["path_for"] = _path_for
    templates.env.filters["msk"] = _moscow
    templates.env.filters["msk_date"] = _moscow_date
    templates.env.filters["msk_iso"] = _moscow_iso
    templates.env.filters["numeric_date"] = numeric_date
    templates.env.filters["region_name"] = _region_name
    return templates


@jinja2.pass_context
def _path_for(context: Mapping[str, Any], name: str, /, **params: Any) -> str:
    query = params.pop("_query", None)
    return href(context["request"], name, query, **params)


def _moscow(moment: datetime | None) -> str:
    return moscow_time(moment) if moment else "—"


def _moscow_iso(text: str) -> str:
    try:
        return _moscow(datetime.fromisoformat(text))
    except ValueError:
        return text


def _moscow_date(moment: datetime | None) -> str:
    return moscow_date(moment) if moment else "—"


def _region_name(code: str | None) -> str:
    if not code:
        return "—"
    region = get_region(code)
    return f"{code} — {region.name}" if region else code


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    principal: CabinetPrincipal | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page of the cabinet with the signed-in user's navigation and a notice from ``?msg=``."""
    templates = lko_state(request).templates
    assert templates is not None, "install_pages() sets the cabinet's templates"
    notice = NOTICES.get(request.query_params.get("msg", ""))
    full: dict[str, Any] = {
        "user": principal,
        "csrf_token": principal.csrf_token if principal else "",
        "notice": notice,
        "section": "",
        **(context or {}),
    }
    return templates.TemplateResponse(request, template, full, status_code=status_code)
