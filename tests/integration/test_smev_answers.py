"""Facts through the СМЭВ adapter's envelope reach the same intake as the JSON channel, and every
sender gets exactly one answer per request clientId — accepted, duplicate, conflict (with the
differing fields) or rejects naming every problem — however often the broker redelivers; the
answers leave through the adapter port, valid against the schemas, with no personal data in them."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from posog.bootstrap import System
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.module.contracts import FactProblem
from posog.module.ias_export.queries import card_facts
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import RejectedFact, ServiceCard
from posog.module.smev.answers import AnswerReplies, AnswersRelay
from posog.module.smev.envelope import (
    ADAPTER_NS,
    InboundError,
    InboundRequest,
    InboundResponse,
    InboundStatus,
    SmevMetadata,
    Status,
    adapter_schema,
    parse_query_result,
    query_result,
)
from posog.module.smev.facts import WRONG_ELEMENT, SmevFactIntake, raw_fact
from posog.module.smev.model import SmevAnswer
from posog.module.smev.ogfact import og_fact_element
from tests.conftest import remember_citizen
from tests.reference import ADAPTER_REFERENCE, assert_valid_against_reference
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration
A = "{" + ADAPTER_NS + "}"

BROKEN: dict[str, tuple[Any, str]] = {
    "inn": (lambda f: f["organization"].update(inn="7703012349"), "organization.inn: bad_checksum"),
    "snils": (lambda f: f["citizen"].update(snils="112-233-445 00"), "citizen.snils: bad_checksum"),
    "date": (lambda f: f["service"].update(date="20.11.2026"), "service.date: bad_date"),
    "level": (lambda f: f.update(survey_level="global"), "survey_level: not_allowed"),
    "no_name": (lambda f: f["organization"].pop("name"), "organization.name: required"),
}


class RecordingOutbound:
    """The adapter port of the tests: records what it is given; fails while ``failing``."""

    def __init__(self) -> None:
        self.documents: list[bytes] = []
        self.failing = False

    async def send(self, documents: Sequence[bytes]) -> None:
        if self.failing:
            raise ConnectionError("adapter away")
        self.documents.extend(documents)


def _envelope(fact: dict[str, Any], client_id: str) -> bytes:
    """The QueryResult the adapter delivers for a provider's OgFactRequest."""
    request = InboundRequest(SmevMetadata(message_id=str(uuid.uuid1())), client_id, og_fact_element(fact))
    return query_result(request)


async def _deliver(intake: SmevFactIntake, documents: Sequence[bytes], batch: int = 50) -> list[str]:
    kinds: list[str] = []
    for start in range(0, len(documents), batch):
        requests = [parse_query_result(d) for d in documents[start : start + batch]]
        assert all(isinstance(r, InboundRequest) for r in requests)
        outcomes = await intake.handle(requests)  # type: ignore[arg-type]
        kinds += [o.kind for o in outcomes]
    return kinds


async def _answers(system: System) -> dict[str, SmevAnswer]:
    async with system.db.uow() as uow:
        rows = (await uow.session.scalars(select(SmevAnswer))).all()
    return {row.reply_to_client_id: row for row in rows}


