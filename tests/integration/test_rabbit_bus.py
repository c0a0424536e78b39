"""The message-bus port against a real RabbitMQ (:class:`RabbitBus`) and, for the behaviour both must
share, against :class:`InProcessBus` too: the in-process bus stands in for RabbitMQ in the embedded
mode and in unit tests, so the two must not drift apart.

RabbitMQ comes from the suite's ``amqp_url`` fixture (``POSOG_TEST_AMQP_URL``, default
``amqp://guest:guest@127.0.0.1:5672/``): without a reachable broker the RabbitMQ cases are skipped —
except in CI (``CI`` set), where that is a failure. The in-process cases always run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest
from structlog.testing import capture_logs

from posog.core.bus import (
    BindingSpec,
    BusError,
    ExchangeSpec,
    IncomingMessage,
    InProcessBus,
    MessageBus,
    OutgoingMessage,
    QueueSpec,
    Topology,
    batches,
)
from posog.core.rabbit import RabbitBus

pytestmark = pytest.mark.integration

RECEIVE_TIMEOUT_S = 10.0


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rabbit_url(amqp_url: str) -> str:
    """The broker URL, checked reachable by the suite's ``amqp_url`` (skip locally, fail in CI)."""
    return amqp_url


@pytest.fixture
async def rabbit(rabbit_url: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(rabbit_url, connect_timeout_s=10, publish_timeout_s=10)
    await bus.connect()
    yield bus
    await bus.close()


class Names:
    """Unique queue and exchange names for one test; deleted afterwards on a real broker."""

    def __init__(self) -> None:
        self.prefix = f"test.posog.{uuid.uuid4().hex[:12]}"
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, role: str) -> str:
        self.queues.append(f"{self.prefix}.{role}")
        return self.queues[-1]

    def exchange(self, role: str) -> str:
        self.exchanges.append(f"{self.prefix}.{role}.x")
        return self.exchanges[-1]

    async def delete(self, bus: RabbitBus) -> None:
        for queue in self.queues:
            await bus.delete_queue(queue)
        for exchange in self.exchanges:
            await bus.delete_exchange(exchange)


@pytest.fixture
async def names(rabbit_url: str) -> AsyncIterator[Names]:
    """For RabbitMQ-only tests. Cleans up on its own connection, whatever the test did to its bus."""
    created = Names()
    yield created
    cleaner = RabbitBus(rabbit_url, connect_timeout_s=10, publish_timeout_s=10)
    await cleaner.connect()
    try:
        await created.delete(cleaner)
    finally:
        await cleaner.close()


@pytest.fixture(params=["inprocess", "rabbit"])
def bus_url(request: pytest.FixtureRequest) -> str | None:
    """None for the in-process bus, else the broker URL. Synchronous on purpose: ``amqp_url`` probes
    the broker with ``asyncio.run``, which cannot be requested from inside the running loop."""
    if request.param == "inprocess":
        return None
    url: str = request.getfixturevalue("rabbit_url")
    return url


@pytest.fixture
async def bus_and_names(bus_url: str | None) -> AsyncIterator[tuple[MessageBus, Names]]:
    created = Names()
    if bus_url is None:
        yield InProcessBus(), created
        return
    bus = RabbitBus(bus_url, connect_timeout_s=10, publish_timeout_s=10)
    await bus.connect()
    try:
        yield bus, created
    finally:
        await created.delete(bus)
        await bus.close()


@pytest.fixture
def bus(bus_and_names: tuple[MessageBus, Names]) -> MessageBus:
    """Both implementations, for the behaviour the port promises."""
    return bus_and_names[0]


@pytest.fixture
def shared_names(bus_and_names: tuple[MessageBus, Names]) -> Names:
    return bus_and_names[1]


# --- helpers --------------------------------------------------------------------------------------


def make_messages(count: int, *, prefix: str = "m") -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            body=json.dumps({"n": n, "text": "проверка"}, ensure_ascii=False).encode(),
            message_id=f"{prefix}-{n}-{uuid.uuid4().hex[:8]}",
            headers={"card_id": f"card-{n}", "schema": "test/1"},
        )
        for n in range(count)
    ]


