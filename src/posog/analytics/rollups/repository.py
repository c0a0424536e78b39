"""Write side of the rollups: stored items, organisation names and the rollup rows, on SQLite and
PostgreSQL alike (``INSERT … ON CONFLICT`` exists in both)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Table, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.rollups.items import DAY, MONTH, ORG_MONTH, Deltas, GrainKey
from posog.analytics.rollups.model import (
    CardItem,
    CriterionRollup,
    FeedCursor,
    MonthCriterionRollup,
    MonthRollup,
    Organization,
    OrgMonthCriterionRollup,
    OrgMonthRollup,
    ResponseItem,
    Rollup,
)

_CHUNK = 500


def _insert(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


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


async def _rows_by_key(
    session: AsyncSession, dialect: str, model: Any, key: str, keys: Sequence[str]
) -> dict[str, Any]:
    """The stored items with these keys, as rows (mappings of column → value: no ORM objects to build
    for a comparison). On PostgreSQL one parameter rather than an ``IN`` list of hundreds: a statement
    prepared once keeps a plan that uses the primary key."""
    table = _table(model)
    found: dict[str, Any] = {}
    if dialect == "postgresql":
        # The keys as one JSON text (asyncpg encodes a text[] element by element, slowly), and
        # ``= ANY(ARRAY(…))``: one parameter, so the statement prepared once keeps its index plan.
        query = text(
            f"SELECT * FROM {table.name} WHERE {key} = "  # noqa: S608 (names: ours)
            "ANY(ARRAY(SELECT json_array_elements_text(CAST(:keys AS json))))"
        ).columns(*table.c)
        for start in range(0, len(keys), _CHUNK):
            rows = await session.execute(query, {"keys": json.dumps(list(keys[start : start + _CHUNK]))})
            found.update({row._mapping[key]: row._mapping for row in rows})
        return found
    for start in range(0, len(keys), _CHUNK):
        rows = await session.execute(select(table).where(table.c[key].in_(keys[start : start + _CHUNK])))
        found.update({row._mapping[key]: row._mapping for row in rows})
    return found


async def cards_by_id(session: AsyncSession, card_ids: Sequence[str]) -> dict[str, Any]:
    """Stored cards by card id, as rows (column → value)."""
    return await _rows_by_key(session, _dialect(session), CardItem, "card_id", card_ids)


async def responses_by_id(session: AsyncSession, response_ids: Sequence[str]) -> dict[str, Any]:
    """Stored responses by response id, as rows (column → value)."""
    return await _rows_by_key(session, _dialect(session), ResponseItem, "response_id", response_ids)


async def _bulk_upsert(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], conflict: Sequence[str], update: str
) -> None:
    """PostgreSQL: ``rows`` (one per conflict key, in the order given) inserted or merged by ONE
    statement — ``INSERT … SELECT … FROM json_to_recordset($1) ON CONFLICT (conflict) DO UPDATE SET
    <update>`` — rather than one execution per row (``executemany``): a page of 500 responses makes
    some 4 000 rows to write, and per-row executions dominated the refresh. The rows travel as one JSON
    text (dates in ISO form), parsed by the server; column types come from the table. Runs in the
    session's transaction."""
    from sqlalchemy.dialects import postgresql

    dialect: Any = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = list(rows[0])
    record = ", ".join(f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in names)
    statement = text(
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(names)} "  # noqa: S608 (names: ours)
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r ({record}) "
        f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {update}"
    )
    await session.execute(statement, {"rows": orjson.dumps(rows).decode()})


async def upsert_items(session: AsyncSession, model: Any, key: str, rows: list[dict[str, Any]]) -> None:
    """Insert the items, or replace the stored ones with the same ``key``."""
    if not rows:
        return
    dialect = _dialect(session)
    if dialect == "postgresql":
        update = ", ".join(f"{name} = EXCLUDED.{name}" for name in rows[0] if name != key)
        await _bulk_upsert(session, _table(model), rows, [key], update)
        return
    statement = _insert(dialect, _table(model))
    statement = statement.on_conflict_do_update(
        index_elements=[key],
        set_={name: statement.excluded[name] for name in rows[0] if name != key},
    )
    await session.execute(statement, rows)


