"""``posog demo``: the whole system on the embedded default (SQLite, in-process bus), on one local port.

The demo starts the server (every system and emulator, with the workers inside), then plays the
country: the СМЭВ emulator publishes facts, intake issues links, the relay sends ГЭПС notifications into
the ЕПГУ emulator's inbox, simulated citizens follow a share of the links into ЛКП and answer, analytics
refreshes, and the ИАС МКГУ export is sent to its emulator. It prints what happened and the URLs to
click through, and keeps serving until Ctrl-C. Running it again continues with the same organisations
and new citizens; ``--reset`` starts over.

Everything after the start goes through the systems' own paths: the bus, the HTTP pages and APIs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from posog.bootstrap import System, bootstrap
from posog.core.clock import today, utcnow
from posog.core.migrate import upgrade
from posog.emulators.citizens import Answered, CitizenSimulator
from posog.emulators.datagen.facts import FactFactory, Organization
from posog.emulators.epgu.model import InboxNotification
from posog.emulators.smev import Published, SmevEmulator
from posog.lko.accounts.handlers import NewUser, create_user
from posog.lko.accounts.model import CabinetUser
from posog.lko.seed import seed_defaults
from posog.module.ias_export.model import IasExport
from posog.module.intake.model import FactConflict, RejectedFact, ServiceCard
from posog.module.notifications.model import DELIVERY_FAILED, OutboxMessage
from posog.settings import Settings
from posog.web.app import create_web_app, system_apps
from posog.web.server import Server, listening_socket

# The same organisations in every run of the demo (so the cabinet's logins keep their meaning): two of
# every organisation type, spread over 25 regions.
ORGANIZATION_SEED = 2026
ORGANIZATIONS = 50
DEMO_PASSWORD = "demo-demo-demo"  # noqa: S105 — published; `posog demo` refuses to run in production
DEMO_REGION = "77"
STALL_S = 60.0  # no progress for this long while waiting on the workers: give up and say so
SETTLE_S = 3.0  # notifications short of the expected: the inbox unchanged this long means the rest never come


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do (Russian, for the newcomer)."""


@dataclass(frozen=True)
class DemoOptions:
    facts: int = 3000
    invalid_share: float = 0.03
    answer_share: float = 0.35
    rate: float | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    serve: bool = True
    # Facts come through the СМЭВ adapter (its in-process emulator, AMQP interface) unless
    # POSOG_SMEV_TRANSPORT says otherwise; False: the JSON channel of SPEC §3.
    through_adapter: bool = True


@dataclass(frozen=True)
class DemoLogin:
    login: str
    role: str
    scope: str


def demo_settings(settings: Settings, options: DemoOptions) -> Settings:
    """Links must point at this demo's ЛКП, wherever it listens."""
    update: dict[str, Any] = {"lkp_base_url": f"http://{options.host}:{options.port}/lkp"}
    if options.through_adapter and settings.smev_transport == "none":
        update["smev_transport"] = "amqp"
    elif not options.through_adapter:
        update["smev_transport"] = "none"
    return settings.model_copy(update=update)


def demo_factory(*, run_seed: int, first_number: int) -> FactFactory:
    return FactFactory(
        seed=run_seed,
        today=today(utcnow),
        organizations=ORGANIZATIONS,
        organization_seed=ORGANIZATION_SEED,
        first_number=first_number,
        frgu=True,  # the ratings go to ИАС МКГУ under the services' ФРГУ ids (a tenth lack one)
    )


def demo_organization() -> Organization:
    """The organisation whose cabinet user the demo creates (an МФЦ in Moscow)."""
    return demo_factory(run_seed=0, first_number=0).organizations[0]


async def ensure_demo_logins(system: System) -> list[DemoLogin]:
    """One cabinet login per role (created once, kept across runs)."""
    org = demo_organization()
    wanted = [
        (NewUser("demo-federal", DEMO_PASSWORD, "federal", full_name="Федеральный оператор (демо)"), "вся страна"),
        (
            NewUser("demo-region", DEMO_PASSWORD, "regional", region_code=DEMO_REGION, full_name="Оператор Москвы"),
            "регион 77 — г. Москва",
        ),
        (
            NewUser("demo-org", DEMO_PASSWORD, "organization", inn=org.inn, full_name="Сотрудник МФЦ (демо)"),
            f"{org.name}, ИНН {org.inn}",
        ),
    ]
    logins: list[DemoLogin] = []
    for user, scope in wanted:
        async with system.db.uow() as uow:
            exists = await uow.session.scalar(select(CabinetUser.id).where(CabinetUser.login == user.login))
            if exists is None:
                await create_user(uow, user, now=utcnow())
        logins.append(DemoLogin(user.login, user.role, scope))
    return logins


