"""A small pool of asyncpg connections beside a :class:`~posog.core.db.Database`'s engine, for the
single statements of the link hot path on PostgreSQL (see
:class:`posog.module.links.repository.PostgresLinkRepository`).

Why not the engine's pool: checking a connection out of SQLAlchemy's async pool and returning it costs
≈150 µs of CPU (greenlet hand-offs, pool events), and its pre-ping (``pool_pre_ping``; in SQLAlchemy
2.1 on asyncpg that is ``BEGIN``, ``;``, ``ROLLBACK``) three more round trips — several times the
statement itself. Why not ``asyncpg.Pool`` either: its acquire and release cost ≈28 µs (a task per
release for ``asyncio.shield``, timeouts, a queue, callbacks) — half the statement's own CPU.

:class:`LeanPool` keeps idle connections on a stack and hands them out without awaiting anything.
It connects with exactly the engine's connect arguments, holds at most as many connections as the
engine's pool (opened on demand, kept), and runs one statement per checkout, so a connection comes
back without session state to reset: a statement the server refused has ended its implicit
transaction; a connection whose statement was interrupted (cancelled, connection lost) or that is
somehow left in a transaction is closed instead of reused. The pool is closed when the engine is
disposed (``Database.dispose()``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import weakref
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.util import await_

from posog.core.db import Database


class LeanPool:
    """At most ``max_size`` asyncpg connections opened with ``params``, one statement per checkout."""

    def __init__(self, params: dict[str, Any], max_size: int) -> None:
        self._params = params
        self._max_size = max(1, max_size)
        self._idle: list[asyncpg.Connection] = []
        self._size = 0  # connections open, being opened, or promised to a waiter
        # Each waiter gets a connection, or None: a free slot to open one in.
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """``query`` on a connection of the pool (its own implicit transaction): its first row."""
        connection = self._idle.pop() if self._idle else await self._acquire()
        try:
            row: asyncpg.Record | None = await connection.fetchrow(query, *args)
        except asyncpg.PostgresError:
            self._release(connection)  # refused by the server: the statement's transaction is over
            raise
        except BaseException:
            self._discard(connection)  # interrupted: the connection's state is unknown
            raise
        self._release(connection)
        return row

    async def _acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the pool is closed")
        if self._size < self._max_size:
            self._size += 1
            return await self._connect()
        waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            connection = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # served just as this caller was cancelled
                given = waiter.result()
                if given is None:
                    self._free_slot()
                else:
                    self._release(given)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        return connection if connection is not None else await self._connect()

    async def _connect(self) -> asyncpg.Connection:
        """A new connection in a slot already counted in ``_size``."""
        try:
            connection: asyncpg.Connection = await asyncpg.connect(**self._params)
        except BaseException:
            self._free_slot()
            raise
        if self._closed:
            await connection.close()
            self._free_slot()
            raise asyncpg.InterfaceError("the pool is closed")
        return connection

    def _release(self, connection: asyncpg.Connection) -> None:
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            self._discard(connection)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _discard(self, connection: asyncpg.Connection) -> None:
        connection.terminate()
        self._free_slot()

    def _free_slot(self) -> None:
        """One connection fewer: a waiter, if any, may open one in its place."""
        self._size -= 1
        while self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._size += 1
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the pool is closed"))
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        for connection in idle:
            try:
                await connection.close(timeout=5)
            except Exception:
                connection.terminate()

    def terminate(self) -> None:
        """Close every idle connection at once, without a goodbye to the server."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        for connection in idle:
            connection.terminate()


# Per database: the pool and the event loop it belongs to (connections cannot move between loops).
_pools: weakref.WeakKeyDictionary[Database, tuple[asyncio.AbstractEventLoop, LeanPool]] = weakref.WeakKeyDictionary()


def driver_pool(db: Database) -> LeanPool:
    """The asyncpg pool of ``db`` (PostgreSQL only) for the running event loop; connections are
    opened on first use."""
    loop = asyncio.get_running_loop()
    known = _pools.get(db)
    if known is not None and known[0] is loop:
        return known[1]
    if known is not None:  # made in another event loop (e.g. a command's own asyncio.run)
        known[1].terminate()
    engine = db.engine.sync_engine
    pool = LeanPool(db.asyncpg_connect_args(), engine.pool.size())  # type: ignore[attr-defined]
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
    """One statement on a connection of ``db``'s pool (its own implicit transaction)."""
    return await driver_pool(db).fetchrow(query, *args)