@contextlib.asynccontextmanager
async def consuming(bus: MessageBus, queue: str, *, prefetch: int) -> AsyncIterator[AsyncIterator[IncomingMessage]]:
    """``bus.consume`` closed on exit, as a worker closes it on shutdown."""
    stream = bus.consume(queue, prefetch=prefetch)
    try:
        yield stream
    finally:
        aclose: Callable[[], Any] | None = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def receive(stream: AsyncIterator[IncomingMessage], count: int) -> list[IncomingMessage]:
    received: list[IncomingMessage] = []
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        while len(received) < count:
            received.append(await anext(stream))
    return received


async def declare_queue(bus: MessageBus, names: Names, role: str = "facts") -> str:
    queue = names.queue(role)
    await bus.declare(Topology(queues=[QueueSpec(queue)]))
    return queue


async def declare_directly(rabbit_url: str, names: Names) -> str:
    """A queue declared over a connection of its own, with the suite's usual timeouts: a test of a bus
    with a short publish timeout should not fail in its set-up (a channel opened through the proxy on
    a loaded machine can take longer than that timeout)."""
    bus = RabbitBus(rabbit_url, connect_timeout_s=10, publish_timeout_s=10)
    await bus.connect()
    try:
        return await declare_queue(bus, names)
    finally:
        await bus.close()


async def declare_with_dead_letters(bus: MessageBus, names: Names) -> tuple[str, str, str, str]:
    """exchange --rk--> queue --(reject)--> dlx (direct) --rk--> dead queue.

    The dead-letter exchange is direct and bound with the *original* routing key, so the message only
    reaches the dead queue if it is dead-lettered with that key, as AMQP does."""
    exchange, dlx = names.exchange("in"), names.exchange("dlx")
    queue, dead = names.queue("facts"), names.queue("dead")
    await bus.declare(
        Topology(
            exchanges=[ExchangeSpec(exchange, "direct"), ExchangeSpec(dlx, "direct")],
            queues=[QueueSpec(queue, dead_letter_exchange=dlx), QueueSpec(dead)],
            bindings=[BindingSpec(queue, exchange, "fact"), BindingSpec(dead, dlx, "fact")],
        )
    )
    return exchange, queue, dlx, dead


async def eventually_depth(bus: MessageBus, queue: str, expected: int) -> int:
    """Queue depth once it settles at ``expected`` (the broker applies acks/requeues asynchronously)."""
    depth = -1
    for _ in range(50):
        depth = await bus.queue_depth(queue)
        if depth == expected:
            break
        await asyncio.sleep(0.1)
    return depth


# --- shared behaviour: InProcessBus and RabbitBus -------------------------------------------------


async def test_publishes_500_with_confirms_and_consumes_all(bus: MessageBus, shared_names: Names) -> None:
    queue = await declare_queue(bus, shared_names)
    sent = make_messages(500)

    await bus.publish("", queue, sent)

    assert await eventually_depth(bus, queue, 500) == 500
    by_id = {message.message_id: message for message in sent}
    async with consuming(bus, queue, prefetch=100) as stream:
        received: list[IncomingMessage] = []
        async with asyncio.timeout(RECEIVE_TIMEOUT_S * 3):
            while len(received) < len(sent):
                message = await anext(stream)
                received.append(message)
                await message.ack()
    assert sorted(m.message_id or "" for m in received) == sorted(by_id)
    for message in received:
        original = by_id[message.message_id or ""]
        assert message.body == original.body
        assert message.headers["card_id"] == original.headers["card_id"]
        assert message.headers["schema"] == "test/1"
        assert not message.redelivered
    assert await eventually_depth(bus, queue, 0) == 0


async def test_publish_through_a_named_exchange_routes_by_binding(bus: MessageBus, shared_names: Names) -> None:
    exchange, queue, _dlx, _dead = await declare_with_dead_letters(bus, shared_names)

    await bus.publish(exchange, "fact", make_messages(3))

    assert await eventually_depth(bus, queue, 3) == 3


