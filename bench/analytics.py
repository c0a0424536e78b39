"""Analytics at scale (SPEC §8; issue 7 item 4): a full rebuild of the rollups over R criterion ratings
(default 10 000 000), an incremental refresh after R_new more (default 100 000), and the dashboard API's
latency — each beside a raw limit measured in the same run.

**Sizes.** A *rating* is what analytics counts: one criterion rating of a response (the default
questionnaire rates five criteria, ``analytics_responses.ratings``). R ratings are R/5 responses; the
cards are twice as many (a response rate of 50 %), over ``ORGANIZATIONS`` organisations (89 regions,
24 types) and the ``DAYS`` days before today, 80 % federal / 15 % regional / 5 % municipal. ``--analytics-
ratings`` and ``--analytics-new`` make it smaller; targets are checked on the figures projected
linearly to the issue's sizes (the same as measured at full size).

**Data.** Generated with bulk SQL (``generate_series``), never through the feeds: analytics' stored
items (``analytics_cards``, ``analytics_responses``, ``analytics_organizations``) — what the feeds would
have left after reading R ratings — and, for the refresh, the sources of R_new/5 new responses: their
cards in the module (``module_service_cards`` + ``module_survey_links``, completed a minute ago; the
same cards are in ``analytics_cards`` as notified, as analytics last saw them) and the responses in ЛКО
(``lko_responses``, answers to the seeded default questionnaires). The sources hold only those: the
feeds' keyset pages read the same rows whatever lies before them.

**Timed.**

* *rebuild* — ``AnalyticsPipeline.rebuild()`` (what ``posog analytics rebuild`` runs; it ANALYZEs every
  rollup table itself); beside it the raw limit: the same two ``GROUP BY`` aggregations (cards; the
  responses' ratings unnested from JSON) into temporary tables, nothing else.
* *refresh* — ``AnalyticsPipeline.poll_once()`` (one poll of ``posog worker analytics``) against real
  ``posog serve module`` and ``posog serve lko`` processes over HTTP: both feeds read to their ends,
  items upserted, deltas applied. Beside it the raw limit: the same source rows ``SELECT``-ed and the
  same number of item rows upserted with SQLAlchemy Core, ``analytics_page_size`` at a time.
  Afterwards the rollups must equal a second rebuild's, row for row (exactly once at scale).
* *dashboard* — ``GET /api/v1/analytics/summary|ratings|timeseries`` of ``posog serve analytics`` with
  the calls of ЛКО's report page (country, region and organisation reports; all time and the last 30
  days; ``bucket=month``) at ``DASHBOARD_CLIENTS`` concurrent clients; the raw limit: ``/healthz`` of
  the same server."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.common import (
    BenchContext,
    BenchError,
    Measurement,
    Ratio,
    ScratchDatabase,
    cpu_meter,
    scratch_database,
    workload,
)
from bench.http import Bound, Request, run_load, sampled, service_key, serving

TARGET_RATINGS = 10_000_000
TARGET_NEW = 100_000
TARGET_REBUILD_S = 60.0
TARGET_REFRESH_S = 2.0
TARGET_P99_MS = 100.0

CRITERIA = ("service_time", "queue_time", "staff", "comfort", "information")  # q1..q5 of the default questionnaire
CARDS_PER_RESPONSE = 2
ORGANIZATIONS = 2_000
DAYS = 365
DASHBOARD_CLIENTS = 8
DASHBOARD_REQUESTS = 600
# Other reports asked first, so that every pooled connection has prepared the statements of every
# shape of answer (a server that runs for days has): 200 requests, not the timed ones.
DASHBOARD_WARM_UP = 200


@dataclass(frozen=True)
class Sizes:
    ratings: int
    new_ratings: int

    @property
    def responses(self) -> int:
        return self.ratings // len(CRITERIA)

    @property
    def cards(self) -> int:
        """Analytics' cards: those of the responses it read, of the new responses (notified, as it last
        saw them), and as many unanswered again."""
        return (self.responses + self.new_responses) * CARDS_PER_RESPONSE

    @property
    def new_responses(self) -> int:
        return self.new_ratings // len(CRITERIA)


# --- Seeding -------------------------------------------------------------------------------------


def _organizations(seed: int) -> list[tuple[int, str, str, str, str, str, str]]:
    """(n, inn, ogrn, kpp, region_code, type_code, name) of ``ORGANIZATIONS`` organisations."""
    from posog.core import ids, regions
    from posog.emulators.datagen.facts import TYPES

    rng = random.Random(seed)
    region_codes = sorted(regions.REGIONS)
    type_codes = sorted(TYPES)
    rows = []
    for n in range(ORGANIZATIONS):
        region = region_codes[n % len(region_codes)]
        type_code = type_codes[(n * 7) % len(type_codes)]
        name = TYPES[type_code][0].format(n=n + 1, city=regions.REGIONS[region].name)
        inn = ids.make_inn_org(rng, region)
        rows.append((n, inn, ids.make_ogrn(rng, region), ids.make_kpp(rng, region), region, type_code, name))
    return rows


# Deterministic pseudo-random values from a row number: hashint8 is PostgreSQL's own hash of a bigint.
_PICK = "abs(hashint8({x}::bigint * 1000003 + {salt}))"

SEED_ITEMS_SQL = """
INSERT INTO analytics_cards (card_id, inn, region_code, type_code, survey_level, service_date, link_state,
                             notified, source_updated_at)
