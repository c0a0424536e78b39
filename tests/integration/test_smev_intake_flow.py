"""Block 1 through the СМЭВ adapter (issue 15): the facts of the JSON Block 1 test
(``test_intake_flow``: 1 000 valid, 100 redelivered, 20 conflicting, 50 invalid), sent by providers'
systems as ``OgFactRequest`` in ``QueryResult`` envelopes — on real RabbitMQ + PostgreSQL through the
adapter's AMQP interface, and through its web service (``Get``/``Send``) against the adapter's
emulator. The same exact counts as the JSON path, and exactly one answer per distinct fact to its
sender: 1 000 ``accepted``, 20 ``conflict`` (naming the fields), 50 rejects naming every problem;
the 100 envelopes delivered again get no second answer."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.emulators.smev_adapter.envelopes import request_document
from posog.emulators.smev_adapter.facts import XML_INVALID_KINDS, og_fact_xml
from posog.module.intake.model import FactConflict, RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.smev.model import SmevAnswer
from posog.module.smev.unmatched import SmevUnmatched
from tests.conftest import remember_citizen
from tests.integration.smev_support import adapter, answered, answers_settled, smev_running
from tests.integration.test_intake_flow import _conflicting
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration

SENDERS = ("ИС МФЦ Москвы", "ИС Соцзащиты Татарстана", "ИС ФНС")


def _envelope(fact: dict[str, Any], client_id: str) -> bytes:
    return request_document(og_fact_xml(fact), client_id=client_id, message_id=fact["message_id"])


@pytest.mark.parametrize("transport", ["amqp", "soap"])
async def test_block_one_through_the_adapter_counts_exactly_and_answers_each_fact_once(
    transport: str, tmp_path: Path
) -> None:
    async with stack("production", tmp_path, smev_transport=transport, smev_poll_interval_s=0.05) as system:
        emulator = adapter(system)
        factory = FactFactory(seed=11, today=today(utcnow))
        valid = [factory.fact() for _ in range(1000)]
        for fact in valid:
            remember_citizen(fact["citizen"])
        kinds = sorted(XML_INVALID_KINDS)
        invalid: list[tuple[dict[str, Any], str]] = []
        for i in range(50):
            body, expected = factory.invalid(kinds[i % len(kinds)])
            invalid.append((_json(body), expected))
        rng = random.Random(5)

        def sender(client_id: str) -> None:
            emulator.remember_sender(client_id, SENDERS[hash(client_id) % len(SENDERS)])

        first = [_envelope(fact, f"v-{i}") for i, fact in enumerate(valid)]
        redelivered = rng.sample(first, 100)  # the same envelopes again: same clientId
        conflicting = [_envelope(_conflicting(f, i), f"c-{i}") for i, f in enumerate(rng.sample(valid, 20))]
        broken = [_envelope(fact, f"x-{i}") for i, (fact, _) in enumerate(invalid)]
        for client_id in (
            [f"v-{i}" for i in range(1000)] + [f"c-{i}" for i in range(20)] + [f"x-{i}" for i in range(50)]
        ):
            sender(client_id)
        tail = redelivered + conflicting + broken
        rng.shuffle(tail)

        async with smev_running(system):
            await emulator.deliver(first)
            await emulator.deliver(tail)
            await wait_for(lambda: answered(emulator, 1070), what="an answer to every distinct fact")
            # Settled: every delivered envelope handled, no answer left to send, none arriving late.
            await wait_for(lambda: answers_settled(system), what="every answer sent")

        assert await count(system, ServiceCard) == 1000
        assert await count(system, SurveyLink) == 1000
        assert await count(system, FactConflict) == 20
        assert await count(system, RejectedFact) == 50
        assert await count(system, SmevAnswer) == 1070
        assert await count(system, SmevUnmatched) == 0, "no envelope of Block 1 is refused"
        if transport == "amqp":
            assert await system.bus.queue_depth(system.settings.smev_in_queue) == 0
        else:
            assert emulator.waiting() == 0

        # Exactly one answer per distinct fact, to its sender; none for the envelopes delivered again.
        assert sorted(emulator.answers) == sorted(
            [f"v-{i}" for i in range(1000)] + [f"c-{i}" for i in range(20)] + [f"x-{i}" for i in range(50)]
        )
        assert all(len(answers) == 1 for answers in emulator.answers.values()), "an answer was doubled"
        assert emulator.repeated == 0
        by_kind = {key: [a[0] for cid, a in emulator.answers.items() if cid.startswith(key)] for key in "vcx"}
        assert {(a.kind, a.code) for a in by_kind["v"]} == {("status", "accepted")}
        assert {a.sender for a in by_kind["v"]} == set(SENDERS)
        cards = {fact["card_id"] for fact in valid}
        for answer in by_kind["v"]:
            parameters = dict(answer.parameters)
            assert parameters["card_id"] in cards
            assert parameters["link_state"] in {"issued", "waiting", "late"}
        for answer in by_kind["c"]:
            assert (answer.kind, answer.code) == ("status", "conflict")
            assert dict(answer.parameters)["fields"], "a conflict names the differing fields"
        for i, (_, expected) in enumerate(invalid):
            (answer,) = emulator.answers[f"x-{i}"]
            assert (answer.kind, answer.code) == ("rejects", "UNKNOWN_REQUEST_DESCRIPTION")
            assert expected in answer.description, f"the reject of x-{i} does not name {expected!r}"
        # The adapter emulator's pages list each sender's answers.
        assert system.smev_adapter_asgi is not None
        pages = httpx.AsyncClient(transport=httpx.ASGITransport(app=system.smev_adapter_asgi.app), base_url="http://e")
        async with pages:
            senders = await pages.get("/")
            assert senders.status_code == 200
            for name in SENDERS:
                assert name in senders.text
            one = await pages.get(f"/senders/{SENDERS[0]}")
            assert one.status_code == 200
            assert "Статус «accepted»" in one.text
            assert "card_id" in one.text
        # No personal data in any answer.
        texts = "\n".join(a.description + repr(a.parameters) for (a,) in emulator.answers.values())
        for fact in valid:
            citizen = fact["citizen"]
            for needle in (citizen["last_name"], citizen["snils"], citizen["birth_date"]):
                assert needle not in texts, "personal data in an answer"


def _json(body: bytes) -> dict[str, Any]:
    import json

    value: dict[str, Any] = json.loads(body)
    return value
