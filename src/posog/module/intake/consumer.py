"""The intake worker: drains the facts queue in batches, acks only after the batch committed, and
dead-letters rejected facts (already stored with their reasons)."""

from __future__ import annotations

import asyncio
import random
import time

import structlog

from posog.core import metrics
from posog.core.bus import IncomingMessage, MessageBus, batches
from posog.module.intake.handlers import IntakeHandler, RawFact

log = structlog.get_logger(__name__)


class IntakeConsumer:
    def __init__(
        self,
        bus: MessageBus,
        handler: IntakeHandler,
        *,
        queue: str,
        prefetch: int,
        batch_size: int,
        batch_wait_s: float,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._bus = bus
        self._handler = handler
        self._queue = queue
        self._prefetch = max(prefetch, batch_size)
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._max_backoff_s = max_backoff_s
        self.processed = 0

    async def run(self) -> None:
        """Consume until cancelled. A failing batch (database or ЛКО down) is handed back to the broker
        after a growing pause, so nothing is lost and the worker never spins."""
        failures = 0
        stream = self._bus.consume(self._queue, prefetch=self._prefetch)
        log.info("intake.started", queue=self._queue, prefetch=self._prefetch, batch=self._batch_size)
        async for batch in batches(stream, max_size=self._batch_size, max_wait_s=self._batch_wait_s):
            started = time.perf_counter()
            try:
                outcomes = await self._handler.handle([RawFact(m.body, m.message_id) for m in batch])
            except asyncio.CancelledError:
                await self._requeue(batch)
                raise
            except Exception as exc:
                failures += 1
                metrics.INTAKE_FAILURES.inc()
                pause = min(self._max_backoff_s, 0.2 * 2**failures) * random.uniform(0.5, 1.0)
                log.error(
                    "intake.batch_failed",
                    size=len(batch),
                    error=exc.__class__.__name__,
                    retry_in_s=round(pause, 2),
                )
                await asyncio.sleep(pause)
                await self._requeue(batch)
                continue
            failures = 0
            for message, outcome in zip(batch, outcomes, strict=True):
                metrics.FACTS.labels(outcome.kind).inc()
                if outcome.kind == "rejected":
                    for problem in outcome.problems:
                        metrics.FACT_REJECTIONS.labels(problem.field, problem.reason).inc()
                    await message.reject()
                else:
                    await message.ack()
            self.processed += len(batch)
            metrics.INTAKE_BATCH_SECONDS.observe(time.perf_counter() - started)

    @staticmethod
    async def _requeue(batch: list[IncomingMessage]) -> None:
        for message in batch:
            try:
                await message.requeue()
            except Exception as exc:  # the channel is gone: the broker redelivers anyway
                log.warning("intake.requeue_failed", error=exc.__class__.__name__)