SELECT 'BENCH-' || g, o.inn, o.region_code, o.type_code,
       CASE WHEN {level} % 100 < 80 THEN 'federal' WHEN {level} % 100 < 95 THEN 'regional' ELSE 'municipal' END,
       current_date - ({day} % {days})::int,
       CASE WHEN g % {per_response} = 0 THEN 'completed' ELSE 'notified' END,
       true, now() - interval '1 day'
FROM generate_series(1, {cards}) AS g
JOIN bench_orgs AS o ON o.n = {org} % {orgs}
"""

SEED_RESPONSES_SQL = """
INSERT INTO analytics_responses (response_id, card_id, inn, region_code, type_code, survey_level, service_date,
                                 questionnaire_id, questionnaire_version, submitted_at, ratings)
SELECT 'R-' || c.card_id, c.card_id, c.inn, c.region_code, c.type_code, c.survey_level, c.service_date,
       '00000000-0000-4000-8000-000000000000', 1, now() - interval '1 day',
       json_build_array({ratings})
FROM analytics_cards AS c
WHERE c.link_state = 'completed'
"""

# A rating 1..5 skewed to the positive, as real ones are: 5 % ones, 5 % twos, 15 % threes, 30 % fours.
_RATING = (
    "CASE WHEN {x} % 100 < 5 THEN 1 WHEN {x} % 100 < 10 THEN 2 WHEN {x} % 100 < 25 THEN 3 "
    "WHEN {x} % 100 < 55 THEN 4 ELSE 5 END"
)

SEED_NAMES_SQL = """
INSERT INTO analytics_organizations (inn, org_name, region_code, name_key)
SELECT inn, name, region_code, '0000-00-00|bench|c' FROM bench_orgs
"""

# The sources of the refresh: R_new/5 of the answered cards, completed in the module a minute ago, and
# their responses in ЛКО (answers to the seeded default questionnaire of their type, version 1).
SEED_SOURCES_SQL = (
    """
CREATE TEMP TABLE bench_new AS
SELECT c.*, o.ogrn, o.kpp, o.name, row_number() OVER (ORDER BY c.card_id) AS k
FROM analytics_cards AS c JOIN bench_orgs AS o ON o.inn = c.inn
WHERE c.link_state = 'completed'
ORDER BY c.card_id
LIMIT {new}
""",
    "UPDATE analytics_cards SET link_state = 'notified' WHERE card_id IN (SELECT card_id FROM bench_new)",
    "DELETE FROM analytics_responses WHERE card_id IN (SELECT card_id FROM bench_new)",
    """
INSERT INTO module_service_cards (id, card_id, message_id, payload_hash, survey_level, service_date, service_name,
    org_name, org_address, inn, ogrn, kpp, type_code, region_code, status, created_at, updated_at)
SELECT gen_random_uuid()::text, card_id, gen_random_uuid()::text, md5(card_id) || md5(card_id), survey_level,
       service_date, 'Услуга', name, 'г. Москва, ул. Тверская, д. 1', inn, ogrn, kpp, type_code, region_code,
       'linked', now() - interval '20 days', now() - interval '20 days'
FROM bench_new
""",
    """
