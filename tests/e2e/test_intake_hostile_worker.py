"""No message stops intake (issue 13): a stream of hostile messages from a property-based fuzzer,
interleaved with valid facts, through a real worker process on PostgreSQL + RabbitMQ — every message
settled, every valid fact carried through exactly once, the rejected ones dead-lettered sealed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from posog.bootstrap import System
from posog.core.bus import OutgoingMessage
from posog.emulators.epgu.model import InboxNotification
from posog.module.intake.dead_letters import DEAD_LETTER_SCHEMA, REASONS_HEADER
from posog.module.intake.model import RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage
from tests.demo_support import free_port
from tests.e2e.processes import spawn_worker, stop_cleanly, wait_while_running
from tests.hostile import DEEP_ARRAY, DEEP_OBJECT, generate, hostile_message, nul_in_card_id
from tests.integration.intake_support import drain, make_facts, needles_in
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration


async def test_a_fuzzed_stream_of_hostile_messages_never_stops_intake(tmp_path: Path) -> None:
    valid = make_facts(131, 200, "ok")
    bases = make_facts(132, 20, "fz")
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
        port = free_port()
        worker = spawn_worker(
            "intake", system, "--metrics-port", str(port), POSOG_INTAKE_BATCH_SIZE="64", POSOG_CONSUMER_PREFETCH="256"
        )
        relay = asyncio.create_task(system.relay.run())
        inbox = asyncio.create_task(system.inbox.consume(system.bus, system.settings.geps_inbox_queue))
        try:
            await wait_while_running(worker, lambda: _answering(port), what="the worker's metrics port")
            await wait_while_running(worker, lambda: _queue_empty(system), timeout=240, what="the facts queue drained")
            await wait_while_running(worker, lambda: _settled(port, len(stream)), what="every message settled")
            assert worker.poll() is None, "the intake worker is alive after the hostile stream"
            outcomes = await _metrics(port)
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
        # Nothing left unacknowledged: had the worker held any message, its exit gave it back.
        assert await system.bus.queue_depth(system.settings.facts_queue) == 0
        await wait_for(lambda: _all_delivered(system, valid), what="every notification delivered")
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
        letters = await drain(system, system.settings.facts_dead_letter_queue)
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
        needles = needles_in(bases + valid)
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


async def _metrics(port: int) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def _answering(port: int) -> bool:
    try:
        await _metrics(port)
    except httpx.HTTPError:
        return False
    return True


async def _settled(port: int, total: int) -> bool:
    try:
        return _metric(await _metrics(port), "posog_facts_total") == total
    except httpx.HTTPError:
        return False


async def _queue_empty(system: System) -> bool:
    return await system.bus.queue_depth(system.settings.facts_queue) == 0


async def _all_delivered(system: System, valid: list[dict[str, Any]]) -> bool:
    ids = [f["card_id"] for f in valid]
    return await count(system, InboxNotification, InboxNotification.card_id.in_(ids)) == len(ids)
