"""The Alembic history builds exactly the schema the models describe, on SQLite and PostgreSQL. These
tests migrate databases of their own (``fresh_*``), not copies of the run's template; the copies every
other test gets are checked to hold the same schema."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

import posog.analytics.tables
import posog.emulators.tables
import posog.lko.tables
import posog.module.tables  # noqa: F401
from posog.core.db import Base, make_engine
from posog.core.migrate import upgrade

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


async def test_sqlite_schema_matches_the_models(fresh_sqlite_url: str) -> None:
    await _assert_in_step(fresh_sqlite_url)
    await upgrade(fresh_sqlite_url)  # idempotent


async def test_postgresql_schema_matches_the_models(fresh_pg_url: str) -> None:
    await _assert_in_step(fresh_pg_url)
    await upgrade(fresh_pg_url)


async def test_the_copies_tests_get_hold_the_migrated_schema(sqlite_url: str, pg_url: str) -> None:
    """The run's templates (migrated once, copied for every test) are in step with the models too."""
    await _assert_in_step(sqlite_url)
    await _assert_in_step(pg_url)