async def test_rejected_message_is_dead_lettered_intact(bus: MessageBus, shared_names: Names) -> None:
    exchange, queue, _dlx, dead = await declare_with_dead_letters(bus, shared_names)
    [original] = make_messages(1, prefix="bad")
    await bus.publish(exchange, "fact", [original])

    async with consuming(bus, queue, prefetch=10) as stream:
        [message] = await receive(stream, 1)
        await message.reject()

    assert await eventually_depth(bus, queue, 0) == 0
    assert await eventually_depth(bus, dead, 1) == 1
    async with consuming(bus, dead, prefetch=10) as stream:
        [dead_lettered] = await receive(stream, 1)
        await dead_lettered.ack()
    assert dead_lettered.body == original.body
    assert dead_lettered.message_id == original.message_id
    assert dead_lettered.headers["card_id"] == original.headers["card_id"]
    assert await eventually_depth(bus, dead, 0) == 0


async def test_unacked_message_of_a_closed_consumer_is_redelivered(bus: MessageBus, shared_names: Names) -> None:
    queue = await declare_queue(bus, shared_names)
    [original] = make_messages(1)
    await bus.publish("", queue, [original])

    async with consuming(bus, queue, prefetch=1) as stream:
        [first] = await receive(stream, 1)
        assert not first.redelivered
    # The consumer is gone: settling now must not crash the caller (the broker redelivers anyway).
    await first.ack()

    async with consuming(bus, queue, prefetch=1) as stream:
        [again] = await receive(stream, 1)
        assert again.redelivered
        assert again.message_id == original.message_id
        assert again.body == original.body
        await again.ack()
    assert await eventually_depth(bus, queue, 0) == 0


async def test_requeued_message_comes_back_redelivered(bus: MessageBus, shared_names: Names) -> None:
    queue = await declare_queue(bus, shared_names)
    [original] = make_messages(1)
    await bus.publish("", queue, [original])

    async with consuming(bus, queue, prefetch=1) as stream:
        [first] = await receive(stream, 1)
        await first.requeue()
        [again] = await receive(stream, 1)
        assert again.redelivered
        assert again.message_id == original.message_id
        await again.ack()
    assert await eventually_depth(bus, queue, 0) == 0


async def test_prefetch_bounds_unacknowledged_deliveries(bus: MessageBus, shared_names: Names) -> None:
    queue = await declare_queue(bus, shared_names)
    await bus.publish("", queue, make_messages(20))
    received: list[IncomingMessage] = []

    async with consuming(bus, queue, prefetch=5) as stream:

        async def collect() -> None:
            async for message in stream:
                received.append(message)

        collector = asyncio.create_task(collect())
        try:
            await asyncio.sleep(0.5)
            assert len(received) == 5  # nothing acked: the broker stops at the prefetch
            for message in list(received):
                await message.ack()
            await asyncio.sleep(0.5)
            assert len(received) == 10  # five slots freed, five more delivered
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector


async def test_settling_twice_is_an_error(bus: MessageBus, shared_names: Names) -> None:
    queue = await declare_queue(bus, shared_names)
    await bus.publish("", queue, make_messages(1))

    async with consuming(bus, queue, prefetch=1) as stream:
        [message] = await receive(stream, 1)
        await message.ack()
        with pytest.raises(BusError):
            await message.ack()
        with pytest.raises(BusError):
            await message.reject()


async def test_publish_to_a_missing_exchange_raises_instead_of_hanging(bus: MessageBus, shared_names: Names) -> None:
    queue = await declare_queue(bus, shared_names)

    async with asyncio.timeout(5):
        with pytest.raises(BusError):
            await bus.publish(shared_names.exchange("never-declared"), "k", make_messages(3))
        # and the bus is still usable afterwards (the broker closed the channel on the 404)
        await bus.publish("", queue, make_messages(2))

    assert await eventually_depth(bus, queue, 2) == 2


async def test_consuming_a_missing_queue_raises(bus: MessageBus, shared_names: Names) -> None:
    with pytest.raises(BusError):
        async with consuming(bus, shared_names.queue("never-declared"), prefetch=1) as stream:
            await anext(stream)


