"""The process's web application: every system this process serves, each under its prefix
(``/module``, ``/lko``, ``/lkp``, ``/analytics``, ``/emulators``) on one port — or one system alone at
``/`` (its own app, not mounted). In the embedded mode the background workers (intake, outbox relay, ЕПГУ inbox,
analytics) run inside it."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from posog.bootstrap import System
from posog.core.http import ServerErrorBoundary, install_error_handlers

SYSTEMS: dict[str, str] = {
    "module": "Модуль оценки качества — API",
    "lko": "ЛКО ПОС ОГ — кабинет организации",
    "lkp": "ЛКП ПОС ОГ — страницы опроса",
    "analytics": "Модуль аналитики",
    "emulators": "Эмуляторы СМЭВ, ЕПГУ, ИАС МКГУ",
}


def system_apps(system: System) -> dict[str, ASGIApp]:
    """The ASGI apps this process can serve (those whose URL is not configured elsewhere)."""
    apps: dict[str, ASGIApp] = {}
    for name, part in (
        ("module", system.module.asgi),
        ("lko", system.lko.asgi),
        ("lkp", system.lkp.asgi),
        ("analytics", system.analytics.asgi),
    ):
        if part.app is not None:
            apps[name] = part.app
    apps["emulators"] = system.emulators.web_app()  # the ЕПГУ inbox, and ИАС МКГУ (SPEC §9) under /ias
    return apps


async def _drain_embedded(system: System, tasks: list[asyncio.Task[None]], timeout_s: float = 10.0) -> None:
    """The in-process bus keeps its queues in memory. Before stopping, take no new facts (those left in
    the facts queue were never acknowledged to their sender), and let the ЕПГУ inbox take the
    notifications already handed to the bus, so none the relay counted as sent is lost."""
    for task in tasks:
        if task.get_name() == "intake":
            task.cancel()
    queue = system.settings.geps_inbox_queue
    for _ in range(int(timeout_s / 0.05)):
        if await system.bus.queue_depth(queue) == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the inbox commits its last batch


# The workers a server runs inside it (``--workers``; by default in the embedded mode only).
EMBEDDED_WORKERS = ("intake", "outbox", "epgu-inbox", "analytics", "pii-purge")


class ServedApp:
    """One system's ASGI app served at ``/``, with the process's lifespan (workers, shutdown): the
    lifespan protocol is answered here (as Starlette's router answers it), every other scope goes
    straight to the app. The app's own lifespan does not run — as when it was mounted under a root
    app, which never passes a lifespan on to mounted apps."""

    def __init__(self, app: ASGIApp, lifespan: Callable[[], AbstractAsyncContextManager[None]]) -> None:
        self.app = app
        self._lifespan = lifespan
        self._bounded = ServerErrorBoundary(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        await self._bounded(scope, receive, send)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        started = False
        await receive()  # lifespan.startup
        try:
            async with self._lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except BaseException:
            failure = traceback.format_exc()
            if started:
                await send({"type": "lifespan.shutdown.failed", "message": failure})
            else:
                await send({"type": "lifespan.startup.failed", "message": failure})
            raise
        else:
            await send({"type": "lifespan.shutdown.complete"})


def create_web_app(system: System, *, serve: Sequence[str], run_workers: bool) -> ASGIApp:
    """``serve`` names the systems to mount; a single one is served at ``/`` — its own app, wrapped
    only for the process's lifespan (:class:`ServedApp`), so its requests cross one middleware stack."""
    apps = system_apps(system)
    unknown = [name for name in serve if name not in apps]
    if unknown:
        raise ValueError(f"this process cannot serve {', '.join(unknown)} (not available yet or configured remote)")

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if run_workers:
            await system.start_bus()
            jobs = system.workers()
            tasks = [asyncio.create_task(jobs[name](), name=name) for name in EMBEDDED_WORKERS]
            if system.module.smev_enabled:  # the СМЭВ adapter, inbound
                tasks.append(asyncio.create_task(jobs["smev"](), name="smev"))
                if system.settings.embedded and system.emulators.smev_adapter.mode == "amqp":
                    # The embedded adapter takes our ClientMessages off the in-process out queue.
                    tasks.append(asyncio.create_task(jobs["smev-adapter"](), name="smev-adapter"))
        relay = system.lko.announcements if "lko" in serve else None
        if relay is not None:
            # ЛКО re-sends the publication announcements the module missed: now, then periodically.
            interval = system.settings.announcement_retry_s
            tasks.append(asyncio.create_task(relay.run(interval), name="lko-announcements"))
        try:
            yield
        finally:
            if run_workers and system.settings.embedded:
                await _drain_embedded(system, tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await system.close()

    if len(serve) == 1:
        return ServedApp(apps[serve[0]], lifespan)

    @contextlib.asynccontextmanager
    async def root_lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with lifespan():
            yield

    root = FastAPI(title="ПОС ОГ", lifespan=root_lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @root.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        items = "".join(
            f'<li><a href="/{name}/">{escape(SYSTEMS[name])}</a> — <code>/{name}</code></li>' for name in serve
        )
        return (
            '<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>ПОС ОГ</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            f"<body><h1>ПОС ОГ — оценка качества услуг</h1><ul>{items}</ul></body></html>"
        )

    # The root's own answers (an unknown prefix, a wrong method) in the envelope, as the systems' own.
    install_error_handlers(root, system="web", unexpected_message="Внутренняя ошибка, повторите запрос позже")
    for name in serve:
        root.routes.append(SystemMount(f"/{name}", apps[name]))
    return ServerErrorBoundary(root)


class SystemMount(Mount):
    """A system's app under its prefix, for every path below it: Starlette's mount stops matching at a
    line break in the path (its ``path`` convertor is ``.*``), so ``/lko/api/v1/questionnaires/%0A``
    missed the ЛКО app and got the root's 404 instead of ЛКО's own answer."""

    def __init__(self, path: str, app: ASGIApp, *, name: str | None = None) -> None:
        super().__init__(path, app=app, name=name)
        self.path_regex, self.path_format, self.param_convertors = compile_path(self.path + "/{path:posog_any_path}")
