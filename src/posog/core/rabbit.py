"""RabbitMQ implementation of the message-bus port (:mod:`posog.core.bus`) on aio-pika.

Guarantees, and why they are built this way:

* **At-least-once publishing.** :meth:`RabbitBus.publish` sends every message as persistent on a
  channel in publisher-confirm mode and returns only when the broker confirmed all of them. Anything
  else — a nack, a returned (unroutable) message, a closed channel, a lost connection, a timeout —
  raises :class:`~posog.core.bus.BusError`, and the caller (the outbox relay) publishes the batch
  again. A lost confirm does not mean a lost message, so retries can duplicate: consumers dedupe.
* **Unroutable is an error.** Every publish is ``mandatory``, on named exchanges and on the default
  exchange ``""`` alike: publishing to an existing queue name through ``""`` is routable and
  confirmed as usual, while a missing binding or queue comes back as ``basic.return`` and raises
  instead of being dropped silently — for an outbox, a silent drop is data loss, a raised error is a
  stuck relay that metrics and logs show. (:class:`~posog.core.bus.InProcessBus` drops unroutable
  messages; don't rely on either behaviour in business code.)
* **Two connections.** Publishing and consuming use separate robust connections, as RabbitMQ
  recommends: a publisher throttled by flow control or a memory alarm then cannot stall the
  consumers' acks, and a connection-level failure provoked by publishing cannot take the consumers
  with it. (Seen in testing: when the broker closes a channel while concurrent publishes are in
  flight on it, aiormq can still write one of them after the close handshake, and RabbitMQ then
  closes the whole connection with ``504 CHANNEL_ERROR``.)
* **Known exchanges only.** A publish to a missing exchange makes the broker close the channel
  (``404 NOT_FOUND``) under the other concurrent publishes — the race above. So a named exchange is
  checked once (passive declare on a throwaway channel, or known from :meth:`RabbitBus.declare`)
  before anything is published to it, and a missing one is a plain BusError.
* **Disposable publisher channel.** The publisher channel is a plain, non-robust channel: once a
  channel-level error or a reconnect has closed it, it is thrown away and a new one is opened on the
  next publish, instead of being restored in place by aio-pika (which races with concurrent
  publishes).
* **Consumers that resume.** The connections are ``connect_robust``: aio-pika re-establishes the
  transport after a drop. Each consumer is a plain channel (``basic.qos(prefetch)``, manual acks)
  whose deliveries are read straight from aiormq (``_DeliveryStream``: no aio-pika message object
  and task per delivery); when a drop closes the channel and ends that stream,
  :meth:`RabbitBus.consume` opens a new channel on the reconnected connection and goes on yielding.
  (We supervise it ourselves rather than use aio-pika's robust channel and robust queue iterator:
  the latter re-registers a consumer after being closed and can wait a minute on a channel that was
  closed on purpose.) The broker redelivers whatever was unacknowledged, with ``redelivered=True``.
  Settling a delivery whose channel has since closed is logged and swallowed: the broker redelivers
  it, and handlers are idempotent.
* **Batch acknowledgement.** :meth:`RabbitDelivery.ack_many` (behind
  :func:`posog.core.bus.ack_batch`) acknowledges a batch with one ``basic.ack`` carrying
  ``multiple`` on the batch's last delivery tag of each channel, and only when every delivery still
  unsettled on that channel up to that tag is in the batch — otherwise one by one — so a multiple
  acknowledgement can never cover a delivery that was not meant to be acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection, TimeoutType
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.abc import DeliveredMessage
from yarl import URL

from posog.core.bus import BusError, IncomingMessage, OutgoingMessage, Topology
from posog.core.retry import backoff

log = structlog.get_logger(__name__)

# Everything aio-pika / aiormq raise for broker- or network-side trouble (AMQPError covers nacks,
# returns and channel closes; RuntimeError covers ChannelInvalidStateError), plus our own timeouts.
_BROKER_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, TimeoutError)

_FIRST_BACKOFF_S = 0.5
_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
_CLEANUP_TIMEOUT_S = 5.0


def _safe_url(url: str) -> str:
    """The broker URL without its password, for logs."""
    try:
        return str(URL(url).with_password(None))
    except (TypeError, ValueError):
        return "<unparsable url>"


def _plain(value: object) -> object:
    """AMQP field values made JSON-friendly (``x-death`` holds tables, byte strings, timestamps)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _header_text(value: object) -> str:
    """The port exposes headers as text: strings pass through, scalars are formatted, and tables or
    arrays (added by the broker, e.g. ``x-death``) become JSON so nothing is silently dropped."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


class _RobustConnection(aio_pika.RobustConnection):
    """``connect_robust`` leaves a connection whose first connect failed unclosed; when it is
    garbage-collected outside the running loop, its ``__del__`` creates a ``close()`` coroutine that
    is never awaited. Close it right away instead (only before it ever connected: afterwards,
    reconnecting is the robust connection's own business)."""

    _posog_connected = False

    async def connect(self, timeout: TimeoutType = None) -> None:  # noqa: ASYNC109 (overrides aio-pika)
        try:
            await super().connect(timeout)
        except BaseException:
            if not self._posog_connected:
                await self.close()
            raise
        self._posog_connected = True


class RabbitDelivery:
    """:class:`~posog.core.bus.IncomingMessage` over a delivery as aiormq hands it over (manual
    acknowledgement on its channel; no aio-pika message object is built for it).

    Each delivery is listed among its consumer's unsettled ones until it is settled, so that
    :meth:`ack_many` can tell when one ``basic.ack`` with ``multiple`` acknowledges exactly the
    deliveries it was given and nothing else."""

    __slots__ = ("_consumer", "_headers", "_message", "_settled", "_tag")

    def __init__(self, message: DeliveredMessage, consumer: _Consumer | None = None) -> None:
        self._message = message
        self._settled = False
        self._headers: dict[str, str] | None = None
        self._consumer = consumer
        self._tag = message.delivery_tag
        if consumer is not None and self._tag is not None:
            consumer.unsettled[self._tag] = self

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def message_id(self) -> str | None:
        return self._message.header.properties.message_id

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            raw = self._message.header.properties.headers or {}
            self._headers = {key: _header_text(value) for key, value in raw.items()}
        return dict(self._headers)

    @property
    def redelivered(self) -> bool:
        return bool(self._message.redelivered)

    async def ack(self) -> None:
        await self._settle("ack", self._basic_ack)

    async def reject(self) -> None:
        """``basic.reject`` without requeue: the broker dead-letters it to the queue's DLX."""
        await self._settle("reject", self._basic_reject)

    async def requeue(self) -> None:
        """``basic.nack`` with requeue: back to the queue, redelivered with ``redelivered=True``."""
        await self._settle("requeue", self._basic_nack)

    async def _basic_ack(self, multiple: bool = False) -> None:
        if self._tag is not None:
            await self._message.channel.basic_ack(self._tag, multiple=multiple)

    async def _basic_reject(self) -> None:
        if self._tag is not None:
            await self._message.channel.basic_reject(self._tag, requeue=False)

    async def _basic_nack(self) -> None:
        if self._tag is not None:
            await self._message.channel.basic_nack(self._tag, requeue=True)

    def _mark_settled(self) -> None:
        # Settling twice is a bug in the caller, as in InProcessBus: a BusError, before any frame is
        # sent (the broker would close the channel for an unknown delivery tag).
        if self._settled:
            raise BusError("message already acknowledged or rejected")
        self._settled = True
        if self._consumer is not None and self._tag is not None:
            self._consumer.unsettled.pop(self._tag, None)

    async def _settle(self, action: str, operation: Callable[[], Awaitable[None]], count: int = 1) -> None:
        self._mark_settled()
        try:
            await operation()
        except _BROKER_ERRORS as exc:
            # The delivery's channel is gone (consumer closed, connection dropped). Its delivery tag
            # means nothing on any other channel, and the broker will redeliver the message anyway.
            log.warning(
                "rabbit.settle_failed",
                action=action,
                message_id=self.message_id,
                messages=count,
                error=repr(exc),
            )

    @classmethod
    async def ack_many(cls, messages: Sequence[IncomingMessage]) -> None:
        """Acknowledge ``messages`` with one ``basic.ack`` (``multiple``, on the last delivery tag) per
        consumer channel — when, on that channel, every delivery still unsettled up to that tag is
        among ``messages``; otherwise (or for other kinds of message) one by one. A multiple-ack
        covering a delivery nobody meant to acknowledge would lose it; this check makes that
        impossible whatever the caller does (see :func:`posog.core.bus.ack_batch`)."""
        groups: dict[int, list[RabbitDelivery]] = {}
        single: list[IncomingMessage] = []
        for message in messages:
            if isinstance(message, RabbitDelivery) and message._consumer is not None and message._tag is not None:
                groups.setdefault(id(message._consumer), []).append(message)
            else:
                single.append(message)
        for group in groups.values():
            if any(d._settled for d in group):
                raise BusError("message already acknowledged or rejected")
            consumer = group[0]._consumer
            assert consumer is not None
            last = max(group, key=lambda d: d._tag or 0)
            last_tag = last._tag or 0
            mine = {d._tag for d in group}
            if len(mine) != len(group) or any(
                tag <= last_tag and tag not in mine for tag in consumer.unsettled
            ):  # something else is unsettled below the last tag: it must not be acked with them
                single.extend(group)
                continue
            for delivery in group:
                if delivery is not last:
                    delivery._mark_settled()
            await last._settle("ack_multiple", functools.partial(last._basic_ack, multiple=True), count=len(group))
        for message in single:
            await message.ack()


class _DeliveryStream:
    """``basic.consume`` on one channel, read straight from aiormq: each delivery is buffered as it
    arrives and handed out as is (aio-pika's queue iterator builds a message object and starts a task
    for each — a third of the cost of receiving a message). Ends when the channel closes (the broker
    or the connection went away) or :meth:`close` is called; what it buffered and never handed out
    stays unacknowledged, so closing the channel gives it back to the queue."""

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self._channel = channel
        self._buffer: deque[DeliveredMessage] = deque()
        self._wakeup = asyncio.Event()
        self._consumer_tag: str | None = None
        self._closed = False
        channel.closing.add_done_callback(self._on_channel_closed)

    def _on_channel_closed(self, closing: asyncio.Future[Any]) -> None:
        if not closing.cancelled():
            closing.exception()  # retrieved: the consumer's restart logs why
        self._wakeup.set()

    async def consume(self, queue: str) -> None:
        result = await self._channel.basic_consume(queue, self._on_message, no_ack=False)
        self._consumer_tag = result.consumer_tag

    async def _on_message(self, message: DeliveredMessage) -> None:
        self._buffer.append(message)
        self._wakeup.set()

    def __aiter__(self) -> _DeliveryStream:
        return self

    async def __anext__(self) -> DeliveredMessage:
        while not self._buffer:
            if self._closed or self._channel.is_closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._closed or self._channel.is_closed:
            raise StopAsyncIteration  # its tag is void on a closed channel: the broker redelivers it
        return self._buffer.popleft()

    async def close(self) -> None:
        """``basic.cancel``: no more deliveries (the channel's close then requeues the unsettled)."""
        self._closed = True
        self._wakeup.set()
        tag, self._consumer_tag = self._consumer_tag, None
        if tag is not None and not self._channel.is_closed:
            await self._channel.basic_cancel(tag)


@dataclass(eq=False)
class _Consumer:
    """One running ``basic.consume``: its channel, the delivery stream, and the deliveries it handed
    out that are not settled yet (by delivery tag; tags are per channel)."""

    queue: str
    channel: AbstractChannel
    iterator: _DeliveryStream
    stopped: bool = False  # by RabbitBus.close(): the consume() stream ends instead of restarting
    closed: bool = False
    unsettled: dict[int, RabbitDelivery] = field(default_factory=dict)


class RabbitBus:
    """The production :class:`~posog.core.bus.MessageBus` on RabbitMQ (3.8+ for quorum queues).

    ``publish_timeout_s`` bounds every broker round trip this class waits for — publishes (including
    waiting out a reconnect) and the topology/admin calls — so that nothing hangs on a dead broker.
    ``connect_timeout_s`` bounds only the initial :meth:`connect`; after it, reconnecting is
    aio-pika's job, every ``reconnect_interval_s``.
    """

    def __init__(
        self,
        url: str,
        *,
        max_backoff_s: float = 30.0,
        publish_timeout_s: float = 30.0,
        connect_timeout_s: float = 60.0,
        reconnect_interval_s: float = 2.0,
    ) -> None:
        self._url = url
        self._max_backoff_s = max_backoff_s
        self._publish_timeout_s = publish_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._publishing: AbstractRobustConnection | None = None  # publisher + admin channels
        self._consuming: AbstractRobustConnection | None = None  # one robust channel per consumer
        self._publisher: AbstractChannel | None = None
        self._publisher_lock = asyncio.Lock()
        self._consumers: set[_Consumer] = set()
        self._stopping: set[asyncio.Future[None]] = set()  # consumer stops running in the background
        self._known_exchanges: set[str] = set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, retrying with exponential backoff while the broker is not there yet (services
        start in any order); give up with :class:`BusError` after ``connect_timeout_s``."""
        if self._publishing is not None and self._consuming is not None:
            return
        deadline = asyncio.get_running_loop().time() + self._connect_timeout_s
        try:
            if self._publishing is None:
                self._publishing = await self._connect_with_backoff("publish", deadline)
            if self._consuming is None:
                self._consuming = await self._connect_with_backoff("consume", deadline)
        except BaseException:
            await self.close()
            raise

    def _backoff_s(self, failures: int) -> float:
        """The pause after ``failures`` failed connection attempts or consumer starts: 0.5 s doubling up
        to ``max_backoff_s``, exactly (the connection attempts are logged with it)."""
        return backoff(failures, base_s=_FIRST_BACKOFF_S, cap_s=self._max_backoff_s, jitter=0).total_seconds()

    async def _connect_with_backoff(self, role: str, deadline: float) -> AbstractRobustConnection:
        loop = asyncio.get_running_loop()
        attempt = 0
        target = _safe_url(self._url)
        while True:
            attempt += 1
            remaining = deadline - loop.time()
            log.info("rabbit.connecting", url=target, role=role, attempt=attempt)
            try:
                connection = await aio_pika.connect_robust(
                    self._url,
                    timeout=max(min(remaining, 10.0), 0.1),
                    reconnect_interval=self._reconnect_interval_s,
                    client_properties={"connection_name": f"posog {role}"},
                    connection_class=_RobustConnection,
                )
            except _BROKER_ERRORS as exc:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.error("rabbit.connect_gave_up", url=target, role=role, attempts=attempt, error=repr(exc))
                    raise BusError(
                        f"RabbitMQ at {target} unreachable after {attempt} attempts "
                        f"({self._connect_timeout_s:g} s): {exc!r}"
                    ) from exc
                pause = min(self._backoff_s(attempt), remaining)
                log.warning(
                    "rabbit.connect_failed",
                    url=target,
                    role=role,
                    attempt=attempt,
                    retry_in_s=round(pause, 3),
                    error=repr(exc),
                )
                await asyncio.sleep(pause)
                continue
            connection.reconnect_callbacks.add(lambda _conn: log.info("rabbit.reconnected", role=role))
            connection.close_callbacks.add(lambda conn, exc: self._on_connection_closed(conn, role, exc))
            log.info("rabbit.connected", url=target, role=role, attempts=attempt)
            return connection

    async def close(self) -> None:
        """Stop consumers (their iterators end), then close the publisher and the connections."""
        connections = [c for c in (self._consuming, self._publishing) if c is not None]
        self._consuming = self._publishing = None
        for consumer in list(self._consumers):
            consumer.stopped = True  # the consume() stream ends instead of restarting
            await self._stop_consumer(consumer)
        if self._stopping:
            await asyncio.wait(set(self._stopping), timeout=_CLEANUP_TIMEOUT_S)
        publisher, self._publisher = self._publisher, None
        if publisher is not None and not publisher.is_closed:
            await self._quietly("publisher.close", publisher.close())
        for connection in connections:
            await self._quietly("connection.close", connection.close())
        self._known_exchanges.clear()

    def _on_connection_closed(self, connection: object, role: str, exc: BaseException | None) -> None:
        if connection in (self._publishing, self._consuming):  # not our own close()
            log.warning("rabbit.connection_lost", role=role, error=repr(exc))

    def _require(self, connection: AbstractRobustConnection | None) -> AbstractRobustConnection:
        if connection is None:
            raise BusError("RabbitBus is not connected (call connect() first)")
        return connection

    async def _open_channel(
        self, *, publisher_confirms: bool, connection: AbstractRobustConnection | None = None
    ) -> AbstractChannel:
        """A plain (non-robust) channel, on the publishing connection unless told otherwise: a
        channel-level error or a reconnect just costs the channel, and a fresh one is opened next
        time — nothing is restored behind our back."""
        connection = self._require(connection or self._publishing)
        await connection.ready()  # waits out a reconnect; callers bound it with a timeout
        channel = aio_pika.Channel(
            connection,
            publisher_confirms=publisher_confirms,
            on_return_raises=publisher_confirms,
        )
        await channel.initialize()
        return channel

    @contextlib.asynccontextmanager
    async def _admin_channel(self, what: str) -> AsyncIterator[AbstractChannel]:
        """A short-lived channel for one topology/admin call, so that a 404 or 406 it provokes
        cannot close a channel something else is using. Broker errors become BusError."""
        channel: AbstractChannel | None = None
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                channel = await self._open_channel(publisher_confirms=False)
                yield channel
        except _BROKER_ERRORS as exc:
            raise BusError(f"{what} failed: {exc!r}") from exc
        finally:
            if channel is not None and not channel.is_closed:
                await self._quietly("admin_channel.close", channel.close())

    @staticmethod
    async def _quietly(what: str, operation: Awaitable[Any]) -> None:
        """Best-effort cleanup: bounded in time, never raising (the thing is going away anyway)."""
        try:
            async with asyncio.timeout(_CLEANUP_TIMEOUT_S):
                await operation
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled: let it through
            # aiormq cancels its own RPC futures when the connection closes under them
            log.debug("rabbit.cleanup_failed", what=what, error=repr(exc))
        except Exception as exc:  # cleanup of something already going away must not raise
            log.debug("rabbit.cleanup_failed", what=what, error=repr(exc))

    # --- topology -------------------------------------------------------------------------------

    async def declare(self, topology: Topology) -> None:
        """Declare exchanges (durable, of their kind), queues (durable; quorum with
        ``x-queue-type: quorum``; ``x-dead-letter-exchange``, ``x-delivery-limit``, ``x-message-ttl``
        and ``x-max-length-bytes`` when given) and bindings. Idempotent;
        redeclaring an existing name with other arguments is a BusError (PRECONDITION_FAILED).
        A queue's dead-letter exchange must be declared too — here or earlier — or RabbitMQ drops
        what is dead-lettered to it."""
        async with self._admin_channel("declare") as channel:
            for exchange in topology.exchanges:
                if exchange.name == "":
                    continue  # the default exchange always exists and cannot be declared
                await channel.declare_exchange(exchange.name, type=exchange.kind, durable=True)
                self._known_exchanges.add(exchange.name)
            for queue in topology.queues:
                arguments: dict[str, Any] = {}
                if queue.quorum:
                    arguments["x-queue-type"] = "quorum"
                if queue.dead_letter_exchange is not None:
                    arguments["x-dead-letter-exchange"] = queue.dead_letter_exchange
                if queue.delivery_limit is not None:
                    arguments["x-delivery-limit"] = queue.delivery_limit
                if queue.message_ttl_ms is not None:
                    arguments["x-message-ttl"] = queue.message_ttl_ms
                if queue.max_length_bytes is not None:
                    arguments["x-max-length-bytes"] = queue.max_length_bytes
                await channel.declare_queue(queue.name, durable=True, arguments=arguments or None)
            for binding in topology.bindings:
                bound = await channel.get_queue(binding.queue, ensure=False)
                await bound.bind(binding.exchange, routing_key=binding.routing_key)

    # --- publishing -----------------------------------------------------------------------------

    async def _publisher_channel(self) -> AbstractChannel:
        async with self._publisher_lock:
            if self._publisher is None or self._publisher.is_closed:
                self._publisher = await self._open_channel(publisher_confirms=True)
            return self._publisher

    async def _check_exchange(self, exchange: str) -> None:
        """Make sure ``exchange`` exists before publishing to it (see the module docstring)."""
        if exchange == "" or exchange in self._known_exchanges:
            return
        async with self._admin_channel(f"publish to exchange {exchange!r}") as channel:
            await channel.get_exchange(exchange, ensure=True)  # passive declare: 404 if missing
        self._known_exchanges.add(exchange)

    async def publish(self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish all ``messages`` concurrently (persistent, mandatory) and return once the broker
        confirmed every one; otherwise raise BusError — some of them may have been delivered, so the
        caller's retry must be safe to duplicate."""
        if not messages:
            return
        self._require(self._publishing)
        await self._check_exchange(exchange)
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                channel = await self._publisher_channel()
                # Straight to aiormq (what aio-pika's Exchange.publish does after building a Message
                # object per message): the channel's confirm mode and on_return_raises still apply.
                underlay = await channel.get_underlay_channel()
                results = await asyncio.gather(
                    *(
                        underlay.basic_publish(
                            message.body,
                            exchange=exchange,
                            routing_key=routing_key,
                            properties=aiormq.spec.Basic.Properties(
                                message_id=message.message_id,
                                content_type=message.content_type,
                                headers=dict(message.headers),
                                delivery_mode=_PERSISTENT,
                            ),
                            mandatory=True,
                        )
                        for message in messages
                    ),
                    return_exceptions=True,
                )
        except _BROKER_ERRORS as exc:
            self._known_exchanges.discard(exchange)  # check it again next time
            raise BusError(
                f"publish of {len(messages)} message(s) to {exchange!r}/{routing_key!r} failed: {exc!r}"
            ) from exc
        failures = [result for result in results if not isinstance(result, aiormq.spec.Basic.Ack)]
        if failures:
            self._known_exchanges.discard(exchange)
            first = failures[0]
            raise BusError(
                f"{len(failures)} of {len(messages)} message(s) to {exchange!r}/{routing_key!r} "
                f"not confirmed: {first!r}"
            ) from (first if isinstance(first, BaseException) else None)

    # --- consuming ------------------------------------------------------------------------------

    async def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[IncomingMessage]:
        """Deliveries of ``queue`` on a dedicated robust channel with ``basic.qos(prefetch)`` and
        manual acknowledgement, until the generator is closed or the bus is. Closing the generator
        cancels the consumer and closes its channel: whatever it left unsettled goes back to the
        queue, redelivered.

        A missing queue at the start is a BusError (configuration). Afterwards the stream does not
        end on broker trouble: when the connection drops, the consumer is started again (with
        backoff) once the robust connection is back — a worker looping over this stream need not
        supervise it."""
        consumer: _Consumer | None = await self._start_consumer(queue, prefetch)
        restarts = 0
        while True:
            if consumer is not None:
                try:
                    async for message in consumer.iterator:
                        restarts = 0
                        yield RabbitDelivery(message, consumer)
                finally:
                    await self._stop_consumer_shielded(consumer)
                if consumer.stopped:
                    return
                reason = "consumer iterator ended"
            restarts += 1
            pause = self._backoff_s(restarts)
            log.warning("rabbit.consumer_restarting", queue=queue, restarts=restarts, retry_in_s=pause, reason=reason)
            await asyncio.sleep(pause)
            if self._consuming is None:
                return  # the bus was closed meanwhile
            try:
                consumer = await self._start_consumer(queue, prefetch)
            except BusError as exc:
                consumer, reason = None, repr(exc)

    async def _start_consumer(self, queue: str, prefetch: int) -> _Consumer:
        connection = self._require(self._consuming)
        channel: AbstractChannel | None = None
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                channel = await self._open_channel(publisher_confirms=False, connection=connection)
                await channel.set_qos(prefetch_count=prefetch)
                await channel.get_queue(queue, ensure=True)  # passive: 404 if missing
                iterator = _DeliveryStream(await channel.get_underlay_channel())
                await iterator.consume(queue)
        except _BROKER_ERRORS as exc:
            if channel is not None and not channel.is_closed:
                await self._quietly("consumer_channel.close", channel.close())
            raise BusError(f"cannot consume from {queue!r}: {exc!r}") from exc
        consumer = _Consumer(queue, channel, iterator)
        self._consumers.add(consumer)
        log.info("rabbit.consuming", queue=queue, prefetch=prefetch)
        return consumer

    async def _stop_consumer_shielded(self, consumer: _Consumer) -> None:
        """:meth:`_stop_consumer`, carried through even when the consuming task is being cancelled (a
        batching pump is cancelled while it waits for the next delivery): the stop then finishes in
        the background, and :meth:`close` waits for it."""
        stopping = asyncio.ensure_future(self._stop_consumer(consumer))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        await asyncio.shield(stopping)

    async def _stop_consumer(self, consumer: _Consumer) -> None:
        """Cancel the consumer, then close its channel (the broker requeues what was unsettled)."""
        if consumer.closed:
            return
        consumer.closed = True
        self._consumers.discard(consumer)
        await self._quietly("consumer.cancel", consumer.iterator.close())
        if not consumer.channel.is_closed:
            await self._quietly("consumer_channel.close", consumer.channel.close())
        log.info("rabbit.consumer_closed", queue=consumer.queue)

    # --- admin ----------------------------------------------------------------------------------

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (passive declare), not counting unacknowledged ones. A missing
        queue is a BusError, not 0: a metric should not hide a missing queue."""
        async with self._admin_channel(f"queue_depth({queue!r})") as channel:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
            return int(result.message_count or 0)

    async def drop_head_while(self, queue: str, expired: Callable[[dict[str, str]], bool]) -> int:
        """``basic.get`` from the head of ``queue`` and acknowledge (drop) each message while
        ``expired(headers)`` holds; the first that does not is given back (``basic.nack`` with requeue)
        and the drain stops. Each call to the broker is bounded by the publish timeout."""
        dropped = 0
        channel = await asyncio.wait_for(self._open_channel(publisher_confirms=False), self._publish_timeout_s)
        try:
            target = await asyncio.wait_for(channel.get_queue(queue, ensure=True), self._publish_timeout_s)
            while True:
                message = await asyncio.wait_for(target.get(no_ack=False, fail=False), self._publish_timeout_s)
                if message is None:
                    return dropped
                headers = {key: _header_text(value) for key, value in (message.headers or {}).items()}
                if not expired(headers):
                    await message.nack(requeue=True)
                    return dropped
                await message.ack()
                dropped += 1
        except _BROKER_ERRORS as exc:
            raise BusError(f"drop_head_while({queue!r}) failed after {dropped}: {exc!r}") from exc
        finally:
            if not channel.is_closed:
                await self._quietly("drain_channel.close", channel.close())

    async def purge(self, queue: str) -> int:
        """Drop every ready message of ``queue`` (tests, benchmarks); returns how many."""
        async with self._admin_channel(f"purge({queue!r})") as channel:
            target = await channel.get_queue(queue, ensure=False)
            result = await target.purge()
            return int(result.message_count or 0)

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` whether or not it is empty or consumed (tests, benchmarks)."""
        async with self._admin_channel(f"delete_queue({queue!r})") as channel:
            await channel.queue_delete(queue)

    async def delete_exchange(self, exchange: str) -> None:
        """Delete ``exchange`` (tests, benchmarks)."""
        async with self._admin_channel(f"delete_exchange({exchange!r})") as channel:
            self._known_exchanges.discard(exchange)
            await channel.exchange_delete(exchange)