async def test_batches_group_deliveries(bus: MessageBus, shared_names: Names) -> None:
    queue = await declare_queue(bus, shared_names)
    await bus.publish("", queue, make_messages(10))

    sizes: list[int] = []
    async with consuming(bus, queue, prefetch=4) as stream:
        grouped = batches(stream, max_size=4, max_wait_s=0.3)
        try:
            async with asyncio.timeout(RECEIVE_TIMEOUT_S):
                async for batch in grouped:
                    sizes.append(len(batch))
                    for message in batch:
                        await message.ack()
                    if sum(sizes) == 10:
                        break
        finally:
            await grouped.aclose()  # type: ignore[attr-defined]

    assert sizes == [4, 4, 2]
    assert await eventually_depth(bus, queue, 0) == 0


# --- RabbitMQ only ---------------------------------------------------------------------------------


async def test_topology_declares_durable_quorum_queue_with_dead_letter_exchange(
    rabbit: RabbitBus, names: Names, rabbit_url: str
) -> None:
    exchange, dlx = names.exchange("in"), names.exchange("dlx")
    queue, dead = names.queue("facts"), names.queue("dead")
    topology = Topology(
        exchanges=[ExchangeSpec(exchange, "direct"), ExchangeSpec(dlx, "fanout")],
        queues=[QueueSpec(queue, dead_letter_exchange=dlx), QueueSpec(dead)],
        bindings=[BindingSpec(queue, exchange, "fact"), BindingSpec(dead, dlx, "")],
    )
    await rabbit.declare(topology)
    await rabbit.declare(topology)  # idempotent: same arguments are equivalent

    # RabbitMQ compares the arguments of a redeclaration: the same queue as classic is refused, so
    # it really is a quorum queue; another dead-letter exchange is refused, so it has ours.
    with pytest.raises(BusError, match="inequivalent arg 'x-queue-type'"):
        await rabbit.declare(Topology(queues=[QueueSpec(queue, dead_letter_exchange=dlx, quorum=False)]))
    with pytest.raises(BusError, match="inequivalent arg 'x-dead-letter-exchange'"):
        await rabbit.declare(Topology(queues=[QueueSpec(queue, dead_letter_exchange=names.exchange("other"))]))
    with pytest.raises(BusError, match="inequivalent arg 'x-queue-type'"):
        await rabbit.declare(Topology(queues=[QueueSpec(dead, quorum=False)]))
    # the dead-letter exchange has its own kind (fanout), not the default direct
    with pytest.raises(BusError, match="inequivalent arg 'type'"):
        await rabbit.declare(Topology(exchanges=[ExchangeSpec(dlx, "direct")]))
    # durable: a redeclaration as transient is refused too
    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="durable"):
            await channel.declare_queue(
                queue, durable=False, arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": dlx}
            )
    finally:
        await connection.close()

    # and the dead-lettering works end to end through the fanout DLX
    await rabbit.publish(exchange, "fact", make_messages(1))
    async with consuming(rabbit, queue, prefetch=1) as stream:
        [message] = await receive(stream, 1)
        await message.reject()
    async with consuming(rabbit, dead, prefetch=1) as stream:
        [dead_lettered] = await receive(stream, 1)
        await dead_lettered.ack()
    assert dead_lettered.message_id == message.message_id
    x_death = json.loads(dead_lettered.headers["x-death"])  # broker tables are passed on as JSON
    assert x_death[0]["queue"] == queue
    assert x_death[0]["reason"] == "rejected"


async def test_unroutable_publish_is_an_error_not_a_silent_drop(rabbit: RabbitBus, names: Names) -> None:
    exchange = names.exchange("lonely")
    await rabbit.declare(Topology(exchanges=[ExchangeSpec(exchange, "direct")]))

    with pytest.raises(BusError, match="NO_ROUTE"):
        await rabbit.publish(exchange, "nobody-bound", make_messages(2))
    with pytest.raises(BusError, match="NO_ROUTE"):
        await rabbit.publish("", names.queue("never-declared"), make_messages(1))


async def test_a_nacked_publish_is_an_error(rabbit: RabbitBus, names: Names, rabbit_url: str) -> None:
    # A full queue with overflow "reject-publish" makes the broker nack further publishes (a classic
    # queue: a quorum queue applies the limit only approximately).
    queue = names.queue("full")
    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel()
        arguments = {"x-queue-type": "classic", "x-max-length": 2, "x-overflow": "reject-publish"}
        await channel.declare_queue(queue, durable=True, arguments=arguments)
    finally:
        await connection.close()

    await rabbit.publish("", queue, make_messages(2))
    with pytest.raises(BusError, match="not confirmed"):
        await rabbit.publish("", queue, make_messages(3))
    assert await rabbit.queue_depth(queue) == 2


