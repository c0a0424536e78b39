"""Helpers for the cabinet tests: accounts, and a "browser" — an HTTP client of the ЛКО app over
HTTPS (the session cookie is Secure) that keeps cookies and reads CSRF tokens from the pages."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx

from posog.bootstrap import System
from posog.core.clock import utcnow
from posog.lko.accounts.handlers import NewUser, create_user

BASE_URL = "https://lko.test"
PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_user(
    system: System,
    login: str,
    role: str,
    *,
    region_code: str | None = None,
    inn: str | None = None,
    password: str = PASSWORD,
    full_name: str | None = None,
) -> str:
    async with system.db.uow() as uow:
        return await create_user(
            uow,
            NewUser(login, password, role, full_name=full_name, region_code=region_code, inn=inn),
            now=utcnow(),
        )


@contextlib.asynccontextmanager
async def browser(
    system: System, *, base_url: str = BASE_URL, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser at ``address`` (the peer address the cabinet sees)."""
    app = system.lko_asgi.app
    transport = httpx.ASGITransport(app=app, client=(address, 50123))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


def token_of(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, login: str, password: str = PASSWORD, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    page = await client.get("/login")
    assert page.status_code == 200, page.text
    return await client.post(
        "/login", data={"login": login, "password": password, "csrf_token": token_of(page.text)}, headers=headers
    )


async def signed_in(system: System, client: httpx.AsyncClient, login: str) -> None:
    response = await sign_in(client, login)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, Any] | list[tuple[str, str]], **kwargs: Any
) -> httpx.Response:
    """Post a form the way the cabinet's own page would: with the session's CSRF token."""
    token = token_of((await client.get("/")).text)
    if isinstance(data, dict):
        return await client.post(path, data={**data, "csrf_token": token}, **kwargs)
    # Repeated and ordered fields (the form builder): encoded as a browser does.
    body = urlencode([*data, ("csrf_token", token)])
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
    return await client.post(path, content=body, headers=headers, **kwargs)
