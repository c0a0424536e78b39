"""Kill -9 ``posog worker smev`` in the middle of a stream of fact envelopes on the adapter's AMQP
interface, start it again, and find every fact applied once and answered to its sender exactly once:
the answer is written in the fact's transaction and a redelivered envelope (same clientId) is not
answered again. Production mode: a real worker process on PostgreSQL + RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from posog.bootstrap import System
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.emulators.smev_adapter.envelopes import request_document
from posog.emulators.smev_adapter.facts import og_fact_xml
from posog.module.intake.model import ServiceCard
from tests.conftest import remember_citizen
from tests.e2e.processes import kill_hard, spawn_worker, stop_cleanly, wait_while_running
from tests.integration.smev_support import adapter, answered, assert_each_fact_carded_and_accepted_once
from tests.support import at_least, count, stack

pytestmark = pytest.mark.integration


def _smev_env(system: System) -> dict[str, str]:
    s = system.settings
    return {
        "POSOG_SMEV_TRANSPORT": "amqp",
        "POSOG_SMEV_IN_QUEUE": s.smev_in_queue,
        "POSOG_SMEV_OUT_QUEUE": s.smev_out_queue,
        "POSOG_SMEV_IN_DEAD_LETTER_EXCHANGE": s.smev_in_dead_letter_exchange,
        "POSOG_SMEV_IN_DEAD_LETTER_QUEUE": s.smev_in_dead_letter_queue,
        "POSOG_INTAKE_BATCH_SIZE": "50",
        "POSOG_CONSUMER_PREFETCH": "200",
    }


async def test_smev_worker_killed_mid_stream_applies_and_answers_each_fact_once(tmp_path: Path) -> None:
    total = 2000
    async with stack("production", tmp_path, smev_transport="amqp") as system:
        emulator = adapter(system)
        factory = FactFactory(seed=31, today=today(utcnow))
        documents = []
        for i in range(total):
            fact = factory.fact()
            remember_citizen(fact["citizen"])
            documents.append(request_document(og_fact_xml(fact), client_id=f"k-{i}", message_id=fact["message_id"]))
        await emulator.deliver(documents)
        reader = asyncio.create_task(emulator.consume_out())
        worker = spawn_worker("smev", system, **_smev_env(system))
        try:
            await wait_while_running(
                worker, lambda: at_least(system, ServiceCard, 300), interval=0.02, what="first cards"
            )
            await kill_hard(worker)
            at_kill = await count(system, ServiceCard)
            assert at_kill < total, "the worker must die in the middle of the stream"

            worker = spawn_worker("smev", system, **_smev_env(system))
            await wait_while_running(worker, lambda: at_least(system, ServiceCard, total), what="all cards")
            await wait_while_running(worker, lambda: answered(emulator, total), what="every fact answered")
            await wait_while_running(worker, lambda: _in_queue_empty(system), what="every envelope acknowledged")
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await assert_each_fact_carded_and_accepted_once(system, emulator, [f"k-{i}" for i in range(total)])


async def _in_queue_empty(system: System) -> bool:
    return await system.bus.queue_depth(system.settings.smev_in_queue) == 0
