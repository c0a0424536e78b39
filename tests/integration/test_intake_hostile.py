"""No message stops intake (issue 13): a message that kills its consumer ends in the dead letters after
the delivery limit; the dead letters carry no personal data; the purge reaches the broker's copies.
(The fuzzed hostile stream through a real worker process: ``tests/e2e/test_intake_hostile_worker.py``.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from posog.bootstrap import System
from posog.core import metrics
from posog.core.bus import BusError, OutgoingMessage, QueueSpec, Topology
from posog.core.clock import utcnow
from posog.module.intake.dead_letters import REASONS_HEADER
from posog.module.intake.model import RejectedFact, ServiceCard
from posog.module.retention import PiiPurger
from tests.integration.intake_support import drain, make_facts, needles_in
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration


async def _cards_at_least(system: System, n: int) -> bool:
    return await count(system, ServiceCard) >= n


class ProcessDeath(BaseException):
    """What a segfault or an OOM kill does to a consumer: nothing in it can catch this."""


@pytest.mark.parametrize("backend", ["embedded", "production"])
async def test_a_message_that_kills_its_consumer_ends_in_the_dead_letters_after_the_limit(
    backend: str, tmp_path: Path
) -> None:
    limit = 3
    async with stack(backend, tmp_path, facts_delivery_limit=limit) as system:
        facts = make_facts(133, 12, "kill")
        poison = facts[5]["card_id"]
        real = system.intake._new_card
        deaths = 0

        def killing(fact: Any, *args: Any) -> Any:
            nonlocal deaths
            if fact.card_id == poison:
                deaths += 1
                raise ProcessDeath()
            return real(fact, *args)

        system.intake._new_card = killing  # type: ignore[method-assign]
        before = metrics.INTAKE_DEAD_LETTERS.labels("delivery_limit")._value.get()
        await system.bus.publish(
            "",
            system.settings.facts_queue,
            [OutgoingMessage(json.dumps(f, ensure_ascii=False).encode(), f"k-{i}") for i, f in enumerate(facts)],
        )

        async def settled() -> bool:
            """The poison quarantined and dead-lettered, the other facts carded: nothing left to kill."""
            return (
                await count(system, RejectedFact) > 0
                and await count(system, ServiceCard) >= 11
                and await system.bus.queue_depth(system.settings.facts_dead_letter_queue) > 0
            )

        restarts = 0
        while await count(system, RejectedFact) == 0 and restarts < limit + 5:
            consumer = asyncio.create_task(system.intake_consumer().run())
            # Until it dies, or lives on with everything settled (not a fixed wait for it to die).
            deadline = time.monotonic() + 120
            while not consumer.done() and not await settled() and time.monotonic() < deadline:
                await asyncio.wait({consumer}, timeout=0.1)
            if consumer.done():
                with contextlib.suppress(ProcessDeath):
                    consumer.result()
                restarts += 1
            else:
                break  # it lives: nothing left that kills it
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await wait_for(lambda: _cards_at_least(system, 11), timeout=30, what="the other facts")

        # Died once in its first batch, then `limit` times handled alone; then quarantined unhandled.
        assert deaths == limit + 1
        async with system.db.uow() as uow:
            stored = (await uow.session.execute(select(RejectedFact))).scalar_one()
        assert stored.card_id == poison
        assert stored.reasons == [{"field": "payload", "reason": "delivery_limit"}]
        assert await count(system, ServiceCard) == 11
        assert metrics.INTAKE_DEAD_LETTERS.labels("delivery_limit")._value.get() == before + 1
        letters = await drain(system, system.settings.facts_dead_letter_queue)
        assert len(letters) == 1
        assert json.loads(letters[0].headers[REASONS_HEADER]) == [{"field": "payload", "reason": "delivery_limit"}]
        assert not any(n in letters[0].body for n in needles_in(facts))


async def test_the_purge_drops_dead_letters_older_than_the_retention(tmp_path: Path) -> None:
    async with stack("production", tmp_path, pii_retention_days=30) as system:
        facts = [json.loads(json.dumps(f)) for f in make_facts(134, 3, "old")]  # (copies: the remembered stay)
        for fact in facts:
            fact["citizen"]["snils"] = "000"  # invalid: rejected and dead-lettered
        consumer = asyncio.create_task(system.intake_consumer().run())
        await system.bus.publish(
            "",
            system.settings.facts_queue,
            [OutgoingMessage(json.dumps(f, ensure_ascii=False).encode(), f"o-{i}") for i, f in enumerate(facts)],
        )
        queue = system.settings.facts_dead_letter_queue
        await wait_for(lambda: _depth(system, queue, 3), timeout=30, what="three dead letters")
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)

        def purger(days_later: int) -> PiiPurger:
            later = utcnow() + timedelta(days=days_later)
            s = system.settings
            return PiiPurger(
                system.db,
                lambda: later,
                retention_days=s.pii_retention_days,
                horizon_days=s.fact_horizon_days,
                bus=system.bus,
                dead_letter_queue=queue,
            )

        assert (await purger(29).purge_once()).dead_letters == 0
        # The head, looked at and given back (basic.nack, requeue), is ready again once the quorum
        # queue has applied the return: a moment after the purge, not necessarily at once.
        await wait_for(lambda: _depth(system, queue, 3), timeout=30, what="the looked-at dead letter back")
        assert (await purger(31).purge_once()).dead_letters == 3
        assert await system.bus.queue_depth(queue) == 0


async def _depth(system: System, queue: str, n: int) -> bool:
    return await system.bus.queue_depth(queue) == n


async def test_the_dead_letter_queue_is_declared_with_the_retention_as_ttl(tmp_path: Path) -> None:
    async with stack("production", tmp_path, pii_retention_days=7) as system:
        queue = system.settings.facts_dead_letter_queue
        # The broker refuses to redeclare a queue with other arguments: it holds exactly these.
        with pytest.raises(BusError):
            await system.bus.declare(Topology(queues=(QueueSpec(queue, message_ttl_ms=1000),)))
        same = QueueSpec(
            queue, message_ttl_ms=7 * 86_400_000, max_length_bytes=system.settings.facts_dead_letter_max_bytes
        )
        await system.bus.declare(Topology(queues=(same,)))
