"""The Alembic history builds exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection

import posog.analytics.tables
import posog.emulators.tables
import posog.lko.tables
import posog.module.tables  # noqa: F401
from posog.core.db import Base, Database, UTCDateTime, make_engine
from posog.core.migrate import upgrade
from posog.core.outbox import Outbox
from posog.module.notifications.model import GEPS, OutboxMessage
from tests.support import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _assert_in_step(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


async def test_sqlite_schema_matches_the_models(sqlite_url: str) -> None:
    await _assert_in_step(sqlite_url)
    await upgrade(sqlite_url)  # idempotent


async def test_postgresql_schema_matches_the_models(pg_url: str) -> None:
    await _assert_in_step(pg_url)
    await upgrade(pg_url)


# --- The delivery engine's migrations (0012…) move the existing rows without losing one ---------------

BEFORE_ENGINE = "0011"


def _old_table(name: str, **columns: Any) -> Any:
    """A table as it was before the engine, with just the columns the test writes."""
    return sa.table(name, *[sa.column(column, type_) for column, type_ in columns.items()])


async def _populate_before_engine(url: str) -> None:
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            outbox = _old_table(
                "module_outbox",
                id=sa.Integer(),
                message_id=sa.String(),
                topic=sa.String(),
                card_id=sa.String(),
                pii_key_id=sa.String(),
                body=sa.LargeBinary(),
                attempts=sa.Integer(),
                next_attempt_at=UTCDateTime(),
                sent_at=UTCDateTime(),
                last_error=sa.Text(),
                created_at=UTCDateTime(),
            )
            await connection.execute(
                sa.insert(outbox),
                [
                    {
                        "id": i,
                        "message_id": f"m-{i}",
                        "topic": "geps.notification",
                        "card_id": f"card-{i}",
                        "pii_key_id": "k1",
                        "body": b"sealed",
                        "attempts": i % 3,
                        "next_attempt_at": when + timedelta(seconds=i),
                        "sent_at": when if i % 2 else None,
                        "last_error": "refused" if i % 3 else None,
                        "created_at": when,
                    }
                    for i in range(1, 11)
                ],
            )
    finally:
        await engine.dispose()


async def _assert_moved(url: str) -> None:
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    db = Database(url)
    try:
        async with db.uow() as uow:
            messages = (await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        assert [(m.id, m.attempts, m.next_attempt_at, m.sent_at, m.last_error) for m in messages] == [
            (i, i % 3, when + timedelta(seconds=i), when if i % 2 else None, "refused" if i % 3 else None)
            for i in range(1, 11)
        ]
        assert all(m.lease_until is None and m.dead_at is None for m in messages)
        # The unsent ones are due for the engine as they were for the relay.
        outbox = Outbox(db, GEPS, clock=lambda: when + timedelta(minutes=1))
        async with db.uow() as uow:
            due = (await uow.session.scalars(outbox.due(OutboxMessage.id, now=outbox.clock()))).all()
        assert sorted(due) == [2, 4, 6, 8, 10]
    finally:
        await db.dispose()


async def _migrate_populated(url: str) -> None:
    await upgrade(url, BEFORE_ENGINE)
    await _populate_before_engine(url)
    await upgrade(url)
    await _assert_moved(url)
    await _assert_in_step(url)


async def test_sqlite_migrations_to_the_delivery_engine_keep_every_row(tmp_path: Path) -> None:
    await _migrate_populated(f"sqlite+aiosqlite:///{tmp_path / 'populated.sqlite3'}")


async def test_postgresql_migrations_to_the_delivery_engine_keep_every_row() -> None:
    url = await create_pg_database()
    try:
        await _migrate_populated(url)
    finally:
        await drop_pg_database(url)
