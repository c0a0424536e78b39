"""``posog ingest FILE`` and ``posog facts …``: an operator feeds a file of ОГ facts through intake, and
lists, inspects and re-drives the rejected ones. Like every operator command, they work on a database
already migrated (``posog db upgrade``).

Exposed as :func:`ingest` and :data:`facts_app`; the main CLI registers them. What they import beyond
Typer is imported when they run (``posog --help`` stays quick)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from posog.module.wiring import COMMANDS

if TYPE_CHECKING:
    from posog.module.intake.handlers import IntakeStats

facts_app = typer.Typer(help="Rejected facts: list, inspect, re-drive.", no_args_is_help=True)
console = Console()


def ingest(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON Lines, one fact a line")
    ],
    batch: Annotated[int, typer.Option(min=1, max=5000)] = 500,
) -> None:
    """Feed a file of ОГ facts through the same handler as the queue, with a progress bar."""
    from posog.core.operator import progress_bar
    from posog.module.intake.handlers import IntakeStats, RawFact

    async def main() -> None:
        stats = IntakeStats()
        total = sum(1 for line in file.open("rb") if line.strip())
        async with COMMANDS.open() as commands:
            intake = commands.module.intake
            with progress_bar(console) as progress:
                task = progress.add_task("Приём сведений", total=total)
                chunk: list[RawFact] = []
                with file.open("rb") as stream:
                    for line_no, line in enumerate(stream, start=1):
                        if not line.strip():
                            continue
                        chunk.append(RawFact(line.strip(), f"{file.name}:{line_no}"))
                        if len(chunk) >= batch:
                            stats.add(await intake.handle(chunk))
                            progress.advance(task, len(chunk))
                            chunk = []
                if chunk:
                    stats.add(await intake.handle(chunk))
                    progress.advance(task, len(chunk))
            await commands.deliver()
        _print_stats(stats)

    asyncio.run(main())


def _print_stats(stats: IntakeStats) -> None:
    from rich.table import Table

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
    from rich.table import Table

    from posog.module.intake.queries import rejected_facts

    async def main() -> None:
        async with COMMANDS.open() as commands, commands.module.shared.db.uow() as uow:
            total, rows = await rejected_facts(uow.session, status=None if status == "all" else status, limit=limit)
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

    asyncio.run(main())


@facts_app.command("show")
def facts_show(
    rejected_id: Annotated[str, typer.Argument(help="Id from 'posog facts rejected'")],
    reveal: Annotated[bool, typer.Option(help="Print the whole payload, personal data included (audited use)")] = False,
) -> None:
    """One rejected fact: reasons and the payload with personal data masked (unless --reveal)."""
    from posog.module.intake.model import RejectedFact
    from posog.module.retention import PURGED

    async def main() -> None:
        async with COMMANDS.open() as commands:
            shared = commands.module.shared
            async with shared.db.uow() as uow:
                row = await uow.session.get(RejectedFact, rejected_id)
            if row is None:
                console.print(f"[red]No rejected fact {rejected_id}[/]")
                raise typer.Exit(2)
            raw = (
                b""
                if row.status == PURGED
                else shared.cipher.open(row.pii_key_id, row.payload, context=f"rejected:{row.raw_hash}")
            )
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

    asyncio.run(main())


@facts_app.command("redrive")
def facts_redrive(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids from 'posog facts rejected'")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every fact still rejected")] = False,
) -> None:
    """Feed rejected facts through intake again (after the cause was fixed)."""
    if not ids and not all_:
        console.print("Nothing to re-drive: give ids or --all.")
        raise typer.Exit(2)
    from posog.module.intake.model import REJECTED
    from posog.module.intake.queries import rejected_ids
    from posog.module.retention import PURGED

    async def main() -> None:
        async with COMMANDS.open() as commands:
            db = commands.module.shared.db
            chosen = list(ids or [])
            if all_:
                async with db.uow() as uow:
                    chosen = await rejected_ids(uow.session, status=REJECTED)
            if not chosen:
                console.print("Nothing to re-drive: give ids or --all.")
                raise typer.Exit(2)
            async with db.uow() as uow:
                purged = await rejected_ids(uow.session, status=PURGED, among=chosen)
            if purged:
                console.print(
                    f"[red]Cannot re-drive {', '.join(purged)}: the payload was erased after the retention period.[/]"
                )
                raise typer.Exit(2)
            try:
                outcomes = await commands.module.intake.redrive(chosen)
            except KeyError as exc:
                console.print(f"[red]Unknown rejected fact id(s): {exc.args[0]}[/]")
                raise typer.Exit(2) from None
            await commands.deliver()
        for rejected_id, outcome in zip(chosen, outcomes, strict=True):
            detail = "; ".join(str(p) for p in outcome.problems)
            console.print(f"{rejected_id}: {outcome.kind} {detail}")

    asyncio.run(main())
