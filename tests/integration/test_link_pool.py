"""The link hot path's asyncpg pool (``posog.module.links.pgpool.LeanPool``): never more connections
than allowed, waiters served in turn, refused statements keep their connection, interrupted ones
lose it, cancelled waiters give their turn back, and the pool closes with the engine."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from posog.core.db import Database
from posog.module.links import pgpool
from posog.module.links.pgpool import LeanPool

pytestmark = pytest.mark.integration


def _params(pg_url: str) -> dict[str, object]:
    database = pg_url.rsplit("/", 1)[1]
    return {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": database}


async def test_statements_share_at_most_max_size_connections(pg_url: str) -> None:
    pool = LeanPool(_params(pg_url), max_size=2)
    try:
        query = "SELECT pg_backend_pid() AS pid, $1::int AS n"
        rows = await asyncio.gather(*(pool.fetchrow(query, n) for n in range(12)))
        assert [row["n"] for row in rows if row is not None] == list(range(12))
        assert len({row["pid"] for row in rows if row is not None}) <= 2
        assert pool.size == 2
        # Sequential statements reuse one idle connection.
        first = await pool.fetchrow("SELECT pg_backend_pid() AS pid")
        second = await pool.fetchrow("SELECT pg_backend_pid() AS pid")
        assert first is not None
        assert second is not None
        assert first["pid"] == second["pid"]
    finally:
        await pool.close()


async def test_a_refused_statement_keeps_its_connection_and_leaves_no_transaction(pg_url: str) -> None:
    pool = LeanPool(_params(pg_url), max_size=1)
    try:
        before = await pool.fetchrow("SELECT pg_backend_pid() AS pid")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await pool.fetchrow("SELECT 1 / $1::int", 0)
        after = await pool.fetchrow("SELECT pg_backend_pid() AS pid, now() AS started")
        later = await pool.fetchrow("SELECT now() AS started")
        assert before is not None
        assert after is not None
        assert after["pid"] == before["pid"]
        assert later is not None
        assert later["started"] > after["started"], "each statement runs in a transaction of its own"
        assert pool.size == 1
    finally:
        await pool.close()


async def test_an_interrupted_statement_loses_its_connection_and_frees_its_slot(pg_url: str) -> None:
    pool = LeanPool(_params(pg_url), max_size=1)
    try:
        before = await pool.fetchrow("SELECT pg_backend_pid() AS pid")
        slow = asyncio.create_task(pool.fetchrow("SELECT pg_sleep(5)"))
        waiting = asyncio.create_task(pool.fetchrow("SELECT pg_backend_pid() AS pid"))
        await asyncio.sleep(0.2)
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        after = await asyncio.wait_for(waiting, 10)  # the waiter got a new connection in the freed slot
        assert before is not None
        assert after is not None
        assert after["pid"] != before["pid"]
        assert pool.size == 1
    finally:
        await pool.close()


async def test_a_cancelled_waiter_gives_its_turn_back(pg_url: str) -> None:
    pool = LeanPool(_params(pg_url), max_size=1)
    try:
        busy = asyncio.create_task(pool.fetchrow("SELECT pg_sleep(0.3)"))
        await asyncio.sleep(0.05)
        impatient = asyncio.create_task(pool.fetchrow("SELECT 1"))
        patient = asyncio.create_task(pool.fetchrow("SELECT 2 AS two"))
        await asyncio.sleep(0.05)
        impatient.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await impatient
        await busy
        row = await asyncio.wait_for(patient, 10)
        assert row is not None
        assert row["two"] == 2
        assert pool.size == 1
        assert (await pool.fetchrow("SELECT 3 AS three")) is not None
    finally:
        await pool.close()


async def test_a_closed_pool_refuses_and_its_connections_are_gone(pg_url: str) -> None:
    pool = LeanPool(_params(pg_url), max_size=2)
    await pool.fetchrow("SELECT 1")
    await pool.close()
    assert pool.size == 0
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetchrow("SELECT 1")


async def test_the_pool_follows_the_databases_engine(pg_url: str) -> None:
    db = Database(pg_url, pool_size=3)
    pool = pgpool.driver_pool(db)
    assert pgpool.driver_pool(db) is pool
    row = await pgpool.fetchrow(db, "SELECT 41 + 1 AS answer")
    assert row is not None
    assert row["answer"] == 42
    assert pool.size == 1
    await db.dispose()  # closes the pool too
    assert pool.size == 0
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetchrow("SELECT 1")
    # A database used again after disposal gets a new pool.
    assert (await pgpool.fetchrow(db, "SELECT 1 AS one")) is not None
    assert pgpool.driver_pool(db) is not pool
    await db.dispose()
