"""The error envelope of every v1 API (``{"error": {"code", "message"}}``): plain Pydantic shapes, so
that the systems' contracts and clients use them without loading the web framework
(:mod:`posog.core.http` answers with them)."""

from __future__ import annotations

from pydantic import BaseModel


class ApiError(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    """Every error answer of the v1 APIs: ``{"error": {"code", "message"}}``. A route's 422 may carry
    more (a list of problems); its model then has a classmethod ``for_request_problems(error,
    [(path, message), …])`` that builds it for a malformed request (``path`` ``""``: the whole body),
    so that every 422 of the route has the documented shape."""

    error: ApiError
