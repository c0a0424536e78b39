"""``posog`` — the one entry point (SPEC §11).

This module registers the systems' command groups (each in its system: ``module/intake/cli.py``,
``module/ias_export/cli.py``, ``module/links/cli.py``, ``module/retention_cli.py``,
``lko/accounts/cli.py``, ``analytics/cli.py``, ``core/outbox_cli.py``) and holds the commands that
run a process: ``serve``, ``worker``, ``demo``, ``db``, ``emulate``. It composes what the systems'
commands work with (:func:`_migrated_system`). Everything heavy is imported inside the commands:
``posog --help`` loads Typer and little else, a worker only what it runs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from posog.analytics import wiring as analytics_wiring
from posog.analytics.cli import analytics_app
from posog.core.outbox_cli import outbox_app
from posog.lko.accounts.cli import users_app
from posog.module import wiring as module_wiring
from posog.module.ias_export.cli import export_app, require_ias_url
from posog.module.intake.cli import facts_app, ingest
from posog.module.links.cli import links_app
from posog.module.retention_cli import pii_app

if TYPE_CHECKING:
    from posog.analytics.wiring import AnalyticsSystem
    from posog.bootstrap import System
    from posog.core.outbox import Delivery
    from posog.module.wiring import ModuleCommands
    from posog.settings import Settings

app = typer.Typer(help="ПОС ОГ — оценка качества государственных и муниципальных услуг.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
emulate_app = typer.Typer(help="Emulators of the neighbouring systems: СМЭВ (facts), citizens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("ingest")(ingest)
app.add_typer(facts_app, name="facts")
app.add_typer(analytics_app, name="analytics")
app.add_typer(export_app, name="export")
app.add_typer(users_app, name="users")
app.add_typer(links_app, name="links")
DELIVERIES = ("geps", "lko-announcements", "ias-export", "lko-completions", "smev-answers")


def _deliveries() -> list[Delivery[Any]]:
    from posog.lko.questionnaires.announcements import ANNOUNCEMENTS
    from posog.lko.responses.model import COMPLETIONS
    from posog.module.ias_export.model import IAS_EXPORTS
    from posog.module.notifications.model import GEPS
    from posog.module.smev.model import SMEV_ANSWERS

    return [GEPS, ANNOUNCEMENTS, IAS_EXPORTS, COMPLETIONS, SMEV_ANSWERS]


app.add_typer(outbox_app(DELIVERIES, _deliveries), name="outbox")
app.add_typer(emulate_app, name="emulate")
app.add_typer(pii_app, name="pii")
console = Console()


def configure_logging(level: str = "INFO", *, json: bool = False, file: Path | None = None) -> None:
    from posog.core.logging import configure_logging as configure

    configure(level, json=json, file=file)


def _settings() -> Settings:
    from posog.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _run(main: Coroutine[Any, Any, None]) -> None:
    asyncio.run(main)


@contextlib.asynccontextmanager
async def _migrated_system() -> AsyncIterator[System]:
    """This process wired for an operator command, on the configured database as ``posog db upgrade``
    left it: a database that is not migrated ends the command with the message to run it."""
    from posog.bootstrap import bootstrap
    from posog.core.operator import require_migrated

    system = bootstrap(_settings())
    try:
        await require_migrated(system.db, console=console)
        yield system
    finally:
        await system.close()


@contextlib.asynccontextmanager
async def _module_commands() -> AsyncIterator[ModuleCommands]:
    async with _migrated_system() as system:
        yield module_wiring.ModuleCommands(system.module, deliver=system.deliver_embedded)


@contextlib.asynccontextmanager
async def _analytics_commands() -> AsyncIterator[AnalyticsSystem]:
    async with _migrated_system() as system:
        yield system.analytics


module_wiring.COMMANDS.provide(_module_commands)
analytics_wiring.COMMANDS.provide(_analytics_commands)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration and seed the built-in directory and default questionnaires."""
    from posog.core.db import Database
    from posog.core.migrate import upgrade
    from posog.lko.seed import seed_defaults

    async def main() -> None:
        settings = _settings()
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        await upgrade(settings.resolved_database_url)
        db = Database(settings.resolved_database_url, pool_size=2)
        try:
            await seed_defaults(db)
        finally:
            await db.dispose()
        console.print("[green]Schema is up to date; directory and default questionnaires seeded.[/]")

    _run(main())


