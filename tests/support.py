"""Test helpers: a whole stack on either backend, and waiting for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from posog.bootstrap import System, bootstrap
from posog.settings import Settings
from tests import databases
from tests.conftest import AMQP_URL, _unavailable, pg_database

BACKENDS = ("embedded", "production")


async def create_pg_database(*, migrated: bool = True) -> str:
    """A PostgreSQL database of its own: a copy of the run's migrated template (or, ``migrated=False``,
    an empty one). Skipped locally, failed in CI, when PostgreSQL cannot be reached."""
    return await pg_database(migrated=migrated)


async def drop_pg_database(url: str) -> None:
    await databases.drop_pg_database(url)


async def stack_database(backend: str, tmp_path: Path) -> str:
    """The migrated and seeded database of a stack (ЛКО's defaults, as every process start would
    seed them): a copy of the run's PostgreSQL or SQLite template."""
    if backend == "production":
        try:
            return await databases.create_pg_database(seeded=True)
        except databases.PgUnavailable as exc:
            _unavailable("PostgreSQL", exc)
            raise
    return await databases.create_sqlite_database(tmp_path / "posog.sqlite3", seeded=True)


def stack_settings(backend: str, tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "env": "test",
        "var_dir": tmp_path,
        "database_url": database_url,
        "facts_queue": f"test.{suffix}.facts",
        "facts_dead_letter_exchange": f"test.{suffix}.facts.dlx",
        "facts_dead_letter_queue": f"test.{suffix}.facts.dead",
        "geps_exchange": f"test.{suffix}.geps",
        "geps_inbox_queue": f"test.{suffix}.geps.epgu",
        "smev_in_queue": f"test.{suffix}.smev.in",
        "smev_out_queue": f"test.{suffix}.smev.out",
        "smev_in_dead_letter_exchange": f"test.{suffix}.smev.in.dlx",
        "smev_in_dead_letter_queue": f"test.{suffix}.smev.in.dead",
        "relay_idle_sleep_ms": 20,
        "lkp_base_url": "https://lkp.test/lkp",
    }
    if backend == "production":
        values["amqp_url"] = AMQP_URL
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def stack(backend: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[System]:
    """A migrated, seeded system (a copy of the run's seeded template) on SQLite + in-process bus
    ("embedded") or PostgreSQL + RabbitMQ ("production"), with queue names of its own; everything
    removed afterwards."""
    database_url = await stack_database(backend, tmp_path)
    settings = stack_settings(backend, tmp_path, database_url, **overrides)
    try:
        system = bootstrap(settings)
        if backend == "production":
            try:
                await system.start_bus()
            except Exception as exc:
                _unavailable("RabbitMQ", exc)
        else:
            await system.start_bus()
        try:
            yield system
        finally:
            if backend == "production":
                bus: Any = system.bus
                for queue in (
                    settings.facts_queue,
                    settings.facts_dead_letter_queue,
                    settings.geps_inbox_queue,
                    settings.smev_in_queue,
                    settings.smev_out_queue,
                    settings.smev_in_dead_letter_queue,
                ):
                    with contextlib.suppress(Exception):
                        await bus.delete_queue(queue)
            await system.close()
    finally:
        if backend == "production":
            await drop_pg_database(database_url)


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 120.0, interval: float = 0.1, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


async def count(system: System, model: Any, *where: Any) -> int:
    async with system.db.uow() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def at_least(system: System, model: Any, n: int, *where: Any) -> bool:
    """At least ``n`` rows of ``model`` (matching ``where``): a condition to wait for."""
    return await count(system, model, *where) >= n
