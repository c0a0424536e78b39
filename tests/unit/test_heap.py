"""A consumer freezes the heap while it runs and gives it back as it stops."""

from __future__ import annotations

import asyncio
import gc

from posog.core.bus import InProcessBus, QueueSpec, Topology
from posog.core.heap import freeze_heap, thaw_heap
from posog.module.smev.worker import InboundProcessor, SmevConsumer


def test_freezing_and_thawing() -> None:
    thaw_heap()
    assert gc.get_freeze_count() == 0
    freeze_heap()
    assert gc.get_freeze_count() > 0
    thaw_heap()
    assert gc.get_freeze_count() == 0


class _Nothing:
    async def handle(self, documents: object) -> None:
        raise AssertionError("no document was sent")

    async def keep_unhandled(self, document: bytes, reason: str) -> None:
        raise AssertionError("no document was sent")


async def test_the_smev_consumer_freezes_while_it_runs_and_thaws_when_stopped() -> None:
    thaw_heap()
    bus = InProcessBus()
    await bus.declare(Topology(queues=(QueueSpec("in"),)))
    consumer = SmevConsumer(bus, InboundProcessor(_Nothing()), queue="in", prefetch=8, batch_size=8, batch_wait_s=0.01)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gc.get_freeze_count() == 0
