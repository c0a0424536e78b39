"""Block 1 end to end, on real PostgreSQL + RabbitMQ and again on the embedded default: facts in,
cards, links and ГЭПС notifications out — exactly once each, whatever the bus redelivers."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from posog.bootstrap import System
from posog.core.bus import OutgoingMessage
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import INVALID_KINDS, FactFactory
from posog.emulators.epgu.model import InboxNotification
from posog.module.intake.model import FactConflict, RejectedFact, ServiceCard
from posog.module.links.model import NOTIFIED, SurveyLink, hash_token
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen
from tests.support import BACKENDS, count, stack, wait_for

pytestmark = pytest.mark.integration


def _body(fact: dict[str, Any]) -> bytes:
    return json.dumps(fact, ensure_ascii=False).encode()


def _conflicting(fact: dict[str, Any], variant: int) -> dict[str, Any]:
    changed = json.loads(json.dumps(fact))
    if variant % 3 == 0:
        changed["organization"]["name"] += " (филиал)"
    elif variant % 3 == 1:
        changed["citizen"]["first_name"] = "Прохор" if changed["citizen"]["first_name"] != "Прохор" else "Савва"
    else:
        changed["service"]["name"] = "Иная услуга"
    return changed


async def _publish(system: System, bodies: list[bytes]) -> None:
    for start in range(0, len(bodies), 100):
        chunk = bodies[start : start + 100]
        await system.bus.publish(
            "",
            system.settings.facts_queue,
            [OutgoingMessage(b, f"m-{start + i}") for i, b in enumerate(chunk)],
        )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_facts_become_cards_links_and_notifications_exactly_once(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        factory = FactFactory(seed=11, today=today(utcnow))
        valid = [factory.fact() for _ in range(1000)]
        for fact in valid:
            remember_citizen(fact["citizen"])
        kinds = list(INVALID_KINDS)
        invalid = [factory.invalid(kinds[i % len(kinds)]) for i in range(50)]
        rng = random.Random(5)
        redelivered = [_body(f) for f in rng.sample(valid, 100)]
        conflicting = [_body(_conflicting(f, i)) for i, f in enumerate(rng.sample(valid, 20))]
        tail = redelivered + conflicting + [body for body, _ in invalid]
        rng.shuffle(tail)

        consumer = system.intake_consumer()
        workers = [
            asyncio.create_task(consumer.run()),
            asyncio.create_task(system.relay.run()),
            asyncio.create_task(system.inbox.consume(system.bus, system.settings.geps_inbox_queue)),
        ]
        try:
            await _publish(system, [_body(f) for f in valid])
            await _publish(system, tail)
            await wait_for(lambda: _settled(system, consumer, 1170), what="intake, relay and inbox to settle")
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

        assert await count(system, ServiceCard) == 1000
        assert await count(system, SurveyLink) == 1000
        assert await count(system, OutboxMessage) == 1000
        assert await count(system, OutboxMessage, OutboxMessage.sent_at.is_(None)) == 0
        assert await count(system, SurveyLink, SurveyLink.state == NOTIFIED) == 1000
        assert await count(system, InboxNotification) == 1000
        assert await count(system, FactConflict) == 20

        async with system.db.uow() as uow:
            rejections = (await uow.session.execute(select(RejectedFact))).scalars().all()
            conflicts = (await uow.session.execute(select(FactConflict))).scalars().all()
            links = {
                link.token_hash: link.card_id
                for link in (await uow.session.execute(select(SurveyLink))).scalars().all()
            }
        assert len(rejections) == 50
        reported = sorted(f"{r['field']}: {r['reason']}" for rejection in rejections for r in rejection.reasons)
        for _, expected in invalid:
            assert expected in reported, f"rejection {expected!r} not reported"
        assert all(rejection.reasons for rejection in rejections)
        assert all(conflict.differing_fields for conflict in conflicts), "each conflict names what differs"
        assert {c.card_id for c in conflicts} <= {f["card_id"] for f in valid}

        # Every notification carries a link that resolves to its own card.
        notifications = await system.inbox.notifications()
        assert len({n["notification_id"] for n in notifications}) == 1000
        for notification in notifications:
            token = notification["link"].rsplit("/s/", 1)[1]
            assert notification["link"].startswith("https://lkp.test/lkp/s/")
            assert len(token) >= 32
            assert links[hash_token(token)] == notification["card_id"]
        by_card = {n["card_id"]: n for n in notifications}
        sample = valid[17]
        message = by_card[sample["card_id"]]
        assert message["recipient"]["snils"] == sample["citizen"]["snils"].replace("-", "").replace(" ", "")
        assert message["recipient"]["last_name"] == sample["citizen"]["last_name"]
        assert "Оцените" in message["title"]
        assert message["link"] in message["text"]

        if backend == "production":
            assert await system.bus.queue_depth(system.settings.facts_dead_letter_queue) == 50
            assert await system.bus.queue_depth(system.settings.facts_queue) == 0


async def _settled(system: System, consumer: Any, expected: int) -> bool:
    if consumer.processed < expected:
        return False
    if await count(system, OutboxMessage, OutboxMessage.sent_at.is_(None)):
        return False
    return await count(system, InboxNotification) >= await count(system, OutboxMessage)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_personal_data_is_sealed_at_rest(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        factory = FactFactory(seed=12, today=today(utcnow))
        facts = [factory.fact() for _ in range(5)]
        bad, _ = factory.invalid("inn_checksum")
        for fact in facts:
            remember_citizen(fact["citizen"])
        from posog.module.intake.handlers import RawFact

        await system.intake.handle([RawFact(_body(f)) for f in facts] + [RawFact(bad)])
        async with system.db.engine.connect() as connection:
            dump: list[str] = []
            for table in (
                "module_service_cards",
                "module_outbox",
                "module_rejected_facts",
                "module_survey_links",
            ):
                for row in (await connection.exec_driver_sql(f"SELECT * FROM {table}")).all():
                    dump.append(" ".join(v.hex() if isinstance(v, bytes) else str(v) for v in row))
                    dump.append(" ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row))
        text = "\n".join(dump)
        for fact in facts:
            c = fact["citizen"]
            digits = c["snils"].replace("-", "").replace(" ", "")
            for needle in (
                digits,
                c["snils"],
                c["last_name"],
                c["birth_date"],
                c["first_name"] + " " + c["middle_name"],
            ):
                assert needle not in text, "personal data stored in the clear"
        async with system.db.uow() as uow:
            card = (await uow.session.execute(select(ServiceCard).limit(1))).scalar_one()
        assert card.pii_key_id == system.settings.pii_active_key
        assert card.snils_hash is not None
        assert len(card.snils_hash) == 64


async def test_a_conflict_in_the_same_batch_as_its_original_names_the_differing_fields(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        factory = FactFactory(seed=13, today=today(utcnow))
        original = factory.fact()
        remember_citizen(original["citizen"])
        changed = _conflicting(original, 0)
        from posog.module.intake.handlers import RawFact

        outcomes = await system.intake.handle([RawFact(_body(original)), RawFact(_body(changed))])
        assert [o.kind for o in outcomes] == ["accepted", "conflict"]
        async with system.db.uow() as uow:
            conflict = (await uow.session.execute(select(FactConflict))).scalar_one()
        assert conflict.differing_fields == ["organization.name"]
