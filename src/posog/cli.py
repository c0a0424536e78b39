"""``posog`` — the one entry point (SPEC §11)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func, select

from posog.analytics.cli import AnalyticsRuntime, analytics_app, provide_runtime
from posog.bootstrap import System, bootstrap
from posog.core.logging import configure_logging
from posog.core.migrate import upgrade
from posog.core.outbox_cli import outbox_app
from posog.core.russian import moscow_time, numeric_date
from posog.emulators.epgu.model import InboxNotification
from posog.lko.accounts.cli import users_app
from posog.lko.questionnaires.announcements import ANNOUNCEMENTS, AnnouncementRelay
from posog.lko.responses.handlers import CompletionRecovery
from posog.lko.responses.model import COMPLETIONS
from posog.lko.seed import seed_defaults
from posog.module.client import ModuleClient
from posog.module.ias_export.handlers import ExportError, Kind
from posog.module.ias_export.model import IAS_EXPORTS, PENDING, IasExport
from posog.module.intake.handlers import IntakeStats, RawFact
from posog.module.intake.model import RejectedFact
from posog.module.links.cli import links_app
from posog.module.notifications.model import GEPS, OutboxMessage
from posog.module.retention import PURGED
from posog.settings import Settings

app = typer.Typer(help="ПОС ОГ — оценка качества государственных и муниципальных услуг.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
facts_app = typer.Typer(help="Rejected facts: list, inspect, re-drive.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(facts_app, name="facts")
app.add_typer(analytics_app, name="analytics")
export_app = typer.Typer(help="Export to ИАС МКГУ (SPEC §9).", no_args_is_help=True)
app.add_typer(export_app, name="export")
app.add_typer(users_app, name="users")
app.add_typer(links_app, name="links")
app.add_typer(outbox_app([GEPS, ANNOUNCEMENTS, IAS_EXPORTS, COMPLETIONS]), name="outbox")
emulate_app = typer.Typer(help="Emulators of the neighbouring systems: СМЭВ (facts), citizens.", no_args_is_help=True)
app.add_typer(emulate_app, name="emulate")
console = Console()
log_worker = structlog.get_logger("posog.worker")


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _run(main: Coroutine[Any, Any, None]) -> None:
    asyncio.run(main)


async def _prepared(settings: Settings) -> System:
    """Migrated, seeded and wired."""
    system = bootstrap(settings)
    await upgrade(settings.resolved_database_url)
    await seed_defaults(system.db)
    return system


async def _analytics_runtime(settings: Settings) -> AnalyticsRuntime:
    system = await _prepared(settings)
    return AnalyticsRuntime(system.db, system.analytics, system.close)


provide_runtime(_analytics_runtime)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration and seed the built-in directory and default questionnaires."""

    async def main() -> None:
        system = await _prepared(_settings())
        await system.close()
        console.print("[green]Schema is up to date; directory and default questionnaires seeded.[/]")

    _run(main())


@app.command()
def ingest(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON Lines, one fact a line")
    ],
    batch: Annotated[int, typer.Option(min=1, max=5000)] = 500,
) -> None:
    """Feed a file of ОГ facts through the same handler as the queue, with a progress bar."""

    async def main() -> None:
        system = await _prepared(_settings())
        stats = IntakeStats()
        total = sum(1 for line in file.open("rb") if line.strip())
        try:
            with _progress() as progress:
                task = progress.add_task("Приём сведений", total=total)
                chunk: list[RawFact] = []
                with file.open("rb") as stream:
                    for line_no, line in enumerate(stream, start=1):
                        if not line.strip():
                            continue
                        chunk.append(RawFact(line.strip(), f"{file.name}:{line_no}"))
                        if len(chunk) >= batch:
                            stats.add(await system.intake.handle(chunk))
                            progress.advance(task, len(chunk))
                            chunk = []
                if chunk:
                    stats.add(await system.intake.handle(chunk))
                    progress.advance(task, len(chunk))
            await _deliver_if_embedded(system)
        finally:
            await system.close()
        _print_stats(stats)

    _run(main())


