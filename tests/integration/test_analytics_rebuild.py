"""The PostgreSQL rebuild (``posog analytics rebuild``) writes shadow tables on two connections of its own
and swaps them in at the end: the live rollups stay readable meanwhile, the swapped-in tables are exactly
the schema the models describe, and a rebuild that fails — or died — leaves the rollups as they were and
nothing behind. (Its sums are held to the items' arithmetic in ``test_analytics_incremental``.)"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.engine import Connection

import posog.analytics.rollups.rebuild as rebuild_module
import posog.analytics.tables
import posog.emulators.tables
import posog.lko.tables
import posog.module.tables  # noqa: F401
from posog.analytics.rollups.model import CardItem, ResponseItem
from posog.analytics.rollups.repository import ROLLUP_MODELS
from posog.bootstrap import System
from posog.core.db import Base
from tests.integration.analytics_fixture import ROLLUP_TABLES, analytics_stack, card_item, response_item, rollups

pytestmark = pytest.mark.integration

CRITERIA = ["service_time", "queue_time", "staff", "comfort", "information"]


def _items(seed: int, n: int, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` cards over two months and two regions, half of them answered."""
    rng = random.Random(seed)
    cards, responses = [], []
    for i in range(n):
        grain = {
            "inn": rng.choice(["7703012345", "1655012345", "5012345678"]),
            "region_code": rng.choice(["77", "16"]),
            "type_code": rng.choice(["mfc", "school"]),
            "survey_level": "federal",
            "service_date": date(2026, rng.choice([10, 11]), rng.randint(1, 28)),
        }
        card_id = f"{prefix}-{i}"
        cards.append(card_item(card_id, grain))
        if i % 2 == 0:
            responses.append(response_item(card_id, grain, [[c, rng.randint(1, 5)] for c in CRITERIA]))
    return cards, responses


async def _store(system: System, seed: int, n: int, prefix: str) -> None:
    cards, responses = _items(seed, n, prefix)
    async with system.db.uow() as uow:
        await uow.session.execute(insert(CardItem), cards)
        await uow.session.execute(insert(ResponseItem), responses)
        await uow.commit()


async def _rebuilt_then_more(system: System, seed: int, n: int, more: int) -> dict[str, list[tuple[Any, ...]]]:
    """``n`` cards stored and rebuilt, then ``more`` stored: the rollups as the rebuild left them."""
    await _store(system, seed, n, "A")
    await system.analytics.pipeline.rebuild()
    before = await rollups(system)
    await _store(system, seed + 1, more, "B")
    return before


async def _services(system: System) -> int:
    """Services counted by the day counts (their sixth column)."""
    return sum(row[5] for row in (await rollups(system))["analytics_rollups"])


def _asyncpg_url(system: System) -> str:
    return system.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _shadow_tables(system: System) -> list[str]:
    async with system.db.uow() as uow:
        result = await uow.session.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE '%\\_next'")
        )
        return sorted(result.scalars())


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_the_swapped_in_tables_are_the_schema_the_models_describe(tmp_path: Path) -> None:
    async with analytics_stack("production", tmp_path) as system:
        await _store(system, 1, 200, "C")
        for _ in range(2):  # the second swaps out tables the first swapped in
            await system.analytics.pipeline.rebuild()
        async with system.db.engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            storage: dict[str, Any] = dict(
                (
                    await connection.execute(
                        text("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(:names)"),
                        {"names": list(ROLLUP_TABLES)},
                    )
                ).all()
            )
            constraints = set(
                (
                    await connection.execute(
                        text(
                            "SELECT conname FROM pg_constraint JOIN pg_class ON pg_class.oid = conrelid"
                            " WHERE relname = ANY(:names)"
                        ),
                        {"names": list(ROLLUP_TABLES)},
                    )
                ).scalars()
            )
        for model in ROLLUP_MODELS:
            table = model.__table__
            fillfactor = table.dialect_options["postgresql"]["with"]["fillfactor"]
            assert storage[table.name] == [f"fillfactor={fillfactor}"], table.name
            assert table.primary_key.name in constraints
        assert await _shadow_tables(system) == []


async def test_readers_read_the_old_rollups_until_the_new_ones_are_swapped_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with analytics_stack("production", tmp_path) as system:
        before = await _rebuilt_then_more(system, 2, 120, 80)
        seen: list[dict[str, int]] = []
        run_lanes = rebuild_module._run_lanes

        async def observed(engine: Any, tasks: Any, lanes: int = rebuild_module.LANES) -> Any:
            results = await run_lanes(engine, tasks, lanes)
            # Every shadow table is written; the live ones must still answer at once, with the old rows.
            reader = await asyncpg.connect(_asyncpg_url(system))
            try:
                await reader.execute("SET lock_timeout = '2s'")
                seen.append({table: await reader.fetchval(f"SELECT count(*) FROM {table}") for table in ROLLUP_TABLES})
            finally:
                await reader.close()
            return results

        monkeypatch.setattr(rebuild_module, "_run_lanes", observed)
        await system.analytics.pipeline.rebuild()
        assert seen == [{table: len(rows) for table, rows in before.items()}]
        assert await _services(system) == 200  # both batches of cards
        assert await rollups(system) != before


async def test_a_failed_rebuild_keeps_the_rollups_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with analytics_stack("production", tmp_path) as system:
        before = await _rebuilt_then_more(system, 4, 100, 50)
        monkeypatch.setattr(rebuild_module, "_COUNTS_SQL", "SELECT 1 / 0 -- {target}")
        with pytest.raises(Exception, match="division by zero"):
            await system.analytics.pipeline.rebuild()
        assert await rollups(system) == before
        assert await _shadow_tables(system) == []
        monkeypatch.undo()
        await system.analytics.pipeline.rebuild()  # the cursors were released: the next rebuild goes through
        assert await _services(system) == 150


async def test_a_rebuild_drops_what_a_rebuild_that_died_left(tmp_path: Path) -> None:
    async with analytics_stack("production", tmp_path) as system:
        await _store(system, 6, 60, "C")
        async with system.db.uow() as uow:
            await uow.session.execute(text("CREATE TABLE analytics_rollups_next (junk int)"))
            await uow.session.execute(text("CREATE TABLE analytics_month_criterion_rollups_next (junk int)"))
            await uow.commit()
        result = await system.analytics.pipeline.rebuild()
        assert result.cards == 60
        assert await _shadow_tables(system) == []
        assert await _services(system) == 60
