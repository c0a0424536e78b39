"""A lean path for the module's hottest request, ``GET /api/v1/survey-links/{token}`` (every citizen
opening a survey; issue 7 item 2), beside the route in :mod:`posog.module.links.api`.

Through FastAPI a request crosses six middleware layers, routing and the endpoint machinery before
the endpoint runs — several times the cost of the endpoint's own Python work. :class:`LinkFastPath`
is called by the module app (:class:`posog.module.api.ModuleApp`) before all that, matches the
route's path itself and answers with the endpoint's own code, so the answers are the route's:

* the same checks in the same order: the caller's service key (``links:read``), then
  :func:`~posog.module.links.handlers.resolve_link` with the same attempt limiter, catalog, clock
  and client key (``X-Posog-Client`` or the peer — ``X-Forwarded-For`` only from a trusted proxy —
  under the caller's name);
* a 200 is :func:`~posog.module.links.api.link_json` with the headers ``Response`` would send
  (``cache-control``, ``content-length``, ``content-type``); refusals are
  :func:`~posog.module.links.api.refusal_response` — the very response objects the route sends;
* an unexpected exception is answered as ``ServerErrorMiddleware`` answers it — the app's
  ``Exception`` handler (the 500 envelope, logged), then re-raised for the server to log.

Whatever is not the plain case is handed to the full app before anything happened, so FastAPI
answers it exactly as before: a missing, unknown or under-privileged key (401/403, logged by
``authenticate``), no catalog (503), and any app whose stack the fast path could not stand in for —
debug mode, a ``root_path``, middleware added with ``add_middleware``, or FastAPI's native
telemetry switched on. The route stays registered, so the OpenAPI document lists it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import structlog
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from posog.core.appstate import need
from posog.core.service_auth import ServiceKeyring
from posog.lko.client import LkoError
from posog.module.links.api import LINKS_READ, link_json, refusal_response, unavailable
from posog.module.links.handlers import LinkRefusal, ResolveLink, resolve_link
from posog.module.state import module_state
from posog.module.uow import ModuleUnitOfWork

if TYPE_CHECKING:
    from fastapi import FastAPI

log = structlog.get_logger("posog.module.links.api")  # the route's logger: the same log lines

# The route's path below the app (``/api/v1`` + ``/survey-links/{token:posog_any_token}``): any
# remainder, slashes and line breaks included, is the token.
LINK_PATH_PREFIX = "/api/v1/survey-links/"
_PREFIX_LENGTH = len(LINK_PATH_PREFIX)

_AUTHORIZATION = b"authorization"
_CLIENT = b"x-posog-client"  # links.api.CLIENT_HEADER, as Starlette's Headers looks it up
_JSON = b"application/json"
_NO_STORE = b"no-store"


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (Starlette's ``get_route_path``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


def link_token(scope: Scope) -> str | None:
    """The token of a ``GET /api/v1/survey-links/{token}`` request, or None for any other request."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path = route_path(scope)
    return path[_PREFIX_LENGTH:] if path.startswith(LINK_PATH_PREFIX) else None


def bearer_key(authorization: str | None) -> str | None:
    """The bearer key of an ``Authorization`` value, read as ``core.service_auth.presented_key``."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


class LinkFastPath:
    """``GET /api/v1/survey-links/{token}`` of ``app`` (the module app, whose ``state`` holds the
    keyring, the catalog, the attempt limiter, the trusted proxies, the database and the clock)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send, token: str) -> bool:
        """Answer the request and return True, or return False having done nothing (not even read
        the request): the full app answers it then."""
        state = module_state(self.app)
        keyring = need(self.app, ServiceKeyring)
        authorization: str | None = None
        forwarded: str | None = None
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION:
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == _CLIENT and forwarded is None:
                forwarded = value.decode("latin-1")
        key = bearer_key(authorization)
        caller = keyring.identify(key) if key else None
        catalog = state.catalog
        if caller is None or not caller.operations >= LINKS_READ or catalog is None:
            return False  # 401, 403 or 503: the route answers (and logs) it

        forwarded = (forwarded or "").strip()[:100]
        if forwarded:
            client = f"{caller.name}:{forwarded}"
        else:
            client = f"{caller.name}:peer:{state.trusted_proxies.client_of(scope)}"
        scope["app"] = self.app
        started = False  # whether an answer has begun (then a failure cannot be answered any more)
        try:
            try:
                async with ModuleUnitOfWork(state.db) as uow:
                    data = await resolve_link(
                        ResolveLink(token=token, client=client),
                        uow,
                        catalog=catalog,
                        limiter=state.link_attempts,
                        clock=state.clock,
                    )
            except LinkRefusal as refusal:
                response = refusal_response(refusal)
                started = True
                await response(scope, receive, send)
                return True
            except LkoError as exc:
                log.warning("links.lko_unavailable", error=str(exc))
                response = unavailable()
                started = True
                await response(scope, receive, send)
                return True
            body = link_json(data, catalog)
            started = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"cache-control", _NO_STORE),
                        (b"content-length", b"%d" % len(body)),
                        (b"content-type", _JSON),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return True
        except Exception as exc:
            # As ServerErrorMiddleware: the app's 500 handler answers (unless an answer has begun),
            # and the exception goes on to the server.
            if not started:
                error = await _server_error_response(self.app, Request(scope), exc)
                await error(scope, receive, send)
            raise


async def _server_error_response(app: FastAPI, request: Request, exc: Exception) -> Response:
    """What the app's ``ServerErrorMiddleware`` answers to ``exc``: its 500 handler (the last of
    ``Exception``/``500`` registered, as Starlette picks it), or Starlette's plain 500."""
    handler = None
    for key, value in app.exception_handlers.items():
        if key in (500, Exception):
            handler = value
    if handler is None:
        return PlainTextResponse("Internal Server Error", status_code=500)
    if _is_async_callable(handler):
        return await cast(Awaitable[Response], handler(request, exc))
    return await run_in_threadpool(cast(Callable[[Request, Exception], Response], handler), request, exc)


def _is_async_callable(obj: Any) -> bool:
    """Whether calling ``obj`` gives a coroutine (a coroutine function, a partial of one, or an object
    whose ``__call__`` is one), as Starlette decides it for exception handlers."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (callable(obj) and inspect.iscoroutinefunction(obj.__call__))
