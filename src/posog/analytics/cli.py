"""``posog analytics …`` — operating the rollups: rebuild them from the stored items or from the sources,
poll the feeds once, see where each feed stands.

Analytics may not import the other systems, so the process that hosts it (``posog.cli``) hands this
sub-app a factory with :func:`provide_runtime`: the pipeline wired to the module and ЛКО (over the
network, or in-process in the embedded mode) and how to close it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from posog.analytics.rollups.model import CardItem, FeedCursor, ResponseItem
from posog.analytics.rollups.pipeline import AnalyticsPipeline
from posog.core.db import Database
from posog.core.logging import configure_logging
from posog.settings import Settings

analytics_app = typer.Typer(help="Analytics: rollups, rebuilds, feed cursors.", no_args_is_help=True)
console = Console()


@dataclass(frozen=True)
class AnalyticsRuntime:
    """What the commands work with: the database, the pipeline, and how to release them."""

    db: Database
    pipeline: AnalyticsPipeline
    close: Callable[[], Awaitable[None]]


RuntimeFactory = Callable[[Settings], Awaitable[AnalyticsRuntime]]
_factories: list[RuntimeFactory] = []


def provide_runtime(factory: RuntimeFactory) -> None:
    """Tell the commands how this process builds analytics (migrated schema, wired clients)."""
    _factories[:] = [factory]


async def _runtime() -> AnalyticsRuntime:
    if not _factories:
        raise RuntimeError("posog.analytics.cli: no runtime provided (see provide_runtime)")
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return await _factories[0](settings)


@analytics_app.command("rebuild")
def rebuild(
    repull: Annotated[
        bool, typer.Option("--repull", help="Forget what was read, reset the cursors and read both feeds anew")
    ] = False,
) -> None:
    """Recompute every rollup from the stored cards and responses (or, with --repull, from the sources)."""

    async def main() -> None:
        runtime = await _runtime()
        try:
            if repull:
                results = await runtime.pipeline.repull()
                for result in results:
                    console.print(f"{result.source}: {result.items} items in {result.pages} pages")
            else:
                rebuilt = await runtime.pipeline.rebuild()
                console.print(
                    f"Rebuilt from {rebuilt.cards} cards and {rebuilt.responses} responses: "
                    f"{rebuilt.rollups} rollup rows, {rebuilt.criterion_rollups} criterion rows."
                )
        finally:
            await runtime.close()

    asyncio.run(main())


@analytics_app.command("poll")
def poll() -> None:
    """Read both feeds to their ends once (what the worker does every few seconds)."""

    async def main() -> None:
        runtime = await _runtime()
        try:
            for result in await runtime.pipeline.poll_once():
                console.print(f"{result.source}: {result.items} items read, {result.changed} changed")
        finally:
            await runtime.close()

    asyncio.run(main())


@analytics_app.command("status")
def status() -> None:
    """Where each feed stands, and how many items analytics holds."""

    async def main() -> None:
        runtime = await _runtime()
        try:
            async with runtime.db.uow() as uow:
                cursors = (await uow.session.scalars(select(FeedCursor).order_by(FeedCursor.source))).all()
                cards = await uow.session.scalar(select(func.count()).select_from(CardItem))
                responses = await uow.session.scalar(select(func.count()).select_from(ResponseItem))
        finally:
            await runtime.close()
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
