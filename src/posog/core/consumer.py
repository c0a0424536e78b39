"""The shape every batch consumer of a queue has (intake's facts, the СМЭВ adapter's in queue): the
queue's deliveries grouped into batches (:func:`~posog.core.bus.batches`), the messages the broker
handed out before — their consumer died holding them — told apart from the fresh ones and handed to
the consumer one by one, the fresh ones together; on cancellation every message of the batch in hand
is given back to the broker. What a consumer does with them, and how it settles them, is its own
(:meth:`BatchConsumer.returned`, :meth:`BatchConsumer.fresh`).

The start-up heap is frozen while a consumer runs (:mod:`posog.core.heap`)."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from typing import Final

import structlog

from posog.core.bus import BusError, IncomingMessage, MessageBus, batches
from posog.core.heap import freeze_heap, thaw_heap

log = structlog.get_logger(__name__)

DELIVERY_COUNT_HEADER: Final = "x-delivery-count"  # set by quorum queues on every redelivery


def delivery_count(message: IncomingMessage) -> int:
    """How often the broker has handed this message out before (0 for a first delivery)."""
    try:
        return max(0, int(message.headers.get(DELIVERY_COUNT_HEADER, "0")))
    except ValueError:
        return 0


def was_returned(message: IncomingMessage) -> bool:
    """Handed out before: its consumer died or lost its channel while holding it."""
    return message.redelivered or delivery_count(message) > 0


class BatchConsumer(ABC):
    """Consumes ``queue`` in batches of up to ``batch_size`` (or what came within ``batch_wait_s``)
    with a prefetch of at least a batch, until cancelled. ``name`` prefixes its log events."""

    name: str = "consumer"

    def __init__(self, bus: MessageBus, *, queue: str, prefetch: int, batch_size: int, batch_wait_s: float) -> None:
        self._bus = bus
        self._queue = queue
        self._prefetch = max(prefetch, batch_size)
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s

    @abstractmethod
    async def returned(self, message: IncomingMessage) -> None:
        """Handle and settle one message the broker handed out before."""

    @abstractmethod
    async def fresh(self, messages: list[IncomingMessage]) -> None:
        """Handle and settle the batch's first deliveries."""

    def handled(self, batch: list[IncomingMessage], seconds: float) -> None:  # noqa: B027 (optional hook)
        """A batch is settled, after ``seconds`` (for the consumer's counts)."""

    async def run(self) -> None:
        stream = self._bus.consume(self._queue, prefetch=self._prefetch)
        log.info(f"{self.name}.started", queue=self._queue, prefetch=self._prefetch, batch=self._batch_size)
        freeze_heap()
        grouped = batches(stream, max_size=self._batch_size, max_wait_s=self._batch_wait_s)
        try:
            await self._consume(grouped)
        finally:
            thaw_heap()
            await grouped.aclose()  # stops the pump now, not when the generator is collected

    async def _consume(self, grouped: AsyncGenerator[list[IncomingMessage], None]) -> None:
        async for batch in grouped:
            started = time.perf_counter()
            try:
                returned = [m for m in batch if was_returned(m)]
                first = [m for m in batch if m not in returned] if returned else batch
                for message in returned:
                    await self.returned(message)
                if first:
                    await self.fresh(first)
            except asyncio.CancelledError:
                await self._requeue(batch)
                raise
            self.handled(batch, time.perf_counter() - started)

    async def _requeue(self, batch: list[IncomingMessage]) -> None:
        for message in batch:
            try:
                await message.requeue()
            except BusError:
                pass  # already settled before the cancellation reached us
            except Exception as exc:  # the channel is gone: the broker redelivers anyway
                log.warning(f"{self.name}.requeue_failed", error=exc.__class__.__name__)
