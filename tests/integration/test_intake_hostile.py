"""No message stops intake (issue 13): a stream of hostile messages from a property-based fuzzer,
interleaved with valid facts, through a real worker process on PostgreSQL + RabbitMQ; a message that
kills its consumer ends in the dead letters after the delivery limit; the dead letters carry no
personal data; the purge reaches the broker's copies."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from posog.bootstrap import System
from posog.core import metrics
from posog.core.bus import BusError, IncomingMessage, OutgoingMessage, QueueSpec, Topology
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.emulators.epgu.model import InboxNotification
from posog.module.intake.dead_letters import DEAD_LETTER_SCHEMA, REASONS_HEADER
from posog.module.intake.model import RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage
from posog.module.retention import PiiPurger
from tests.conftest import remember_citizen
from tests.hostile import DEEP_ARRAY, DEEP_OBJECT, generate, hostile_message, nul_in_card_id
from tests.integration.test_crash_recovery import spawn_worker, stop_cleanly
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration


def _facts(seed: int, n: int, prefix: str) -> list[dict[str, Any]]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    facts = []
    for i in range(n):
        fact = factory.fact()
        fact["card_id"] = f"{prefix}-{i}"
        remember_citizen(fact["citizen"])
        facts.append(fact)
    return facts


def _needles(facts: list[dict[str, Any]]) -> set[bytes]:
    found: set[bytes] = set()
    for fact in facts:
        c = fact["citizen"]
        digits = re.sub(r"\D", "", c["snils"])
        for text in (c["last_name"], c["snils"], digits, c["birth_date"]):
            found.add(text.encode())
    return found


async def _drain(system: System, queue: str) -> list[IncomingMessage]:
    """Every message of ``queue`` (acknowledged: the queue is left empty)."""
    taken: list[IncomingMessage] = []
    stream = system.bus.consume(queue, prefetch=500)
    try:
        while True:
            try:
                message = await asyncio.wait_for(anext(stream), timeout=3)  # type: ignore[arg-type]
            except TimeoutError:
                return taken
            taken.append(message)
            await message.ack()
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_fuzzed_stream_of_hostile_messages_never_stops_intake(tmp_path: Path) -> None:
    valid = _facts(131, 200, "ok")
    bases = _facts(132, 20, "fz")
    hostile = generate(hostile_message(bases), 2000)
    assert len(hostile) == 2000
    named = [DEEP_ARRAY, DEEP_OBJECT, nul_in_card_id(bases[0])]
    hostile = named + hostile
    stream: list[tuple[str, bytes]] = [("hostile", body) for body in hostile]
    for i, fact in enumerate(valid):  # one valid fact after every ten hostile messages
        stream.insert(i * 11 + 5, ("valid", json.dumps(fact, ensure_ascii=False).encode()))

    async with stack("production", tmp_path) as system:
        for start in range(0, len(stream), 250):
            await system.bus.publish(
                "",
                system.settings.facts_queue,
                [OutgoingMessage(body, f"m-{start + i}") for i, (_, body) in enumerate(stream[start : start + 250])],
            )
        port = _free_port()
        worker = spawn_worker(
            "intake", system, "--metrics-port", str(port), POSOG_INTAKE_BATCH_SIZE="64", POSOG_CONSUMER_PREFETCH="256"
        )
        relay = asyncio.create_task(system.relay.run())
        inbox = asyncio.create_task(system.inbox.consume(system.bus, system.settings.geps_inbox_queue))
        try:
            await wait_for(lambda: _queue_empty(system), timeout=240, what="the facts queue drained")
            await wait_for(lambda: _settled(port, len(stream)), timeout=120, what="every message settled")
            assert worker.poll() is None, "the intake worker is alive after the hostile stream"
            outcomes = await _metrics(port)
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
        # Nothing left unacknowledged: had the worker held any message, its exit gave it back.
        assert await system.bus.queue_depth(system.settings.facts_queue) == 0
        await wait_for(lambda: _all_delivered(system, valid), timeout=60, what="every notification delivered")
        relay.cancel()
        inbox.cancel()
        await asyncio.gather(relay, inbox, return_exceptions=True)

        # Every valid fact: its card, link and notification exactly once.
        async with system.db.uow() as uow:
            ids = [f["card_id"] for f in valid]
            for model in (ServiceCard, SurveyLink, OutboxMessage, InboxNotification):
                per_card = dict(
                    (
                        await uow.session.execute(
                            select(model.card_id, func.count()).where(model.card_id.in_(ids)).group_by(model.card_id)
                        )
                    ).all()
                )
                assert per_card == dict.fromkeys(ids, 1), model.__name__
            hostile_cards = await uow.session.scalar(
                select(func.count()).select_from(ServiceCard).where(ServiceCard.card_id.not_in(ids))
            )
            rejected = {r.raw_hash: r for r in (await uow.session.execute(select(RejectedFact))).scalars()}

        # Every hostile message is settled: a card (a mutation that stayed valid), a duplicate or a
        # conflict of one, or a rejection with its reason — stored and dead-lettered.
        letters = await _drain(system, system.settings.facts_dead_letter_queue)
        bodies = [json.loads(m.body) for m in letters]
        assert all(b["schema"] == DEAD_LETTER_SCHEMA and b["reasons"] for b in bodies)
        assert all(json.loads(m.headers[REASONS_HEADER]) == b["reasons"] for m, b in zip(letters, bodies, strict=True))
        hostile_hashes = {hashlib.sha256(h).hexdigest() for h in hostile}
        assert {b["raw_sha256"] for b in bodies} <= hostile_hashes
        assert set(rejected) == {b["raw_sha256"] for b in bodies}
        rejected_deliveries = sum(1 for h in hostile if hashlib.sha256(h).hexdigest() in rejected)
        assert len(letters) == rejected_deliveries, "each rejected delivery is dead-lettered exactly once"
        assert hostile_cards is not None
        assert rejected_deliveries + hostile_cards <= len(hostile)
        assert rejected_deliveries > 1500  # most of the stream is invalid, and was rejected as such
        assert _metric(outcomes, "posog_facts_total", outcome="rejected") == rejected_deliveries
        assert _metric(outcomes, "posog_intake_dead_letters_total", reason="rejected") == rejected_deliveries
        assert _metric(outcomes, "posog_facts_total", outcome="accepted") == 200 + hostile_cards

        # The probe's two killers, rejected by name.
        def reasons_of(raw: bytes) -> list[dict[str, str]]:
            return rejected[hashlib.sha256(raw).hexdigest()].reasons

        assert reasons_of(DEEP_ARRAY) == [{"field": "payload", "reason": "too_deep"}]
        assert reasons_of(DEEP_OBJECT) == [{"field": "payload", "reason": "too_deep"}]
        assert reasons_of(named[2]) == [{"field": "card_id", "reason": "control_character"}]
        assert not any(r.reasons == [{"field": "payload", "reason": "processing_error"}] for r in rejected.values())

        # No personal data in clear in the dead letters; the sealed copy opens to the original body.
        needles = _needles(bases + valid)
        for message in letters:
            text = message.body + json.dumps(message.headers, ensure_ascii=False).encode()
            assert not any(n in text for n in needles), "a dead letter carries personal data in clear"
        sample = bodies[len(bodies) // 2]
        opened = system.cipher.open(
            sample["pii_key_id"], base64.b64decode(sample["sealed_payload"]), context=f"rejected:{sample['raw_sha256']}"
        )
        assert hashlib.sha256(opened).hexdigest() == sample["raw_sha256"] or opened == b""


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels, from a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _metrics(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def _settled(port: int, total: int) -> bool:
    try:
        return _metric(await _metrics(port), "posog_facts_total") == total
    except httpx.HTTPError:
        return False


async def _queue_empty(system: System) -> bool:
    return await system.bus.queue_depth(system.settings.facts_queue) == 0


async def _cards_at_least(system: System, n: int) -> bool:
    return await count(system, ServiceCard) >= n


async def _all_delivered(system: System, valid: list[dict[str, Any]]) -> bool:
    ids = [f["card_id"] for f in valid]
    return await count(system, InboxNotification, InboxNotification.card_id.in_(ids)) == len(ids)


class ProcessDeath(BaseException):
    """What a segfault or an OOM kill does to a consumer: nothing in it can catch this."""


@pytest.mark.parametrize("backend", ["embedded", "production"])
async def test_a_message_that_kills_its_consumer_ends_in_the_dead_letters_after_the_limit(
    backend: str, tmp_path: Path
) -> None:
    limit = 3
    async with stack(backend, tmp_path, facts_delivery_limit=limit) as system:
        facts = _facts(133, 12, "kill")
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
        restarts = 0
        while await count(system, RejectedFact) == 0 and restarts < limit + 5:
            consumer = asyncio.create_task(system.intake_consumer().run())
            done, _ = await asyncio.wait({consumer}, timeout=20)
            if done:
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
        letters = await _drain(system, system.settings.facts_dead_letter_queue)
        assert len(letters) == 1
        assert json.loads(letters[0].headers[REASONS_HEADER]) == [{"field": "payload", "reason": "delivery_limit"}]
        assert not any(n in letters[0].body for n in _needles(facts))


async def test_the_purge_drops_dead_letters_older_than_the_retention(tmp_path: Path) -> None:
    async with stack("production", tmp_path, pii_retention_days=30) as system:
        facts = [json.loads(json.dumps(f)) for f in _facts(134, 3, "old")]  # (copies: the remembered stay)
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
        assert await system.bus.queue_depth(queue) == 3
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
