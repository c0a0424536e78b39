"""Intake keeps going: ЛКО or the database away → the batch waits and is applied later; a message that
breaks the handler → kept as a rejected fact (re-drivable) while the others go through; an outbox row
nobody can open does not block the rest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from posog.bootstrap import System
from posog.core.bus import OutgoingMessage
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.lko.client import LkoError
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import RejectedFact, ServiceCard
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration


def _facts(seed: int, n: int) -> list[dict[str, Any]]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    facts = [factory.fact() for _ in range(n)]
    for fact in facts:
        remember_citizen(fact["citizen"])
    return facts


async def _run_consumer(system: System, facts: list[dict[str, Any]], until: Any) -> None:
    await system.bus.publish(
        "",
        system.settings.facts_queue,
        [OutgoingMessage(json.dumps(f, ensure_ascii=False).encode(), f"r-{i}") for i, f in enumerate(facts)],
    )
    task = asyncio.create_task(system.intake_consumer().run())
    try:
        await wait_for(until, timeout=60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_batch_waits_while_lko_is_unreachable(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, reconnect_max_backoff_s=0.2) as system:
        real = system.catalog.known_types
        calls = {"n": 0}

        async def flaky() -> frozenset[str]:
            calls["n"] += 1
            if calls["n"] <= 3:
                raise LkoError("ЛКО unreachable: ConnectError")
            return await real()

        system.catalog.known_types = flaky  # type: ignore[method-assign]
        facts = _facts(51, 40)

        async def all_in() -> bool:
            return await count(system, ServiceCard) == 40

        await _run_consumer(system, facts, all_in)
        assert calls["n"] > 3
        assert await count(system, RejectedFact) == 0


@pytest.mark.parametrize("backend", ["embedded", "production"])
async def test_a_message_that_breaks_the_handler_is_quarantined_and_the_rest_go_through(
    backend: str, tmp_path: Path
) -> None:
    async with stack(backend, tmp_path) as system:
        facts = _facts(52, 30)
        poison = facts[7]["card_id"]
        real_new_card = system.intake._new_card

        def breaking(fact: Any, *args: Any) -> Any:
            if fact.card_id == poison:
                raise ZeroDivisionError("a bug, not bad input")
            return real_new_card(fact, *args)

        system.intake._new_card = breaking  # type: ignore[method-assign]

        async def settled() -> bool:
            return await count(system, ServiceCard) == 29 and await count(system, RejectedFact) == 1

        await _run_consumer(system, facts, settled)
        async with system.db.uow() as uow:
            rejected = (await uow.session.execute(select(RejectedFact))).scalar_one()
        assert rejected.card_id == poison
        assert rejected.reasons == [{"field": "payload", "reason": "processing_error"}]
        if backend == "production":
            await wait_for(
                lambda: _depth_is(system, system.settings.facts_dead_letter_queue, 1), timeout=10, what="dead letter"
            )

        # Once the bug is fixed, the operator re-drives it.
        system.intake._new_card = real_new_card  # type: ignore[method-assign]
        outcomes = await system.intake.redrive([rejected.id])
        assert outcomes[0].kind == "accepted"
        assert await count(system, ServiceCard) == 30


async def _depth_is(system: System, queue: str, n: int) -> bool:
    return await system.bus.queue_depth(queue) == n


async def test_an_unreadable_outbox_row_does_not_block_the_others(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        facts = _facts(53, 6)
        await system.intake.handle([RawFact(json.dumps(f, ensure_ascii=False).encode()) for f in facts])
        async with system.db.uow() as uow:
            first = (await uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().first()
            assert first is not None
            await uow.session.execute(
                update(OutboxMessage).where(OutboxMessage.id == first.id).values(pii_key_id="retired-key")
            )
            await uow.commit()
        assert await system.relay.relay_once() == 5
        async with system.db.uow() as uow:
            stuck = await uow.session.get(OutboxMessage, first.id)
        assert stuck is not None
        assert stuck.sent_at is None
        assert stuck.last_error is not None
        assert "retired-key" in stuck.last_error
        assert stuck.next_attempt_at > utcnow()
