"""Kill -9 the intake worker and, separately, the outbox relay in the middle of a stream, restart
them, and find the exact counts: nothing lost, nothing doubled. Production mode only: real worker
processes on PostgreSQL + RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from posog.bootstrap import System
from posog.core.bus import OutgoingMessage
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.emulators.epgu.model import InboxNotification
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import ServiceCard
from posog.module.links.model import NOTIFIED, SurveyLink
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen
from tests.e2e.processes import kill_hard, spawn_worker, stop_cleanly, wait_while_running
from tests.support import at_least, count, stack, wait_for

pytestmark = pytest.mark.integration


def facts_for(seed: int, n: int) -> list[bytes]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    bodies = []
    for _ in range(n):
        fact = factory.fact()
        remember_citizen(fact["citizen"])
        bodies.append(json.dumps(fact, ensure_ascii=False).encode())
    return bodies


async def test_intake_worker_killed_mid_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    total = 4000
    async with stack("production", tmp_path) as system:
        bodies = facts_for(21, total)
        for start in range(0, total, 200):
            chunk = bodies[start : start + 200]
            await system.bus.publish(
                "", system.settings.facts_queue, [OutgoingMessage(b, f"k-{start + i}") for i, b in enumerate(chunk)]
            )
        worker = spawn_worker("intake", system, POSOG_INTAKE_BATCH_SIZE="50", POSOG_CONSUMER_PREFETCH="200")
        try:
            # The first cards are the worker's sign of life (it may take long to start on a loaded machine).
            await wait_while_running(
                worker, lambda: at_least(system, ServiceCard, 400), interval=0.02, what="first cards"
            )
            await kill_hard(worker)
            at_kill = await count(system, ServiceCard)
            assert at_kill < total, "the worker must die in the middle of the stream"

            worker = spawn_worker("intake", system, POSOG_INTAKE_BATCH_SIZE="50", POSOG_CONSUMER_PREFETCH="200")
            await wait_while_running(worker, lambda: at_least(system, ServiceCard, total), what="all cards")
            await wait_while_running(worker, lambda: _queue_empty(system), what="every fact acknowledged")
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert await count(system, ServiceCard) == total
        assert await count(system, SurveyLink) == total
        assert await count(system, OutboxMessage) == total


async def test_outbox_relay_killed_mid_stream_delivers_every_notification_once(tmp_path: Path) -> None:
    total = 3000
    async with stack("production", tmp_path) as system:
        bodies = facts_for(22, total)
        for start in range(0, total, 500):
            await system.intake.handle([RawFact(b) for b in bodies[start : start + 500]])
        inbox = asyncio.create_task(system.inbox.consume(system.bus, system.settings.geps_inbox_queue))
        relay = spawn_worker("outbox", system, POSOG_RELAY_BATCH_SIZE="25")
        try:
            sent = OutboxMessage.sent_at.is_not(None)
            await wait_while_running(
                relay, lambda: at_least(system, OutboxMessage, 300, sent), interval=0.02, what="sends"
            )
            await kill_hard(relay)
            assert await count(system, OutboxMessage, sent) < total, "the relay must die mid-stream"

            relay = spawn_worker("outbox", system, POSOG_RELAY_BATCH_SIZE="25")
            await wait_while_running(relay, lambda: at_least(system, OutboxMessage, total, sent), what="all sent")
            await wait_for(lambda: at_least(system, InboxNotification, total), what="all delivered")
            await stop_cleanly(relay)
        finally:
            if relay.poll() is None:
                relay.kill()
            inbox.cancel()
            await asyncio.gather(inbox, return_exceptions=True)
        # At-least-once on the wire, exactly once in the citizen's inbox (deduplicated by notification id).
        assert await count(system, InboxNotification) == total
        assert await count(system, SurveyLink, SurveyLink.state == NOTIFIED) == total
        notifications = await system.inbox.notifications()
        assert len({n["card_id"] for n in notifications}) == total


async def test_two_relays_side_by_side_publish_each_message_once(tmp_path: Path) -> None:
    total = 1500
    async with stack("production", tmp_path, relay_batch_size=20) as system:
        bodies = facts_for(23, total)
        for start in range(0, total, 500):
            await system.intake.handle([RawFact(b) for b in bodies[start : start + 500]])
        relays = [asyncio.create_task(system.relay.run()) for _ in range(2)]
        inbox = asyncio.create_task(system.inbox.consume(system.bus, system.settings.geps_inbox_queue))
        try:
            await wait_for(lambda: at_least(system, InboxNotification, total), what="all delivered")
            await asyncio.sleep(0.5)
        finally:
            for task in [*relays, inbox]:
                task.cancel()
            await asyncio.gather(*relays, inbox, return_exceptions=True)
        # SKIP LOCKED: no row was claimed by both relays, so nothing was delivered twice.
        assert await count(system, InboxNotification) == total
        assert await count(system, InboxNotification, InboxNotification.deliveries > 1) == 0


async def _queue_empty(system: System) -> bool:
    return await system.bus.queue_depth(system.settings.facts_queue) == 0
