"""Test databases: migrated once per test run, copied for every test.

Alembic runs once per run and backend into a template — a PostgreSQL database that nothing connects
to after its migration (``ALLOW_CONNECTIONS false``), or an SQLite file — and each test gets a copy
(a second template, ``seeded``, also holds ЛКО's defaults — ``seed_defaults`` — for the whole stacks
of ``tests/support.py``, which used to seed each copy):
``CREATE DATABASE … TEMPLATE …`` on PostgreSQL, a file copy on SQLite. On PostgreSQL a helper thread
makes the next copy while a test runs and drops a finished test's database behind it. The templates
are removed at the end of the run (``drop_templates``, from the session's finish).

The templates are made lazily, on first use, under a thread lock: the browser tests' live system
makes its database on an event loop of its own thread. Tests of the migrations themselves use
``create_pg_database(migrated=False)`` or an empty SQLite path, and run Alembic for real.

Under pytest-xdist every worker process has its own templates and copies. Every database of a run is
named ``posog_{template|test}_<run>_<worker>_<random>``: the run's id is made by the first process
and inherited by its workers (``POSOG_TEST_RUN``), so at the very end the controller drops whatever
a worker that died left behind (``drop_leftovers``) — and nothing of another run on the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import asyncpg
from alembic import command

from posog.core.db import Database
from posog.core.migrate import alembic_config
from posog.lko.seed import seed_defaults

PG_ADMIN_DSN = os.environ.get("POSOG_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOST_URL = os.environ.get("POSOG_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
# Connecting and creating may wait behind other work on a loaded machine; a refused connection
# (no server) still fails at once.
ADMIN_TIMEOUT_S = 30.0
COPY_DEADLINE_S = 120.0

_lock = threading.RLock()  # re-entered: the seeded template is made from the migrated one
Kind = Literal["migrated", "seeded"]
_pg_templates: dict[Kind, str] = {}
_sqlite_templates: dict[Kind, Path] = {}


def run_id() -> str:
    """This run's id: made by the run's first process, inherited by its xdist workers."""
    run = os.environ.get("POSOG_TEST_RUN")
    if run is None:
        run = os.environ["POSOG_TEST_RUN"] = uuid.uuid4().hex[:8]
    return run


def database_name(kind: str) -> str:
    """A new database's name: its kind ("template", "test"), the run, the worker (xdist's "gw0"…)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"posog_{kind}_{run_id()}_{worker}_{uuid.uuid4().hex[:12]}"


def pg_url_of(name: str) -> str:
    return f"{PG_HOST_URL}/{name}"


class PgUnavailable(Exception):
    """PostgreSQL cannot be reached (the tests that need it are skipped locally, fail in CI)."""


async def _admin(*statements: str) -> None:
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=ADMIN_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise PgUnavailable(str(exc) or type(exc).__name__) from exc
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


async def _seed(url: str) -> None:
    db = Database(url)
    try:
        await seed_defaults(db)
    finally:
        await db.dispose()


