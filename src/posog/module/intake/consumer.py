"""The intake worker: drains the facts queue in batches, acks only after the batch committed, and
dead-letters rejected facts (already stored with their reasons)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator

import sqlalchemy.exc
import structlog

from posog.core import metrics
from posog.core.bus import IncomingMessage, MessageBus, ack_batch, batches
from posog.lko.client import LkoError
from posog.module.intake.handlers import IntakeHandler, Outcome, RawFact

log = structlog.get_logger(__name__)

# Failures of what the handler depends on, not of the message: retry the same batch later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    LkoError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


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
        stream = self._bus.consume(self._queue, prefetch=self._prefetch)
        log.info("intake.started", queue=self._queue, prefetch=self._prefetch, batch=self._batch_size)
        grouped = batches(stream, max_size=self._batch_size, max_wait_s=self._batch_wait_s)
        try:
            await self._consume(grouped)
        finally:
            await grouped.aclose()  # stops the pump now, not when the generator is collected

    async def _consume(self, grouped: AsyncGenerator[list[IncomingMessage], None]) -> None:
        failures = 0
        async for batch in grouped:
            started = time.perf_counter()
            try:
                outcomes = await self._handler.handle([RawFact(m.body, m.message_id) for m in batch])
            except asyncio.CancelledError:
                await self._requeue(batch)
                raise
            except TRANSIENT_ERRORS as exc:
                failures += 1
                await self._back_off(batch, failures, exc)
                continue
            except Exception as exc:
                # Not the database or ЛКО being away: something in this batch breaks the handler.
                # Apply the messages one by one so one poison message cannot hold up the others.
                log.error("intake.batch_failed_isolating", size=len(batch), error=exc.__class__.__name__)
                try:
                    outcomes = [await self._one_by_one(message) for message in batch]
                except TRANSIENT_ERRORS as exc2:
                    failures += 1
                    await self._back_off(batch, failures, exc2)
                    continue
            failures = 0
            await self._settle(batch, outcomes)
            self.processed += len(batch)
            metrics.INTAKE_BATCH_SECONDS.observe(time.perf_counter() - started)

    @staticmethod
    async def _settle(batch: list[IncomingMessage], outcomes: list[Outcome]) -> None:
        """After the batch's commit: dead-letter the rejected facts one by one, then acknowledge all
        the others at once (on RabbitMQ one ``basic.ack`` with ``multiple``; see ``ack_batch``)."""
        kinds: Counter[str] = Counter()
        accepted: list[IncomingMessage] = []
        for message, outcome in zip(batch, outcomes, strict=True):
            kinds[outcome.kind] += 1
            if outcome.kind == "rejected":
                for problem in outcome.problems:
                    metrics.FACT_REJECTIONS.labels(problem.field, problem.reason).inc()
                await message.reject()
            else:
                accepted.append(message)
        await ack_batch(accepted)
        for kind, n in kinds.items():
            metrics.FACTS.labels(kind).inc(n)

    async def _one_by_one(self, message: IncomingMessage) -> Outcome:
        raw = RawFact(message.body, message.message_id)
        try:
            return (await self._handler.handle([raw]))[0]
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            # Kept (sealed) as a rejected fact with a processing reason, dead-lettered, re-drivable.
            return await self._handler.quarantine(raw, exc)

    async def _back_off(self, batch: list[IncomingMessage], failures: int, exc: BaseException) -> None:
        """The database or ЛКО is away: hand the batch back after a growing pause; nothing is lost."""
        metrics.INTAKE_FAILURES.inc()
        pause = min(self._max_backoff_s, 0.2 * 2**failures) * random.uniform(0.5, 1.0)
        log.error("intake.batch_failed", size=len(batch), error=exc.__class__.__name__, retry_in_s=round(pause, 2))
        await asyncio.sleep(pause)
        await self._requeue(batch)

    @staticmethod
    async def _requeue(batch: list[IncomingMessage]) -> None:
        for message in batch:
            try:
                await message.requeue()
            except Exception as exc:  # the channel is gone: the broker redelivers anyway
                log.warning("intake.requeue_failed", error=exc.__class__.__name__)
