"""The Alembic history builds exactly the schema the models describe, on SQLite and PostgreSQL."""

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


async def test_sqlite_schema_matches_the_models(sqlite_url: str) -> None:
    await _assert_in_step(sqlite_url)
    await upgrade(sqlite_url)  # idempotent


async def test_postgresql_schema_matches_the_models(pg_url: str) -> None:
    await _assert_in_step(pg_url)
    await upgrade(pg_url)
