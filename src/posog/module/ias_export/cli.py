"""``posog export …``: an operator sends a period's batches to ИАС МКГУ now and reads the export log
(SPEC §9): the batches, the RatesRequest packets with ИАС's packet ids and statuses, the ratings that
could not be sent with the reason, the form the ratings are mapped with. Like every operator command, it
works on a database already migrated (``posog db upgrade``).

Exposed as :data:`export_app`; the main CLI registers it as the ``export`` group."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from posog.module.wiring import COMMANDS

if TYPE_CHECKING:
    from rich.table import Table

    from posog.module.ias_export.model import IasExport
    from posog.settings import Settings

export_app = typer.Typer(help="Export to ИАС МКГУ (SPEC §9).", no_args_is_help=True)


def console() -> Console:
    """Where a command prints: made when it prints, so the tables take the terminal's width (or
    COLUMNS) of that moment — a module-level console keeps the width of whatever imported it first,
    and folds the packets' ids in a narrow one."""
    return Console()


STATUS_NAMES = {"pending": "[yellow]ожидает повтора[/]", "sent": "[green]передан[/]", "failed": "[red]ошибка[/]"}


def require_ias_url(settings: Settings) -> None:
    """In production the export goes to the real ИАС МКГУ, never to the built-in emulator."""
    if settings.env == "production" and not settings.ias_url:
        console().print("[red]POSOG_IAS_URL is not set: in production the export goes to the real ИАС МКГУ.[/]")
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


def _export_table(rows: Sequence[IasExport], title: str) -> Table:
    from rich.table import Table

    from posog.core.russian import moscow_time, numeric_date

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
    from posog.module.ias_export.handlers import ExportError, Kind
    from posog.module.ias_export.model import PENDING
    from posog.settings import Settings

    require_ias_url(Settings())

    async def main() -> None:
        from posog.module.ias_export import tables  # the export's model, loaded by its commands only

        failed = False
        async with COMMANDS.open() as commands:
            exporter = commands.module.ias_exporter()
            for name in kinds:
                chosen: Kind = "aggregates" if name == "aggregates" else "rates"
                try:
                    row = await exporter.export(chosen, date_from, date_to)
                except ExportError as exc:
                    console().print(f"[red]Не удалось собрать пакет: {exc}[/]")
                    failed = True
                    continue
                if wait and row.status == PENDING:
                    row = await exporter.settle(row.batch_id)
                if wait and row.kind == "rates":  # and ask the packets' statuses until final
                    settled = await exporter.settle_packets(row.batch_id)
                    failed = failed or any(p.state in ("refused", "failed") for p in settled)
                failed = failed or row.status == "failed"
            rows = await exporter.log(limit=50)
            packets = await exporter.packets([r.batch_id for r in rows if r.kind == "rates"])
        console().print(_export_table(rows, "Журнал выгрузок в ИАС МКГУ"))
        console().print(tables.packets_table(packets))
        if failed:
            raise typer.Exit(1)

    asyncio.run(main())


@export_app.command("log")
def export_log(limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """The export log, the newest batches first."""

    async def main() -> None:
        from posog.module.ias_export import tables  # the export's model, loaded by its commands only

        async with COMMANDS.open() as commands:
            exporter = commands.module.ias_exporter()
            rows = await exporter.log(limit=limit)
            packets = await exporter.packets([r.batch_id for r in rows if r.kind == "rates"])
            unsendable = await exporter.unsendable_counts()
        console().print(_export_table(rows, "Журнал выгрузок в ИАС МКГУ"))
        console().print(tables.packets_table(packets))
        total = sum(unsendable.values())
        if total:
            console().print(f"[red]Не отправлено оценок: {total}[/] — список с причинами: posog export unsendable")

    asyncio.run(main())


@export_app.command("rebuild")
def export_rebuild(
    batch: Annotated[str, typer.Argument(help="A rates batch (posog-rates-YYYYMMDD-YYYYMMDD)")],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Send the new packets now and ask their statuses until final")
    ] = False,
) -> None:
    """Make the packets ИАС МКГУ refused (or the channel refused for good) again from today's data and
    form — after posog export forms --refresh or a corrected directory — and send them under new ids."""
    from posog.module.ias_export.handlers import ExportError

    async def main() -> None:
        from posog.module.ias_export import tables  # the export's model, loaded by its commands only

        async with COMMANDS.open() as commands:
            exporter = commands.module.ias_exporter()
            try:
                rebuilt = await exporter.rebuild(batch)
            except KeyError:
                console().print(f"[red]Нет такой выгрузки: {batch}[/] — список: posog export log")
                raise typer.Exit(2) from None
            except (ValueError, ExportError) as exc:
                console().print(f"[red]Не удалось пересобрать: {exc}[/]")
                raise typer.Exit(1) from None
            if not rebuilt.replaced:
                console().print("Отклонённых пакетов нет: пересобирать нечего.")
            else:
                console().print(
                    f"Пересобрано пакетов: {len(rebuilt.replaced)} → новые: {', '.join(rebuilt.packets) or 'нет'}"
                )
                if rebuilt.unsendable:
                    console().print(
                        f"[red]Не может быть отправлено оценок: {rebuilt.unsendable}[/] — posog export unsendable"
                    )
            if wait and rebuilt.packets:
                await exporter.settle(batch)
                await exporter.settle_packets(batch)
            packets = await exporter.packets([batch])
        console().print(tables.packets_table(packets))

    asyncio.run(main())


@export_app.command("unsendable")
def export_unsendable(
    batch: Annotated[str | None, typer.Option(help="Only this batch (posog-rates-YYYYMMDD-YYYYMMDD)")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The ratings that could not be sent to ИАС МКГУ, each with the reason (no ФРГУ ids, no ОКАТО…)."""

    async def main() -> None:
        from posog.module.ias_export import tables  # the export's model, loaded by its commands only

        async with COMMANDS.open() as commands:
            exporter = commands.module.ias_exporter()
            rows, counts = await exporter.unsendable(batch, limit=limit), await exporter.unsendable_counts()
        if as_json:
            items = [{"batch_id": r.batch_id, "foreign_id": r.foreign_id, "reason": r.reason} for r in rows]
            typer.echo(json.dumps({"total": sum(counts.values()), "reasons": counts, "items": items}))
            return
        console().print(tables.unsendable_table(rows, counts))

    asyncio.run(main())


@export_app.command("forms")
def export_forms(
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask ИАС for its forms first and keep them")] = False,
) -> None:
    """The ИАС form the ratings are sent with: each criterion's indicator id and value ids."""
    from posog.module.ias_export.forms import FormError

    async def main() -> None:
        from posog.module.ias_export import tables  # the export's model, loaded by its commands only

        async with COMMANDS.open() as commands:
            exporter = commands.module.ias_exporter()
            try:
                if refresh:
                    names = await exporter.forms.refresh(commands.module.ias_http)
                    console().print(f"Формы ИАС получены: {', '.join(names)}")
                current = await exporter.forms.current()
            except FormError as exc:
                console().print(f"[red]Форма ИАС: {exc}[/]")
                raise typer.Exit(1) from None
        console().print(tables.form_table(current))

    asyncio.run(main())
