"""The intake worker: drains the facts queue in batches, acks only after the batch committed, and
dead-letters rejected facts (already stored with their reasons) as sealed copies.

No message can stop it. Each batch's handling is isolated: a failure of what the handler depends on
(the database, ЛКО) holds the batch and retries it in this process, without giving it back to the
broker (which would count a delivery each time); any other exception, of any kind, sends the batch
through one message at a time, and the message that still fails is quarantined — stored as a rejected
fact with ``payload: processing_error`` and dead-lettered — or, if even that cannot be stored,
dead-lettered alone. A message that kills the process instead comes back, with an
``x-delivery-count`` (quorum queues count every return). A returned message is handled alone and
settled at once, after its attempt is counted in the database (``module_intake_attempts``): the
broker's count also grows for every message that was merely in flight beside the one that killed the
process, this one only for the message being handled. Once a message has been attempted
``delivery_limit`` times, it is quarantined without being handled again (``payload: delivery_limit``).
The queue's own ``x-delivery-limit`` (far higher: innocent messages collect returns too) is the
broker's last line behind that."""

from __future__ import annotations

import asyncio
from collections import Counter

import sqlalchemy.exc
import structlog

from posog.core import metrics
from posog.core.bus import BusError, IncomingMessage, MessageBus, OutgoingMessage, ack_batch
from posog.core.consumer import BatchConsumer, delivery_count
from posog.core.retry import worker_delay
from posog.lko.client import LkoError
from posog.module.intake.handlers import IntakeHandler, Outcome, RawFact
from posog.module.intake.parsing import metric_field

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


ISOLATE_AFTER_FAILURES = 3  # transient failures of one batch before its messages are tried one by one


def broker_delivery_limit(delivery_limit: int) -> int:
    """The queue's ``x-delivery-limit`` for intake's own ``delivery_limit``: a message in flight while
    other messages kill the worker collects a return each time, so the broker's limit stays far above."""
    return max(20, 4 * delivery_limit)