async def upsert_organizations(session: AsyncSession, names: Iterable[dict[str, str]]) -> None:
    """Keep, per ИНН, the name of the item with the greatest ``name_key`` seen so far (order-independent)."""
    best: dict[str, dict[str, str]] = {}
    for row in names:
        known = best.get(row["inn"])
        if known is None or row["name_key"] > known["name_key"]:
            best[row["inn"]] = row
    if not best:
        return
    table = _table(Organization)
    dialect = _dialect(session)
    if dialect == "postgresql":
        update = (
            "org_name = EXCLUDED.org_name, region_code = EXCLUDED.region_code, name_key = EXCLUDED.name_key"
            f" WHERE {table.name}.name_key < EXCLUDED.name_key"
        )
        await _bulk_upsert(session, table, [best[inn] for inn in sorted(best)], ["inn"], update)
        return
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


COUNT_COLUMNS = ("services", "notified", "responses", "delivery_failed")
RATING_COLUMNS = ("count", "sum", "n1", "n2", "n3", "n4", "n5")

# Each grain's key columns (``items.GRAINS``) and its two tables: counts, criterion ratings.
ROLLUP_TABLES: tuple[tuple[tuple[str, ...], Any, Any], ...] = (
    (DAY, Rollup, CriterionRollup),
    (ORG_MONTH, OrgMonthRollup, OrgMonthCriterionRollup),
    (MONTH, MonthRollup, MonthCriterionRollup),
)
ROLLUP_MODELS = tuple(model for _, counts, criteria in ROLLUP_TABLES for model in (counts, criteria))


async def _add_rows(
    session: AsyncSession, dialect: str, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Add ``rows`` to ``table``'s rows with the same ``keys`` (creating them as needed)."""
    if not rows:
        return
    measures = [name for name in rows[0] if name not in keys]
    if dialect == "postgresql":
        update = ", ".join(f"{name} = {table.name}.{name} + EXCLUDED.{name}" for name in measures)
        await _bulk_upsert(session, table, rows, keys, update)
        return
    statement = _insert(dialect, table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: table.c[name] + statement.excluded[name] for name in measures}
    )
    await session.execute(statement, rows)


async def _remove_empty(
    session: AsyncSession, key: tuple[str, ...], counts: Table, criteria: Table, grains: Sequence[GrainKey]
) -> None:
    """Remove the rows of ``grains`` (keys in the columns ``key``) that have fallen to zero."""
    for grain in grains:
        where = [counts.c[name] == value for name, value in zip(key, grain, strict=True)]
        await session.execute(delete(counts).where(*where, *(counts.c[name] == 0 for name in COUNT_COLUMNS)))
        where = [criteria.c[name] == value for name, value in zip(key, grain, strict=True)]
        await session.execute(delete(criteria).where(*where, criteria.c.count == 0))


async def apply_deltas(session: AsyncSession, deltas: Deltas) -> None:
    """Add ``deltas`` to the rollup rows of every grain (creating them as needed); rows that fall to zero
    are removed, so the tables hold exactly what a rebuild from the stored items would write."""
    dialect = _dialect(session)
    for key, counts, criteria in ROLLUP_TABLES:
        await _add_rows(session, dialect, _table(counts), deltas.count_rows(key), key)
        await _add_rows(session, dialect, _table(criteria), deltas.criterion_rows(key), [*key, "criterion"])
    if deltas.decreases():  # sums of increases never reach zero
        for key, counts, criteria in ROLLUP_TABLES:
            await _remove_empty(session, key, _table(counts), _table(criteria), deltas.shrinking_grains(key))


async def replace_rollups(session: AsyncSession, deltas: Deltas) -> None:
    """Empty the rollup tables and write ``deltas`` as their whole content (the rebuild)."""
    for model in ROLLUP_MODELS:
        await session.execute(delete(model))
    await apply_deltas(session, deltas)
