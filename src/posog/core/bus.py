"""The message-bus port: what intake, the outbox relay and the emulators need from a broker.

Two implementations: :class:`InProcessBus` here (embedded mode, tests) and
:class:`posog.core.rabbit.RabbitBus` (production). Semantics follow AMQP 0-9-1: exchanges route to
bound queues, the default exchange ``""`` routes by queue name, a consumer acks after its work is
committed, a rejected message goes to the queue's dead-letter exchange, an unacked message of a
closed consumer is redelivered with ``redelivered=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    kind: str = "direct"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    dead_letter_exchange: str | None = None
    quorum: bool = True


@dataclass(frozen=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    exchanges: Sequence[ExchangeSpec] = ()
    queues: Sequence[QueueSpec] = ()
    bindings: Sequence[BindingSpec] = ()


@dataclass(frozen=True)
class OutgoingMessage:
    body: bytes
    message_id: str
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class IncomingMessage(Protocol):
    """A delivered message. Exactly one of ``ack``/``reject``/``requeue`` must be called."""

    @property
    def body(self) -> bytes: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def redelivered(self) -> bool: ...
    async def ack(self) -> None: ...
    async def reject(self) -> None:
        """Dead-letter the message (never requeued)."""

    async def requeue(self) -> None:
        """Give the message back to the queue for another attempt."""


class MessageBus(Protocol):
    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def declare(self, topology: Topology) -> None: ...
    async def publish(self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish and return only once the broker confirmed every message; raise otherwise."""

    def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[IncomingMessage]:
        """Deliveries of ``queue``, at most ``prefetch`` unacknowledged at a time."""

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (for metrics and tests)."""


class BusError(Exception):
    """The broker refused or lost a publish, or the connection is gone."""


async def batches(
    messages: AsyncIterator[IncomingMessage], *, max_size: int, max_wait_s: float
) -> AsyncIterator[list[IncomingMessage]]:
    """Group a delivery stream into batches: up to ``max_size`` or whatever arrived within ``max_wait_s``
    after the first message of the batch. The prefetch must be at least ``max_size``."""
    iterator = aiter(messages)
    pending: asyncio.Task[IncomingMessage] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            try:
                first = await pending
            except StopAsyncIteration:
                return
            pending = None
            batch = [first]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max_wait_s
            while len(batch) < max_size:
                pending = asyncio.ensure_future(anext(iterator))
                timeout = deadline - loop.time()
                done, _ = await asyncio.wait({pending}, timeout=max(timeout, 0))
                if not done:
                    break
                try:
                    batch.append(pending.result())
                except StopAsyncIteration:
                    pending = None
                    yield batch
                    return
                pending = None
            yield batch
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


# --- In-process implementation -------------------------------------------------------------------


@dataclass
class _Envelope:
    message: OutgoingMessage
    redelivered: bool = False
    routing_key: str = ""  # as published: AMQP dead-letters with the original routing key


class _Queue:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self.ready: deque[_Envelope] = deque()
        self.changed = asyncio.Condition()

    async def put(self, envelope: _Envelope, *, front: bool = False) -> None:
        async with self.changed:
            if front:
                self.ready.appendleft(envelope)
            else:
                self.ready.append(envelope)
            self.changed.notify_all()


class _Delivery:
    def __init__(self, bus: InProcessBus, queue: _Queue, envelope: _Envelope, slots: asyncio.Semaphore) -> None:
        self._bus = bus
        self._queue = queue
        self._envelope = envelope
        self._slots = slots
        self._settled = False
        self._abandoned = False

    @property
    def body(self) -> bytes:
        return self._envelope.message.body

    @property
    def message_id(self) -> str | None:
        return self._envelope.message.message_id

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._envelope.message.headers)

    @property
    def redelivered(self) -> bool:
        return self._envelope.redelivered

    def _settle(self) -> bool:
        """False when the consumer was closed first: the message was already handed back (a broker
        would redeliver it), so a late ack/reject/requeue is a no-op, as on a closed channel."""
        if self._abandoned:
            return False
        if self._settled:
            raise BusError("message already acknowledged or rejected")
        self._settled = True
        self._slots.release()
        return True

    async def ack(self) -> None:
        self._settle()

    async def reject(self) -> None:
        dlx = self._queue.spec.dead_letter_exchange
        if self._settle() and dlx is not None:
            await self._bus.route(dlx, self._envelope.routing_key, self._envelope.message)

    async def requeue(self) -> None:
        if self._settle():
            old = self._envelope
            await self._queue.put(_Envelope(old.message, True, old.routing_key), front=True)

    async def abandon(self) -> None:
        """The consumer went away without settling: the broker redelivers."""
        if not self._settled:
            self._settle()
            self._abandoned = True  # before the await: a concurrent late ack is then a no-op too
            old = self._envelope
            await self._queue.put(_Envelope(old.message, True, old.routing_key), front=True)


class InProcessBus:
    """A broker in memory, for the embedded mode and unit tests. Not durable across restarts: the
    embedded mode's durability comes from the database (outbox, stored facts)."""

    def __init__(self) -> None:
        self._exchanges: dict[str, ExchangeSpec] = {}
        self._queues: dict[str, _Queue] = {}
        self._bindings: dict[tuple[str, str], list[str]] = {}
        self.fail_next_publishes = 0  # tests: make the "broker" refuse confirms

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def declare(self, topology: Topology) -> None:
        for exchange in topology.exchanges:
            self._exchanges.setdefault(exchange.name, exchange)
        for queue in topology.queues:
            self._queues.setdefault(queue.name, _Queue(queue))
        for binding in topology.bindings:
            targets = self._bindings.setdefault((binding.exchange, binding.routing_key), [])
            if binding.queue not in targets:
                targets.append(binding.queue)

    async def route(self, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        if exchange == "":
            targets = [routing_key] if routing_key in self._queues else []
        else:
            if exchange not in self._exchanges:
                raise BusError(f"no exchange {exchange!r}")
            exchange_spec = self._exchanges[exchange]
            if exchange_spec.kind == "fanout":
                bound = [q for (ex, _), qs in self._bindings.items() if ex == exchange for q in qs]
                targets = list(dict.fromkeys(bound))  # one copy per queue, however often it is bound
            else:
                targets = self._bindings.get((exchange, routing_key), [])
        for name in targets:
            await self._queues[name].put(_Envelope(message, routing_key=routing_key))

    async def publish(self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]) -> None:
        if self.fail_next_publishes > 0:
            self.fail_next_publishes -= 1
            raise BusError("publish not confirmed (simulated)")
        for message in messages:
            await self.route(exchange, routing_key, message)

    async def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[IncomingMessage]:
        if queue not in self._queues:
            raise BusError(f"no queue {queue!r}")
        q = self._queues[queue]
        slots = asyncio.Semaphore(prefetch)
        outstanding: list[_Delivery] = []
        try:
            while True:
                await slots.acquire()
                async with q.changed:
                    await q.changed.wait_for(lambda: bool(q.ready))
                    envelope = q.ready.popleft()
                delivery = _Delivery(self, q, envelope, slots)
                outstanding.append(delivery)
                if len(outstanding) > 4 * prefetch:
                    outstanding = [d for d in outstanding if not d._settled]
                yield delivery
        finally:
            for delivery in outstanding:
                await delivery.abandon()

    async def queue_depth(self, queue: str) -> int:
        return len(self._queues[queue].ready) if queue in self._queues else 0
