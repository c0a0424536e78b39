"""Link resolution (SPEC §6, issue 7 item 2): ``GET /api/v1/survey-links/{token}`` of a real
``posog serve module`` process at 64 concurrent clients, beside the same server answering a constant
JSON (``/healthz``) — the raw limit of the server stack: same uvicorn, same app, same process.

Links: the run's N facts through the real intake (``bench.http.seeded_links``). ЛКО is a
``posog serve lko`` process of its own, as in production (``POSOG_LKO_URL``): the module's catalog asks
it for the pinned version once (immutable, cached for good) and for the questionnaire's status every
``POSOG_QUESTIONNAIRE_CACHE_S`` (5 s). Requests carry ЛКП's service key and an ``X-Posog-Client``
address, as ЛКП's do. Timed, each with its own load-generator run:

* **bare HTTP** — N × ``GET /healthz`` (constant JSON, no database);
* **first open** — each of the N links once (SELECT link + card, UPDATE → ``opened``): every answer
  must be 200 and every link ``opened`` afterwards;
* **reopen** — the same N links again (already ``opened``: nothing to change)."""

from __future__ import annotations

import random

import asyncpg

from bench.common import BenchContext, BenchError, Measurement, Ratio, workload
from bench.http import Bound, LoadResult, Server, run_load, sampled, seeded_links, service_key, serving

CONCURRENCY = 64
TARGET_SHARE = 0.5
TARGET_P99_MS = 50.0
WARMUP = 500  # requests of each kind before the timed runs: connection pools, caches, code paths


def _link_requests(ctx: BenchContext, tokens: list[str]) -> list[tuple[str, str, dict[str, str], None]]:
    key = service_key(ctx, "lkp")
    rng = random.Random(7)
    return [
        (
            "GET",
            f"/api/v1/survey-links/{token}",
            {"Authorization": f"Bearer {key}", "X-Posog-Client": f"10.{rng.randrange(256)}.{rng.randrange(256)}.1"},
            None,
        )
        for token in tokens
    ]


def _measurement(key: str, label: str, kind: str, result: LoadResult, method: str, **extra: object) -> Measurement:
    return Measurement(
        key=key,
        label=label,
        kind=kind,  # type: ignore[arg-type]
        count=result.count,
        seconds=result.seconds,
        unit="req/s",
        method=method,
        extra={**result.figures(), **extra},
    )


def _all_ok(result: LoadResult, what: str) -> None:
    bad = {status: n for status, n in result.status_counts().items() if status != "200"}
    if bad or result.errors:
        raise BenchError(f"{what}: answers other than 200: {bad}; connection errors: {result.errors[:3]}")


@workload(
    "links",
    ratios=(Ratio("links (first open) ÷ bare HTTP, same server", "links", "links_bare_http", minimum=TARGET_SHARE),),
    targets=(Bound("links p99 (first open)", "links", 0.0, field="p99_ms", maximum=TARGET_P99_MS, unit="ms"),),
)
async def links(ctx: BenchContext) -> list[Measurement]:
    """GET /api/v1/survey-links/{token}: posog serve module, 64 clients, beside /healthz of the same server."""
    async with seeded_links(ctx, "links") as seeded:
        tokens = seeded.tokens
        warm = min(WARMUP, len(tokens) // 5)
        timed = tokens[warm:]
        async with serving(ctx, "links", seeded.database, ("module", "lko")) as servers:
            module = servers["module"]
            both: list[Server] = list(servers.values())
            ctx.step("links", f"warming up ({warm} links, {WARMUP} × /healthz)")
            bare = [("GET", "/healthz", {}, None)] * len(timed)
            await run_load(ctx, both, module.port, bare[:WARMUP], concurrency=CONCURRENCY)
            if warm:
                await run_load(ctx, both, module.port, _link_requests(ctx, tokens[:warm]), concurrency=CONCURRENCY)

            ctx.step("links", f"bare HTTP: {len(bare)} × GET /healthz, {CONCURRENCY} clients")
            result = await run_load(ctx, both, module.port, bare, concurrency=CONCURRENCY, database=seeded.database)
            _all_ok(result, "/healthz")
            ctx.record(
                _measurement(
                    "links_bare_http",
                    "bare HTTP: GET /healthz, same server",
                    "limit",
                    result,
                    f"posog serve module, constant JSON, {CONCURRENCY} clients",
                )
            )

            ctx.step("links", f"first open: {len(timed)} links, {CONCURRENCY} clients")
            requests = _link_requests(ctx, timed)
            async with sampled(ctx, "links", both):
                result = await run_load(
                    ctx, both, module.port, requests, concurrency=CONCURRENCY, database=seeded.database, name="links"
                )
            _all_ok(result, "first open")
            connection = await asyncpg.connect(seeded.database.dsn, timeout=10)
            try:
                opened = await connection.fetchval("SELECT count(*) FROM module_survey_links WHERE state = 'opened'")
            finally:
                await connection.close()
            if opened != len(tokens):
                raise BenchError(f"{opened} links opened, expected {len(tokens)}")
            ctx.record(
                _measurement(
                    "links",
                    "links: first open (SELECT + UPDATE → opened)",
                    "workload",
                    result,
                    f"posog serve module (+ lko), {CONCURRENCY} clients, distinct links",
                    opened=opened,
                )
            )

            ctx.step("links", f"reopen: the same {len(timed)} links again")
            result = await run_load(ctx, both, module.port, requests, concurrency=CONCURRENCY, database=seeded.database)
            _all_ok(result, "reopen")
            ctx.record(
                _measurement(
                    "links_reopen",
                    "links: reopen (already opened)",
                    "workload",
                    result,
                    f"the same links again, {CONCURRENCY} clients",
                )
            )
    return []
