"""What every operator command (``posog links …``, ``posog outbox …``, ``posog facts …``) shares: it
works on the configured database as it is — migrated by ``posog db upgrade``, never migrated or seeded
by the command itself — and a database that is missing or not migrated is a clear message and exit
status 2, not a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from posog.core.db import Database
from posog.settings import Settings

T = TypeVar("T")

NOT_MIGRATED = "[red]База данных не подготовлена или недоступна: сначала «posog db upgrade».[/]"


async def require_migrated(db: Database, *, console: Console) -> None:
    """Go on only if ``db`` answers and holds a migrated schema (Alembic's version row); else say to
    run ``posog db upgrade`` and exit 2. Reads only: an empty database stays empty."""
    try:
        async with db.engine.connect() as connection:
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except (DBAPIError, OSError):
        version = None
    if not version:
        console.print(NOT_MIGRATED)
        raise typer.Exit(2)


async def on_migrated_database(action: Callable[[Database], Awaitable[T]], *, console: Console) -> T:
    """``action`` on the configured database (a small pool of its own, disposed afterwards)."""
    db = Database(Settings().resolved_database_url, pool_size=2)
    try:
        await require_migrated(db, console=console)
        return await action(db)
    except (OperationalError, ProgrammingError):
        console.print(NOT_MIGRATED)
        raise typer.Exit(2) from None
    finally:
        await db.dispose()


def progress_bar(console: Console) -> Progress:
    """The progress bar of a long command (``posog ingest``, ``posog emulate …``)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )
