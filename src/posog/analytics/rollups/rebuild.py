"""The rebuild on PostgreSQL: every rollup table written anew from the stored items, set-based, on two
connections at once, into shadow tables that replace the live ones in one short transaction at the end.

The same sums as :class:`~posog.analytics.rollups.items.Deltas` over every stored item — a card is one
service (and one notified), a response one response and, per criterion rating 1..5 in its ``ratings``
``[[criterion, value], …]``, one count at its value — computed by the database with GROUP BY at the day
grain, and each coarser grain summed from the grain before it (the month without organisations from the
month per organisation: 380 000 rows rather than 5 M at 10 M ratings).

**Why two connections and shadow tables.** One backend did all of it in one transaction — at 10 M
ratings 77 s, 71 s of it CPU in that one process, while the machine's other core idled. Work spread
over several connections cannot be in one transaction, so it is written into tables of its own
(``<table>_next``), committed task by task, and swapped in at the end:

1. *Lanes* (:data:`LANES` connections of the rebuild's own, :func:`_run_lanes`): the tasks of
   :func:`_plan`, each in a transaction of its own; a free lane takes the first task whose inputs are
   written. First both lanes group the day criteria, each the ratings of one half of the days (split
   at the median service date); then the day counts, each coarser grain from the grain before it, and
   every index — of the day criteria's three, two build at once. Last, each table's primary key is
   made a constraint over its index, and the table is ANALYZEd.
2. *Swap* (the caller's transaction, which has held the feeds' cursors locked since before the lanes
   started, so no item changed meanwhile): the live tables dropped, the shadow tables, their primary
   keys and indexes renamed to the live names. Readers go on reading the old rollups while the lanes
   work, instead of waiting for the rebuild; they wait only for the swap.

A failed or interrupted rebuild leaves the live tables as they were; its shadow tables are dropped
(and, if the process died, by the next rebuild, before it starts). The shadows take as much disk as
the live rollups until the swap.

Keys and indexes are built after the rows are in: writing millions of rows into tables that keep three
B-trees each, in hash order, costs more than building the B-trees once from sorted data. The day grain
is written in day order within each half, so a period's days stay near each other on disk.

Measured at 10 M ratings (2 cores, ``bench/analytics.py``): 77 s in one transaction before, ≈ 50 s now —
the halves ≈ 23 s side by side, then the rest ≈ 26 s."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posog.analytics.rollups.repository import COUNT_COLUMNS, RATING_COLUMNS, ROLLUP_TABLES

log = structlog.get_logger(__name__)

LANES = 2
SHADOW_SUFFIX = "_next"

# Each lane's transactions. Millions of groups hashed in memory rather than spilled in batches. Index
# sorts: 16 MB runs merged beat one in-memory quicksort of 4.9 M keys with many equal ones (the (region,
# day) index of the day criteria 6.5 s against 13 s at 512 MB), and no parallel workers — the two lanes
# already keep both cores busy.
_SETTINGS = (
    "SET LOCAL work_mem = '512MB'",
    "SET LOCAL maintenance_work_mem = '16MB'",
    "SET LOCAL max_parallel_maintenance_workers = 0",
)

# Grouped in a CTE of its own: planned together with the ORDER BY, PostgreSQL sorts the ratings by all
# six keys to group them (its estimate of the groups is far too low), ≈ 20 % slower than hashing them
# and sorting the groups by day. The ratings are read as jsonb: parsed once per response, not once per
# ``->>`` (≈ 20 % of the statement). Only the five value counts are aggregated; count and sum follow.
_CRITERIA_SQL = """
WITH grains AS MATERIALIZED (
    SELECT r.service_date AS day, r.region_code, r.inn, r.type_code, r.survey_level, e.criterion,
           count(*) FILTER (WHERE e.value = 1) AS n1, count(*) FILTER (WHERE e.value = 2) AS n2,
           count(*) FILTER (WHERE e.value = 3) AS n3, count(*) FILTER (WHERE e.value = 4) AS n4,
           count(*) FILTER (WHERE e.value = 5) AS n5
    FROM analytics_responses AS r
    CROSS JOIN LATERAL (
        SELECT rating ->> 0 AS criterion, (rating ->> 1)::int AS value
        FROM jsonb_array_elements(r.ratings::jsonb) AS rating
    ) AS e
    WHERE e.value BETWEEN 1 AND 5 AND {days}
    GROUP BY 1, 2, 3, 4, 5, 6
)
INSERT INTO {target} (day, region_code, inn, type_code, survey_level, criterion, count, sum, n1, n2, n3, n4, n5)
SELECT day, region_code, inn, type_code, survey_level, criterion,
       n1 + n2 + n3 + n4 + n5, n1 + 2 * n2 + 3 * n3 + 4 * n4 + 5 * n5, n1, n2, n3, n4, n5
FROM grains ORDER BY day
"""

_COUNTS_SQL = """
WITH grains AS (
    SELECT day, region_code, inn, type_code, survey_level,
           sum(services)::int AS services, sum(notified)::int AS notified, sum(responses)::int AS responses,
           sum(delivery_failed)::int AS delivery_failed
    FROM (
        SELECT service_date AS day, region_code, inn, type_code, survey_level,
               count(*) AS services, count(*) FILTER (WHERE notified) AS notified, 0 AS responses,
               count(*) FILTER (WHERE delivery_failed) AS delivery_failed
        FROM analytics_cards
        GROUP BY 1, 2, 3, 4, 5
        UNION ALL
        SELECT service_date, region_code, inn, type_code, survey_level, 0, 0, count(*), 0
        FROM analytics_responses
        GROUP BY 1, 2, 3, 4, 5
    ) AS parts
    GROUP BY 1, 2, 3, 4, 5
), written AS (
    INSERT INTO {target} (day, region_code, inn, type_code, survey_level, services, notified, responses,
                          delivery_failed)
    SELECT day, region_code, inn, type_code, survey_level, services, notified, responses, delivery_failed
    FROM grains ORDER BY 1
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS rollups,
       (SELECT coalesce(sum(services), 0) FROM grains) AS cards,
       (SELECT coalesce(sum(responses), 0) FROM grains) AS responses
"""

# The median service date of the responses (from a 1 % sample of the table's pages, or all of it when
# the sample is empty): the two lanes' halves of the criterion ratings.
_SPLIT_SQL = """
SELECT coalesce(
    (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY service_date) FROM analytics_responses TABLESAMPLE SYSTEM (1)),
    (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY service_date) FROM analytics_responses)
)
"""


def shadow(name: str) -> str:
    return f"{name}{SHADOW_SUFFIX}"


def _coarser_sql(
    key: Sequence[str], target: str, finer_key: Sequence[str], source: str, measures: Sequence[str]
) -> str:
    """``INSERT … SELECT`` summing the rows of a finer grain's table ``source`` (keyed by ``finer_key``) into
    a coarser grain's ``target`` (keyed by ``key``): its ``measures``, per criterion when they are ratings."""
    month = "month" if "month" in finer_key else "date_trunc('month', day)::date"
    extra = ["criterion"] if measures == RATING_COLUMNS else []
    columns = ", ".join([*key, *extra, *measures])
    values = ", ".join([*(month if name == "month" else name for name in key), *extra])
    sums = ", ".join(f"sum({name})::int" for name in measures)
    groups = ", ".join(str(n) for n in range(1, len(key) + len(extra) + 1))
    return f"INSERT INTO {target} ({columns}) SELECT {values}, {sums} FROM {source} GROUP BY {groups}"  # noqa: S608


def _storage(table: Table) -> str:
    """``WITH (…)`` of the live table's storage parameters (its fill factor), as the model declares them."""
    options = table.dialect_options["postgresql"]["with"] or {}
    return f" WITH ({', '.join(f'{name} = {value}' for name, value in options.items())})" if options else ""