INSERT INTO module_survey_links (id, card_id, token_hash, questionnaire_id, questionnaire_version, state, expires_at,
    issued_at, notified_at, opened_at, completed_at, response_id, changed_at)
SELECT gen_random_uuid()::text, card_id, md5('t' || card_id) || md5('u' || card_id), q.id, 1, 'completed',
       now() + interval '10 days', now() - interval '20 days', now() - interval '20 days', now() - interval '2 minutes',
       now() - interval '1 minute', 'R-' || card_id, now() - interval '1 minute' + k * interval '1 microsecond'
FROM bench_new JOIN bench_questionnaires AS q ON q.type_code = bench_new.type_code
""",
    """
INSERT INTO lko_responses (id, card_id, idempotency_key, token_hash, questionnaire_id, questionnaire_version,
    type_code, survey_level, inn, ogrn, kpp, region_code, org_name, service_date, answers, submitted_at,
    link_completed_at)
SELECT gen_random_uuid()::text, card_id, 'key-' || card_id, md5('t' || card_id) || md5('u' || card_id), q.id, 1,
       bench_new.type_code, survey_level, inn, ogrn, kpp, region_code, name, service_date,
       jsonb_build_object({answers}, 'q6', 4), now() - interval '1 minute' + k * interval '1 microsecond',
       now() - interval '1 minute'
FROM bench_new JOIN bench_questionnaires AS q ON q.type_code = bench_new.type_code
""",
)


async def _seed(ctx: BenchContext, connection: asyncpg.Connection, sizes: Sizes) -> dict[str, Any]:
    from posog.lko.questionnaires.defaults import default_questionnaire_id

    started = time.perf_counter()
    await connection.execute(
        "CREATE TEMP TABLE bench_orgs (n int PRIMARY KEY, inn text, ogrn text, kpp text, region_code text,"
        " type_code text, name text)"
    )
    orgs = _organizations(ctx.seed)
    await connection.copy_records_to_table("bench_orgs", records=orgs)
    await connection.execute("CREATE TEMP TABLE bench_questionnaires (type_code text PRIMARY KEY, id text)")
    await connection.copy_records_to_table(
        "bench_questionnaires", records=[(row[5], default_questionnaire_id(row[5])) for row in orgs[:24]]
    )
    ctx.progress = f"{sizes.cards} cards"
    await connection.execute(
        SEED_ITEMS_SQL.format(
            cards=sizes.cards,
            per_response=CARDS_PER_RESPONSE,
            days=DAYS,
            orgs=ORGANIZATIONS,
            level=_PICK.format(x="g", salt=1),
            day=_PICK.format(x="g", salt=2),
            org=_PICK.format(x="g", salt=3),
        )
    )
    ctx.progress = f"{sizes.responses} responses"
    key = "hashint8(substr(c.card_id, 7)::bigint)"
    ratings = ", ".join(
        f"json_build_array('{criterion}', {_RATING.format(x=_PICK.format(x=key, salt=10 + i))})"
        for i, criterion in enumerate(CRITERIA)
    )
    await connection.execute(SEED_RESPONSES_SQL.format(ratings=ratings))
    await connection.execute(SEED_NAMES_SQL)
    ctx.progress = f"{sizes.new_responses} new responses in the sources"
    answers = ", ".join(
        f"'q{i + 1}', {_RATING.format(x=_PICK.format(x='k', salt=20 + i))}" for i in range(len(CRITERIA))
    )
    for statement in SEED_SOURCES_SQL:
        await connection.execute(statement.format(new=sizes.new_responses, answers=answers))
    found = await connection.fetchrow(
        """SELECT (SELECT count(*) FROM analytics_cards) AS cards,
                  (SELECT count(*) FROM analytics_responses) AS responses,
                  (SELECT count(*) FROM module_service_cards) AS new_cards,
                  (SELECT count(*) FROM lko_responses) AS new_responses"""
    )
    ctx.progress = "VACUUM ANALYZE"
    for table in (
        "analytics_cards",
        "analytics_responses",
        "analytics_organizations",
        "module_service_cards",
        "module_survey_links",
        "lko_responses",
    ):
        await connection.execute(f"VACUUM ANALYZE {table}")
    return {**dict(found), "seconds": round(time.perf_counter() - started, 1)}


# --- The pieces timed ----------------------------------------------------------------------------

BARE_AGGREGATES = (
    """CREATE TEMP TABLE bare_rollups AS
       SELECT service_date, region_code, inn, type_code, survey_level,
              count(*) AS services, count(*) FILTER (WHERE notified) AS notified
       FROM analytics_cards GROUP BY 1, 2, 3, 4, 5""",
    """CREATE TEMP TABLE bare_responses AS
       SELECT service_date, region_code, inn, type_code, survey_level, count(*) AS responses
       FROM analytics_responses GROUP BY 1, 2, 3, 4, 5""",
    """CREATE TEMP TABLE bare_criteria AS
       SELECT r.service_date, r.region_code, r.inn, r.type_code, r.survey_level, e ->> 0 AS criterion,
              count(*) AS n, sum((e ->> 1)::int) AS total
       FROM analytics_responses AS r, json_array_elements(r.ratings) AS e GROUP BY 1, 2, 3, 4, 5, 6""",
)

# Order-independent fingerprints of the two rollup tables: row counts, totals, and the sum of a 64-bit
# hash of every row (one scan each; equal fingerprints = the same rows, bar a 2^-64 accident).
ROLLUPS_CHECKSUM_SQL = """
SELECT (SELECT count(*) FROM analytics_rollups) AS rollups,
       (SELECT coalesce(sum(services), 0) FROM analytics_rollups) AS services,
       (SELECT coalesce(sum(responses), 0) FROM analytics_rollups) AS responses,
       (SELECT coalesce(sum(hashtextextended(concat_ws(',', day, region_code, inn, type_code, survey_level,
                                                        services, notified, responses), 0)), 0)
        FROM analytics_rollups) AS rollups_hash,
       (SELECT count(*) FROM analytics_criterion_rollups) AS criterion_rollups,
       (SELECT coalesce(sum(count), 0) FROM analytics_criterion_rollups) AS ratings,
       (SELECT coalesce(sum(hashtextextended(concat_ws(',', day, region_code, inn, type_code, survey_level,
                                                        criterion, count, sum, n1, n2, n3, n4, n5), 0)), 0)
        FROM analytics_criterion_rollups) AS criteria_hash,
       (SELECT coalesce(sum(hashtextextended(t::text, 0)), 0) FROM analytics_org_month_rollups AS t) AS org_months_hash,
       (SELECT coalesce(sum(hashtextextended(t::text, 0)), 0)
        FROM analytics_org_month_criterion_rollups AS t) AS org_month_criteria_hash,
       (SELECT coalesce(sum(hashtextextended(t::text, 0)), 0) FROM analytics_month_rollups AS t) AS months_hash,
       (SELECT coalesce(sum(hashtextextended(t::text, 0)), 0)
        FROM analytics_month_criterion_rollups AS t) AS month_criteria_hash