async def _deliver_if_embedded(system: System) -> None:
    """In production the outbox worker delivers what this command committed. Embedded, nobody else
    will: relay the outbox now into the ЕПГУ inbox through the in-process bus, until it is empty."""
    if not system.settings.embedded:
        return
    await system.start_bus()
    inbox = asyncio.create_task(system.inbox.consume(system.bus, system.settings.geps_inbox_queue))
    try:
        while await system.relay.relay_once():
            pass
        async with system.db.uow() as uow:
            sent = await uow.session.scalar(
                select(func.count(func.distinct(OutboxMessage.message_id))).where(OutboxMessage.sent_at.is_not(None))
            )
        for _ in range(200):  # until the inbox has committed what was sent (10 s at most)
            async with system.db.uow() as uow:
                received = await uow.session.scalar(select(func.count()).select_from(InboxNotification))
            if (received or 0) >= (sent or 0):
                break
            await asyncio.sleep(0.05)
    finally:
        inbox.cancel()
        await asyncio.gather(inbox, return_exceptions=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _print_stats(stats: IntakeStats) -> None:
    table = Table(title="Итоги приёма")
    table.add_column("результат")
    table.add_column("количество", justify="right")
    for label, value in (
        ("принято", stats.accepted),
        ("повторы", stats.duplicate),
        ("конфликты", stats.conflict),
        ("отклонено", stats.rejected),
    ):
        table.add_row(label, str(value))
    console.print(table)
    if stats.by_reason:
        reasons = Table(title="Причины отклонения")
        reasons.add_column("поле: причина")
        reasons.add_column("количество", justify="right")
        for reason, count in sorted(stats.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            reasons.add_row(reason, str(count))
        console.print(reasons)


@facts_app.command("rejected")
def facts_rejected(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    status: Annotated[str, typer.Option(help="rejected | redriven | all")] = "rejected",
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """List rejected facts with their reasons (no personal data is shown)."""

    async def main() -> None:
        system = await _prepared(_settings())
        try:
            async with system.db.uow() as uow:
                query = select(RejectedFact).order_by(RejectedFact.received_at.desc()).limit(limit)
                if status != "all":
                    query = query.where(RejectedFact.status == status)
                rows = (await uow.session.execute(query)).scalars().all()
                total = await uow.session.scalar(select(func.count()).select_from(RejectedFact))
        finally:
            await system.close()
        items: list[dict[str, Any]] = [
            {
                "id": r.id,
                "card_id": r.card_id,
                "message_id": r.message_id,
                "status": r.status,
                "attempts": r.attempts,
                "received_at": r.received_at.isoformat(),
                "reasons": [f"{x['field']}: {x['reason']}" for x in r.reasons],
            }
            for r in rows
        ]
        if as_json:
            typer.echo(json.dumps({"total": total, "items": items}, ensure_ascii=False, indent=2))
            return
        table = Table(title=f"Отклонённые сведения ({len(items)} из {total})")
        for column in ("id", "card_id", "status", "attempts", "reasons"):
            # Fold, never truncate: the ids are what an operator copies into show/redrive.
            table.add_column(column, overflow="fold")
        for item in items:
            table.add_row(
                item["id"],
                item["card_id"] or "—",
                item["status"],
                str(item["attempts"]),
                "\n".join(item["reasons"]),
            )
        console.print(table)

    _run(main())


@facts_app.command("show")
def facts_show(
    rejected_id: Annotated[str, typer.Argument(help="Id from 'posog facts rejected'")],
    reveal: Annotated[bool, typer.Option(help="Print the whole payload, personal data included (audited use)")] = False,
) -> None:
    """One rejected fact: reasons and the payload with personal data masked (unless --reveal)."""

    async def main() -> None:
        system = await _prepared(_settings())
        try:
            async with system.db.uow() as uow:
                row = await uow.session.get(RejectedFact, rejected_id)
            if row is None:
                console.print(f"[red]No rejected fact {rejected_id}[/]")
                raise typer.Exit(2)
            raw = (
                b""
                if row.status == PURGED
                else system.cipher.open(row.pii_key_id, row.payload, context=f"rejected:{row.raw_hash}")
            )
        finally:
            await system.close()
        console.print(f"[bold]{row.id}[/] card_id={row.card_id} status={row.status} attempts={row.attempts}")
        for reason in row.reasons:
            console.print(f"  • {reason['field']}: {reason['reason']}")
        if row.status == PURGED:
            console.print("The payload was erased after the retention period (POSOG_PII_RETENTION_DAYS).")
            return
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        if not reveal and isinstance(payload, dict) and isinstance(payload.get("citizen"), dict):
            payload["citizen"] = {k: "***" for k in payload["citizen"]}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2) if not isinstance(payload, str) else payload)

    _run(main())


@facts_app.command("redrive")
def facts_redrive(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids from 'posog facts rejected'")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every fact still rejected")] = False,
) -> None:
    """Feed rejected facts through intake again (after the cause was fixed)."""

    async def main() -> None:
        system = await _prepared(_settings())
        try:
            chosen = list(ids or [])
            if all_:
                async with system.db.uow() as uow:
                    chosen = list(
                        (await uow.session.execute(select(RejectedFact.id).where(RejectedFact.status == "rejected")))
                        .scalars()
                        .all()
                    )
            if not chosen:
                console.print("Nothing to re-drive: give ids or --all.")
                raise typer.Exit(2)
            async with system.db.uow() as uow:
                purged = list(
                    (
                        await uow.session.scalars(
                            select(RejectedFact.id).where(RejectedFact.id.in_(chosen), RejectedFact.status == PURGED)
                        )
                    ).all()
                )
            if purged:
                console.print(
                    f"[red]Cannot re-drive {', '.join(purged)}: the payload was erased after the retention period.[/]"
                )
                raise typer.Exit(2)
            try:
                outcomes = await system.intake.redrive(chosen)
            except KeyError as exc:
                console.print(f"[red]Unknown rejected fact id(s): {exc.args[0]}[/]")
                raise typer.Exit(2) from None
            await _deliver_if_embedded(system)
        finally:
            await system.close()
        for rejected_id, outcome in zip(chosen, outcomes, strict=True):
            detail = "; ".join(str(p) for p in outcome.problems)
            console.print(f"{rejected_id}: {outcome.kind} {detail}")

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
        await upgrade(settings.resolved_database_url)
        await seed_defaults(system.db)
    await system.db.engine.dispose()  # the server runs its own event loop; no connection may outlive this one


