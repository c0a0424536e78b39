"""Kill -9 the intake worker and, separately, the outbox relay in the middle of a stream, restart
them, and find the exact counts: nothing lost, nothing doubled. Production mode only: real worker
processes on PostgreSQL + RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
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
from tests.conftest import LOG_DIR, remember_citizen
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration


def spawn_worker(name: str, system: System, *args: str, **env: str) -> subprocess.Popen[bytes]:
    s = system.settings
    assert s.amqp_url is not None
    environment = {
        **os.environ,
        "POSOG_ENV": "test",
        "POSOG_VAR_DIR": str(s.var_dir),
        "POSOG_DATABASE_URL": s.resolved_database_url,
        "POSOG_AMQP_URL": s.amqp_url,
        "POSOG_FACTS_QUEUE": s.facts_queue,
        "POSOG_FACTS_DEAD_LETTER_EXCHANGE": s.facts_dead_letter_exchange,
        "POSOG_FACTS_DEAD_LETTER_QUEUE": s.facts_dead_letter_queue,
        "POSOG_GEPS_EXCHANGE": s.geps_exchange,
        "POSOG_GEPS_INBOX_QUEUE": s.geps_inbox_queue,
        "POSOG_LKP_BASE_URL": s.lkp_base_url,
        "POSOG_RELAY_IDLE_SLEEP_MS": "20",
        **env,
    }
    log = (LOG_DIR / f"worker-{name}-{uuid.uuid4().hex[:6]}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "posog.cli", "worker", name, *args], env=environment, stdout=log, stderr=log
    )


def facts_for(seed: int, n: int) -> list[bytes]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    bodies = []
    for _ in range(n):
        fact = factory.fact()
        remember_citizen(fact["citizen"])
        bodies.append(json.dumps(fact, ensure_ascii=False).encode())
    return bodies


async def kill_hard(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)
    assert process.returncode == -signal.SIGKILL


async def stop_cleanly(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, 30)
    assert process.returncode == 0, "a worker stops cleanly on SIGTERM"


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
            await wait_for(lambda: _at_least(system, ServiceCard, 400), timeout=90, interval=0.02, what="first cards")
            await kill_hard(worker)
            at_kill = await count(system, ServiceCard)
            assert at_kill < total, "the worker must die in the middle of the stream"

            worker = spawn_worker("intake", system, POSOG_INTAKE_BATCH_SIZE="50", POSOG_CONSUMER_PREFETCH="200")
            await wait_for(lambda: _at_least(system, ServiceCard, total), timeout=120, what="all cards")
            await wait_for(lambda: _queue_empty(system), timeout=30, what="every fact acknowledged")
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
            await wait_for(lambda: _at_least(system, OutboxMessage, 300, sent), timeout=90, interval=0.02, what="sends")
            await kill_hard(relay)
            assert await count(system, OutboxMessage, sent) < total, "the relay must die mid-stream"

            relay = spawn_worker("outbox", system, POSOG_RELAY_BATCH_SIZE="25")
            await wait_for(lambda: _at_least(system, OutboxMessage, total, sent), timeout=120, what="all sent")
            await wait_for(lambda: _at_least(system, InboxNotification, total), timeout=60, what="all delivered")
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
            await wait_for(lambda: _at_least(system, InboxNotification, total), timeout=120, what="all delivered")
            await asyncio.sleep(0.5)
        finally:
            for task in [*relays, inbox]:
                task.cancel()
            await asyncio.gather(*relays, inbox, return_exceptions=True)
        # SKIP LOCKED: no row was claimed by both relays, so nothing was delivered twice.
        assert await count(system, InboxNotification) == total
        assert await count(system, InboxNotification, InboxNotification.deliveries > 1) == 0


async def _at_least(system: System, model: object, n: int, *where: object) -> bool:
    return await count(system, model, *where) >= n


async def _queue_empty(system: System) -> bool:
    return await system.bus.queue_depth(system.settings.facts_queue) == 0
