"""Submissions (SPEC §5, §7; issue 7 item 3): ``POST /api/v1/responses`` of a real ``posog serve lko``
process at 64 concurrent clients, beside the same server answering a constant JSON (``/healthz``).

The production path end to end: ЛКО (``posog serve lko``) resolves each link with the module over HTTP
(``posog serve module``, ``POSOG_MODULE_URL``; the module asks ЛКО back for the questionnaire, cached),
validates the answers against the pinned version, stores the response, then asks the module to complete
the link. Links: the run's N facts through the real intake. Requests carry ЛКП's key, as ЛКП's do.

Besides one submission per link, a tenth of the links get a **retry with the same idempotency key**
and another tenth a **second submission with another key** (a second device, a double click with a
fresh form): each right after the first in the request list, so that the two are in flight together.
Afterwards every link must have exactly one stored response (``lko_responses``), be ``completed`` in the
module by that response's id, with no completion left pending; every first-or-retry pair must have
got one 201 and the same response (201/200), every other-key pair one 201 and one 409
``survey_completed``."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict

import asyncpg

from bench.common import BenchContext, BenchError, Measurement, Ratio, workload
from bench.http import LoadResult, Request, Server, run_load, sampled, seeded_links, service_key, serving

CONCURRENCY = 64
WARMUP = 300
SAME_KEY_SHARE = 0.1
OTHER_KEY_SHARE = 0.1


def _answers(rng: random.Random) -> dict[str, object]:
    answers: dict[str, object] = {f"q{i}": rng.randint(1, 5) for i in range(1, 7)}
    if rng.random() < 0.3:
        answers["q7"] = "Всё хорошо, спасибо. Было бы удобнее записываться заранее."
    return answers


def _plan(ctx: BenchContext, tokens: list[str], seed: int) -> tuple[list[Request], list[tuple[int, str, str]]]:
    """The requests, and for each: (link index, kind ∈ first|same_key|other_key, idempotency key)."""
    key = service_key(ctx, "lkp")
    rng = random.Random(seed)
    requests: list[Request] = []
    meta: list[tuple[int, str, str]] = []
    for index, token in enumerate(tokens):
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "X-Posog-Client": f"10.{rng.randrange(256)}.{rng.randrange(256)}.2",
        }
        first_key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        body = json.dumps({"token": token, "idempotency_key": first_key, "answers": _answers(rng)}, ensure_ascii=False)
        requests.append(("POST", "/api/v1/responses", headers, body))
        meta.append((index, "first", first_key))
        draw = rng.random()
        if draw < SAME_KEY_SHARE:  # the same submission again (a retry after a lost answer)
            requests.append(("POST", "/api/v1/responses", headers, body))
            meta.append((index, "same_key", first_key))
        elif draw < SAME_KEY_SHARE + OTHER_KEY_SHARE:  # another submission for the same link
            other_key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            other = json.dumps({"token": token, "idempotency_key": other_key, "answers": _answers(rng)})
            requests.append(("POST", "/api/v1/responses", headers, other))
            meta.append((index, "other_key", other_key))
    return requests, meta


def _check_answers(result: LoadResult, meta: list[tuple[int, str, str]]) -> dict[str, int]:
    """Per link exactly one 201. With a same-key retry, both answers carry that response (201 and 200);
    with another key, whichever came second (either may win the race) gets 409 ``survey_completed``.
    Returns the count of answers per kind and status."""
    assert result.bodies is not None
    by_link: dict[int, list[int]] = defaultdict(list)
    for position, (link, _kind, _key) in enumerate(meta):
        by_link[link].append(position)
    problems: list[str] = []
    tally: dict[str, int] = defaultdict(int)
    for link, positions in by_link.items():
        for p in positions:
            tally[f"{meta[p][1]} → {result.statuses[p]}"] += 1
        created = [p for p in positions if result.statuses[p] == 201]
        if len(created) != 1:
            problems.append(f"link {link}: {len(created)} answers 201 ({[result.statuses[p] for p in positions]})")
            continue
        stored_id = json.loads(result.bodies[created[0]] or "{}").get("id")
        other_key = any(meta[p][1] == "other_key" for p in positions)
        for p in positions:
            if p == created[0]:
                continue
            body = json.loads(result.bodies[p] or "{}")
            if other_key:
                good = result.statuses[p] == 409 and body.get("error", {}).get("code") == "survey_completed"
            else:
                good = result.statuses[p] == 200 and body.get("id") == stored_id
            if not good:
                problems.append(f"link {link} {meta[p][1]}: {result.statuses[p]} {str(body)[:120]}")
    if problems or result.errors:
        raise BenchError(f"{len(problems)} wrong answers, e.g. {problems[:3]}; connection errors: {result.errors[:3]}")
    return dict(sorted(tally.items()))


async def _check_stored(dsn: str, card_ids: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        row = await connection.fetchrow(
            """
            SELECT (SELECT count(*) FROM lko_responses WHERE card_id = ANY($1::text[])) AS responses,
                   (SELECT count(DISTINCT card_id) FROM lko_responses WHERE card_id = ANY($1::text[])) AS cards,
                   (SELECT count(*) FROM lko_responses WHERE completion_token IS NOT NULL) AS pending,
                   (SELECT count(*) FROM module_survey_links l JOIN lko_responses r ON r.card_id = l.card_id
                     WHERE l.card_id = ANY($1::text[]) AND l.state = 'completed' AND l.response_id = r.id)
                     AS completed
            """,
            card_ids,
        )
    finally:
        await connection.close()
    found = dict(row)
    expected = len(card_ids)
    if not found["responses"] == found["cards"] == found["completed"] == expected or found["pending"]:
        raise BenchError(f"expected {expected} responses, one per link, each completing its link: {found}")
    return found


@workload(
    "submissions",
    ratios=(Ratio("submissions ÷ bare HTTP, same server", "submissions", "submissions_bare_http"),),
)
async def submissions(ctx: BenchContext) -> list[Measurement]:
    """POST /api/v1/responses: posog serve lko (+ module), 64 clients, exactly one response per link."""
    async with seeded_links(ctx, "submissions") as seeded:
        tokens, card_ids = seeded.tokens, seeded.card_ids
        warm = min(WARMUP, len(tokens) // 5)
        async with serving(ctx, "submissions", seeded.database, ("module", "lko")) as servers:
            lko = servers["lko"]
            both: list[Server] = list(servers.values())
            ctx.step("submissions", f"warming up ({warm} submissions, {WARMUP} × /healthz)")
            await run_load(ctx, both, lko.port, [("GET", "/healthz", {}, None)] * WARMUP, concurrency=CONCURRENCY)
            warm_requests, _ = _plan(ctx, tokens[:warm], seed=1)
            await run_load(ctx, both, lko.port, warm_requests, concurrency=CONCURRENCY)

            requests, meta = _plan(ctx, tokens[warm:], seed=2)
            ctx.step("submissions", f"bare HTTP: {len(requests)} × GET /healthz of ЛКО, {CONCURRENCY} clients")
            bare = await run_load(
                ctx,
                both,
                lko.port,
                [("GET", "/healthz", {}, None)] * len(requests),
                concurrency=CONCURRENCY,
                database=seeded.database,
            )
            if set(bare.status_counts()) != {"200"}:
                raise BenchError(f"/healthz answered {bare.status_counts()}")
            ctx.record(
                Measurement(
                    key="submissions_bare_http",
                    label="bare HTTP: GET /healthz, same ЛКО server",
                    kind="limit",
                    count=bare.count,
                    seconds=bare.seconds,
                    unit="req/s",
                    method=f"posog serve lko, constant JSON, {CONCURRENCY} clients",
                    extra=bare.figures(),
                )
            )

            what = f"{len(requests)} submissions for {len(tokens) - warm} links, {CONCURRENCY} clients"
            ctx.step("submissions", what)
            async with sampled(ctx, "submissions", both):
                result = await run_load(
                    ctx,
                    both,
                    lko.port,
                    requests,
                    concurrency=CONCURRENCY,
                    database=seeded.database,
                    keep_bodies=True,
                    name="submissions",
                )
            tally = _check_answers(result, meta)
            stored = await _check_stored(seeded.database.dsn, card_ids)
            firsts = [p for p, m in enumerate(meta) if m[1] == "first"]
            ctx.record(
                Measurement(
                    key="submissions",
                    label="submissions: POST /api/v1/responses",
                    kind="workload",
                    count=result.count,
                    seconds=result.seconds,
                    unit="req/s",
                    method=(
                        f"posog serve lko → module over HTTP, {CONCURRENCY} clients;"
                        f" +{SAME_KEY_SHARE:.0%} same-key retries, +{OTHER_KEY_SHARE:.0%} other-key duplicates"
                    ),
                    extra={
                        **result.figures(),
                        "responses_per_s": (len(tokens) - warm) / result.seconds,
                        "first_submission_p50_ms": round(result.percentile_ms(50, firsts), 2),
                        "first_submission_p99_ms": round(result.percentile_ms(99, firsts), 2),
                        "answers": tally,
                        "stored": stored,
                    },
                )
            )
    return []