WORKERS = (
    "intake",
    "outbox",
    "epgu-inbox",
    "analytics",
    "lko-completions",
    "ias-export",
    "pii-purge",
    "lko-announcements",
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
        _require_ias_url(settings)

    async def main() -> None:
        system = bootstrap(settings)
        await system.start_bus()
        jobs: dict[str, Callable[[], Awaitable[None]]] = {
            "intake": lambda: system.intake_consumer().run(),
            "outbox": system.relay.run,
            "epgu-inbox": lambda: system.inbox.consume(system.bus, settings.geps_inbox_queue),
            "analytics": system.analytics.run,
            # ЛКО: re-send link completions left pending by a crash or an unreachable module.
            "lko-completions": CompletionRecovery.from_settings(
                system.db, ModuleClient(system.module_http_for_lko), settings
            ).run_forever,
            # ЛКО: re-send the publication announcements the module missed (ЛКО's servers do it too).
            "lko-announcements": lambda: AnnouncementRelay.from_settings(
                system.db, ModuleClient(system.module_http_for_lko), settings, clock=system.clock
            ).run(settings.announcement_retry_s),
            # The module: yesterday's and last month's batches for ИАС МКГУ, and the pending retries.
            "ias-export": system.ias_schedule().run,
            # The module: personal data erased after the link's life plus the retention (SPEC §10).
            "pii-purge": lambda: system.pii_purger().run(settings.pii_purge_interval_s),
        }
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=settings.host)
        queues = {"intake": [settings.facts_queue], "epgu-inbox": [settings.geps_inbox_queue]}.get(name, [])
        await _until_signalled(_with_queue_depths(jobs[name](), system, queues))
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
    from posog.core.metrics import QUEUE_DEPTH

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


def _require_ias_url(settings: Settings) -> None:
    """In production the export goes to the real ИАС МКГУ, never to the built-in emulator."""
    if settings.env == "production" and not settings.ias_url:
        console.print("[red]POSOG_IAS_URL is not set: in production the export goes to the real ИАС МКГУ.[/]")
        raise typer.Exit(2)


def _period(value: str) -> tuple[date, date]:
    try:
        start, _, end = value.partition("..")
        date_from, date_to = date.fromisoformat(start), date.fromisoformat(end or start)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD..YYYY-MM-DD") from None
    if date_from > date_to:
        raise typer.BadParameter("the period's start is after its end")
    return date_from, date_to


STATUS_NAMES = {"pending": "[yellow]ожидает повтора[/]", "sent": "[green]передан[/]", "failed": "[red]ошибка[/]"}


def _export_table(rows: Sequence[IasExport], title: str) -> Table:
    table = Table(title=title)
    for column in ("пакет", "вид", "период", "статус", "попыток", "след. попытка", "передан", "байт", "ошибка"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.batch_id,
            row.kind,
            f"{numeric_date(row.period_from)}–{numeric_date(row.period_to)}",
            STATUS_NAMES.get(row.status, row.status),
            str(row.attempts),
            moscow_time(row.next_attempt_at, seconds=True) if row.next_attempt_at else "—",
            moscow_time(row.sent_at, seconds=True) if row.sent_at else "—",
            str(row.payload_size),
            row.last_error or "",
        )
    return table


