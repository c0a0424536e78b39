"""Service-to-service authentication shared by every system's REST API: ``Authorization: Bearer
<key>``. Each calling system has its own key (``POSOG_SERVICE_KEYS``: name → key) and may perform
only the operations its callee grants it (the callee's own operations map)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

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
    ``forbidden``). The app must hold a ``ServiceKeyring`` in ``app.state.service_keyring``."""
    keyring: ServiceKeyring = request.app.state.service_keyring
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


def require_service(*operations: str) -> Callable[..., Awaitable[ServiceCaller]]:
    """A FastAPI dependency that authenticates the calling system by its bearer key (401
    ``unauthorized``) and checks that it may perform every one of ``operations`` (403 ``forbidden``);
    it returns the caller. The app must hold a ``ServiceKeyring`` in ``app.state.service_keyring``
    (``create_app`` puts it there). A hot route may call :func:`authenticate` itself instead (one
    dependency less to solve per request) and declare ``openapi_extra=SERVICE_KEY_SECURITY``."""
    needed = frozenset(operations)

    async def authenticate_dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ServiceCaller:
        key = None if credentials is None else credentials.credentials.strip()
        return authenticate(request, needed, key)

    return authenticate_dependency
