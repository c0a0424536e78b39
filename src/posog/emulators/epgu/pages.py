"""The ЕПГУ emulator's pages: the emulated Госуслуги accounts and the notifications in each inbox, with
the survey link clickable — how a demo (and the browser tests) get from a fact to the citizen's survey.

It shows the recipient's ФИО, as the real account would; nothing of it is logged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from posog.core.clock import as_utc
from posog.core.russian import moscow_date, moscow_time
from posog.emulators.epgu.inbox import EpguInbox
from posog.web.security import SecurityHeadersMiddleware
from posog.web.templating import make_templates, static_files

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
ACCOUNTS_SHOWN = 200


@dataclass(frozen=True)
class Account:
    key: str
    name: str
    notifications: int
    last_received: str


@dataclass(frozen=True)
class Segment:
    text: str
    link: bool = False


def full_name(recipient: dict[str, Any]) -> str:
    return " ".join(
        part for part in (recipient["last_name"], recipient["first_name"], recipient.get("middle_name")) if part
    )


def linkified(text: str, link: str) -> list[Segment]:
    """The notification text with its link as a link."""
    if not link or link not in text:
        return [Segment(text)]
    parts = text.split(link)
    segments: list[Segment] = []
    for index, part in enumerate(parts):
        if index:
            segments.append(Segment(link, link=True))
        if part:
            segments.append(Segment(part))
    return segments


def accounts(notifications: Sequence[dict[str, Any]], query: str = "") -> list[Account]:
    """The accounts with notifications, the most recently notified first (optionally by a part of ФИО)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for notification in notifications:
        by_key.setdefault(notification["recipient_key"], []).append(notification)
    found = []
    for key, items in by_key.items():
        name = full_name(items[-1]["recipient"])
        if query and query.casefold() not in name.casefold():
            continue
        last = max(as_utc(item["received_at"]) for item in items)
        found.append((last, Account(key, name, len(items), moscow_time(last))))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [account for _, account in found]


def create_app(inbox: EpguInbox) -> FastAPI:
    """The emulators' web app: ``/epgu/`` — Госуслуги accounts and their inboxes."""
    app = FastAPI(title="Эмуляторы ПОС ОГ", docs_url=None, redoc_url=None, openapi_url=None)
    templates = make_templates(TEMPLATES_DIR)
    app.mount("/static", static_files(), name="static")

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        return RedirectResponse(request.url_for("epgu_accounts").path, status_code=303)

    @app.get("/epgu/", name="epgu_accounts", response_class=HTMLResponse)
    async def epgu_accounts(request: Request, q: str = "") -> Response:
        """Every emulated Госуслуги account that received a notification."""
        query = q.strip()[:100]
        found = accounts(await inbox.notifications(), query)
        return templates.TemplateResponse(
            request,
            "epgu_accounts.html",
            {"accounts": found[:ACCOUNTS_SHOWN], "total": len(found), "query": query},
        )

    @app.get("/epgu/api/notifications", name="epgu_api_notifications")
    async def epgu_api_notifications(
        offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        """The inbox as JSON, without personal data: ``{"total", "items": [{notification_id, card_id,
        link, expires_at, received_at, deliveries}]}``, oldest first (for simulated citizens and tests)."""
        total, items = await inbox.links(offset=offset, limit=limit)
        return {"total": total, "offset": offset, "items": items}

    @app.get("/epgu/accounts/{recipient_key}", name="epgu_account", response_class=HTMLResponse)
    async def epgu_account(request: Request, recipient_key: str) -> Response:
        """One account's inbox, the newest notification first."""
        notifications = await inbox.notifications(recipient_key=recipient_key[:128])
        if not notifications:
            raise StarletteHTTPException(404)
        messages = [
            {
                "title": n["title"],
                "received": moscow_time(n["received_at"]),
                "segments": linkified(n["text"], n["link"]),
                "link": n["link"],
                "expires": moscow_date(datetime.fromisoformat(n["expires_at"])),
                "card_id": n["card_id"],
            }
            for n in reversed(notifications)
        ]
        return templates.TemplateResponse(
            request,
            "epgu_account.html",
            {"name": full_name(notifications[-1]["recipient"]), "messages": messages},
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return templates.TemplateResponse(
            request, "epgu_not_found.html", {}, status_code=404 if exc.status_code != 405 else 405
        )

    app.add_exception_handler(StarletteHTTPException, not_found)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