def _status(answer: SmevAnswer) -> tuple[str, dict[str, str]]:
    status = answer.answer["status"]
    return status["code"], dict(status["parameters"])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_sender_gets_exactly_one_answer_per_request(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        intake = SmevFactIntake(system.intake, system.db, system.clock)
        factory = FactFactory(seed=15, today=today(utcnow))
        valid = [factory.fact() for _ in range(120)]
        for fact in valid:
            remember_citizen(fact["citizen"])
        broken = []
        for i, (name, (breaking, _)) in enumerate(sorted(BROKEN.items()) * 2):
            fact = factory.fact()
            remember_citizen(fact["citizen"])
            breaking(fact)
            broken.append((f"bad-{name}-{i}", fact))
        first = [_envelope(f, f"req-{i}") for i, f in enumerate(valid)] + [_envelope(f, c) for c, f in broken]

        kinds = await _deliver(intake, first)
        assert kinds.count("accepted") == 120
        assert kinds.count("rejected") == len(broken)
        # The broker delivers everything again (same envelopes, same clientIds): nothing new, no second answer.
        again = await _deliver(intake, first, batch=37)
        assert again.count("duplicate") == 120
        answers = await _answers(system)
        assert len(answers) == len(first)
        assert await count(system, ServiceCard) == 120
        # The same facts re-sent under new clientIds: each answered `duplicate`.
        assert (await _deliver(intake, [_envelope(f, f"resend-{i}") for i, f in enumerate(valid[:30])])) == [
            "duplicate"
        ] * 30
        # Changed payloads under known cards: `conflict`, naming the differing fields.
        changed = copy.deepcopy(valid[30:40])
        for fact in changed:
            fact["organization"]["name"] += " (филиал)"
            fact["citizen"]["first_name"] = "Прохор" if fact["citizen"]["first_name"] != "Прохор" else "Савва"
        documents = [_envelope(f, f"change-{i}") for i, f in enumerate(changed)]
        assert await _deliver(intake, documents) == ["conflict"] * 10
        assert await _deliver(intake, documents) == ["conflict"] * 10  # redelivered: no second answer either

        answers = await _answers(system)
        assert len(answers) == len(first) + 30 + 10
        cards = {c.card_id: c.status for c in (await _cards(system))}
        for i, fact in enumerate(valid):
            code, parameters = _status(answers[f"req-{i}"])
            assert code == "accepted"
            assert parameters["card_id"] == fact["card_id"]
            assert (
                parameters["link_state"]
                == {"linked": "issued", "waiting": "waiting", "late": "late"}[cards[fact["card_id"]]]
            )
        for i in range(30):
            code, parameters = _status(answers[f"resend-{i}"])
            assert (code, parameters["card_id"]) == ("duplicate", valid[i]["card_id"])
        for i in range(10):
            code, parameters = _status(answers[f"change-{i}"])
            assert code == "conflict"
            assert set(parameters["fields"].split(",")) == {"organization.name", "citizen.first_name"}
        for client_id, _fact in broken:
            answer = answers[client_id]
            assert answer.kind == "rejected"
            expected = BROKEN[client_id.split("-")[1]][1]
            descriptions = [r["description"] for r in answer.answer["rejects"]]
            assert any(d.startswith(f"{expected} — ") for d in descriptions), descriptions
            assert all(r["code"] == "UNKNOWN_REQUEST_DESCRIPTION" for r in answer.answer["rejects"])
            assert all(len(d.split(" — ")) == 2 and ": " in d for d in descriptions)  # field: reason — sentence
        # A rejected XML fact is kept like a JSON one (sealed), re-drivable.
        assert await count(system, RejectedFact) == len(broken)

        # The answers leave through the adapter port, each once, valid against both schemas.
        outbound = RecordingOutbound()
        relay = AnswersRelay(system.db, outbound, system.clock, it_system="POSOG", batch_size=64)
        outbound.failing = True
        assert await relay.relay_once() == 0  # the adapter is away: retried later, nothing lost
        outbound.failing = False
        async with system.db.uow() as uow:  # make the retried rows due now
            await uow.session.execute(SmevAnswer.__table__.update().values(next_attempt_at=system.clock()))
            await uow.commit()
        while await relay.relay_once():
            pass
        assert len(outbound.documents) == len(answers)
        assert await relay.relay_once() == 0
        replied_to = []
        for document in outbound.documents:
            root = etree.fromstring(document)
            assert adapter_schema().validate(root)
            assert_valid_against_reference(document, ADAPTER_REFERENCE)
            assert root.findtext(A + "itSystem") == "POSOG"
            metadata = root.find(f"{A}ResponseMessage/{A}ResponseMetadata")
            assert metadata is not None
            assert (metadata.findtext(A + "clientId") or "").startswith("ans-")
            replied_to.append(metadata.findtext(A + "replyToClientId"))
        assert sorted(replied_to) == sorted(answers)  # one per request clientId, none doubled

        # No personal data in any answer.
        everything = b"\n".join(outbound.documents).decode()
        for _, fact in [("", f) for f in valid] + broken:
            citizen = fact["citizen"]
            for value in (citizen["last_name"], citizen["first_name"], citizen["snils"], citizen["birth_date"]):
                assert value not in everything
            assert citizen["snils"].replace("-", "").replace(" ", "") not in everything


async def _cards(system: System) -> list[ServiceCard]:
    async with system.db.uow() as uow:
        return list((await uow.session.scalars(select(ServiceCard))).all())


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_fact_is_the_same_fact_whichever_channel_brought_it(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        intake = SmevFactIntake(system.intake, system.db, system.clock)
        factory = FactFactory(seed=16, today=today(utcnow))
        fact = factory.fact()
        remember_citizen(fact["citizen"])
        [by_json] = await system.intake.handle([RawFact(json.dumps(fact, ensure_ascii=False).encode(), "amqp-1")])
        assert by_json.kind == "accepted"
        assert await _deliver(intake, [_envelope(fact, "x-1")]) == ["duplicate"]
        changed = copy.deepcopy(fact)
        changed["service"]["name"] = "Иная услуга"
        assert await _deliver(intake, [_envelope(changed, "x-2")]) == ["conflict"]
        answers = await _answers(system)
        assert _status(answers["x-2"])[1]["fields"] == "service.name"
        # and the other way round: first by XML (with ФРГУ ids), then by JSON
        other = factory.fact()
        remember_citizen(other["citizen"])
        other["service"]["frgu_service_id"] = "10000000001"
        other["organization"]["frgu_authority_id"] = "10000000003"
        envelope = _envelope(other, "x-3")
        assert await _deliver(intake, [envelope]) == ["accepted"]
        [again] = await system.intake.handle([RawFact(json.dumps(other, ensure_ascii=False).encode())])
        assert again.kind == "duplicate"
        async with system.db.uow() as uow:
            card = (await uow.session.scalars(select(ServiceCard).where(ServiceCard.card_id == other["card_id"]))).one()
        assert (card.frgu_service_id, card.frgu_procedure_id, card.frgu_authority_id) == (
            "10000000001",
            None,
            "10000000003",
        )
        assert card.message_id == parse_query_result(envelope).meta.message_id  # the СМЭВ MessageID
        # The ФРГУ ids reach where the card is read: the analytics feed and the ИАС export's read side.
        feed = (await system.module_http_for_analytics.get("/api/v1/cards/feed")).json()["items"]
        item = next(i for i in feed if i["card_id"] == other["card_id"])
        assert (item["frgu_service_id"], item["frgu_procedure_id"], item["frgu_authority_id"]) == (
            "10000000001",
            None,
            "10000000003",
        )
        assert next(i for i in feed if i["card_id"] == fact["card_id"])["frgu_service_id"] is None
        async with system.db.uow() as uow:
            services = await card_facts(uow.session, [other["card_id"], fact["card_id"], "nobody"])
        assert set(services) == {other["card_id"], fact["card_id"]}
        assert services[other["card_id"]].frgu_authority_id == "10000000003"
        assert services[fact["card_id"]].service_name == fact["service"]["name"]  # the first fact, not the conflict


@pytest.mark.parametrize("backend", BACKENDS)
async def test_refusals_and_quarantine_are_answered_once(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        intake = SmevFactIntake(system.intake, system.db, system.clock)
        assert await intake.refuse("other-1", [WRONG_ELEMENT], message_id=str(uuid.uuid1()))
        assert not await intake.refuse("other-1", [WRONG_ELEMENT])  # the same request again: answered already
        assert not await intake.refuse(None, [FactProblem("payload", "not_xml")])  # nobody to answer
        # A fact that made the handler fail is quarantined, and its sender told so.
        fact = FactFactory(seed=17, today=today(utcnow)).fact()
        remember_citizen(fact["citizen"])
        request = parse_query_result(_envelope(fact, "poison-1"))
        assert isinstance(request, InboundRequest)
        outcome = await system.intake.quarantine(raw_fact(request), RuntimeError("boom"))
        assert outcome.card_id == fact["card_id"]
        answers = await _answers(system)
        assert [r["description"].split(" — ")[0] for r in answers["other-1"].answer["rejects"]] == [
            "payload: wrong_element"
        ]
        assert answers["poison-1"].answer["rejects"][0]["description"].startswith("payload: processing_error — ")
        # A rejected XML fact is re-driven as XML (not read as JSON): the same problem again.
        broken = FactFactory(seed=18, today=today(utcnow)).fact()
        remember_citizen(broken["citizen"])
        broken["organization"]["inn"] = "7703012349"
        assert await _deliver(intake, [_envelope(broken, "bad-1")]) == ["rejected"]
        async with system.db.uow() as uow:
            stored = (
                await uow.session.scalars(select(RejectedFact).where(RejectedFact.card_id == broken["card_id"]))
            ).one()
        [redriven] = await system.intake.redrive([stored.id])
        assert [str(p) for p in redriven.problems] == ["organization.inn: bad_checksum"]
        # Another вид сведений is the caller's to refuse, never intake's.
        foreign = InboundRequest(SmevMetadata(), "f-1", etree.fromstring(b'<x:Other xmlns:x="urn:other"/>'))
        with pytest.raises(ValueError, match="refuse"):
            await intake.handle([foreign])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_what_the_adapter_says_about_an_answer_is_recorded(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        intake = SmevFactIntake(system.intake, system.db, system.clock)
        await intake.refuse("r-1", [WRONG_ELEMENT])
        await intake.refuse("r-2", [WRONG_ELEMENT])
        await intake.refuse("r-3", [WRONG_ELEMENT])
        outbound = RecordingOutbound()
        assert await AnswersRelay(system.db, outbound, system.clock, it_system="POSOG").relay_once() == 3
        answers = await _answers(system)
        ours = {key: row.client_id for key, row in answers.items()}
        replies = AnswerReplies(system.db, system.clock)
        meta = SmevMetadata()
        when = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
        assert await replies.on_reply(InboundStatus(meta, "s-1", ours["r-1"], "OTHER", "Доставлено", when))
        assert await replies.on_reply(
            InboundError(meta, "s-2", ours["r-2"], "ERROR", None, when, "CLIENT", "E1", "Неверный получатель")
        )
        assert await replies.on_reply(
            InboundError(meta, "s-3", ours["r-3"], "ERROR", None, when, "SERVER", "E2", "СМЭВ недоступен")
        )
        assert not await replies.on_reply(InboundStatus(meta, "s-4", "ans-unknown", "OTHER"))
        assert not await replies.on_reply(InboundStatus(meta, "s-5", "geps-1", "OTHER"))
        assert not await replies.on_reply(InboundResponse(meta, "s-6", None, status=Status("a", "b")))
        answers = await _answers(system)
        assert (answers["r-1"].adapter_status, answers["r-1"].adapter_detail) == ("OTHER", "Доставлено")
        assert answers["r-2"].adapter_status == "ERROR"
        assert answers["r-2"].dead_at is not None  # a client error: for an operator
        assert "E1" in (answers["r-2"].adapter_detail or "")
        assert answers["r-3"].sent_at is None  # a server error: sent again
        assert answers["r-3"].dead_at is None
        outbound.documents.clear()
        # A row whose document cannot be built (here: a reject code the adapter does not know) is dead
        # at once, for an operator; the others go out.
        await intake.refuse("r-4", [WRONG_ELEMENT])
        async with system.db.uow() as uow:
            await uow.session.execute(
                SmevAnswer.__table__.update()
                .where(SmevAnswer.reply_to_client_id == "r-4")
                .values(answer_json='{"rejects": [{"code": "WHATEVER", "description": "x"}]}')
            )
            await uow.commit()
        assert await AnswersRelay(system.db, outbound, system.clock, it_system="POSOG").relay_once() == 1
        assert (
            etree.fromstring(outbound.documents[0]).findtext(f"{A}ResponseMessage/{A}ResponseMetadata/{A}clientId")
            == ours["r-3"]
        )
        broken = (await _answers(system))["r-4"]
        assert broken.dead_at is not None
        assert broken.sent_at is None
        assert "unbuildable" in (broken.last_error or "")