"""


def _plain(row: asyncpg.Record) -> dict[str, int]:
    """A fingerprint row as JSON-friendly integers (the sums come back as Decimal)."""
    return {key: int(value) for key, value in row.items()}


def _database(url: str) -> Any:
    from posog.core.db import Database
    from posog.settings import Settings

    return Database(url, pool_size=Settings(_env_file=None, env="test").db_pool_size)  # type: ignore[call-arg]


def _pipeline(db: Any, cards: Any, responses: Any) -> Any:
    from posog.analytics.rollups.pipeline import AnalyticsPipeline
    from posog.core.clock import utcnow
    from posog.settings import Settings

    s = Settings(_env_file=None, env="test")  # type: ignore[call-arg]
    return AnalyticsPipeline(
        db,
        utcnow,
        cards,
        responses,
        overlap_s=s.analytics_feed_overlap_s,
        page_size=s.analytics_page_size,
        poll_interval_s=s.analytics_poll_interval_s,
        batch_items=s.analytics_batch_items,
    )


def _page_size() -> int:
    from posog.settings import Settings

    return Settings(_env_file=None, env="test").analytics_page_size  # type: ignore[call-arg]


async def _rebuild(database: ScratchDatabase, connection: asyncpg.Connection) -> tuple[Any, float, dict[str, Any]]:
    """``AnalyticsPipeline.rebuild()``, statistics included: (result, seconds, cpu)."""
    db = _database(database.url)
    try:
        pipeline = _pipeline(db, None, None)  # a rebuild reads no feed
        async with cpu_meter(connection) as cpu:
            started = time.perf_counter()
            result = await pipeline.rebuild()
            seconds = time.perf_counter() - started
    finally:
        await db.dispose()
    return result, seconds, cpu.as_dict()


async def _bare_refresh(database: ScratchDatabase, connection: asyncpg.Connection, page: int) -> float:
    """The refresh's reads and writes without ПОС ОГ: the same source rows selected, and as many item
    rows upserted (SQLAlchemy Core, ``page`` rows per transaction) into scratch copies of the item
    tables. Returns the seconds it took."""
    from sqlalchemy import Column, MetaData, Table
    from sqlalchemy.dialects.postgresql import insert

    from posog.analytics.rollups.model import CardItem, ResponseItem

    for source in ("analytics_cards", "analytics_responses"):
        await connection.execute(f"CREATE TABLE bare_{source} (LIKE {source} INCLUDING ALL)")
    metadata = MetaData()
    tables = {
        name: Table(
            f"bare_{model.__tablename__}",
            metadata,
            *(Column(c.name, c.type, primary_key=c.primary_key) for c in model.__table__.columns),
        )
        for name, model in (("cards", CardItem), ("responses", ResponseItem))
    }
    db = _database(database.url)
    try:
        started = time.perf_counter()
        cards = await connection.fetch(
            """SELECT c.card_id, c.inn, c.region_code, c.type_code, c.survey_level, c.service_date,
                      l.state AS link_state, l.notified_at IS NOT NULL AS notified,
                      greatest(c.updated_at, l.changed_at) AS source_updated_at
               FROM module_service_cards AS c LEFT JOIN module_survey_links AS l ON l.card_id = c.card_id
               ORDER BY greatest(c.updated_at, l.changed_at), c.card_id"""
        )
        responses = await connection.fetch(
            """SELECT id AS response_id, card_id, inn, region_code, type_code, survey_level, service_date,
                      questionnaire_id, questionnaire_version, submitted_at, answers::text AS ratings
               FROM lko_responses ORDER BY submitted_at, id"""
        )
        for name, rows, key in (("cards", cards, "card_id"), ("responses", responses, "response_id")):
            table = tables[name]
            values = [dict(row) for row in rows]
            if name == "responses":
                for row in values:
                    row["ratings"] = [["staff", 5]] * len(CRITERIA)
            statement = insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=[key], set_={c.name: statement.excluded[c.name] for c in table.columns if c.name != key}
            )
            for offset in range(0, len(values), page):
                async with db.engine.begin() as sa:
                    await sa.execute(statement, values[offset : offset + page])
        seconds = time.perf_counter() - started
    finally:
        await db.dispose()
        for source in ("analytics_cards", "analytics_responses"):
            await connection.execute(f"DROP TABLE IF EXISTS bare_{source}")
    return seconds


def _dashboard_requests(ctx: BenchContext, orgs: list[tuple[Any, ...]], n: int, salt: int = 4) -> list[Request]:
    """What ЛКО's report page asks (``posog.lko.reports.data.fetch_report``), for random reports."""
    key = service_key(ctx, "lko")
    headers = {"Authorization": f"Bearer {key}"}
    rng = random.Random(ctx.seed + salt)
    today = datetime.now(UTC).date()
    last_30 = f"&from={(today - timedelta(days=29)).isoformat()}&to={today.isoformat()}"
    base = "/api/v1/analytics"
    requests: list[Request] = []
    while len(requests) < n:
        period = rng.choice(["", last_30])
        org = rng.choice(orgs)
        level = rng.choices(["country", "region", "organization"], weights=[2, 3, 5])[0]
        if level == "country":
            paths = [
                f"{base}/ratings?level=region{period}",
                f"{base}/summary?level=country{period}",
                f"{base}/timeseries?level=country&bucket=month{period}",
            ]
        elif level == "region":
            region = f"region_code={org[4]}"
            paths = [
                f"{base}/ratings?level=organization&{region}{period}",
                f"{base}/summary?level=region&{region}{period}",
                f"{base}/timeseries?level=region&{region}&bucket=month{period}",
            ]
        else:
            inn = f"inn={org[1]}"
            paths = [
                f"{base}/summary?level=organization&{inn}{period}",
                f"{base}/timeseries?level=organization&{inn}&bucket=month{period}",
            ]
        requests += [("GET", path, headers, None) for path in paths]
    return requests[:n]