def _listening_socket(host: str, port: int) -> socket.socket:
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise DemoError(
            f"Не удалось занять порт {port} на {host}: {exc.strerror}. Укажите другой: "
            f"make demo ARGS='--port {port + 10}'"
        ) from None
    sock.set_inheritable(True)
    return sock


async def _count(system: System, query: Any) -> int:
    async with system.db.uow() as uow:
        return int(await uow.session.scalar(query) or 0)


async def _processed(system: System) -> int:
    """Facts intake has dealt with: cards, rejections and conflicts."""
    return (
        await _count(system, select(func.count()).select_from(ServiceCard))
        + await _count(system, select(func.count()).select_from(RejectedFact))
        + await _count(system, select(func.count()).select_from(FactConflict))
    )


async def _failed_deliveries(system: System) -> int:
    """ГЭПС notifications ЕПГУ reported as undeliverable (through СМЭВ)."""
    return await _count(
        system,
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivery_status == DELIVERY_FAILED),
    )


async def _wait(
    progress: Progress,
    description: str,
    total: int,
    done: Callable[[], Awaitable[int]],
    *,
    finished: Callable[[int], Awaitable[bool]] | None = None,
) -> None:
    """Advance a bar from ``done()`` until it reaches ``total`` — or, given ``finished``, until that says
    the work is over (``total`` is then only what is expected at most). Stalls fail."""
    task = progress.add_task(description, total=total)
    last, last_change = -1, time.monotonic()
    while True:
        current = await done()
        progress.update(task, completed=min(current, total))
        if finished is not None and await finished(current):
            progress.update(task, total=current, completed=current)
            return
        if finished is None and current >= total:
            return
        if current != last:
            last, last_change = current, time.monotonic()
        elif time.monotonic() - last_change > STALL_S:
            raise DemoError(f"«{description}»: нет движения {STALL_S:.0f} с ({current} из {total}); см. журнал")
        await asyncio.sleep(0.2)


@dataclass
class RunReport:
    published: Published
    answered: Answered
    totals: dict[str, int]
    analytics: dict[str, Any]
    ias: list[IasExport]


