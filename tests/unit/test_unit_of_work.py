"""The unit of work's promises (core/db.py), on SQLite: what a handler does not commit is gone, each
commit ends one transaction and the next statement begins another, and the repositories a system puts
on it are the ones for its database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from posog.core.db import Base, Database
from posog.lko import tables
from posog.lko.org_types.model import OrgTypeEntry
from posog.lko.uow import LkoUnitOfWork
from posog.module.links.repository import LinkRepository, PostgresLinkRepository
from posog.module.uow import ModuleUnitOfWork

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    assert tables.MODEL_MODULES
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/uow.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all, tables=[OrgTypeEntry.__table__])  # type: ignore[list-item]
    yield database
    await database.dispose()


def _type(code: str) -> dict[str, object]:
    return {"code": code, "name": f"Тип {code}", "sphere": None, "active": True, "created_at": NOW, "updated_at": NOW}


async def _codes(db: Database) -> list[str]:
    async with db.uow() as uow:
        return list((await uow.session.scalars(select(OrgTypeEntry.code).order_by(OrgTypeEntry.code))).all())


async def test_what_is_not_committed_is_gone_and_each_commit_ends_a_transaction(db: Database) -> None:
    async with LkoUnitOfWork(db) as uow:
        await uow.org_types.add_if_absent([_type("kept")])
        await uow.commit()
        await uow.org_types.add_if_absent([_type("dropped")])  # a second transaction, never committed
    assert await _codes(db) == ["kept"]

    async def failing_handler() -> None:
        async with LkoUnitOfWork(db) as uow:
            await uow.org_types.add_if_absent([_type("failed")])
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError, match="the handler failed"):
        await failing_handler()
    assert await _codes(db) == ["kept"]

    async with LkoUnitOfWork(db) as uow:  # the same rows twice are one row (ON CONFLICT DO NOTHING)
        await uow.org_types.add_if_absent([_type("kept"), _type("second")])
        await uow.commit()
    assert await _codes(db) == ["kept", "second"]


async def test_a_unit_is_used_inside_async_with_once_at_a_time_and_can_be_reused(db: Database) -> None:
    uow = LkoUnitOfWork(db)
    with pytest.raises(RuntimeError, match="outside 'async with'"):
        await uow.commit()
    with pytest.raises(RuntimeError, match="outside 'async with'"):
        _ = uow.session
    async with uow:
        with pytest.raises(RuntimeError, match="entered twice"):
            async with uow:
                pass
        await uow.commit()  # nothing done: no session was ever opened
    async with uow:
        assert (await uow.org_types.get("nothing")) is None


async def test_the_links_repository_is_chosen_by_the_database() -> None:
    sqlite = Database("sqlite+aiosqlite:///:memory:")
    postgres = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never connected
    try:
        assert type(ModuleUnitOfWork(sqlite).links) is LinkRepository
        assert type(ModuleUnitOfWork(postgres).links) is PostgresLinkRepository
    finally:
        await sqlite.dispose()
        await postgres.dispose()