@export_app.command("ias")
def export_ias(
    period: Annotated[str, typer.Option(help="Service dates YYYY-MM-DD..YYYY-MM-DD (inclusive)")],
    kind: Annotated[list[str] | None, typer.Option(help="aggregates | rates (repeatable; default both)")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Keep retrying here until sent or failed (else the worker does)")
    ] = False,
) -> None:
    """Send a period's batches to ИАС МКГУ now (a batch already sent is re-sent idempotently) and print
    the export log."""
    date_from, date_to = _period(period)
    kinds = kind or ["aggregates", "rates"]
    unknown = [k for k in kinds if k not in ("aggregates", "rates")]
    if unknown:
        raise typer.BadParameter(f"unknown kind(s): {', '.join(unknown)}; choose aggregates or rates")

    settings = _settings()
    _require_ias_url(settings)

    async def main() -> None:
        system = await _prepared(settings)
        failed = False
        try:
            exporter = system.ias_exporter()
            for name in kinds:
                chosen: Kind = "aggregates" if name == "aggregates" else "rates"
                try:
                    row = await exporter.export(chosen, date_from, date_to)
                except ExportError as exc:
                    console.print(f"[red]Не удалось собрать пакет: {exc}[/]")
                    failed = True
                    continue
                if wait and row.status == PENDING:
                    row = await exporter.settle(row.batch_id)
                failed = failed or row.status == "failed"
            rows = await exporter.log(limit=50)
        finally:
            await system.close()
        console.print(_export_table(rows, "Журнал выгрузок в ИАС МКГУ"))
        if failed:
            raise typer.Exit(1)

    _run(main())


@export_app.command("log")
def export_log(limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """The export log, the newest batches first."""

    async def main() -> None:
        system = await _prepared(_settings())
        try:
            rows = await system.ias_exporter().log(limit=limit)
        finally:
            await system.close()
        console.print(_export_table(rows, "Журнал выгрузок в ИАС МКГУ"))

    _run(main())


async def _until_signalled(job: Awaitable[None]) -> None:
    task = asyncio.ensure_future(job)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


pii_app = typer.Typer(help="Personal data: erase what is past its retention (SPEC §10).", no_args_is_help=True)
app.add_typer(pii_app, name="pii")


@pii_app.command("purge")
def pii_purge() -> None:
    """Erase now the personal data past the link's life plus POSOG_PII_RETENTION_DAYS (the pii-purge
    worker does this every POSOG_PII_PURGE_INTERVAL_S)."""

    async def main() -> None:
        system = await _prepared(_settings())
        try:
            result = await system.pii_purger().purge_once()
        finally:
            await system.close()
        table = Table(title=f"Удалено по истечении срока хранения ({system.settings.pii_retention_days} дн.)")
        table.add_column("что")
        table.add_column("сколько", justify="right")
        table.add_row("Карточки: ФИО, дата рождения, СНИЛС стёрты", str(result.cards))
        table.add_row("Отправленные уведомления ГЭПС удалены", str(result.notifications))
        table.add_row("Отклонённые сведения: содержимое стёрто", str(result.rejected))
        table.add_row("Записи о конфликтах удалены", str(result.conflicts))
        console.print(table)

    _run(main())


@emulate_app.command("smev")
def emulate_smev(
    facts: Annotated[int, typer.Option(min=1, max=100_000_000, help="How many facts to publish")] = 1000,
    rate: Annotated[float | None, typer.Option(min=0.1, help="Facts per second (default: unlimited)")] = None,
    invalid_share: Annotated[float, typer.Option(min=0, max=1, help="Share of deliberately broken facts")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the generator (default: random)")] = None,
    organizations: Annotated[int, typer.Option(min=1, max=100_000, help="How many organisations")] = 200,
) -> None:
    """Publish realistic ОГ facts to the facts queue of the configured RabbitMQ, as СМЭВ delivers them:
    organisations of every type in 25 regions, Russian names, valid СНИЛС/ИНН/ОГРН/КПП."""
    from random import SystemRandom

    from posog.core.clock import today, utcnow
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
            )
            smev = SmevEmulator(system.bus, settings.facts_queue, factory)
            with _progress() as progress:
                task = progress.add_task("СМЭВ → очередь сведений ОГ", total=facts)
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

    from posog.emulators.citizens import CitizenSimulator

    async def main() -> None:
        async with httpx.AsyncClient(timeout=60.0) as http:
            simulator = CitizenSimulator(http, emulators_url, seed=seed)
            try:
                notifications = await simulator.notifications(offset=since)
            except httpx.HTTPError as exc:
                console.print(f"[red]The ЕПГУ emulator at {emulators_url} cannot be read: {exc}[/]")
                raise typer.Exit(2) from None
            with _progress() as progress:
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
    from pydantic import ValidationError

    from posog.bootstrap import ConfigurationError

    try:
        app()
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"])
            console.print(f"[red]Configuration: {where + ': ' if where else ''}{error['msg']}[/]")
        raise SystemExit(2) from None
    except ConfigurationError as exc:
        console.print(f"[red]Configuration: {exc}[/]")
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