async def play(system: System, options: DemoOptions, console: Console, base_url: str) -> RunReport:
    """One run of the country through the running server: facts, links, notifications, answers,
    analytics, the ИАС export."""
    settings = system.settings
    processed_before = await _processed(system)
    inbox_before = await _count(system, select(func.count()).select_from(InboxNotification))
    failed_before = await _failed_deliveries(system)
    factory = demo_factory(run_seed=1000 + processed_before, first_number=processed_before)
    adapter = system.smev_adapter if settings.smev_transport != "none" else None
    smev = SmevEmulator(system.bus, settings.facts_queue, factory, adapter=adapter)
    answers_before = adapter.answer_count() if adapter is not None else 0
    columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    async with httpx.AsyncClient(timeout=60.0) as http:
        citizens = CitizenSimulator(http, f"{base_url}/emulators", seed=processed_before)
        with Progress(*columns, console=console) as progress:
            route = "СМЭВ → адаптер → ПОС ОГ" if adapter is not None else "СМЭВ → очередь сведений ОГ"
            publishing = progress.add_task(route, total=options.facts)
            published = await smev.publish(
                options.facts,
                rate=options.rate,
                invalid_share=options.invalid_share,
                on_progress=lambda n: progress.advance(publishing, n),
            )

            async def processed() -> int:
                return await _processed(system) - processed_before

            await _wait(progress, "Приём: карточки и ссылки", options.facts, processed)
            if adapter is not None:

                async def answers() -> int:
                    return adapter.answer_count() - answers_before

                await _wait(progress, "Ответы отправителям (адаптер)", options.facts, answers)

            async def unsent() -> int:
                return await _count(
                    system,
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.sent_at.is_(None), OutboxMessage.dead_at.is_(None)),
                )

            async def delivered() -> int:
                """In the inbox, or known undeliverable: through СМЭВ, ЕПГУ answers an error for a citizen
                without an account there, and that notification never reaches an inbox."""
                inbox = await _count(system, select(func.count()).select_from(InboxNotification)) - inbox_before
                return inbox + await _failed_deliveries(system) - failed_before

            # At most every notification the outbox holds that the inbox does not have yet.
            expected = max(0, await _notifications_due(system) - inbox_before)
            seen = [-1, time.monotonic()]  # the last count, and since when

            async def all_delivered(current: int) -> bool:
                """Every notification due is in the inbox — or nothing is left to send, nothing is waiting on
                the bus, and the inbox has not grown for SETTLE_S (the queue's depth does not count a
                message a consumer holds: a short pause alone does not mean the end)."""
                if current >= expected:
                    return True
                if current != seen[0]:
                    seen[0], seen[1] = current, time.monotonic()
                    return False
                if time.monotonic() - seen[1] < SETTLE_S:
                    return False
                return await unsent() == 0 and await system.bus.queue_depth(settings.geps_inbox_queue) == 0

            await _wait(progress, "ГЭПС → личные кабинеты ЕПГУ", expected, delivered, finished=all_delivered)

            notifications = await citizens.notifications(offset=inbox_before)
            chosen = round(len(notifications) * options.answer_share)
            answering = progress.add_task("Граждане отвечают на опросы", total=chosen)
            answered = await citizens.run(
                notifications, share=options.answer_share, on_progress=lambda n: progress.advance(answering, n)
            )

            refreshing = progress.add_task("Аналитика: пересчёт показателей", total=1)
            await system.analytics.pipeline.poll_once()
            progress.advance(refreshing)

            exporting = progress.add_task("Выгрузка в ИАС МКГУ", total=2)
            exporter = system.ias_exporter()
            day = today(utcnow)
            period = (day - timedelta(days=factory.horizon_days), day - timedelta(days=1))
            sent: list[IasExport] = []
            for kind in ("aggregates", "rates"):
                sent.append(await exporter.export(kind, *period))
                progress.advance(exporting)
            for _ in range(2):  # ИАС answers "received" first, then accepted or refused
                await exporter.ask_now(sent[-1].batch_id)

        summary = await http.get(
            f"{base_url}/analytics/api/v1/analytics/summary",
            headers={"Authorization": f"Bearer {settings.service_keys['lko'].get_secret_value()}"},
        )
        analytics = summary.json() if summary.status_code == 200 else {}
    totals = {
        "undelivered": await _failed_deliveries(system) - failed_before,
        "cards": await _count(system, select(func.count()).select_from(ServiceCard)),
        "rejected": await _count(system, select(func.count()).select_from(RejectedFact)),
        "notifications": await _count(system, select(func.count()).select_from(InboxNotification)),
    }
    if adapter is not None:
        totals["answers"] = adapter.answer_count() - answers_before
    return RunReport(published, answered, totals, analytics, sent)


async def _notifications_due(system: System) -> int:
    """Notifications the outbox holds in all (each goes to the inbox once)."""
    return await _count(system, select(func.count()).select_from(OutboxMessage))  # message_id is unique


def _print_report(console: Console, report: RunReport, options: DemoOptions) -> None:
    table = Table(title="ПОС ОГ — что произошло в этом запуске")
    table.add_column("этап")
    table.add_column("сколько", justify="right")
    table.add_row("Сведения ОГ опубликованы (корректные)", str(report.published.valid))
    table.add_row("Сведения ОГ с ошибками (отклонены)", str(report.published.invalid))
    if "answers" in report.totals:
        table.add_row("Ответы отправителям через адаптер СМЭВ", str(report.totals["answers"]))
    if report.totals.get("undelivered"):
        table.add_row("Уведомления ГЭПС не доставлены (нет учётной записи ЕПГУ)", str(report.totals["undelivered"]))
    table.add_row("Граждане ответили на опрос", str(report.answered.submitted))
    if report.answered.skipped or report.answered.failed:
        table.add_row("Ссылки не открылись / ошибки", f"{report.answered.skipped} / {report.answered.failed}")
    table.add_row("[dim]Всего карточек услуг[/]", str(report.totals["cards"]))
    table.add_row("[dim]Всего уведомлений в ЕПГУ[/]", str(report.totals["notifications"]))
    table.add_row("[dim]Всего отклонённых сведений[/]", str(report.totals["rejected"]))
    figures = report.analytics
    if figures:
        table.add_row("[dim]Ответов в аналитике (вся страна)[/]", str(figures.get("responses")))
        index = figures.get("satisfaction_index")
        table.add_row("[dim]Индекс удовлетворённости (страна)[/]", "—" if index is None else f"{index:.3f}")
    for row in report.ias:
        status = {"sent": "передан", "pending": "ожидает повтора", "failed": "ошибка"}.get(row.status, row.status)
        table.add_row(f"ИАС МКГУ: пакет {row.batch_id}", status)
        if row.kind == "rates":
            table.add_row(
                "ИАС МКГУ: оценок передано / не отправлено (posog export unsendable)", f"{row.items} / {row.unsendable}"
            )
    console.print(table)