def _index_sql(table: Table) -> list[tuple[str, str]]:
    """``CREATE INDEX`` of each of the shadow's indexes, its primary key's first, under shadow names. Each
    can be built while another is (they take SHARE locks), so the lanes share a large table's."""
    target = shadow(table.name)
    primary = ", ".join(column.name for column in table.primary_key.columns)
    pk = shadow(str(table.primary_key.name))
    statements = [(pk, f"CREATE UNIQUE INDEX {pk} ON {target} ({primary})")]
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        unique = "UNIQUE " if index.unique else ""
        columns = ", ".join(column.name for column in index.columns)
        name = shadow(str(index.name))
        statements.append((name, f"CREATE {unique}INDEX {name} ON {target} ({columns})"))
    return statements


def _finish_sql(table: Table) -> list[str]:
    """The shadow's primary key made a constraint (over the index already built) and its statistics."""
    pk = shadow(str(table.primary_key.name))
    target = shadow(table.name)
    return [f"ALTER TABLE {target} ADD CONSTRAINT {pk} PRIMARY KEY USING INDEX {pk}", f"ANALYZE {target}"]


def _swap_sql(tables: Sequence[Table]) -> list[str]:
    """The live tables dropped, and their shadows, keys and indexes renamed to the live names."""
    statements = [f"DROP TABLE {', '.join(table.name for table in tables)}"]
    for table in tables:
        statements.append(f"ALTER TABLE {shadow(table.name)} RENAME TO {table.name}")
        pk = str(table.primary_key.name)
        statements.append(f"ALTER TABLE {table.name} RENAME CONSTRAINT {shadow(pk)} TO {pk}")
        statements.extend(
            f"ALTER INDEX {shadow(str(index.name))} RENAME TO {index.name}"
            for index in sorted(table.indexes, key=lambda i: str(i.name))
        )
    return statements


def _tables() -> tuple[tuple[Sequence[str], Table, Table], ...]:
    return tuple((key, counts.__table__, criteria.__table__) for key, counts, criteria in ROLLUP_TABLES)


async def _drop_shadows(engine: AsyncEngine, tables: Sequence[Table]) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL lock_timeout = '60s'"))
        await connection.execute(text(f"DROP TABLE IF EXISTS {', '.join(shadow(t.name) for t in tables)}"))


async def _step(engine: AsyncEngine, *sql: str, parameters: dict[str, Any] | None = None) -> Any:
    """One step of a lane: its statements in a transaction of their own, committed at the end. Returns the
    rows of the last statement when it has any, else its row count."""
    async with engine.begin() as connection:
        for setting in _SETTINGS:
            await connection.execute(text(setting))
        result = None
        for statement in sql:
            result = await connection.execute(text(statement), parameters or {})
        assert result is not None
        return result.all() if result.returns_rows else result.rowcount


@dataclass(frozen=True)
class _Task:
    name: str
    sql: tuple[str, ...]
    after: tuple[str, ...] = ()
    parameters: dict[str, Any] | None = None


async def _run_lanes(engine: AsyncEngine, tasks: Sequence[_Task], lanes: int = LANES) -> dict[str, Any]:
    """Run ``tasks`` on ``lanes`` connections at once: each free lane takes the first task (in the order
    given: the longest chains first) whose ``after`` tasks are done. The first failure cancels the lanes
    and is raised. Returns each task's :func:`_step` result by name."""
    results: dict[str, Any] = {}
    waiting = list(tasks)
    running: dict[asyncio.Task[Any], str] = {}
    try:
        while waiting or running:
            for task in [t for t in waiting if set(t.after) <= results.keys()]:
                if len(running) == lanes:
                    break
                waiting.remove(task)
                job = asyncio.ensure_future(_step(engine, *task.sql, parameters=task.parameters))
                running[job] = task.name
            if not running:
                raise RuntimeError(f"rebuild tasks wait for tasks that never run: {[t.name for t in waiting]}")
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                results[running.pop(job)] = job.result()
    finally:
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return results