async def test_published_messages_are_persistent_with_properties(
    rabbit: RabbitBus, names: Names, rabbit_url: str
) -> None:
    queue = await declare_queue(rabbit, names)
    [original] = make_messages(1)
    await rabbit.publish("", queue, [original])

    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(queue)
        raw = await amqp_queue.get(timeout=5)
        assert raw is not None
        await raw.ack()
    finally:
        await connection.close()
    assert raw.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert raw.message_id == original.message_id
    assert raw.content_type == "application/json"
    assert raw.headers["card_id"] == "card-0"
    assert raw.headers["schema"] == "test/1"
    assert raw.headers["x-delivery-count"] == 0  # added by quorum queues only


async def test_queue_depth_of_a_missing_queue_is_an_error(rabbit: RabbitBus, names: Names) -> None:
    with pytest.raises(BusError, match="NOT_FOUND"):
        await rabbit.queue_depth(names.queue("never-declared"))


async def test_purge_empties_the_queue(rabbit: RabbitBus, names: Names) -> None:
    queue = await declare_queue(rabbit, names)
    await rabbit.publish("", queue, make_messages(7))

    assert await rabbit.purge(queue) == 7
    assert await rabbit.queue_depth(queue) == 0


async def test_close_ends_active_consumers(rabbit_url: str, names: Names) -> None:
    bus = RabbitBus(rabbit_url, connect_timeout_s=10, publish_timeout_s=10)
    await bus.connect()
    queue = await declare_queue(bus, names)
    await bus.publish("", queue, make_messages(1))
    received: list[IncomingMessage] = []

    async def worker() -> None:
        async for message in bus.consume(queue, prefetch=1):
            received.append(message)  # and never acked

    task = asyncio.create_task(worker())
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        while not received:
            await asyncio.sleep(0.05)
    await bus.close()
    await bus.close()  # idempotent

    async with asyncio.timeout(5):
        await task  # the iteration just ends: shutdown does not hang on a consumer
    await received[0].ack()  # too late, swallowed: the message went back to the queue
    checker = RabbitBus(rabbit_url)
    await checker.connect()
    try:
        assert await eventually_depth(checker, queue, 1) == 1
    finally:
        await checker.close()


async def test_using_the_bus_before_connect_is_a_bus_error(rabbit_url: str) -> None:
    bus = RabbitBus(rabbit_url)
    with pytest.raises(BusError, match="not connected"):
        await bus.publish("", "q", make_messages(1))


# --- connection loss: a TCP proxy in front of the broker stands in for the network ----------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker; ``drop()`` cuts every connection like a network
    failure would, ``stop()`` also stops listening (broker unreachable)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, broker_writer}
        for reader, writer in ((client_reader, broker_writer), (broker_reader, client_writer)):
            pump = asyncio.create_task(self._pump(reader, writer))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)

    def drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.drop()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def proxy(rabbit_url: str) -> AsyncIterator[TcpProxy]:
    from yarl import URL

    target = URL(rabbit_url)
    tcp = TcpProxy(target.host or "127.0.0.1", target.port or 5672)
    yield tcp
    await tcp.stop()


async def test_connect_retries_with_backoff_until_the_broker_is_up(proxy: TcpProxy, names: Names) -> None:
    bus = RabbitBus(proxy.url, max_backoff_s=0.8, connect_timeout_s=20)
    with capture_logs() as logs:
        connecting = asyncio.create_task(bus.connect())
        await asyncio.sleep(2.0)
        assert not connecting.done()  # still retrying: nothing listens yet
        await proxy.start()
        async with asyncio.timeout(10):
            await connecting
    try:
        failures = [entry for entry in logs if entry["event"] == "rabbit.connect_failed"]
        assert len(failures) >= 3
        assert [entry["attempt"] for entry in failures] == list(range(1, len(failures) + 1))
        # exponential from 0.5 s, capped at max_backoff_s
        assert [entry["retry_in_s"] for entry in failures[:3]] == [0.5, 0.8, 0.8]
        assert "guest:guest" not in str(logs)  # no password in the logs
        queue = await declare_queue(bus, names)
        await bus.publish("", queue, make_messages(1))
        assert await bus.queue_depth(queue) == 1
    finally:
        await bus.close()


