"""Memory: one ``posog worker intake`` process drains a backlog of distinct facts (default 1 000 000,
``POSOG_BENCH_BACKLOG`` to change it) pre-published to the facts queue of a fresh stack. Its resident
set size is sampled every second; the row reports the idle worker's RSS, the RSS at 10 %, 50 % and
90 % drained, the peak (the kernel's high-water mark), and the drain rate beside the bare consumer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    BenchContext,
    BenchError,
    Ceiling,
    Measurement,
    Ratio,
    WorkerProcess,
    cpu_meter,
    publish_backlog,
    queue_consumers,
    system_stack,
    worker_processes,
    workload,
)

MB = 1024 * 1024
SAMPLE_INTERVAL_S = 1.0
MARKS = (0.1, 0.5, 0.9)
# "Flat": the peak at most this much above the RSS at 10 % drained (the worker warmed up: caches,
# pools, prefetch buffers and the allocator's arenas filled), and no steady growth from 10 % to 90 %.
MAX_PEAK_OVER_10 = 1.25
MAX_90_OVER_10 = 1.15


def _high_water_mark(pid: int) -> int | None:
    """The process's peak RSS in bytes (``VmHWM`` of /proc/PID/status), None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


async def _drain(
    ctx: BenchContext, connection: asyncpg.Connection, worker: WorkerProcess, total: int, started: float
) -> tuple[float, list[dict[str, float]], dict[float, dict[str, float]]]:
    """Sample (seconds since ``started``, cards, RSS) every second until every fact is a committed
    card; returns the seconds, the samples and the first sample at or past each mark."""
    samples: list[dict[str, float]] = []
    marks: dict[float, dict[str, float]] = {}
    while True:
        worker.check_alive()
        cards = int(await connection.fetchval("SELECT count(*) FROM module_service_cards"))
        rejected = int(await connection.fetchval("SELECT count(*) FROM module_rejected_facts"))
        if rejected:
            raise BenchError(f"{rejected} valid fact(s) rejected by the worker:\n{worker.log_tail()}")
        rss = worker.rss()
        elapsed = time.perf_counter() - started
        sample = {"s": round(elapsed, 1), "cards": cards, "rss_mb": round((rss or 0) / MB, 1)}
        samples.append(sample)
        for mark in MARKS:
            if mark not in marks and cards >= mark * total:
                marks[mark] = sample
        ctx.progress = f"{cards}/{total} drained, RSS {sample['rss_mb']:.0f} MB"
        if cards >= total:
            return elapsed, samples, marks
        await asyncio.sleep(SAMPLE_INTERVAL_S)


@workload(
    "memory",
    limits=("bare-consume",),
    ratios=(Ratio("memory: drain rate ÷ bare consume", "memory", "bare_consume"),),
    targets=(
        Ceiling("memory: peak RSS ÷ RSS at 10 % drained", "memory", 0.0, "peak_over_10pct", MAX_PEAK_OVER_10, "×"),
        Ceiling("memory: RSS at 90 % ÷ at 10 % drained", "memory", 0.0, "rss_90_over_10pct", MAX_90_OVER_10, "×"),
    ),
)
async def memory(ctx: BenchContext) -> list[Measurement]:
    """One `posog worker intake` drains a pre-published backlog (POSOG_BENCH_BACKLOG, 1 000 000); RSS."""
    total = ctx.backlog
    ctx.step("memory", "creating the stack")
    async with system_stack(ctx) as stack:
        s = stack.system.settings
        connection = await asyncpg.connect(stack.database.dsn, timeout=10)
        try:
            # The idle worker first: started, connected, nothing to consume.
            ctx.step("memory", "the idle worker's RSS")
            async with worker_processes(ctx, stack, ["intake"]) as (idle,):
                await _consuming(ctx, s.facts_queue, idle)
                await asyncio.sleep(3)
                idle.check_alive()
                idle_rss = idle.rss() or 0

            ctx.step("memory", f"publishing a backlog of {total:,} facts (not timed)".replace(",", " "))
            published = time.perf_counter()
            await publish_backlog(ctx, s.facts_queue, total)
            publish_s = time.perf_counter() - published
            ready, _consumers = await queue_consumers(s.facts_queue)
            if ready != total:
                raise BenchError(f"{ready} messages in {s.facts_queue}, expected {total}")

            ctx.step("memory", "draining with one worker process")
            async with worker_processes(ctx, stack, ["intake"]) as (worker,):
                spawned = time.perf_counter()
                await _consuming(ctx, s.facts_queue, worker)
                async with cpu_meter(connection, processes=lambda: [worker.pid]) as cpu:
                    started = time.perf_counter()
                    before = int(await connection.fetchval("SELECT count(*) FROM module_service_cards"))
                    _elapsed, samples, marks = await _drain(ctx, connection, worker, total, spawned)
                    seconds = time.perf_counter() - started
                peak = _high_water_mark(worker.pid)
                final_rss = worker.rss() or 0
        finally:
            await connection.close()
    peak_mb = max((peak or 0) / MB, max(sample["rss_mb"] for sample in samples))
    at = {mark: marks.get(mark, samples[-1])["rss_mb"] for mark in MARKS}
    extra: dict[str, Any] = {
        "backlog": total,
        "committed_before_consuming": before,
        "startup_s": round(started - spawned, 2),
        "rss_idle_mb": round(idle_rss / MB, 1),
        "rss_10pct_mb": at[0.1],
        "rss_50pct_mb": at[0.5],
        "rss_90pct_mb": at[0.9],
        "rss_peak_mb": round(peak_mb, 1),
        "rss_final_mb": round(final_rss / MB, 1),
        "peak_over_10pct": round(peak_mb / at[0.1], 3) if at[0.1] else None,
        "rss_90_over_10pct": round(at[0.9] / at[0.1], 3) if at[0.1] else None,
        "publish_msgs_per_s": round(total / publish_s, 1) if publish_s else None,
        "samples": samples,
        "cpu": cpu.as_dict(),
    }
    return [
        Measurement(
            key="memory",
            label=f"memory: 1 intake worker drains {total:,} facts".replace(",", " "),
            kind="workload",
            count=total - before,
            seconds=seconds,
            unit="facts/s",
            method=(
                f"timed from consuming on; RSS idle {extra['rss_idle_mb']:.0f} MB; at 10/50/90 % drained"
                f" {at[0.1]:.0f}/{at[0.5]:.0f}/{at[0.9]:.0f} MB; peak {peak_mb:.0f} MB (VmHWM);"
                f" sampled every {SAMPLE_INTERVAL_S:g} s"
            ),
            extra=extra,
        )
    ]


async def _consuming(ctx: BenchContext, queue: str, worker: WorkerProcess) -> None:
    """Wait until the worker consumes from ``queue``."""
    deadline = time.monotonic() + 120
    while (await queue_consumers(queue))[1] < 1:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the worker is not consuming after 120 s:\n{worker.log_tail()}")
        await asyncio.sleep(0.1)
