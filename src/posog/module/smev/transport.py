"""The СМЭВ adapter's AMQP interface (INTEGRATION.md §1, §5): the adapter puts ``QueryResult``
documents in our in queue and takes our ``ClientMessage`` documents from our out queue. Both are
durable quorum queues; the in queue dead-letters what the broker gives up on (its delivery limit) to
a queue of its own. Publishing waits for the broker's confirms (:class:`~posog.core.bus.MessageBus`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog

from posog.core.bus import BindingSpec, ExchangeSpec, MessageBus, OutgoingMessage, QueueSpec, Topology

log = structlog.get_logger(__name__)

XML_CONTENT_TYPE = "application/xml"
# The broker's own limit on returns of one inbound document (the worker's, lower, acts first).
IN_QUEUE_DELIVERY_LIMIT = 20


def adapter_topology(*, in_queue: str, out_queue: str, dead_letter_exchange: str, dead_letter_queue: str) -> Topology:
    """The adapter's queues: in (QueryResult, dead-lettered to its own queue), out (ClientMessage)."""
    return Topology(
        exchanges=(ExchangeSpec(dead_letter_exchange, "fanout"),),
        queues=(
            QueueSpec(in_queue, dead_letter_exchange=dead_letter_exchange, delivery_limit=IN_QUEUE_DELIVERY_LIMIT),
            QueueSpec(dead_letter_queue),
            QueueSpec(out_queue),
        ),
        bindings=(BindingSpec(dead_letter_queue, dead_letter_exchange, ""),),
    )


class AmqpOutbound:
    """:class:`~posog.module.smev.port.AdapterOutbound` on the adapter's AMQP interface: each
    ``ClientMessage`` document is one persistent message on the out queue (through the default
    exchange, so a missing queue is an error, not a silent drop). Returns once the broker confirmed
    every one; raises :class:`~posog.core.bus.BusError` otherwise (the caller's delivery retries)."""

    def __init__(self, bus: MessageBus, queue: str) -> None:
        self._bus = bus
        self._queue = queue

    async def send(self, documents: Sequence[bytes]) -> None:
        if not documents:
            return
        messages = [OutgoingMessage(doc, str(uuid.uuid4()), content_type=XML_CONTENT_TYPE) for doc in documents]
        await self._bus.publish("", self._queue, messages)
        log.debug("smev.amqp.sent", documents=len(messages), queue=self._queue)
