"""A small asyncpg pool beside a :class:`~posog.core.db.Database`'s engine, for the one statement of
the link hot path on PostgreSQL (see :func:`posog.module.links.queries.find_and_open_link_postgresql`).

Why not the engine's pool: checking a connection out of SQLAlchemy's async pool and returning it costs
≈150 µs of CPU (greenlet hand-offs, pool events), and its pre-ping (``pool_pre_ping``; in SQLAlchemy
2.1 on asyncpg that is ``BEGIN``, ``;``, ``ROLLBACK``) three more round trips — several times the
statement itself, which asyncpg runs in ≈30 µs. This pool connects with exactly the engine's connect
arguments, holds at most as many connections as the engine's pool (created on demand, kept while in
use), does not reset a connection it gets back (the hot path leaves no session state: one statement,
no transaction), and is closed when the engine is disposed (``Database.dispose()``)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.util import await_

from posog.core.db import Database

_SQLALCHEMY_ONLY = ("async_creator_fn", "prepared_statement_cache_size", "prepared_statement_name_func")

# Per database: the pool and the event loop it belongs to (a pool cannot move between loops).
_pools: weakref.WeakKeyDictionary[Database, tuple[asyncio.AbstractEventLoop, asyncpg.Pool]] = (
    weakref.WeakKeyDictionary()
)
_creating: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


async def _keep_state(connection: asyncpg.Connection) -> None:
    """Instead of asyncpg's reset (one more round trip per use): only a transaction left open by an
    interrupted statement is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def driver_pool(db: Database) -> asyncpg.Pool:
    """The asyncpg pool of ``db`` (PostgreSQL only), created on first use in the running loop."""
    loop = asyncio.get_running_loop()
    known = _pools.get(db)
    if known is not None and known[0] is loop:
        return known[1]
    lock = _creating.setdefault(db, asyncio.Lock())
    async with lock:
        known = _pools.get(db)
        if known is not None and known[0] is loop:
            return known[1]
        if known is not None:  # made in another event loop (e.g. a command's own asyncio.run)
            known[1].terminate()
        engine = db.engine.sync_engine
        _, params = engine.dialect.create_connect_args(engine.url)
        for name in _SQLALCHEMY_ONLY:
            params.pop(name, None)
        size = max(1, engine.pool.size())  # type: ignore[attr-defined]
        pool = await asyncpg.create_pool(min_size=0, max_size=size, reset=_keep_state, **params)
        _pools[db] = (loop, pool)
        _close_with(engine, db)
        return pool


def _close_with(engine: Engine, db: Database) -> None:
    reference = weakref.ref(db)

    def disposed(_engine: Engine) -> None:
        owner = reference()
        known = _pools.pop(owner, None) if owner is not None else None
        if known is None:
            return
        try:  # Database.dispose() runs the engine's dispose in SQLAlchemy's greenlet: it can await
            await_(known[1].close())
        except Exception:
            known[1].terminate()

    event.listen(engine, "engine_disposed", disposed, once=True)


async def fetchrow(db: Database, query: str, *args: Any) -> asyncpg.Record | None:
    """One statement on a connection of ``db``'s asyncpg pool (its own implicit transaction)."""
    pool = await driver_pool(db)
    async with pool.acquire() as connection:
        row: asyncpg.Record | None = await connection.fetchrow(query, *args)
        return row
