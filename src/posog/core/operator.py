"""What every operator command (``posog links …``, ``posog outbox …``) shares: it works on the configured
database as it is — migrated by ``posog db upgrade``, never migrated or seeded by the command itself —
and a database that is missing or not migrated is a clear message and exit status 2, not a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from posog.core.db import Database
from posog.settings import Settings

T = TypeVar("T")

NOT_MIGRATED = "[red]База данных не подготовлена или недоступна: сначала «posog db upgrade».[/]"


async def on_migrated_database(action: Callable[[Database], Awaitable[T]], *, console: Console) -> T:
    """``action`` on the configured database (a small pool of its own, disposed afterwards)."""
    db = Database(Settings().resolved_database_url, pool_size=2)
    try:
        return await action(db)
    except (OperationalError, ProgrammingError):
        console.print(NOT_MIGRATED)
        raise typer.Exit(2) from None
    finally:
        await db.dispose()
