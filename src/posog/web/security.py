"""Security headers for every HTML page we serve (ЛКП, the emulators, the cabinet): a strict Content
Security Policy (scripts and styles only from our own static files, nothing inline), no framing, no
referrer — a survey URL carries its token, so it must never leak to another site — and ``no-store`` for
pages, so a shared computer's history or cache does not keep a citizen's survey. In production, HSTS
(:func:`hsts_max_age`): browsers then never reach the pages over plain http."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posog.settings import Settings

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def hsts_max_age(settings: Settings) -> int:
    """How long browsers are told to use only https (``Strict-Transport-Security``): production only —
    the development and embedded modes serve plain http on 127.0.0.1, where it must not be sent — and
    ``POSOG_HSTS_MAX_AGE_S`` (0: not sent)."""
    return settings.hsts_max_age_s if settings.env == "production" else 0


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every response and ``Cache-Control: no-store`` to every response
    outside ``cacheable_prefixes`` (static files may be cached); with ``hsts_max_age_s`` > 0 also
    ``Strict-Transport-Security: max-age=…; includeSubDomains``."""

    def __init__(
        self, app: ASGIApp, *, cacheable_prefixes: Iterable[str] = ("/static/",), hsts_max_age_s: int = 0
    ) -> None:
        self.app = app
        self.cacheable_prefixes = tuple(cacheable_prefixes)
        self.headers = dict(SECURITY_HEADERS)
        if hsts_max_age_s > 0:
            self.headers["Strict-Transport-Security"] = f"max-age={hsts_max_age_s}; includeSubDomains"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        cacheable = path.startswith(self.cacheable_prefixes)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if not cacheable:
                    headers["Cache-Control"] = "no-store"
                    headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)
