"""Small ASGI plumbing for the embedded mode."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send


class LateBoundApp:
    """An ASGI app whose target is set after construction. Systems call each other over HTTP clients;
    in the embedded mode those clients hold in-process transports, and two systems that call each
    other (the module asks ЛКО for questionnaires, ЛКО tells the module about publications) cannot
    both be built first."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError(f"the {self.name} app is not bound yet")
        await self.app(scope, receive, send)
