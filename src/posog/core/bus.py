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
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
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
    # Quorum queues: dead-letter a message returned more than this often (x-delivery-limit).
    delivery_limit: int | None = None
    # Drop messages older than this (x-message-ttl), and the oldest beyond this size (x-max-length-bytes).
    message_ttl_ms: int | None = None
    max_length_bytes: int | None = None


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

    async def drop_head_while(self, queue: str, expired: Callable[[dict[str, str]], bool]) -> int:
        """Drop messages from the head of ``queue`` while ``expired(headers)`` holds; how many. For a
        queue in arrival order (a dead-letter queue), this drops everything older than a cutoff."""


class BusError(Exception):
    """The broker refused or lost a publish, or the connection is gone."""


async def batches(
    messages: AsyncIterator[IncomingMessage], *, max_size: int, max_wait_s: float
) -> AsyncGenerator[list[IncomingMessage], None]:
    """Group a delivery stream into batches: up to ``max_size`` or whatever arrived within ``max_wait_s``
    after the first message of the batch. The prefetch must be at least ``max_size``.

    One task (the pump) reads the stream into a buffer for the generator's whole life; a batch takes
    what is buffered and waits, under one deadline per batch, only while it is short. (Awaiting the
    stream directly under a timeout would cancel the stream itself; a task per message costs ≈45 µs.)
    Messages buffered but not yet handed out when the generator is closed were never settled: the
    stream's own clean-up hands them back (RabbitMQ redelivers what a closed channel left unacked).
    """
    loop = asyncio.get_running_loop()
    ready: deque[IncomingMessage] = deque()
    arrived = asyncio.Event()
    ended: list[BaseException | None] = []  # one item once the stream ended: None, or what it raised

    async def pump() -> None:
        try:
            async for message in messages:
                ready.append(message)
                arrived.set()
        except Exception as exc:
            ended.append(exc)
        else:
            ended.append(None)
        finally:
            arrived.set()

    pumping = loop.create_task(pump(), name="posog.core.bus.batches pump")

    def finished() -> bool:
        """True once the stream ended and nothing is buffered; re-raises what the stream raised."""
        if ready or not ended:
            return False
        if ended[0] is not None:
            raise ended[0]
        return True

    try:
        while True:
            while not ready:
                if finished():
                    return
                arrived.clear()
                await arrived.wait()
            batch = [ready.popleft()]
            try:
                async with asyncio.timeout(max_wait_s):  # one timer per batch, not per message
                    while len(batch) < max_size:
                        if ready:
                            take = min(max_size - len(batch), len(ready))
                            batch.extend(ready.popleft() for _ in range(take))
                        elif ended:
                            break
                        else:
                            arrived.clear()
                            await arrived.wait()
            except TimeoutError:
                pass  # what arrived in time (it stays buffered otherwise)
            yield batch
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumping


async def ack_batch(messages: Sequence[IncomingMessage]) -> None:
    """Acknowledge every message of ``messages`` (all from one consumer, in delivery order), with as few
    broker round trips as the bus allows: RabbitMQ acks each consumer channel's last delivery with
    ``multiple`` when nothing else of that channel is unsettled up to it, else one by one. Settle the
    batch's rejected messages first."""
    if not messages:
        return
    many = getattr(type(messages[0]), "ack_many", None)
    if many is not None:
        await many(messages)
        return
    for message in messages:
        await message.ack()


# --- In-process implementation -------------------------------------------------------------------


@dataclass
class _Envelope:
    message: OutgoingMessage
    redelivered: bool = False
    routing_key: str = ""  # as published: AMQP dead-letters with the original routing key
    returns: int = 0  # as a quorum queue's x-delivery-count: how often it came back


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
        headers = dict(self._envelope.message.headers)
        if self._envelope.returns:
            headers["x-delivery-count"] = str(self._envelope.returns)
        return headers

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
            await self._queue.put(_Envelope(old.message, True, old.routing_key, old.returns + 1), front=True)

    async def abandon(self) -> None:
        """The consumer went away without settling: the broker redelivers."""
        if not self._settled:
            self._settle()
            self._abandoned = True  # before the await: a concurrent late ack is then a no-op too
            old = self._envelope
            await self._queue.put(_Envelope(old.message, True, old.routing_key, old.returns + 1), front=True)


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

    async def drop_head_while(self, queue: str, expired: Callable[[dict[str, str]], bool]) -> int:
        q = self._queues.get(queue)
        dropped = 0
        while q is not None and q.ready and expired(dict(q.ready[0].message.headers)):
            q.ready.popleft()
            dropped += 1
        return dropped
