"""``posog analytics …`` — operating the rollups: rebuild them from the stored items or from the sources,
poll the feeds once, see where each feed stands. Like every operator command, they work on a database
already migrated (``posog db upgrade``).

Analytics may not import the other systems, so the process that hosts these commands (``posog.cli``)
provides :data:`posog.analytics.wiring.COMMANDS`: analytics' part wired to the module and ЛКО (over the
network, or in-process in the embedded mode)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from posog.analytics.wiring import COMMANDS

analytics_app = typer.Typer(help="Analytics: rollups, rebuilds, feed cursors.", no_args_is_help=True)
console = Console()


@analytics_app.command("rebuild")
def rebuild(
    repull: Annotated[
        bool, typer.Option("--repull", help="Forget what was read, reset the cursors and read both feeds anew")
    ] = False,
) -> None:
    """Recompute every rollup from the stored cards and responses (or, with --repull, from the sources)."""

    async def main() -> None:
        async with COMMANDS.open() as analytics:
            if repull:
                results = await analytics.pipeline.repull()
                for result in results:
                    console.print(f"{result.source}: {result.items} items in {result.pages} pages")
            else:
                rebuilt = await analytics.pipeline.rebuild()
                console.print(
                    f"Rebuilt from {rebuilt.cards} cards and {rebuilt.responses} responses: "
                    f"{rebuilt.rollups} rollup rows, {rebuilt.criterion_rollups} criterion rows."
                )

    asyncio.run(main())


@analytics_app.command("poll")
def poll() -> None:
    """Read both feeds to their ends once (what the worker does every few seconds)."""

    async def main() -> None:
        async with COMMANDS.open() as analytics:
            for result in await analytics.pipeline.poll_once():
                console.print(f"{result.source}: {result.items} items read, {result.changed} changed")

    asyncio.run(main())


@analytics_app.command("status")
def status() -> None:
    """Where each feed stands, and how many items analytics holds."""

    from rich.table import Table
    from sqlalchemy import func, select

    from posog.analytics.rollups.model import CardItem, FeedCursor, ResponseItem

    async def main() -> None:
        async with COMMANDS.open() as analytics, analytics.shared.db.uow() as uow:
            cursors = (await uow.session.scalars(select(FeedCursor).order_by(FeedCursor.source))).all()
            cards = await uow.session.scalar(select(func.count()).select_from(CardItem))
            responses = await uow.session.scalar(select(func.count()).select_from(ResponseItem))
        table = Table(title=f"Analytics: {cards or 0} cards, {responses or 0} responses")
        for column in ("source", "safe up to", "items read", "last poll"):
            table.add_column(column)
        for cursor in cursors:
            table.add_row(
                cursor.source,
                cursor.base_bound.isoformat() if cursor.base_bound else "—",
                str(cursor.items_read),
                cursor.last_poll_finished_at.isoformat() if cursor.last_poll_finished_at else "—",
            )
        console.print(table)

    asyncio.run(main())