@app.command()
def serve(
    name: Annotated[str, typer.Argument(help="module | lko | lkp | analytics | emulators | all")] = "all",
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
    workers_inside: Annotated[
        bool | None, typer.Option("--workers/--no-workers", help="Run intake/outbox/inbox workers in this process")
    ] = None,
) -> None:
    """Serve one system at / or all of them under their prefixes on one port."""
    import uvicorn

    from posog.bootstrap import bootstrap
    from posog.web.app import SYSTEMS, create_web_app, system_apps
    from posog.web.server import Server, serve_until_signalled

    settings = _settings()
    system = bootstrap(settings)
    available = list(system_apps(system))
    if name != "all" and name not in SYSTEMS:
        console.print(f"[red]Unknown system {name!r}; choose one of: all, {', '.join(SYSTEMS)}[/]")
        raise typer.Exit(2)
    chosen = available if name == "all" else [name]
    if name != "all" and name not in available:
        console.print(f"[red]{name} cannot be served by this process yet[/]")
        raise typer.Exit(2)
    run_workers = settings.embedded if workers_inside is None else workers_inside
    _run(_prepare_schema(settings, system))
    web = create_web_app(system, serve=chosen, run_workers=run_workers)
    # X-Forwarded-For/-Proto are believed from POSOG_TRUSTED_PROXIES only (the apps resolve the
    # client with the same list: posog.core.clientaddr); uvicorn's own FORWARDED_ALLOW_IPS is not used.
    proxies = settings.trusted_proxies
    config = uvicorn.Config(
        web,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
    )
    server = Server(config)
    _use_uvloop()  # what uvicorn.run would choose ("auto")
    _run(serve_until_signalled(server))


async def _prepare_schema(settings: Settings, system: System) -> None:
    if settings.embedded:  # production schemas are migrated by `posog db upgrade` in the deployment
        from posog.core.migrate import upgrade
        from posog.lko.seed import seed_defaults

        await upgrade(settings.resolved_database_url)
        await seed_defaults(system.db)
    await system.db.engine.dispose()  # the server runs its own event loop; no connection may outlive this one


WORKERS = (
    "intake",
    "outbox",
    "epgu-inbox",
    "analytics",
    "lko-completions",
    "lko-announcements",
    "ias-export",
    "pii-purge",
    "smev",
)


@app.command()
def worker(
    name: Annotated[str, typer.Argument(help=" | ".join(WORKERS))],
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Serve Prometheus metrics at http://HOST:PORT/metrics")
    ] = None,
) -> None:
    """Run one worker until SIGTERM/SIGINT (production mode: PostgreSQL + RabbitMQ)."""
    if name not in WORKERS:
        console.print(f"[red]Unknown worker {name!r}; choose one of: {', '.join(WORKERS)}[/]")
        raise typer.Exit(2)

    settings = _settings()
    if name == "ias-export":
        require_ias_url(settings)
    if name == "smev" and settings.smev_transport == "none":
        console.print(
            "[red]posog worker smev needs POSOG_SMEV_TRANSPORT=amqp or soap (the СМЭВ adapter's interface)[/]"
        )
        raise typer.Exit(2)

    async def main() -> None:
        from posog.bootstrap import bootstrap

        system = bootstrap(settings)
        await system.start_bus()
        job = system.workers()[name]  # each system's builder names its workers
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=settings.host)
        queues = {"intake": [settings.facts_queue], "epgu-inbox": [settings.geps_inbox_queue]}.get(name, [])
        if name == "smev" and settings.smev_transport == "amqp":
            queues = [settings.smev_in_queue]
        await _until_signalled(_with_queue_depths(job(), system, queues))
        await system.close()

    _use_uvloop()  # as uvicorn does for the servers: the event loop is about a tenth of intake's CPU
    _run(main())


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # not on this platform: the standard loop works the same, a little slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _with_queue_depths(job: Awaitable[None], system: System, queues: list[str], every_s: float = 15.0) -> None:
    """Run ``job``; meanwhile keep ``posog_queue_depth`` of the queues it consumes up to date (queue lag)."""
    import structlog

    from posog.core.metrics import QUEUE_DEPTH

    log_worker = structlog.get_logger("posog.worker")

    async def sample() -> None:
        while True:
            for queue in queues:
                try:
                    QUEUE_DEPTH.labels(queue).set(await system.bus.queue_depth(queue))
                except Exception as exc:  # the broker may be away; the consumer reconnects, so do we
                    log_worker.warning("worker.queue_depth_unavailable", queue=queue, error=type(exc).__name__)
            await asyncio.sleep(every_s)

    sampler = asyncio.create_task(sample()) if queues else None
    try:
        await job
    finally:
        if sampler is not None:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)