def _print_urls(console: Console, base_url: str, logins: list[DemoLogin], settings: Settings) -> None:
    console.print("[bold]Откройте в браузере:[/]")
    for label, url in (
        ("ЕПГУ — личные кабинеты граждан и уведомления со ссылками на опрос", f"{base_url}/emulators/epgu/"),
        ("ЛКО — кабинет организации: анкеты, ответы, отчёты и рейтинги", f"{base_url}/lko/"),
        ("ИАС МКГУ — полученные пакеты", f"{base_url}/emulators/ias/"),
        ("Адаптер СМЭВ — ответы ПОС ОГ отправителям сведений", f"{base_url}/emulators/smev-adapter/"),
        ("Все системы ПОС ОГ", f"{base_url}/"),
    ):
        console.print(f"  {label}:\n    {url}", soft_wrap=True)
    people = Table(title=f"Входы в ЛКО (пароль у всех: {DEMO_PASSWORD})")
    for column in ("логин", "роль", "что видит"):
        people.add_column(column, overflow="fold")
    roles = {"federal": "федеральный оператор", "regional": "региональный оператор", "organization": "организация"}
    for login in logins:
        people.add_row(login.login, roles[login.role], login.scope)
    console.print(people)
    key = settings.service_keys["lko"].get_secret_value()
    console.print("API аналитики (ключ разработки):")
    console.print(
        f"  curl -H 'Authorization: Bearer {key}' {base_url}/analytics/api/v1/analytics/summary", soft_wrap=True
    )


async def run_demo(settings: Settings, options: DemoOptions, console: Console) -> int:
    """The demo; returns the process's exit code."""
    settings = demo_settings(settings, options)
    base_url = f"http://{options.host}:{options.port}"
    try:
        sock = _listening_socket(options.host, options.port)
    except DemoError as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    system = bootstrap(settings)
    with console.status("База данных: схема, справочник типов организаций, анкеты, входы в ЛКО"):
        await upgrade(settings.resolved_database_url)
        await seed_defaults(system.db)
        logins = await ensure_demo_logins(system)
    web = create_web_app(system, serve=list(system_apps(system)), run_workers=True)
    server = Server(uvicorn.Config(web, log_config=None, lifespan="on", access_log=False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="server")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    code = 0
    try:
        while not server.started:
            if serving.done() or stop.is_set():
                raise DemoError("Сервер не запустился; см. журнал var/posog.log")
            await asyncio.sleep(0.05)
        console.print(f"Сервер ПОС ОГ запущен: [bold]{base_url}/[/]")
        flow = asyncio.create_task(play(system, options, console, base_url), name="demo")
        await asyncio.wait({flow, stopping, serving}, return_when=asyncio.FIRST_COMPLETED)
        if not flow.done():
            flow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flow
            console.print("[yellow]Остановлено до конца демонстрации; повторный запуск продолжит.[/]")
        else:
            _print_report(console, flow.result(), options)
            _print_urls(console, base_url, logins, settings)
            if options.serve and not stop.is_set():
                console.print("[bold green]Демонстрация готова.[/] Сервер работает; Ctrl-C — остановить.")
                await asyncio.wait({stopping, serving}, return_when=asyncio.FIRST_COMPLETED)
    except DemoError as exc:
        console.print(f"[red]{exc}[/]")
        code = 1
    finally:
        server.should_exit = True
        stopping.cancel()
        await asyncio.gather(serving, stopping, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        sock.close()
    console.print("Сервер остановлен.")
    return code
