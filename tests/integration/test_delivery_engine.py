"""The one delivery engine (``core.outbox``) over a table of its own, on SQLite and PostgreSQL: due rows
are claimed once (``SKIP LOCKED`` side by side on PostgreSQL), a lease hides a claimed row until it
ends, failures back off with jitter under a cap, dead rows are listed and re-driven, and the metrics
see the backlog, the most overdue row and the dead ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from posog.core import metrics
from posog.core.db import Database
from posog.core.outbox import Delivery, DeliveryColumns, Failure, Outbox
from posog.core.retry import backoff
from tests.support import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class _Base(DeclarativeBase):  # not posog's metadata: the schema tests compare that with the migrations
    metadata = MetaData()


class Parcel(DeliveryColumns, _Base):
    __tablename__ = "test_parcels"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")


PARCELS = Delivery("test-parcels", Parcel, redrive_values=lambda now: {"status": "pending"})


async def _engine_database(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'engine.sqlite3'}"
    if backend == "postgresql":
        url = await create_pg_database()
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()
        if backend == "postgresql":
            await drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async for database in _engine_database(request.param, tmp_path):
        yield database


@pytest.fixture
async def pg_db(tmp_path: Path) -> AsyncIterator[Database]:
    """PostgreSQL only: SQLite has one writer at a time, so there is no lock to skip there."""
    async for database in _engine_database("postgresql", tmp_path):
        yield database


async def _add(db: Database, *ids: str, due: datetime = NOW) -> None:
    async with db.uow() as uow:
        uow.session.add_all([Parcel(id=i, attempts=0, next_attempt_at=due) for i in ids])
        await uow.commit()


async def _get(db: Database, key: str) -> Parcel:
    async with db.uow() as uow:
        row = await uow.session.get(Parcel, key)
    assert row is not None
    return row


def test_one_backoff_grows_doubling_up_to_its_cap_with_jitter_below() -> None:
    for attempts, full in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (200, 60.0)]:
        for _ in range(50):
            delay = backoff(attempts, base_s=2, cap_s=60).total_seconds()
            assert full * 0.8 <= delay <= full, (attempts, delay)
    assert backoff(0, base_s=2, cap_s=60, jitter=0).total_seconds() == 2
    assert backoff(3, base_s=2, cap_s=60, jitter=0).total_seconds() == 8
    spread = {backoff(5, base_s=1, cap_s=60).total_seconds() for _ in range(20)}
    assert len(spread) > 1, "rows failed together do not all retry at the same moment"


async def test_due_rows_are_claimed_once_under_a_lease(db: Database) -> None:
    await _add(db, "a", "b", "c")
    await _add(db, "later", due=NOW + timedelta(minutes=1))
    outbox = Outbox(db, PARCELS, clock=lambda: NOW)

    first = await outbox.claim_due(2, lease=timedelta(seconds=30))
    second = await outbox.claim_due(10, lease=timedelta(seconds=30))
    assert sorted(r.id for r in first + second) == ["a", "b", "c"], "each due row once, the future one not yet"
    assert await outbox.claim_due(10, lease=timedelta(seconds=30)) == [], "leased rows are not due"

    # A worker that died with its lease: the rows are due again once it ends.
    after_lease = await outbox.claim_due(10, lease=timedelta(seconds=30), now=NOW + timedelta(seconds=31))
    assert sorted(r.id for r in after_lease) == ["a", "b", "c"]
    later = await outbox.claim_due(10, lease=timedelta(seconds=30), now=NOW + timedelta(seconds=60))
    assert [r.id for r in later] == ["later"]


async def test_outcomes_sent_retry_dead_and_redrive(db: Database) -> None:
    await _add(db, "ok", "flaky", "refused", "tired")
    outbox = Outbox(db, PARCELS, base_s=10, cap_s=100, max_attempts=2, clock=lambda: NOW)
    sent_before = metrics.DELIVERY_ATTEMPTS.labels("test-parcels", "sent")._value.get()

    async with db.uow() as uow:
        await outbox.mark_sent(uow.session, ["ok"], at=NOW)
        await outbox.mark_failed(
            uow.session,
            [Failure("flaky", 0, "HTTP 503"), Failure("refused", 0, "HTTP 400", permanent=True)],
            now=NOW,
        )
        await outbox.mark_failed(uow.session, [Failure("tired", 1, "x" * 2000)], now=NOW)
        await uow.commit()

    ok, flaky, refused, tired = [await _get(db, k) for k in ("ok", "flaky", "refused", "tired")]
    assert (ok.sent_at, ok.attempts, ok.next_attempt_at, ok.last_error) == (NOW, 1, None, None)
    assert (flaky.attempts, flaky.last_error, flaky.dead_at) == (1, "HTTP 503", None)
    assert flaky.next_attempt_at is not None
    assert NOW + timedelta(seconds=8) <= flaky.next_attempt_at <= NOW + timedelta(seconds=10)
    assert (refused.attempts, refused.dead_at, refused.next_attempt_at) == (1, NOW, None), "permanent: dead at once"
    assert (tired.attempts, tired.dead_at) == (2, NOW), "out of attempts: dead"
    assert tired.last_error == "x" * 500
    assert metrics.DELIVERY_ATTEMPTS.labels("test-parcels", "sent")._value.get() == sent_before + 1

    assert await outbox.claim_due(10, lease=timedelta(seconds=5), now=NOW + timedelta(hours=1)) != []
    dead = await outbox.dead()
    assert sorted(d.key for d in dead) == ["refused", "tired"]
    assert {d.delivery for d in dead} == {"test-parcels"}

    assert await outbox.observe() == (1, 0.0, 2), "flaky waits for its retry; two are dead"
    assert sorted(await outbox.redrive(["refused", "ok", "nope"])) == ["refused"], "only dead rows are re-driven"
    refused = await _get(db, "refused")
    assert (refused.dead_at, refused.attempts, refused.next_attempt_at, refused.status) == (None, 0, NOW, "pending")
    assert refused.last_error == "HTTP 400", "the error stays for the operator until the next attempt"
    assert [r.id for r in await outbox.claim_due(10, lease=timedelta(seconds=5))] == ["refused"]


async def test_metrics_see_backlog_oldest_due_and_dead(db: Database) -> None:
    await _add(db, "old", due=NOW - timedelta(minutes=2))
    await _add(db, "new", due=NOW + timedelta(minutes=2))
    await _add(db, "done")
    outbox = Outbox(db, PARCELS, clock=lambda: NOW)
    async with db.uow() as uow:
        await outbox.mark_sent(uow.session, ["done"], at=NOW)
        await uow.commit()
    assert await outbox.observe() == (2, 120.0, 0)
    assert metrics.DELIVERY_BACKLOG.labels("test-parcels")._value.get() == 2
    assert metrics.DELIVERY_OLDEST_DUE.labels("test-parcels")._value.get() == 120.0
    async with db.uow() as uow:
        await outbox.mark_failed(uow.session, [Failure("old", 0, "no", permanent=True)], now=NOW)
        await uow.commit()
    assert await outbox.observe() == (1, 0.0, 1)


async def test_rows_locked_by_one_claim_are_skipped_by_another(pg_db: Database) -> None:
    """The ГЭПС relay's way: rows locked in the claiming transaction, sent, marked, committed."""
    db = pg_db
    await _add(db, *[f"p{i:02}" for i in range(20)])
    outbox = Outbox(db, PARCELS, clock=lambda: NOW)
    seen: list[list[str]] = []
    both_claimed = asyncio.Event()
    waiting = 0

    async def relay() -> None:
        nonlocal waiting
        async with db.uow() as uow:
            query = outbox.due(Parcel.id, now=NOW, limit=12).order_by(Parcel.id)
            keys = list((await uow.session.scalars(query)).all())
            seen.append(keys)
            waiting += 1
            if waiting == 2:
                both_claimed.set()
            await asyncio.wait_for(both_claimed.wait(), 10)
            await outbox.mark_sent(uow.session, keys, at=NOW)
            await uow.commit()

    await asyncio.gather(relay(), relay())
    assert sorted(len(keys) for keys in seen) == [8, 12]
    assert sorted(seen[0] + seen[1]) == [f"p{i:02}" for i in range(20)], "no row in both claims"
    async with db.uow() as uow:
        assert all(r.attempts == 1 for r in (await uow.session.scalars(select(Parcel))).all())
