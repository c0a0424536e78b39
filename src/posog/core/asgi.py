"""Small ASGI plumbing for the embedded mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send


class LateBoundApp:
    """An ASGI app whose target is set after construction. Systems call each other over HTTP clients;
    in the embedded mode those clients hold in-process transports, and two systems that call each
    other (the module asks ЛКО for questionnaires, ЛКО tells the module about publications) cannot
    both be built first.

    With ``build``, the app is made when it is first needed (read as :attr:`app` or called): a process
    that neither serves nor calls it never imports it — a worker does not pay for the pages of ЛКП
    or the ИАС МКГУ emulator. Only apps without state of their own are built so."""

    def __init__(self, name: str, build: Callable[[], Any] | None = None) -> None:
        self.name = name
        self._app: Any = None
        self._build = build

    @property
    def app(self) -> Any:
        if self._app is None and self._build is not None:
            self._app, self._build = self._build(), None
        return self._app

    @app.setter
    def app(self, value: Any) -> None:
        self._app, self._build = value, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            raise RuntimeError(f"the {self.name} app is not bound yet")
        await app(scope, receive, send)
