"""ЛКП as one process holds it: the clients it calls the module and ЛКО with, and its app, made when
the process serves it (ЛКП keeps nothing durable and nobody calls it in-process); built by
:func:`build_lkp` (called by ``posog.bootstrap``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from posog.core.asgi import LateBoundApp
from posog.core.wiring import Shared

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI


class LkpSystem:
    """ЛКП's part of a process: it calls the module (link data) and ЛКО (answers) with its own key, and
    closes those clients (:meth:`aclose`)."""

    def __init__(self, *, asgi: LateBoundApp, module_http: httpx.AsyncClient, lko_http: httpx.AsyncClient) -> None:
        self.asgi = asgi
        self.module_http = module_http
        self.lko_http = lko_http

    async def aclose(self) -> None:
        for http in (self.module_http, self.lko_http):
            await http.aclose()


def build_lkp(shared: Shared, *, module_http: httpx.AsyncClient, lko_http: httpx.AsyncClient) -> LkpSystem:
    """ЛКП's part; any process can serve it, so its app is made when first served."""

    def app() -> FastAPI:
        from posog.lko.client import LkoClient
        from posog.lkp.app import create_app
        from posog.module.client import ModuleClient

        return create_app(ModuleClient(module_http), LkoClient(lko_http), shared.settings)

    return LkpSystem(asgi=LateBoundApp("lkp", build=app), module_http=module_http, lko_http=lko_http)