async def _until_signalled(job: Awaitable[None]) -> None:
    task = asyncio.ensure_future(job)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@emulate_app.command("smev")
def emulate_smev(
    facts: Annotated[int, typer.Option(min=1, max=100_000_000, help="How many facts to publish")] = 1000,
    rate: Annotated[float | None, typer.Option(min=0.1, help="Facts per second (default: unlimited)")] = None,
    invalid_share: Annotated[float, typer.Option(min=0, max=1, help="Share of deliberately broken facts")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the generator (default: random)")] = None,
    organizations: Annotated[int, typer.Option(min=1, max=100_000, help="How many organisations")] = 200,
    frgu: Annotated[bool, typer.Option("--frgu/--no-frgu", help="Facts carry ФРГУ ids (a tenth without)")] = False,
    through_adapter: Annotated[
        bool,
        typer.Option(help="Send OgFactRequest envelopes to POSOG_SMEV_IN_QUEUE, as the СМЭВ adapter delivers them"),
    ] = False,
) -> None:
    """Publish realistic ОГ facts to the facts queue of the configured RabbitMQ, as СМЭВ delivers them:
    organisations of every type in 25 regions, Russian names, valid СНИЛС/ИНН/ОГРН/КПП. With
    --through-adapter, as the СМЭВ adapter's AMQP interface delivers them (QueryResult envelopes)."""
    from random import SystemRandom

    from posog.bootstrap import bootstrap
    from posog.core.clock import today, utcnow
    from posog.core.operator import progress_bar
    from posog.emulators.datagen.facts import FactFactory
    from posog.emulators.smev import SmevEmulator

    settings = _settings()
    if settings.embedded:
        console.print(
            "[red]POSOG_AMQP_URL is not set: the embedded bus lives inside one process. "
            "Use `posog demo` for the embedded mode, or point POSOG_AMQP_URL at RabbitMQ.[/]"
        )
        raise typer.Exit(2)

    async def main() -> None:
        system = bootstrap(settings)
        try:
            await system.start_bus()
            factory = FactFactory(
                seed=seed if seed is not None else SystemRandom().getrandbits(48),
                today=today(utcnow),
                organizations=organizations,
                frgu=frgu,
            )
            adapter = None
            if through_adapter:
                from posog.emulators.smev_adapter.adapter import SmevAdapterEmulator
                from posog.module.smev.transport import adapter_topology

                adapter = SmevAdapterEmulator(
                    system.bus,
                    mode="amqp",
                    in_queue=settings.smev_in_queue,
                    out_queue=settings.smev_out_queue,
                    it_system=settings.smev_it_system,
                )
                await system.bus.declare(
                    adapter_topology(
                        in_queue=settings.smev_in_queue,
                        out_queue=settings.smev_out_queue,
                        dead_letter_exchange=settings.smev_in_dead_letter_exchange,
                        dead_letter_queue=settings.smev_in_dead_letter_queue,
                    )
                )
            smev = SmevEmulator(system.bus, settings.facts_queue, factory, adapter=adapter)
            with progress_bar(console) as progress:
                where = "СМЭВ → адаптер → очередь ПОС ОГ" if adapter else "СМЭВ → очередь сведений ОГ"
                task = progress.add_task(where, total=facts)
                published = await smev.publish(
                    facts, rate=rate, invalid_share=invalid_share, on_progress=lambda n: progress.advance(task, n)
                )
        finally:
            await system.close()
        console.print(f"Опубликовано: {published.valid} корректных, {published.invalid} с ошибками.")

    _run(main())


@emulate_app.command("citizens")
def emulate_citizens(
    emulators_url: Annotated[str, typer.Option(help="Base URL of the emulators (`posog serve emulators`)")],
    share: Annotated[float, typer.Option(min=0, max=1, help="Share of the notified citizens who answer")] = 0.35,
    since: Annotated[int, typer.Option(min=0, help="Skip the first N notifications of the inbox")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the citizens' choices")] = 1,
) -> None:
    """Citizens read their ЕПГУ inbox, follow the survey links into ЛКП and answer (over HTTP, as a
    browser does)."""
    import httpx

    from posog.core.operator import progress_bar
    from posog.emulators.citizens import CitizenSimulator

    async def main() -> None:
        async with httpx.AsyncClient(timeout=60.0) as http:
            simulator = CitizenSimulator(http, emulators_url, seed=seed)
            try:
                notifications = await simulator.notifications(offset=since)
            except httpx.HTTPError as exc:
                console.print(f"[red]The ЕПГУ emulator at {emulators_url} cannot be read: {exc}[/]")
                raise typer.Exit(2) from None
            with progress_bar(console) as progress:
                task = progress.add_task("Граждане отвечают на опросы", total=round(len(notifications) * share))
                answered = await simulator.run(
                    notifications, share=share, concurrency=concurrency, on_progress=lambda n: progress.advance(task, n)
                )
        console.print(
            f"Ответили: {answered.submitted}; ссылки не открылись: {answered.skipped}; ошибки: {answered.failed}."
        )
        if answered.failed:
            raise typer.Exit(1)

    _run(main())


@app.command()
def demo(
    facts: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many facts the СМЭВ emulator publishes")] = 3000,
    reset: Annotated[bool, typer.Option(help="Start over with an empty database")] = False,
    invalid_share: Annotated[float, typer.Option(min=0, max=0.5, help="Share of deliberately broken facts")] = 0.03,
    answer_share: Annotated[float, typer.Option(min=0, max=1, help="Share of notified citizens who answer")] = 0.35,
    rate: Annotated[float | None, typer.Option(min=1, help="Facts per second (default: as fast as taken)")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    keep_serving: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving after the demo until Ctrl-C (default)")
    ] = True,
) -> None:
    """The whole system on the embedded default, on one local port: facts → links → ГЭПС notifications
    → citizens' answers → analytics → ИАС МКГУ; then the URLs to click through, served until Ctrl-C."""
    from posog.demo import DemoOptions, run_demo
    from posog.settings import Settings

    settings = Settings()
    if settings.env == "production":
        console.print("[red]posog demo creates demo logins with a published password: not in production.[/]")
        raise typer.Exit(2)
    if reset and settings.database_url is None and settings.var_dir.exists():
        shutil.rmtree(settings.var_dir)  # the embedded database and logs only; a configured database is kept
    elif reset:
        console.print("[yellow]--reset очищает только встроенную базу (var/); настроенная база не тронута.[/]")
    log_file = settings.var_dir / "posog.log"
    configure_logging(settings.log_level, json=settings.log_json, file=log_file)
    options = DemoOptions(
        facts=facts,
        invalid_share=invalid_share,
        answer_share=answer_share,
        rate=rate,
        host=host,
        port=port,
        serve=keep_serving,
    )
    code = asyncio.run(run_demo(settings, options, console))
    console.print(f"Журнал работы: {log_file}")
    raise typer.Exit(code)


def main() -> None:
    """The ``posog`` executable: configuration mistakes end with a message naming the setting, not a
    traceback."""
    from posog.core.wiring import ConfigurationError

    try:
        app()
    except ConfigurationError as exc:
        console.print(f"[red]Configuration: {exc}[/]")
        raise SystemExit(2) from None
    except Exception as exc:
        from pydantic import ValidationError  # loaded by then, if the settings were read

        if not isinstance(exc, ValidationError):
            raise
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"])
            console.print(f"[red]Configuration: {where + ': ' if where else ''}{error['msg']}[/]")
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