def _make_pg_template(kind: Kind) -> str:
    """A new database migrated to the heads (and, ``seeded``, with ЛКО's defaults), then closed to
    connections for good (a template cannot be copied while anyone is connected to it)."""
    if kind == "seeded":
        name = asyncio.run(_copy_of(_pg_template_name("migrated"), "template"))
    else:
        name = database_name("template")
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        if kind == "seeded":
            asyncio.run(_seed(pg_url_of(name)))
        else:
            command.upgrade(alembic_config(pg_url_of(name)), "heads")  # Alembic's env disposes its engine
        asyncio.run(_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
    except BaseException:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        raise
    return name


def _pg_template_name(kind: Kind) -> str:
    with _lock:
        if kind not in _pg_templates:
            _pg_templates[kind] = _make_pg_template(kind)
        return _pg_templates[kind]


async def _copy_of(template: str, kind: str = "test") -> str:
    name = database_name(kind)
    deadline = time.monotonic() + COPY_DEADLINE_S
    pause = 0.05
    while True:
        try:
            await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return name
        except asyncpg.ObjectInUseError:
            # "source database is being accessed by other users": nothing of ours connects to the
            # template, but should anything ever, wait for it to leave instead of failing the test.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


def _make_copy(kind: Kind) -> str:
    return asyncio.run(_copy_of(_pg_template_name(kind)))


def _drop(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# One thread of its own makes the next copy while a test runs and drops a finished test's database
# behind it, in the order asked: a test neither waits for its copy (when the spare is ready) nor for
# its drop. At most one spare copy of each template exists at a time.
_helper: ThreadPoolExecutor | None = None
_spares: dict[Kind, Future[str]] = {}
_drops: list[Future[None]] = []


def _helper_thread() -> ThreadPoolExecutor:
    global _helper
    if _helper is None:
        _helper = ThreadPoolExecutor(1, thread_name_prefix="posog-test-databases")
    return _helper


def _take_copy(kind: Kind) -> Future[str]:
    """The spare copy (or one being made), and the next spare asked for."""
    with _lock:
        helper = _helper_thread()
        spare = _spares.get(kind)
        taken = spare if spare is not None else helper.submit(_make_copy, kind)
        _spares[kind] = helper.submit(_make_copy, kind)
        return taken


async def create_pg_database(*, migrated: bool = True, seeded: bool = False) -> str:
    """A database of its own for a test: a copy of the run's migrated template (``seeded``: with ЛКО's
    defaults), or (``migrated=False``) an empty one for a test that runs the migrations itself.
    ``PgUnavailable`` if PostgreSQL cannot be reached."""
    if not migrated:
        name = database_name("test")
        await _admin(f'CREATE DATABASE "{name}"')
        return pg_url_of(name)
    return pg_url_of(await asyncio.wrap_future(_take_copy("seeded" if seeded else "migrated")))


async def drop_pg_database(url: str) -> None:
    """Drop the test's database — behind the test, on the helper thread (connections are forced out)."""
    name = url.rsplit("/", 1)[1]
    with _lock:
        _drops.append(_helper_thread().submit(_drop, name))


def _make_sqlite_template(kind: Kind) -> Path:
    path = Path(tempfile.mkdtemp(prefix="posog-template-")) / "posog.sqlite3"
    if kind == "seeded":
        shutil.copyfile(_sqlite_template_path("migrated"), path)
        asyncio.run(_seed(f"sqlite+aiosqlite:///{path}"))
    else:
        command.upgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "heads")
    # Everything in the main file (WAL mode, set by the engine, stays recorded in it): one file to copy.
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _sqlite_template_path(kind: Kind) -> Path:
    with _lock:
        if kind not in _sqlite_templates:
            _sqlite_templates[kind] = _make_sqlite_template(kind)
        return _sqlite_templates[kind]


def _copy_sqlite(target: Path, kind: Kind) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template_path(kind), target)


async def create_sqlite_database(path: Path, *, seeded: bool = False) -> str:
    """A migrated SQLite database at ``path`` (``seeded``: with ЛКО's defaults): a copy of the run's template."""
    await asyncio.to_thread(_copy_sqlite, path, "seeded" if seeded else "migrated")
    return f"sqlite+aiosqlite:///{path}"


def drop_templates() -> None:
    """At the end of the session: finish the drops, drop the spare copies and remove the templates."""
    global _helper
    with _lock:
        helper, spares, drops = _helper, list(_spares.values()), list(_drops)
        _helper = None
        _spares.clear()
        _drops.clear()
    failures: list[BaseException] = []
    if helper is not None:
        for spare in spares:
            try:
                drops.append(helper.submit(_drop, spare.result()))
            except BaseException as exc:  # the spare could not be made: nothing to drop
                failures.append(exc)
        for drop in drops:
            try:
                drop.result()
            except BaseException as exc:
                failures.append(exc)
        helper.shutdown(wait=True)
    with _lock:
        # The seeded template first: it was copied from the migrated one. In a thread of its own:
        # whichever event loop the caller's thread has is left alone.
        kinds: tuple[Kind, ...] = ("seeded", "migrated")
        for kind in kinds:
            name = _pg_templates.pop(kind, None)
            if name is not None:
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(_drop, name).result()
        for path in _sqlite_templates.values():
            shutil.rmtree(path.parent, ignore_errors=True)
        _sqlite_templates.clear()
    unavailable = [f for f in failures if not isinstance(f, PgUnavailable)]
    if unavailable:
        raise unavailable[0]


def drop_leftovers() -> None:
    """Drop every database of this run still there (at the very end, once every worker is done: what
    a worker that died, or was stopped, did not drop itself)."""

    async def sweep() -> None:
        try:
            admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=ADMIN_TIMEOUT_S)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise PgUnavailable(str(exc) or type(exc).__name__) from exc
        try:
            pattern = f"posog\\_%\\_{run_id()}\\_%"
            names = [
                r["datname"]
                for r in await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", pattern)
            ]
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    with ThreadPoolExecutor(1) as pool:  # whichever event loop the caller's thread has is left alone
        pool.submit(asyncio.run, sweep()).result()