async def _dashboard_without_cache(
    ctx: BenchContext, database: ScratchDatabase, requests: list[Request]
) -> dict[str, Any]:
    """The same requests to a second ``posog serve analytics`` that keeps no answers
    (``POSOG_ANALYTICS_CACHE_ENTRIES=0``): what every request costs when the rollups have just changed."""
    ctx.step("analytics", f"dashboard, answer cache off: {len(requests)} requests, {DASHBOARD_CLIENTS} clients")
    previous = os.environ.get("POSOG_ANALYTICS_CACHE_ENTRIES")
    os.environ["POSOG_ANALYTICS_CACHE_ENTRIES"] = "0"  # read by the server process started here only
    try:
        async with serving(ctx, "analytics-nocache", database, ("analytics",)) as servers:
            os.environ.pop("POSOG_ANALYTICS_CACHE_ENTRIES")
            if previous is not None:
                os.environ["POSOG_ANALYTICS_CACHE_ENTRIES"] = previous
            server = servers["analytics"]
            warm_up = _dashboard_requests(ctx, _organizations(ctx.seed), DASHBOARD_WARM_UP, salt=5)
            await run_load(ctx, [server], server.port, warm_up, concurrency=DASHBOARD_CLIENTS)
            load = await run_load(
                ctx, [server], server.port, requests, concurrency=DASHBOARD_CLIENTS, database=database
            )
    finally:
        if previous is None:
            os.environ.pop("POSOG_ANALYTICS_CACHE_ENTRIES", None)
        else:
            os.environ["POSOG_ANALYTICS_CACHE_ENTRIES"] = previous
    bad = {k: v for k, v in load.status_counts().items() if k != "200"}
    if bad or load.errors:
        raise BenchError(f"dashboard answers other than 200 (cache off): {bad}; {load.errors[:3]}")
    figures = load.figures()
    return {
        "rate": round(load.count / load.seconds, 1),
        **{key: figures[key] for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms") if key in figures},
    }


def _projected(seconds: float, done: int, target: int) -> float:
    return round(seconds * target / done, 2) if done else float("inf")


def _sizes(ctx: BenchContext) -> Sizes:
    return Sizes(
        int(ctx.cache.get("analytics.ratings", TARGET_RATINGS)), int(ctx.cache.get("analytics.new", TARGET_NEW))
    )


@workload(
    "analytics",
    ratios=(
        Ratio("rebuild ÷ bare GROUP BY of the same rows", "analytics_rebuild", "analytics_bare_aggregate"),
        Ratio("refresh ÷ bare SELECT + upsert of the same rows", "analytics_refresh", "analytics_bare_refresh"),
        Ratio("dashboard ÷ bare HTTP, same server", "analytics_dashboard", "analytics_bare_http"),
    ),
    targets=(
        Bound(
            "rebuild, 10 000 000 ratings",
            "analytics_rebuild",
            0.0,
            field="projected_s",
            maximum=TARGET_REBUILD_S,
            unit="s",
        ),
        Bound(
            "refresh, 100 000 new ratings",
            "analytics_refresh",
            0.0,
            field="projected_s",
            maximum=TARGET_REFRESH_S,
            unit="s",
        ),
        Bound("dashboard p99", "analytics_dashboard", 0.0, field="p99_ms", maximum=TARGET_P99_MS, unit="ms"),
    ),
)
async def analytics(ctx: BenchContext) -> list[Measurement]:
    """Rollups: rebuild over 10 M ratings, refresh after 100 000 new, dashboard API p99 (bulk-seeded)."""
    import httpx

    from posog.lko.client import LkoClient
    from posog.module.client import ModuleClient

    sizes = _sizes(ctx)
    if sizes.new_responses < 1 or sizes.new_responses > sizes.responses // CARDS_PER_RESPONSE:
        raise BenchError(f"--analytics-new must be between {len(CRITERIA)} and a tenth of --analytics-ratings")
    async with scratch_database(ctx, seed=True) as database:
        connection = await asyncpg.connect(database.dsn, timeout=10, command_timeout=None)
        try:
            ctx.step(
                "analytics",
                f"seeding {sizes.ratings:,} ratings ({sizes.responses:,} responses, {sizes.cards:,} cards) and the"
                f" sources of {sizes.new_ratings:,} new ones with bulk SQL (not timed)",
            )
            seeded = await _seed(ctx, connection, sizes)
            ctx.log.print(f"[dim]seeded {seeded}[/dim]")

            ctx.step("analytics", "raw limit: the bare GROUP BY aggregations of the same rows")
            async with cpu_meter(connection) as bare_cpu:
                started = time.perf_counter()
                for statement in BARE_AGGREGATES:
                    await connection.execute(statement)
                bare_s = time.perf_counter() - started
            groups = await connection.fetchval("SELECT count(*) FROM bare_rollups")
            for table in ("bare_rollups", "bare_responses", "bare_criteria"):
                await connection.execute(f"DROP TABLE {table}")
            ctx.record(
                Measurement(
                    key="analytics_bare_aggregate",
                    label="bare GROUP BY of cards + unnested ratings",
                    kind="limit",
                    count=sizes.ratings,
                    seconds=bare_s,
                    unit="ratings/s",
                    method="CREATE TEMP TABLE … AS SELECT … GROUP BY the grain (3 statements), PostgreSQL alone",
                    extra={"grains": groups, "cpu": bare_cpu.as_dict()},
                )
            )

            ctx.step("analytics", f"rebuild over {sizes.ratings:,} ratings")
            result, seconds, cpu = await _rebuild(database, connection)
            if result.responses != seeded["responses"] or result.cards != seeded["cards"]:
                raise BenchError(f"the rebuild read {result}, the tables hold {seeded}")
            ctx.record(
                Measurement(
                    key="analytics_rebuild",
                    label="rebuild: AnalyticsPipeline.rebuild()",
                    kind="workload",
                    count=sizes.ratings,
                    seconds=seconds,
                    unit="ratings/s",
                    method=f"{result.cards:,} cards, {result.responses:,} responses → {result.rollups:,} + "
                    f"{result.criterion_rollups:,} rollup rows",
                    extra={
                        "projected_s": _projected(seconds, sizes.ratings, TARGET_RATINGS),
                        "result": result.__dict__,
                        "seeded": seeded,
                        "cpu": cpu,
                    },
                )
            )

            async with serving(ctx, "analytics", database, ("module", "lko", "analytics")) as servers:
                ctx.step("analytics", f"refresh: one poll of both feeds ({sizes.new_responses:,} new responses)")
                analytics_key = {"Authorization": f"Bearer {service_key(ctx, 'analytics')}"}
                db = _database(database.url)
                feeds = [servers["module"], servers["lko"]]
                async with (
                    httpx.AsyncClient(base_url=servers["module"].url, headers=analytics_key, timeout=60) as module_http,
                    httpx.AsyncClient(base_url=servers["lko"].url, headers=analytics_key, timeout=60) as lko_http,
                ):
                    try:
                        pipeline = _pipeline(db, ModuleClient(module_http), LkoClient(lko_http))
                        before = {s.system: s.cpu_s() for s in feeds}
                        async with cpu_meter(connection) as cpu_meter_refresh, sampled(ctx, "analytics-refresh", feeds):
                            with ctx.profiled("analytics-refresh"):
                                started = time.perf_counter()
                                polls = await pipeline.poll_once()
                                refresh_s = time.perf_counter() - started
                        server_cpu = {s.system: round(s.cpu_s() - before[s.system], 3) for s in feeds}
                    finally:
                        await db.dispose()
                read = {p.source: {"pages": p.pages, "items": p.items, "changed": p.changed} for p in polls}
                if [p.items for p in polls] != [sizes.new_responses, sizes.new_responses]:
                    raise BenchError(f"the poll read {read}, expected {sizes.new_responses} items of each feed")
                ctx.record(
                    Measurement(
                        key="analytics_refresh",
                        label="refresh: AnalyticsPipeline.poll_once() over HTTP",
                        kind="workload",
                        count=sizes.new_ratings,
                        seconds=refresh_s,
                        unit="ratings/s",
                        method=f"{sizes.new_responses:,} responses + their cards read from posog serve lko / module",
                        extra={
                            "projected_s": _projected(refresh_s, sizes.new_ratings, TARGET_NEW),
                            "read": read,
                            "servers_cpu_s": server_cpu,
                            "cpu": cpu_meter_refresh.as_dict(),
                        },
                    )
                )

                ctx.step("analytics", "raw limit: the same source rows selected, as many item rows upserted")
                bare_refresh_s = await _bare_refresh(database, connection, _page_size())
                ctx.record(
                    Measurement(
                        key="analytics_bare_refresh",
                        label="bare SELECT + upsert of the refresh's rows",
                        kind="limit",
                        count=sizes.new_ratings,
                        seconds=bare_refresh_s,
                        unit="ratings/s",
                        method=f"asyncpg SELECT of both sources; Core INSERT … ON CONFLICT, {_page_size()} rows per "
                        "transaction",
                    )
                )

                ctx.step("analytics", "exactly once: the refreshed rollups against a second rebuild")
                refreshed = _plain(await connection.fetchrow(ROLLUPS_CHECKSUM_SQL))
                _, second_s, _ = await _rebuild(database, connection)
                rebuilt = _plain(await connection.fetchrow(ROLLUPS_CHECKSUM_SQL))
                if refreshed != rebuilt:
                    raise BenchError(f"refreshed rollups {refreshed} differ from a rebuild's {rebuilt}")
                total_ratings = sizes.ratings + sizes.new_responses * len(CRITERIA)
                if rebuilt["ratings"] != total_ratings or rebuilt["responses"] != sizes.responses + sizes.new_responses:
                    raise BenchError(f"the rollups count {rebuilt}, expected {total_ratings} ratings")

                analytics_server = servers["analytics"]
                orgs = _organizations(ctx.seed)
                requests = _dashboard_requests(ctx, orgs, int(ctx.cache.get("analytics.dashboard", DASHBOARD_REQUESTS)))
                ctx.step("analytics", f"dashboard: {len(requests)} requests, {DASHBOARD_CLIENTS} clients (+ /healthz)")
                # Warmed up with other reports: what the timed run finds kept is what it asked itself.
                warm_up = _dashboard_requests(ctx, orgs, DASHBOARD_WARM_UP, salt=5)
                await run_load(ctx, [analytics_server], analytics_server.port, warm_up, concurrency=DASHBOARD_CLIENTS)
                bare = await run_load(
                    ctx,
                    [analytics_server],
                    analytics_server.port,
                    [("GET", "/healthz", {}, None)] * len(requests),
                    concurrency=DASHBOARD_CLIENTS,
                    database=database,
                )
                ctx.record(
                    Measurement(
                        key="analytics_bare_http",
                        label="bare HTTP: GET /healthz, same analytics server",
                        kind="limit",
                        count=bare.count,
                        seconds=bare.seconds,
                        unit="req/s",
                        method=f"posog serve analytics, constant JSON, {DASHBOARD_CLIENTS} clients",
                        extra=bare.figures(),
                    )
                )
                uncached = await _dashboard_without_cache(ctx, database, requests)
                async with sampled(ctx, "analytics-dashboard", [analytics_server]):
                    load = await run_load(
                        ctx,
                        [analytics_server],
                        analytics_server.port,
                        requests,
                        concurrency=DASHBOARD_CLIENTS,
                        database=database,
                        name="analytics-dashboard",
                    )
                bad = {k: v for k, v in load.status_counts().items() if k != "200"}
                if bad or load.errors:
                    raise BenchError(f"dashboard answers other than 200: {bad}; {load.errors[:3]}")
                kinds: dict[str, list[int]] = {}
                for index, (_m, path, _h, _b) in enumerate(requests):
                    kind = path.split("/api/v1/analytics/")[1].split("?")[0] + (" 30 d" if "from=" in path else " all")
                    kinds.setdefault(kind, []).append(index)
                ctx.record(
                    Measurement(
                        key="analytics_dashboard",
                        label="dashboard: summary | ratings | timeseries",
                        kind="workload",
                        count=load.count,
                        seconds=load.seconds,
                        unit="req/s",
                        method=f"ЛКО report calls (country 20 %, region 30 %, organisation 50 %; all time or 30 days),"
                        f" {DASHBOARD_CLIENTS} clients",
                        extra={
                            **load.figures(),
                            "p99_ms_by_call": {
                                k: round(load.percentile_ms(99, v), 1) for k, v in sorted(kinds.items())
                            },
                            "p50_ms_by_call": {
                                k: round(load.percentile_ms(50, v), 1) for k, v in sorted(kinds.items())
                            },
                            "second_rebuild_s": round(second_s, 2),
                            "rollups": rebuilt,
                            "answer_cache_off": uncached,
                        },
                    )
                )
        finally:
            await connection.close()
    return []