async def test_connect_gives_up_after_the_timeout(proxy: TcpProxy) -> None:
    bus = RabbitBus(proxy.url, max_backoff_s=0.2, connect_timeout_s=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BusError, match="unreachable"):
        await bus.connect()
    assert loop.time() - started < 5


async def test_consumer_resumes_after_the_connection_drops(proxy: TcpProxy, names: Names) -> None:
    await proxy.start()
    bus = RabbitBus(proxy.url, connect_timeout_s=10, publish_timeout_s=10, reconnect_interval_s=0.2)
    await bus.connect()
    try:
        queue = await declare_queue(bus, names)
        [original] = make_messages(1)
        await bus.publish("", queue, [original])
        async with consuming(bus, queue, prefetch=10) as stream:
            [first] = await receive(stream, 1)
            assert not first.redelivered

            proxy.drop()  # the network fails before the ack
            await asyncio.sleep(0.1)
            await first.ack()  # on the dead channel: logged and swallowed, not raised

            # the robust connection reconnects, the consumer is restored, the broker redelivers
            [again] = await receive(stream, 1)
            assert again.redelivered
            assert again.message_id == original.message_id
            await again.ack()

            # publishing works again too, on a fresh publisher channel
            [later] = make_messages(1, prefix="later")
            async with asyncio.timeout(10):
                while True:
                    try:
                        await bus.publish("", queue, [later])
                        break
                    except BusError:
                        await asyncio.sleep(0.2)
            [delivered] = await receive(stream, 1)
            assert delivered.message_id == later.message_id
            await delivered.ack()
        assert await eventually_depth(bus, queue, 0) == 0
    finally:
        await bus.close()


async def test_consumer_outlives_a_broker_outage_longer_than_its_timeouts(
    proxy: TcpProxy, names: Names, rabbit_url: str
) -> None:
    await proxy.start()
    queue = await declare_directly(rabbit_url, names)
    bus = RabbitBus(proxy.url, connect_timeout_s=10, publish_timeout_s=1.0, reconnect_interval_s=0.2, max_backoff_s=0.5)
    await bus.connect()
    try:
        received: list[IncomingMessage] = []

        async def worker() -> None:
            async for message in bus.consume(queue, prefetch=10):
                received.append(message)
                await message.ack()

        task = asyncio.create_task(worker())
        await asyncio.sleep(0.3)
        with capture_logs() as logs:
            await proxy.stop()  # the broker is gone for longer than publish_timeout_s
            await asyncio.sleep(2.5)
            assert not task.done()  # the stream did not end
            await proxy.start()
            [message] = make_messages(1, prefix="after-outage")
            async with asyncio.timeout(10):
                while True:
                    try:
                        await bus.publish("", queue, [message])
                        break
                    except BusError:
                        await asyncio.sleep(0.2)
                while not received:
                    await asyncio.sleep(0.05)
        assert received[0].message_id == message.message_id
        restarts = [entry for entry in logs if entry["event"] == "rabbit.consumer_restarting"]
        assert any("cannot consume" in entry["reason"] for entry in restarts)  # retried while down
        await bus.close()
        async with asyncio.timeout(5):
            await task
    finally:
        await bus.close()


async def test_publish_while_the_broker_is_unreachable_raises_within_the_timeout(
    proxy: TcpProxy, names: Names, rabbit_url: str
) -> None:
    await proxy.start()
    queue = await declare_directly(rabbit_url, names)
    bus = RabbitBus(proxy.url, connect_timeout_s=10, publish_timeout_s=1.0, reconnect_interval_s=0.2)
    await bus.connect()
    try:
        await proxy.stop()  # connection cut and nothing listening any more
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BusError):
            await bus.publish("", queue, make_messages(5))
        assert loop.time() - started < 3
    finally:
        await bus.close()