def _plan(grains: Sequence[tuple[Sequence[str], Table, Table]], split: date | None) -> list[_Task]:
    """The rebuild's tasks, longest chains first: the day criteria in two halves of the days, then their
    indexes, the day counts, and each coarser grain from the grain before it; last, each table's key and
    statistics once its indexes are built."""
    (day_key, day_counts, day_criteria), *coarser = grains
    target = shadow(day_criteria.name)
    if split is None:  # no responses: nothing to split
        halves = [_Task("criteria", (_CRITERIA_SQL.format(target=target, days="true"),))]
    else:
        halves = [
            _Task(
                f"criteria {op}",
                (_CRITERIA_SQL.format(target=target, days=f"r.service_date {op} :split"),),
                parameters={"split": split},
            )
            for op in ("<", ">=")
        ]
    filled = {day_criteria.name: tuple(task.name for task in halves), day_counts.name: ("counts",)}
    fills = [_Task("counts", (_COUNTS_SQL.format(target=shadow(day_counts.name)),))]
    for measures, day_table, tables in (
        (RATING_COLUMNS, day_criteria, [(key, criteria) for key, _, criteria in coarser]),
        (COUNT_COLUMNS, day_counts, [(key, counts) for key, counts, _ in coarser]),
    ):
        finer_key, finer = day_key, day_table
        for key, table in tables:
            sql = _coarser_sql(key, shadow(table.name), finer_key, shadow(finer.name), measures)
            fills.append(_Task(table.name, (sql,), after=filled[finer.name]))
            filled[table.name] = (table.name,)
            finer_key, finer = key, table
    indexes: dict[str, list[_Task]] = {}
    finishes: list[_Task] = []
    for _, counts, criteria in grains:
        for table in (criteria, counts):
            indexes[table.name] = [_Task(name, (sql,), after=filled[table.name]) for name, sql in _index_sql(table)]
            after = tuple(t.name for t in indexes[table.name])
            finishes.append(_Task(f"{table.name}: key", tuple(_finish_sql(table)), after=after))
    # The day criteria's indexes are the longest work after the halves; the day counts can start at once.
    first = indexes.pop(day_criteria.name)
    return [*halves, *first, *fills, *(task for built in indexes.values() for task in built), *finishes]


async def rebuild_rollups_in_parallel(engine: AsyncEngine, session: AsyncSession) -> dict[str, int]:
    """Write every rollup table anew from the stored items (see the module's docstring) and swap the
    new tables in within ``session``'s transaction — which must already hold the feeds' cursors locked,
    and whose commit makes the new rollups visible. ``engine`` gives the lanes their connections (its
    own: they are not taken from the application's pool). Returns the counts of
    :class:`~posog.analytics.rollups.pipeline.RebuildResult`."""
    grains = _tables()
    tables = [table for _, counts, criteria in grains for table in (counts, criteria)]
    split: date | None = (await session.execute(text(_SPLIT_SQL))).scalar_one()
    await _drop_shadows(engine, tables)  # a rebuild that died before its swap left them
    try:
        await _step(
            engine,
            *(
                f"CREATE TABLE {shadow(table.name)} (LIKE {table.name} INCLUDING DEFAULTS){_storage(table)}"
                for table in tables
            ),
        )
        plan = _plan(grains, split)
        results = await _run_lanes(engine, plan)
    except BaseException:
        try:
            await asyncio.shield(_drop_shadows(engine, tables))
        except Exception as exc:  # the next rebuild drops them before it starts
            log.warning("analytics.rebuild_cleanup_failed", error=exc.__class__.__name__, detail=str(exc)[:200])
        raise
    # A failure from here on rolls the caller's transaction back; the shadows stay for the next rebuild
    # to drop (dropping them now would wait for this very transaction's locks on them).
    for statement in _swap_sql(tables):
        await session.execute(text(statement))
    (written,) = results["counts"]
    return {
        "cards": int(written.cards),
        "responses": int(written.responses),
        "rollups": int(written.rollups),
        "criterion_rollups": sum(int(results[task.name]) for task in plan if task.name.startswith("criteria")),
    }
