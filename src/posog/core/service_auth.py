"""Service-to-service authentication shared by every system's REST API: ``Authorization: Bearer
<key>``. Each calling system has its own key (``POSOG_SERVICE_KEYS``: name → key) and may perform
only the operations its callee grants it (the callee's own operations map)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

from posog.core.appstate import need

log = structlog.get_logger(__name__)


# Declares the scheme in the OpenAPI document; the checks are ours (auto_error would answer in
# FastAPI's own error shape).
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ServiceKey",
    description="Ключ вызывающей системы из POSOG_SERVICE_KEYS",
)


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """The authenticated calling system."""

    name: str
    operations: frozenset[str]

    def may(self, operation: str) -> bool:
        return operation in self.operations


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison time independent of the keys' lengths.
    return hashlib.sha256(key.encode("utf-8")).digest()


class ServiceKeyring:
    """The configured service keys; identifies the caller of a presented key in constant time."""

    def __init__(
        self,
        keys: Mapping[str, SecretStr],
        operations: Mapping[str, frozenset[str]],
    ) -> None:
        self._digests = [(name, _digest(key.get_secret_value())) for name, key in sorted(keys.items())]
        self._operations = operations

    def identify(self, presented_key: str) -> ServiceCaller | None:
        """The caller whose key this is, or None. Every key is compared, whatever matched earlier."""
        presented = _digest(presented_key)
        caller: str | None = None
        for name, digest in self._digests:
            if hmac.compare_digest(presented, digest) and caller is None:
                caller = name
        if caller is None:
            return None
        return ServiceCaller(caller, self._operations.get(caller, frozenset()))


def presented_key(request: Request) -> str | None:
    """The bearer key of the request, read as ``HTTPBearer`` reads it (None: missing or not bearer)."""
    authorization = request.headers.get("Authorization")
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def authenticate(request: Request, needed: frozenset[str], key: str | None) -> ServiceCaller:
    """The caller presenting ``key`` (401 ``unauthorized``), allowed every operation of ``needed`` (403
    ``forbidden``). The app must be given its ``ServiceKeyring`` (``core.appstate.provide``)."""
    keyring = need(request, ServiceKeyring)
    caller = keyring.identify(key) if key else None
    if caller is None:
        log.warning("service_auth.rejected", path=request.url.path, reason="unknown" if key else "missing")
        raise HTTPException(
            status_code=401,
            detail={
                "code": "unauthorized",
                "message": "Требуется действительный сервисный ключ в заголовке «Authorization: Bearer <ключ>»",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not needed <= caller.operations:
        missing = sorted(needed - caller.operations)
        log.warning("service_auth.forbidden", path=request.url.path, caller=caller.name, missing=missing)
        raise HTTPException(
            status_code=403,
            detail={
                "code": "forbidden",
                "message": f"Системе «{caller.name}» не разрешено: {', '.join(missing)}",
            },
        )
    return caller


# What a route that authenticates inside its endpoint (see ``authenticate``) declares in the OpenAPI
# document, as ``require_service`` would: ``openapi_extra=SERVICE_KEY_SECURITY``.
SERVICE_KEY_SECURITY: dict[str, Any] = {"security": [{"ServiceKey": []}]}


# Where ServiceKeyFirstRoute leaves the caller it authenticated, for the route's own dependency.
_CALLER = "posog.service_caller"


class _ServiceKeyCheck:
    """The dependency :func:`require_service` returns (a class, so that :class:`ServiceKeyFirstRoute`
    can find it and its operations among a route's dependencies)."""

    def __init__(self, needed: frozenset[str]) -> None:
        self.needed = needed

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ServiceCaller:
        checked: ServiceCaller | None = request.scope.get(_CALLER)
        if checked is not None and self.needed <= checked.operations:
            return checked
        key = None if credentials is None else credentials.credentials.strip()
        return authenticate(request, self.needed, key)


def require_service(*operations: str) -> Callable[..., Awaitable[ServiceCaller]]:
    """A FastAPI dependency that authenticates the calling system by its bearer key (401
    ``unauthorized``) and checks that it may perform every one of ``operations`` (403 ``forbidden``);
    it returns the caller. The app must be given its ``ServiceKeyring`` (``core.appstate.provide``)
    (``create_app`` puts it there). A hot route may call :func:`authenticate` itself instead (one
    dependency less to solve per request) and declare ``openapi_extra=SERVICE_KEY_SECURITY``.

    A route with a request body needs :class:`ServiceKeyFirstRoute` too: FastAPI reads and parses the
    body before it solves any dependency, so a request without a key but with a malformed body would
    be told about its body (422) instead of its key (401)."""
    return _ServiceKeyCheck(frozenset(operations))


def _service_operations(dependant: Dependant) -> frozenset[str] | None:
    """Every operation the service-key dependencies of ``dependant`` (at any depth) require; None if it
    has none."""
    found: frozenset[str] | None = None
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, _ServiceKeyCheck):
            found = (found or frozenset()) | dependency.call.needed
        nested = _service_operations(dependency)
        if nested is not None:
            found = (found or frozenset()) | nested
    return found


class ServiceKeyFirstRoute(APIRoute):
    """A route that checks the service key before anything of the request is read. FastAPI reads and
    parses the body first and solves the dependencies afterwards, so with :func:`require_service` alone
    a request with a bad body and no key is answered 422 — telling an unauthenticated caller about the
    request rather than about the key. For a route with a body and a service-key dependency, this
    route authenticates first (401/403, exactly as the dependency would) and only then hands the
    request to FastAPI's handler; the dependency reuses the caller it found. Routes without a body, or
    without a service key, are FastAPI's own. Use it as ``APIRouter(route_class=ServiceKeyFirstRoute)``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        needed = _service_operations(self.dependant)
        if needed is None or self.body_field is None:
            return handler

        async def key_first(request: Request) -> Response:
            request.scope[_CALLER] = authenticate(request, needed, presented_key(request))
            return await handler(request)

        return key_first
