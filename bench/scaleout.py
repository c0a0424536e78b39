"""Scale-out: the same backlog drained by 1, 2 and 4 ``posog worker intake`` processes competing on one
facts queue (SPEC §2: competing consumers), and end to end with the production topology — one
``posog worker intake`` and one ``posog worker outbox`` process. Each run on a fresh stack (database,
queues) with the same N pre-generated facts published first (not timed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import asyncpg

from bench.common import (
    BenchContext,
    BenchError,
    Measurement,
    Ratio,
    Target,
    WorkerProcess,
    cpu_meter,
    queue_consumers,
    system_stack,
    wait_until,
    worker_processes,
    workload,
)
from bench.intake import TARGET_FACTS_PER_S, Counts, _check_totals, _publish_facts

WORKER_COUNTS = (1, 2, 4)
READY_TIMEOUT_S = 120.0


async def _all_consuming(ctx: BenchContext, queue: str, workers: Sequence[WorkerProcess], consumers: int) -> None:
    """Wait until ``consumers`` consumers are on ``queue`` (the workers have started and connected)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for worker in workers:
            worker.check_alive()
        _ready, on_queue = await queue_consumers(queue)
        ctx.progress = f"{on_queue}/{consumers} worker(s) consuming"
        if on_queue >= consumers:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"only {on_queue} of {consumers} workers consuming after {READY_TIMEOUT_S:g} s")
        await asyncio.sleep(0.05)


async def _cards(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM module_service_cards"))


class _Delegate:
    """Progress checks that first fail if a worker process died (with its log's tail)."""

    def __init__(self, workers: Sequence[WorkerProcess], check: Counts) -> None:
        self._workers = workers
        self._check = check

    def _alive(self) -> None:
        for worker in self._workers:
            worker.check_alive()

    async def intake_done(self) -> bool:
        self._alive()
        return await self._check.intake_done()

    async def all_notified(self) -> bool:
        self._alive()
        return await self._check.all_notified()


@workload(
    "scale-out",
    limits=("bare-consume",),
    ratios=(
        Ratio("scale-out: 2 intake workers ÷ 1", "scaleout_2", "scaleout_1"),
        Ratio("scale-out: 4 intake workers ÷ 1", "scaleout_4", "scaleout_1"),
        Ratio("scale-out: 1 intake worker process ÷ bare consume", "scaleout_1", "bare_consume"),
    ),
)
async def scale_out(ctx: BenchContext) -> list[Measurement]:
    """1, 2 and 4 `posog worker intake` processes competing on the same queue, the same N facts each."""
    messages = ctx.fact_messages()
    expected = len(messages)
    for workers_wanted in WORKER_COUNTS:
        step = f"{workers_wanted} worker(s)"
        ctx.step("scale-out", f"{step}: creating the stack")
        async with system_stack(ctx) as stack:
            s = stack.system.settings
            connection = await asyncpg.connect(stack.database.dsn, timeout=10)
            try:
                ctx.step("scale-out", f"{step}: publishing {expected} facts (not timed)")
                await _publish_facts(ctx, stack)
                ctx.step("scale-out", f"{step}: starting the worker processes")
                spawned = time.perf_counter()
                async with worker_processes(ctx, stack, ["intake"] * workers_wanted) as workers:
                    await _all_consuming(ctx, s.facts_queue, workers, workers_wanted)
                    startup_s = time.perf_counter() - spawned
                    ctx.step("scale-out", f"{step}: draining")
                    counts = _Delegate(workers, Counts(ctx, connection, expected))
                    async with cpu_meter(connection, processes=lambda: [w.pid for w in workers]) as cpu:
                        before = await _cards(connection)
                        started = time.perf_counter()
                        await wait_until(ctx, counts.intake_done)
                        seconds = time.perf_counter() - started
                _check_totals(await Counts(ctx, connection, expected).totals(), expected, sent=False)
            finally:
                await connection.close()
        ctx.record(
            Measurement(
                key=f"scaleout_{workers_wanted}",
                label=f"scale-out: {workers_wanted} intake worker process{'es' if workers_wanted > 1 else ''}",
                kind="workload",
                count=expected - before,
                seconds=seconds,
                unit="facts/s",
                method=(
                    f"posog worker intake × {workers_wanted} on one queue, timed once all consume"
                    f" ({before} cards committed before that, not counted); CPU = the workers'"
                ),
                extra={
                    "workers": workers_wanted,
                    "facts": expected,
                    "committed_before_all_consuming": before,
                    "startup_s": round(startup_s, 2),
                    "cpu": cpu.as_dict(),
                },
            )
        )
    return []


@workload(
    "e2e-workers",
    limits=("bare-consume", "bare-publish"),
    ratios=(Ratio("end to end (worker processes) ÷ bare consume", "end_to_end_workers", "bare_consume"),),
    targets=(Target("end to end (worker processes)", "end_to_end_workers", TARGET_FACTS_PER_S),),
)
async def e2e_workers(ctx: BenchContext) -> list[Measurement]:
    """End to end as deployed: `posog worker intake` ∥ `posog worker outbox` processes, N facts."""
    messages = ctx.fact_messages()
    expected = len(messages)
    ctx.step("e2e-workers", "creating the stack")
    async with system_stack(ctx) as stack:
        s = stack.system.settings
        connection = await asyncpg.connect(stack.database.dsn, timeout=10)
        try:
            ctx.step("e2e-workers", f"publishing {expected} facts (not timed)")
            await _publish_facts(ctx, stack)
            ctx.step("e2e-workers", "starting posog worker intake and posog worker outbox")
            async with worker_processes(ctx, stack, ["intake", "outbox"]) as workers:
                await _all_consuming(ctx, s.facts_queue, workers, 1)
                ctx.step("e2e-workers", "intake ∥ outbox")
                counts = _Delegate(workers, Counts(ctx, connection, expected))
                async with cpu_meter(connection, processes=lambda: [w.pid for w in workers]) as cpu:
                    before = await _cards(connection)
                    started = time.perf_counter()
                    await wait_until(ctx, counts.all_notified)
                    seconds = time.perf_counter() - started
            totals = await Counts(ctx, connection, expected).totals()
            _check_totals(totals, expected, sent=True)
            delivered = await stack.system.bus.queue_depth(s.geps_inbox_queue)
            if delivered < totals["outbox"]:
                raise BenchError(f"{delivered} notifications in {s.geps_inbox_queue}, expected {totals['outbox']}")
        finally:
            await connection.close()
    return [
        Measurement(
            key="end_to_end_workers",
            label="end to end: worker processes (intake ∥ outbox)",
            kind="workload",
            count=expected - before,
            seconds=seconds,
            unit="facts/s",
            method=(
                "posog worker intake + posog worker outbox, timed once intake consumes, until every"
                f" notification is confirmed ({before} cards before that, not counted); CPU = the workers'"
            ),
            extra={"committed_before_start": before, "notifications": int(totals["sent"]), "cpu": cpu.as_dict()},
        )
    ]
