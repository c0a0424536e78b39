"""Intake's batch path under concurrency and partial failure, on both backends: two workers handling the
same facts at once (competing consumers after a redelivery) create each card, link and notification
once; the rows a batch writes carry what the ORM would give them; a batch acknowledged at once
still dead-letters its rejected facts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from posog.core.bus import InProcessBus, OutgoingMessage, QueueSpec, Topology, ack_batch, batches
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration


def _raws(seed: int, n: int) -> list[RawFact]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    raws = []
    for i in range(n):
        fact = factory.fact()
        remember_citizen(fact["citizen"])
        raws.append(RawFact(json.dumps(fact, ensure_ascii=False).encode(), f"c-{i}"))
    return raws


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_handlers_on_the_same_facts_create_each_card_once(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        raws = _raws(71, 120)
        await system.intake.handle(raws[:10])  # some known before, so both see duplicates too
        first, second = await asyncio.gather(system.intake.handle(raws), system.intake.handle(list(reversed(raws))))
        kinds = [a.kind for a in first] + [b.kind for b in second]
        assert set(kinds) <= {"accepted", "duplicate"}
        assert kinds.count("accepted") == 110
        assert await count(system, ServiceCard) == 120
        assert await count(system, SurveyLink) == await count(system, OutboxMessage)
        async with system.db.uow() as uow:
            links = (await uow.session.execute(select(SurveyLink))).scalars().all()
            cards = (await uow.session.execute(select(ServiceCard))).scalars().all()
        # Python-side defaults are applied as the ORM would (ids, the link's changed_at).
        assert len({link.id for link in links}) == len(links)
        assert all(link.changed_at is not None and link.changed_at.tzinfo is not None for link in links)
        assert len({card.id for card in cards}) == len(cards)


async def test_a_batch_rejects_its_bad_facts_and_acks_the_rest_at_once(tmp_path: Path) -> None:
    bus = InProcessBus()
    await bus.declare(Topology(queues=[QueueSpec("q", dead_letter_exchange=None)]))
    await bus.publish("", "q", [OutgoingMessage(f"{n}".encode(), f"m-{n}") for n in range(10)])
    stream = bus.consume("q", prefetch=10)
    grouped = batches(stream, max_size=10, max_wait_s=0.2)
    batch = await anext(grouped)
    assert len(batch) == 10
    bad = [m for m in batch if int(m.body) % 3 == 0]
    good = [m for m in batch if int(m.body) % 3 != 0]
    for message in bad:
        await message.reject()
    await ack_batch(good)
    closing: Any = grouped
    await closing.aclose()
    assert await bus.queue_depth("q") == 0  # nothing left unsettled, nothing requeued
