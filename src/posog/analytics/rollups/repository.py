"""Write side of the rollups: stored items, organisation names and the rollup rows, on SQLite and
PostgreSQL alike (``INSERT … ON CONFLICT`` exists in both)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.rollups.items import Deltas, Grain
from posog.analytics.rollups.model import CardItem, CriterionRollup, FeedCursor, Organization, ResponseItem, Rollup

GRAIN_COLUMNS = ("day", "region_code", "inn", "type_code", "survey_level")
_CHUNK = 500


def _insert(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


async def lock_cursor(session: AsyncSession, source: str) -> FeedCursor | None:
    """The cursor row of ``source``, locked for this transaction: appliers of one source take turns,
    so two workers never compute deltas against the same stored state. The no-op UPDATE comes first
    because on SQLite it is what takes the write lock (a transaction that read first could not write
    after another one committed); on PostgreSQL it locks the row like ``FOR UPDATE``."""
    await session.execute(
        update(FeedCursor).where(FeedCursor.source == source).values(updated_at=FeedCursor.updated_at)
    )
    return await session.scalar(select(FeedCursor).where(FeedCursor.source == source).with_for_update())


async def cards_by_id(session: AsyncSession, card_ids: Sequence[str]) -> dict[str, CardItem]:
    found: dict[str, CardItem] = {}
    for start in range(0, len(card_ids), _CHUNK):
        chunk = card_ids[start : start + _CHUNK]
        rows = await session.scalars(select(CardItem).where(CardItem.card_id.in_(chunk)))
        found.update({row.card_id: row for row in rows})
    return found


async def responses_by_id(session: AsyncSession, response_ids: Sequence[str]) -> dict[str, ResponseItem]:
    found: dict[str, ResponseItem] = {}
    for start in range(0, len(response_ids), _CHUNK):
        chunk = response_ids[start : start + _CHUNK]
        rows = await session.scalars(select(ResponseItem).where(ResponseItem.response_id.in_(chunk)))
        found.update({row.response_id: row for row in rows})
    return found


async def upsert_items(session: AsyncSession, dialect: str, model: Any, key: str, rows: list[dict[str, Any]]) -> None:
    """Insert the items, or replace the stored ones with the same ``key``."""
    if not rows:
        return
    statement = _insert(dialect, _table(model))
    statement = statement.on_conflict_do_update(
        index_elements=[key],
        set_={name: statement.excluded[name] for name in rows[0] if name != key},
    )
    await session.execute(statement, rows)


async def upsert_organizations(session: AsyncSession, dialect: str, names: Iterable[dict[str, str]]) -> None:
    """Keep, per ИНН, the name of the item with the greatest ``name_key`` seen so far (order-independent)."""
    best: dict[str, dict[str, str]] = {}
    for row in names:
        known = best.get(row["inn"])
        if known is None or row["name_key"] > known["name_key"]:
            best[row["inn"]] = row
    if not best:
        return
    table = _table(Organization)
    statement = _insert(dialect, table)
    statement = statement.on_conflict_do_update(
        index_elements=["inn"],
        set_={
            "org_name": statement.excluded.org_name,
            "region_code": statement.excluded.region_code,
            "name_key": statement.excluded.name_key,
        },
        where=table.c.name_key < statement.excluded.name_key,
    )
    await session.execute(statement, [best[inn] for inn in sorted(best)])


def _grain_filter(table: Table, grain: Grain) -> Any:
    return and_(*(table.c[name] == value for name, value in grain.as_row().items()))


async def apply_deltas(session: AsyncSession, dialect: str, deltas: Deltas) -> None:
    """Add ``deltas`` to the rollup rows (creating them as needed); rows that fall to zero are removed,
    so the tables hold exactly what a rebuild from the stored items would write."""
    counts = deltas.count_rows()
    if counts:
        table = _table(Rollup)
        statement = _insert(dialect, table)
        statement = statement.on_conflict_do_update(
            index_elements=list(GRAIN_COLUMNS),
            set_={name: table.c[name] + statement.excluded[name] for name in ("services", "notified", "responses")},
        )
        await session.execute(statement, counts)
    criteria = deltas.criterion_rows()
    if criteria:
        table = _table(CriterionRollup)
        statement = _insert(dialect, table)
        statement = statement.on_conflict_do_update(
            index_elements=[*GRAIN_COLUMNS, "criterion"],
            set_={
                name: table.c[name] + statement.excluded[name]
                for name in ("count", "sum", "n1", "n2", "n3", "n4", "n5")
            },
        )
        await session.execute(statement, criteria)
    for grain in deltas.shrinking_grains():
        rollups, criterion_rollups = _table(Rollup), _table(CriterionRollup)
        await session.execute(
            delete(rollups).where(
                _grain_filter(rollups, grain),
                rollups.c.services == 0,
                rollups.c.notified == 0,
                rollups.c.responses == 0,
            )
        )
        await session.execute(
            delete(criterion_rollups).where(_grain_filter(criterion_rollups, grain), criterion_rollups.c.count == 0)
        )


async def replace_rollups(session: AsyncSession, dialect: str, deltas: Deltas) -> None:
    """Empty the rollup tables and write ``deltas`` as their whole content (the rebuild)."""
    await session.execute(delete(Rollup))
    await session.execute(delete(CriterionRollup))
    await apply_deltas(session, dialect, deltas)