class IntakeConsumer(BatchConsumer):
    name = "intake"

    def __init__(
        self,
        bus: MessageBus,
        handler: IntakeHandler,
        *,
        queue: str,
        prefetch: int,
        batch_size: int,
        batch_wait_s: float,
        dead_letter_exchange: str,
        delivery_limit: int = 5,
        max_backoff_s: float = 30.0,
    ) -> None:
        super().__init__(bus, queue=queue, prefetch=prefetch, batch_size=batch_size, batch_wait_s=batch_wait_s)
        self._handler = handler
        self._dead_letter_exchange = dead_letter_exchange
        self._delivery_limit = delivery_limit
        self._max_backoff_s = max_backoff_s
        self.processed = 0

    # run(): consume until cancelled (BatchConsumer). A failing batch (database or ЛКО down) waits and
    # is tried again after a growing pause, so nothing is lost and the worker never spins.

    async def returned(self, message: IncomingMessage) -> None:
        await self._settle([message], [await self._returned(message)])

    async def fresh(self, messages: list[IncomingMessage]) -> None:
        await self._settle(messages, await self._together(messages))

    def handled(self, batch: list[IncomingMessage], seconds: float) -> None:
        self.processed += len(batch)
        metrics.INTAKE_BATCH_SECONDS.observe(seconds)

    async def _returned(self, message: IncomingMessage) -> Outcome:
        """A message the broker gave back (its worker died, or the connection dropped): its attempt is
        counted first, then it is handled alone — or quarantined unhandled past the limit."""
        raw = RawFact(message.body, message.message_id)
        failures = 0
        while True:
            try:
                attempts = await self._handler.note_attempt(raw)
                break
            except TRANSIENT_ERRORS as exc:
                failures += 1
                await self._pause(1, failures, exc)
            except Exception as exc:  # cannot even count: count it as an attempt that failed
                log.error("intake.attempt_not_counted", error=exc.__class__.__name__)
                return await self._quarantine(message, exc, "processing_error")
        if attempts > self._delivery_limit:
            log.error("intake.delivery_limit", attempts=attempts - 1, delivery_count=delivery_count(message))
            return await self._quarantine(message, None, "delivery_limit")
        return await self._alone(message)

    async def _together(self, messages: list[IncomingMessage]) -> list[Outcome]:
        """The messages in one transaction; on a fault of the batch, one by one."""
        failures = 0
        while True:
            try:
                return await self._handler.handle([RawFact(m.body, m.message_id) for m in messages])
            except TRANSIENT_ERRORS as exc:
                failures += 1
                await self._pause(len(messages), failures, exc)
                if failures >= ISOLATE_AFTER_FAILURES and len(messages) > 1:
                    # Still failing: maybe one message provokes the "outage" (ЛКО refusing its
                    # request, say). One by one, the others go through and only it keeps waiting.
                    return [await self._alone(message) for message in messages]
            except Exception as exc:
                # Not the database or ЛКО being away: something in this batch breaks the handler.
                log.error("intake.batch_failed_isolating", size=len(messages), error=exc.__class__.__name__)
                return [await self._alone(message) for message in messages]

    async def _alone(self, message: IncomingMessage) -> Outcome:
        """One message in its own transaction: its outcome, or its quarantine if it breaks the handler.
        A failure of the dependencies is waited out (the message stays unacknowledged)."""
        failures = 0
        while True:
            try:
                return (await self._handler.handle([RawFact(message.body, message.message_id)]))[0]
            except TRANSIENT_ERRORS as exc:
                failures += 1
                await self._pause(1, failures, exc)
            except Exception as exc:
                return await self._quarantine(message, exc, "processing_error")

    async def _quarantine(self, message: IncomingMessage, error: BaseException | None, reason: str) -> Outcome:
        """Store the message as a rejected fact with ``payload: <reason>``, to be dead-lettered. If the
        record cannot be stored for a reason other than the database being away, the sealed dead
        letter goes alone (counted as ``storage_failed``): no message is ever retried forever."""
        raw = RawFact(message.body, message.message_id)
        failures = 0
        while True:
            try:
                return await self._handler.quarantine(raw, error, reason)
            except TRANSIENT_ERRORS as exc:
                failures += 1
                await self._pause(1, failures, exc)
            except Exception as exc:
                log.error("intake.quarantine_failed", reason=reason, error=exc.__class__.__name__)
                metrics.INTAKE_DEAD_LETTERS.labels("storage_failed").inc()
                return self._handler.dead_letter_only(raw, reason)

    async def _settle(self, batch: list[IncomingMessage], outcomes: list[Outcome]) -> None:
        """After the batch's commit: publish the sealed dead letters of the rejected facts (confirmed),
        then acknowledge every message at once (on RabbitMQ one ``basic.ack`` with ``multiple``; see
        ``ack_batch``). The broker's own dead-lettering (``basic.reject``) is not used: it would keep
        the body in clear."""
        kinds: Counter[str] = Counter()
        letters: list[OutgoingMessage] = []
        for outcome in outcomes:
            kinds[outcome.kind] += 1
            if outcome.kind == "rejected":
                for problem in outcome.problems:
                    metrics.FACT_REJECTIONS.labels(metric_field(problem.field), problem.reason).inc()
                if outcome.dead_letter is not None:
                    letters.append(outcome.dead_letter)
                    first = outcome.problems[0].reason if outcome.problems else "rejected"
                    reason = first if first in {"processing_error", "delivery_limit"} else "rejected"
                    metrics.INTAKE_DEAD_LETTERS.labels(reason).inc()
        if letters:
            await self._publish_dead_letters(letters)
        await ack_batch(batch)
        for kind, n in kinds.items():
            metrics.FACTS.labels(kind).inc(n)

    async def _publish_dead_letters(self, letters: list[OutgoingMessage]) -> None:
        failures = 0
        while True:
            try:
                await self._bus.publish(self._dead_letter_exchange, "", letters)
                return
            except BusError as exc:  # the rejections are stored; the messages stay unacknowledged
                failures += 1
                await self._pause(len(letters), failures, exc)

    async def _pause(self, size: int, failures: int, exc: BaseException) -> None:
        """A growing pause before trying the same messages again; nothing is lost meanwhile."""
        metrics.INTAKE_FAILURES.inc()
        pause = worker_delay(failures, cap_s=self._max_backoff_s)
        log.error("intake.batch_failed", size=size, error=exc.__class__.__name__, retry_in_s=round(pause, 2))
        await asyncio.sleep(pause)
