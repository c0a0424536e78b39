"""Export to ИАС МКГУ (SPEC §9): with the receiver failing the first attempts, a batch is delivered once
and logged as sent; re-sends are idempotent; a 4xx is a logged permanent failure; the individual
ratings go out as vashkontrol ``RatesRequest`` 1.2.0 packets (INTEGRATION.md §4) — the form's indicator
and value ids, ФРГУ ids, pseudonymous users — over HTTP or through the СМЭВ adapter, their packet ids
stored and their statuses asked until final (accepted, or refused with ИАС's reason); a rating that
cannot be sent is listed with the reason; and nothing personal reaches the receiver or the export log.

Data: the hand-computed fixture of ``test_analytics_figures`` (November 2026, regions 77 and 16)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import update
from typer.testing import CliRunner

from posog.bootstrap import System
from posog.cli import app as cli_app
from posog.core.clock import MOSCOW
from posog.emulators.ias.model import IasPacketRecord, IasStore, PacketStore
from posog.emulators.ias.service import IasService
from posog.lko.client import LkoClient
from posog.module.ias_export import documents
from posog.module.ias_export.handlers import IasExporter, batch_id, previous_day, previous_month
from posog.module.ias_export.replies import IasReplies
from posog.module.intake.model import ServiceCard
from posog.module.smev.envelope import (
    ADAPTER_NS,
    InboundError,
    InboundResponse,
    InboundStatus,
    Reject,
    SmevMetadata,
    adapter_schema,
    parse_query_result,
    query_result,
)
from tests.integration.analytics_fixture import Fixture, analytics_stack, needles, table_rows
from tests.integration.test_analytics_figures import COUNTRY, ORG_A, REGION_16, REGION_77, RESPONSES, build, figures
from tests.reference import ADAPTER_REFERENCE, shared_dir
from tests.support import BACKENDS

pytestmark = pytest.mark.integration

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
FAST_RETRIES = {"ias_retry_base_s": 0.05, "ias_retry_max_s": 0.2, "ias_max_attempts": 5}


async def fail_next(system: System, count: int, status: int = 503) -> None:
    response = await system.ias_http.post("/api/v1/control/fail-next", json={"count": count, "status": status})
    assert response.status_code == 200, response.text


def store(system: System) -> IasStore:
    return IasStore(system.db, system.clock)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_failing_receiver_gets_the_batch_once_after_retries(backend: str, tmp_path: Path) -> None:
    # Backoffs long enough for "not yet due" to hold on a loaded machine: 0.8–1 s, then 1.6–2 s.
    retries = {"ias_retry_base_s": 1.0, "ias_retry_max_s": 4.0, "ias_max_attempts": 5}
    async with analytics_stack(backend, tmp_path, analytics_min_responses=3, **retries) as system:
        fixture = await build(system)
        exporter = system.ias_exporter()
        await fail_next(system, 2)

        first = await exporter.export("aggregates", *NOVEMBER)
        assert (first.status, first.attempts) == ("pending", 1)
        assert first.last_error is not None
        assert "503" in first.last_error
        assert first.next_attempt_at is not None
        assert await exporter.retry_due() == 0, "the first backoff has not passed yet"
        # Past the first backoff: the worker's retry picks it up.
        await asyncio.sleep((first.next_attempt_at - system.clock()).total_seconds() + 0.05)
        assert await exporter.retry_due() == 1
        second = await exporter.get(first.batch_id)
        assert second is not None
        assert (second.status, second.attempts) == ("pending", 2)
        assert await exporter.retry_due() == 0  # the second backoff (1.6–2 s) has not passed yet

        sent = await exporter.settle(first.batch_id)
        assert (sent.status, sent.attempts, sent.last_error) == ("sent", 3, None)
        assert sent.sent_at is not None
        assert sent.next_attempt_at is None
        assert sent.batch_id == batch_id("aggregates", *NOVEMBER) == "posog-aggregates-20261101-20261130"

        received = await store(system).batches()
        assert [(b.batch_id, b.kind, b.deliveries) for b in received] == [(sent.batch_id, "aggregates", 1)]
        body = received[0].body.encode()
        assert hashlib.sha256(body).hexdigest() == sent.payload_sha256
        assert len(body) == sent.payload_size
        document: dict[str, Any] = json.loads(body)
        assert document["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
        assert {k: document["country"][k] for k in COUNTRY} == figures(_novembered(COUNTRY))
        regions = {item["region_code"]: item for item in document["regions"]}
        assert {k: regions["77"][k] for k in REGION_77} == _novembered(REGION_77)
        assert {k: regions["16"][k] for k in REGION_16} == REGION_16
        organizations = {item["inn"]: item for item in document["organizations"]}
        assert len(organizations) == 4
        assert organizations[fixture.orgs["B"].inn]["rank"] == 3
        assert organizations[fixture.orgs["A"].inn]["responses"] == ORG_A["responses"]

        # Re-sending the period: the same id and bytes; the receiver says it has it and keeps one copy.
        again = await exporter.export("aggregates", *NOVEMBER)
        assert (again.status, again.attempts, again.sent_at) == ("sent", 4, sent.sent_at)
        received = await store(system).batches()
        assert [(b.batch_id, b.deliveries, b.body) for b in received] == [(sent.batch_id, 2, body.decode())]
        response = await system.ias_http.post(
            "/api/v1/batches", content=body, headers={"X-Batch-Id": sent.batch_id, "Content-Type": "application/json"}
        )
        assert (response.status_code, response.json()["status"]) == (200, "already_received")

        page = await system.ias_http.get("/")
        assert page.status_code == 200
        assert sent.batch_id in page.text
        assert "Принятые пакеты" in page.text


def _novembered(expected: dict[str, Any]) -> dict[str, Any]:
    """The hand-computed figures restricted to November: A's card of 10-01 (Москва, the country) falls out."""
    if expected is COUNTRY or expected is REGION_77:
        return {**expected, "services": expected["services"] - 1}
    return expected


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refusal_is_logged_as_failed_without_endless_retries(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, **FAST_RETRIES) as system:
        exporter = system.ias_exporter()
        await fail_next(system, 1, status=400)
        failed = await exporter.export("aggregates", *NOVEMBER)
        assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 1, None)
        assert failed.last_error is not None
        assert failed.last_error.startswith("HTTP 400")
        await asyncio.sleep(0.3)
        assert await exporter.retry_due() == 0
        assert (await exporter.settle(failed.batch_id)).attempts == 1
        assert await store(system).batches() == []

        # A receiver that never recovers: retried until the configured attempts, then failed.
        await fail_next(system, 100)
        exhausted = await exporter.settle(
            (await exporter.export("aggregates", *previous_day(date(2026, 11, 20)))).batch_id
        )
        assert (exhausted.status, exhausted.attempts) == ("failed", 5)
        await fail_next(system, 0)

        # The operator sends the refused batch again once the cause is fixed: a fresh round of attempts.
        retried = await exporter.export("aggregates", *NOVEMBER)
        assert (retried.status, retried.attempts) == ("sent", 1)
        assert [b.batch_id for b in await store(system).batches()] == [failed.batch_id]


FRGU_SERVICE = "10000000123"
FRGU_PROCEDURE = "10000000456"
FRGU_AUTHORITY = {"A": "10000000001", "B": "10000000002", "C": "10000000003"}
RATES_SETTINGS = {**FAST_RETRIES, "ias_forms_per_packet": 4, "ias_status_poll_s": 0.05}


async def give_frgu_ids(system: System, fixture: Fixture) -> None:
    """ФРГУ ids on the cards of A, B and C, as their facts would carry them; D's cards have none."""
    async with system.db.uow() as uow:
        for card_id, org in fixture.card_org.items():
            if org in FRGU_AUTHORITY:
                await uow.session.execute(
                    update(ServiceCard)
                    .where(ServiceCard.card_id == card_id)
                    .values(
                        frgu_service_id=FRGU_SERVICE,
                        frgu_procedure_id=FRGU_PROCEDURE if org == "A" else None,
                        frgu_authority_id=FRGU_AUTHORITY[org],
                    )
                )
        await uow.commit()


def reference_rates_schema() -> etree.XMLSchema | None:
    """The shared reference ``rates-1.2.0.xsd`` when it is there; in CI it must be (the test FAILS)."""
    shared = shared_dir()
    path = None if shared is None else shared / "reference" / "ias-mkgu" / "rates-1.2.0.xsd"
    if path is None or not path.is_file():
        assert not os.environ.get("CI"), "CI runs with ../shared/reference/ias-mkgu/rates-1.2.0.xsd: it is missing"
        return None
    return etree.XMLSchema(etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)))


def assert_valid(body: bytes) -> None:
    """Against the project's own schema, and a RatesRequest/RatesResponse against the shared reference when
    present (always in CI; the reference has no PacketsRequest/PacketsResponse)."""
    element = documents.parse(body)
    documents.validate(element)
    reference = reference_rates_schema()
    if reference is not None and documents.root_name(element) in ("RatesRequest", "RatesResponse"):
        assert reference.validate(element), [f"{e.line}: {e.message}" for e in reference.error_log]


async def emulator_packets(system: System) -> list[IasPacketRecord]:
    return list(await PacketStore(system.db, system.clock).packets())


def expected_rates(ratings: list[int]) -> list[tuple[int, int]]:
    """INTEGRATION.md §4, form "direct" 0.0.4: the k-th criterion is indicator 9+k, its values 41+5k … 45+5k
    from «Очень плохо» to «Отлично»."""
    return [(9 + k, 41 + 5 * k + rating - 1) for k, rating in enumerate(ratings)]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rates_go_as_rates_requests_with_the_forms_value_ids_and_their_statuses_settle(
    backend: str, tmp_path: Path
) -> None:
    async with analytics_stack(backend, tmp_path, **RATES_SETTINGS) as system:
        fixture = await build(system)
        await give_frgu_ids(system, fixture)
        exporter = system.ias_exporter()
        await fail_next(system, 1)
        row = await exporter.settle((await exporter.export("rates", *NOVEMBER)).batch_id)
        sendable = [r for r in RESPONSES if r[0] != "D"]
        assert (row.status, row.attempts, row.items, row.unsendable) == ("sent", 2, len(sendable), 1)

        # Three packets of at most 4 forms, each with ИАС's packet id; sent is not accepted yet.
        packets = await exporter.packets([row.batch_id])
        assert [(p.client_id, p.forms, p.state) for p in packets] == [
            ("ias-r-20261101-20261130-1", 4, "registered"),
            ("ias-r-20261101-20261130-2", 4, "registered"),
            ("ias-r-20261101-20261130-3", 2, "registered"),
        ]
        ids = [p.packet_id for p in packets]
        assert all(ids)
        assert len(set(ids)) == 3
        assert {p.packet_id: p.status for p in await emulator_packets(system)} == dict.fromkeys(ids, "accepted")

        # Asked until final: the emulator answers "received" first, then its verdict.
        settled = await exporter.settle_packets(row.batch_id, timeout_s=30)
        assert [(p.state, p.ias_status, p.polls, p.reason) for p in settled] == [("accepted", "accepted", 2, None)] * 3
        assert all(p.final_at is not None and p.next_poll_at is None for p in settled)
        assert await exporter.poll_due() == 0  # nothing is asked any more

        # The documents ИАС got: valid, the form's indicator and value ids, ФРГУ ids, dateTimes, ОКАТО.
        page = await LkoClient(system.lko_http_for_analytics).responses_feed(limit=100)
        responses = {r.id: r for r in page.items}
        received = {p.packet_id: p for p in await emulator_packets(system)}
        forms = []
        for packet in settled:
            body = received[packet.packet_id].body.encode()
            assert body == packet.payload
            assert_valid(body)
            document = documents.parse_rates_request(body)
            assert document.vendor_id == system.settings.ias_vendor_id == 1
            assert len(document.forms) == packet.forms
            forms += document.forms
        assert sorted(f.foreign_id for f in forms) == sorted(
            r.id for r in responses.values() if fixture.card_org[r.card_id] != "D"
        )
        users = set()
        for form in forms:
            response = responses[form.foreign_id]
            org = fixture.card_org[response.card_id]
            assert form.service_id == FRGU_SERVICE
            assert form.authority_id == FRGU_AUTHORITY[org]
            assert form.procedure_id == (FRGU_PROCEDURE if org == "A" else None)
            assert form.authority_name == fixture.orgs[org].name
            assert form.service_date.isoformat() == f"{response.service_date[:10]}T00:00:00+03:00"
            submitted = datetime.fromisoformat(response.submitted_at.replace("Z", "+00:00")).replace(microsecond=0)
            assert form.received_date == submitted  # to the second, in Moscow time
            assert form.received_date.utcoffset() == timedelta(hours=3)
            assert form.okato == {"77": "45000000000", "16": "92000000000"}[fixture.orgs[org].region_code]
            answers = [response.answers[f"q{i}"] for i in range(1, 6)]
            assert [(r.indicator_id, r.value_id) for r in form.rates] == expected_rates(answers)
            assert all(r.value_id > 5 for r in form.rates)  # never the rating itself
            assert form.user_id.startswith("u")
            assert len(form.user_id) == 41
            users.add(form.user_id)
        assert len(users) == len(forms)  # one citizen per card here: a pseudonym each

        # D's rating has no ФРГУ ids: listed with the reason, not sent, not lost.
        (missing,) = await exporter.unsendable(row.batch_id)
        d_response = next(r for r in responses.values() if fixture.card_org[r.card_id] == "D")
        assert (missing.foreign_id, missing.card_id, missing.reason) == (
            d_response.id,
            d_response.card_id,
            "no_frgu_service",
        )
        assert "ФРГУ" in missing.detail
        assert await exporter.unsendable_counts() == {"no_frgu_service": 1}

        # Nothing personal anywhere: documents, the emulator, the export tables.
        secrets = needles(fixture.citizens)
        assert secrets
        texts = [p.body for p in await emulator_packets(system)]
        for table in ("module_ias_exports", "module_ias_packets", "module_ias_unsendable", "emulators_ias_packets"):
            texts += [repr(r) for r in await table_rows(system, table)]
        for text_ in texts:
            found = [needle for needle in secrets if needle and needle in text_]
            assert not found, found

        # The emulator's page shows the packets and their statuses.
        html = (await system.ias_http.get("/")).text
        assert all(f">{packet_id}</a>" in html for packet_id in ids)
        assert "принят" in html


async def test_the_export_log_and_the_unsendable_list_show_packets_and_reasons(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path, **RATES_SETTINGS) as system:
        fixture = await build(system)
        await give_frgu_ids(system, fixture)
        exporter = system.ias_exporter()
        row = await exporter.export("rates", *NOVEMBER)
        await exporter.settle_packets(row.batch_id, timeout_s=30)
        packet_ids = [str(p.packet_id) for p in await exporter.packets([row.batch_id])]
        env = {
            "POSOG_ENV": "test",
            "POSOG_VAR_DIR": str(tmp_path / "cli-var"),
            "POSOG_DATABASE_URL": system.settings.resolved_database_url,
            "COLUMNS": "250",
        }
        runner = CliRunner()
        logged = await asyncio.to_thread(runner.invoke, cli_app, ["export", "log"], env=env)
        assert logged.exit_code == 0, logged.output
        assert "ias-r-20261101-20261130-3" in logged.output
        assert all(packet_id in logged.output for packet_id in packet_ids)
        assert "принят ИАС" in logged.output
        assert "Не отправлено оценок: 1" in logged.output
        listed = await asyncio.to_thread(runner.invoke, cli_app, ["export", "unsendable"], env=env)
        assert listed.exit_code == 0, listed.output
        assert "no_frgu_service" in listed.output
        assert "нет идентификатора ФРГУ" in listed.output
        forms = await asyncio.to_thread(runner.invoke, cli_app, ["export", "forms"], env=env)
        assert forms.exit_code == 0, forms.output
        assert "direct 0.0.4" in forms.output
        assert "1→41, 2→42, 3→43, 4→44, 5→45" in forms.output
        assert "5→65" in forms.output


def _wrong_forms_file(tmp_path: Path) -> Path:
    """A forms file whose value ids ИАС does not serve (each one off by 100): an operator's mistake."""
    wrong = documents.FEDERAL_FORM_DIRECT | {
        "indicators": [
            {**indicator, "values": [{**v, "id": v["id"] + 100} for v in indicator["values"]]}
            for indicator in documents.FEDERAL_FORM_DIRECT["indicators"]
        ]
    }
    forms_file = tmp_path / "forms.json"
    forms_file.write_text(json.dumps([wrong], ensure_ascii=False), encoding="utf-8")
    return forms_file


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refused_packet_is_shown_with_the_reason(backend: str, tmp_path: Path) -> None:
    """A form file whose value ids ИАС does not serve (an operator's mistake): ИАС gives the packet an
    id, then refuses it with the reason; the packet is final, refused, with that reason."""
    forms_file = _wrong_forms_file(tmp_path)
    async with analytics_stack(backend, tmp_path, ias_forms_file=forms_file, **RATES_SETTINGS) as system:
        fixture = await build(system)
        await give_frgu_ids(system, fixture)
        exporter = system.ias_exporter()
        row = await exporter.export("rates", *NOVEMBER)
        assert row.status == "sent"
        settled = await exporter.settle_packets(row.batch_id, timeout_s=30)
        assert [(p.state, p.ias_status) for p in settled] == [("refused", "refused")] * 3
        for packet in settled:
            assert packet.reason is not None
            assert "не относится к показателю 9" in packet.reason
            assert_valid(packet.payload)  # valid against the schema: refused for its content
        html = (await system.ias_http.get("/")).text
        assert "отклонён" in html
        assert "не относится к показателю 9" in html


async def test_refused_packets_are_rebuilt_with_the_corrected_form_and_accepted(tmp_path: Path) -> None:
    """An operator's wrong form file gets every packet refused; once the file is corrected, ``posog export
    rebuild`` makes the same ratings again (the same foreign ids) in new packets under new ids, which ИАС
    accepts; the refused ones are kept, ``replaced``, naming their replacements; a second rebuild finds
    nothing to do; an aggregates batch or an unknown one is refused with a clear message."""
    forms_file = _wrong_forms_file(tmp_path)
    async with analytics_stack("embedded", tmp_path, ias_forms_file=forms_file, **RATES_SETTINGS) as system:
        fixture = await build(system)
        await give_frgu_ids(system, fixture)
        exporter = system.ias_exporter()
        row = await exporter.export("rates", *NOVEMBER)
        refused = await exporter.settle_packets(row.batch_id, timeout_s=30)
        assert [p.state for p in refused] == ["refused"] * 3
        sent_before = sorted(f.foreign_id for p in refused for f in documents.parse_rates_request(p.payload).forms)

        forms_file.write_text(json.dumps([documents.FEDERAL_FORM_DIRECT], ensure_ascii=False), encoding="utf-8")
        env = {
            "POSOG_ENV": "test",
            "POSOG_VAR_DIR": str(tmp_path / "cli-var"),
            "POSOG_DATABASE_URL": system.settings.resolved_database_url,
            "POSOG_IAS_FORMS_FILE": str(forms_file),
            "POSOG_IAS_FORMS_PER_PACKET": "4",
            "COLUMNS": "250",
        }
        runner = CliRunner()
        result = await asyncio.to_thread(runner.invoke, cli_app, ["export", "rebuild", row.batch_id], env=env)
        assert result.exit_code == 0, result.output
        assert "Пересобрано пакетов: 3" in result.output
        packets = await exporter.packets([row.batch_id])
        old = [p for p in packets if p.state == "replaced"]
        new = [p for p in packets if p.state != "replaced"]
        assert sorted(p.client_id for p in old) == sorted(p.client_id for p in refused)
        assert all(p.state == "pending" for p in new)
        assert {p.client_id for p in new}.isdisjoint({p.client_id for p in old}), "new ids: the adapter takes one once"
        assert all("не относится к показателю 9" in (p.reason or "") and "пересобран" in (p.reason or "") for p in old)
        rebuilt = sorted(f.foreign_id for p in new for f in documents.parse_rates_request(p.payload).forms)
        assert rebuilt == sent_before, "the same ratings, no more, no fewer"

        # The worker's next round (the batch is due now by the command's clock; this stack's is its own).
        batch = await exporter.attempt(row.batch_id)
        assert batch.status == "sent"
        settled = await exporter.settle_packets(row.batch_id, timeout_s=30)
        assert sorted(p.state for p in settled if p.client_id in {n.client_id for n in new}) == ["accepted"] * len(new)
        assert (await exporter.rebuild(row.batch_id)).replaced == [], "nothing refused is left"

        aggregates = await exporter.export("aggregates", *NOVEMBER)
        refused_kind = await asyncio.to_thread(
            runner.invoke, cli_app, ["export", "rebuild", aggregates.batch_id], env=env
        )
        assert refused_kind.exit_code == 1
        assert "aggregates" in refused_kind.output
        unknown = await asyncio.to_thread(
            runner.invoke, cli_app, ["export", "rebuild", "posog-rates-20990101-20990131"], env=env
        )
        assert unknown.exit_code == 2
        assert "Нет такой выгрузки" in unknown.output


class AdapterLoop:
    """A stand-in for the СМЭВ adapter and ИАС behind it: every ClientMessage the module hands over is
    checked against the adapter's schemas, its RequestMessage content answered by the ИАС emulator's
    service, and the answer comes back as a QueryResult, read as the СМЭВ worker reads it."""

    def __init__(self, service: IasService, *, fail_sends: int = 0) -> None:
        self._service = service
        self.fail_sends = fail_sends
        self.sent: list[bytes] = []
        self.replies: list[bytes] = []

    async def send(self, messages: Sequence[bytes]) -> None:
        if self.fail_sends:
            self.fail_sends -= 1
            raise ConnectionError("adapter away")
        for message in messages:
            self.sent.append(message)
            root = etree.fromstring(message)
            assert adapter_schema().validate(root), adapter_schema().error_log
            reference = adapter_reference()
            if reference is not None:
                assert reference.validate(root), reference.error_log
            client_id = root.findtext(f".//{{{ADAPTER_NS}}}clientId")
            (content,) = root.find(f".//{{{ADAPTER_NS}}}MessagePrimaryContent")
            body = etree.tostring(content)
            assert_valid(body)
            answer = await self._service.answer(body)
            assert_valid(answer)
            reply = InboundResponse(
                meta=SmevMetadata(message_id=str(uuid.uuid4())),
                client_id=f"ias-reply-{uuid.uuid4().hex[:8]}",
                reply_to_client_id=client_id,
                content=etree.fromstring(answer),
            )
            self.replies.append(query_result(reply))

    async def deliver(self, route: IasReplies) -> int:
        delivered, self.replies = self.replies, []
        for body in delivered:
            inbound = parse_query_result(body)
            assert isinstance(inbound, InboundResponse)
            assert await route.on_reply(inbound)
        return len(delivered)


async def _through_adapter(system: System, *, fail_sends: int = 0) -> tuple[AdapterLoop, IasExporter, IasReplies]:
    """The figures' fixture with ФРГУ ids, and an exporter and a reply route whose documents go through
    an :class:`AdapterLoop` (failing its first ``fail_sends`` sends) to the ИАС emulator's service."""
    await give_frgu_ids(system, await build(system))
    adapter = AdapterLoop(system.ias_asgi.app.state.ias_service, fail_sends=fail_sends)
    return adapter, system.ias_exporter(adapter), system.ias_replies(adapter)


def adapter_reference() -> etree.XMLSchema | None:
    shared = shared_dir()
    path = None if shared is None else shared / "reference" / ADAPTER_REFERENCE
    if path is None or not path.is_file():
        assert not os.environ.get("CI"), f"CI runs with ../shared/reference/{ADAPTER_REFERENCE}: it is missing"
        return None
    return etree.XMLSchema(etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_through_the_smev_adapter_packet_ids_and_statuses_come_back_as_replies(
    backend: str, tmp_path: Path
) -> None:
    async with analytics_stack(backend, tmp_path, smev_transport="amqp", **RATES_SETTINGS) as system:
        adapter, exporter, route = await _through_adapter(system, fail_sends=1)
        assert exporter.channel.name == "smev"

        first = await exporter.export("rates", *NOVEMBER)
        assert (first.status, first.attempts) == ("pending", 1)  # the adapter was away: retried
        row = await exporter.settle(first.batch_id)
        assert row.status == "sent"
        packets = await exporter.packets([row.batch_id])
        assert [p.state for p in packets] == ["sent"] * 3  # handed over; no packet id yet
        assert len(adapter.sent) == 3

        # The RatesResponses come back: packet ids stored, statuses asked through the adapter too.
        assert await adapter.deliver(route) == 3
        packets = await exporter.packets([row.batch_id])
        assert [p.state for p in packets] == ["registered"] * 3
        assert all(p.packet_id for p in packets)
        for _ in range(2):
            await asyncio.sleep(0.3)
            assert await exporter.poll_due() == 3
            assert await adapter.deliver(route) == 3
        packets = await exporter.packets([row.batch_id])
        assert [(p.state, p.ias_status) for p in packets] == [("accepted", "accepted")] * 3
        requests = [etree.fromstring(m) for m in adapter.sent]
        roots = [etree.QName(r.find(f".//{{{ADAPTER_NS}}}MessagePrimaryContent")[0]).localname for r in requests]
        assert roots == ["RatesRequest"] * 3 + ["PacketsRequest"] * 6
        client_ids = [r.findtext(f".//{{{ADAPTER_NS}}}clientId") or "" for r in requests]
        assert all(c.startswith("ias-") and len(c) <= 50 for c in client_ids)
        assert len(set(client_ids)) == len(client_ids)
        assert {p.channel for p in await emulator_packets(system)} == {"smev"}

        # A reply about someone else's message is left to the next route.
        other = InboundStatus(meta=SmevMetadata(), client_id=None, original_client_id="ans-123", status="OTHER")
        assert not await route.on_reply(other)

        # A СМЭВ client error about a packet: failed, with the reason.
        error = InboundError(
            meta=SmevMetadata(),
            client_id=None,
            original_client_id=packets[0].client_id,
            status="ERROR",
            error_type="CLIENT",
            fault_code="FAILURE",
            fault_description="Бизнес-данные не соответствуют схеме",
        )
        assert await route.on_reply(error)  # claimed; the packet is final already and stays accepted
        assert (await exporter.packets([row.batch_id]))[0].state == "accepted"


def test_schedule_periods() -> None:
    assert previous_day(date(2026, 3, 1)) == (date(2026, 2, 28), date(2026, 2, 28))
    assert previous_month(date(2026, 3, 15)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert previous_month(date(2026, 1, 1)) == (date(2025, 12, 1), date(2025, 12, 31))


async def test_the_worker_makes_yesterdays_and_last_months_batches_once(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path, ias_export_kinds=["aggregates"], **FAST_RETRIES) as system:
        schedule = system.ias_schedule()
        await schedule.tick()
        await schedule.tick()
        ids = sorted(b.batch_id for b in await store(system).batches())
        assert ids == ["posog-aggregates-20261001-20261031", "posog-aggregates-20261119-20261119"]
        assert all(b.deliveries == 1 for b in await store(system).batches())


async def test_the_ias_emulator_checks_what_it_gets(tmp_path: Path) -> None:
    """The emulator stands in for ИАС: packet ids for RatesRequests (the same document, the same id),
    verdicts later — refused with the reasons for what breaks the schema, a form's ids or the rule that
    a user is never a СНИЛС — and a clear 4xx for what is not a RatesRequest at all."""
    async with analytics_stack("embedded", tmp_path, **RATES_SETTINGS) as system:
        http = system.ias_http
        good = documents.rates_request_element(
            1,
            [
                documents.RateForm(
                    foreign_id="r-1",
                    user_id="u" + "0" * 40,
                    authority_id="10000000001",
                    service_id="10000000123",
                    procedure_id=None,
                    service_date=datetime(2026, 11, 20, tzinfo=MOSCOW),
                    received_date=datetime(2026, 11, 21, tzinfo=MOSCOW),
                    okato="45000000000",
                    rates=(documents.Rate(9, 45),),
                )
            ],
        )
        snils_user = etree.fromstring(etree.tostring(good))
        user = snils_user.find(f".//{{{documents.RATES_NS}}}user")
        assert user is not None
        user.set("id", "11223344595")  # a СНИЛС where a pseudonym belongs
        short_okato = etree.fromstring(etree.tostring(good))
        okato = short_okato.find(f".//{{{documents.RATES_NS}}}okato")
        assert okato is not None
        okato.text = "450"

        async def send(element: etree._Element) -> int:
            response = await http.post("/api/v1/rates", content=etree.tostring(element))
            assert response.status_code == 200, response.text
            return documents.parse_rates_response(response.content)

        async def ask(packet_id: int) -> documents.PacketStatus:
            response = await http.post("/api/v1/packets", content=documents.packets_request(1, [packet_id]))
            assert response.status_code == 200, response.text
            (status,) = documents.parse_packets_response(response.content)
            return status

        ids = [await send(good), await send(good), await send(snils_user), await send(short_okato)]
        assert ids[0] == ids[1]
        assert len(set(ids)) == 3
        assert [(await ask(i)).status for i in ids[1:]] == ["received"] * 3
        verdicts = [await ask(i) for i in ids[1:]]
        assert [v.status for v in verdicts] == ["accepted", "refused", "refused"]
        assert "похож на СНИЛС" in verdicts[1].errors[0]
        assert "не соответствует схеме" in verdicts[2].errors[0]
        assert "okato" in verdicts[2].errors[0]

        for body, reason in ((b"not xml", "not_xml"), (documents.rates_response(5), "wrong_root")):
            refused = await http.post("/api/v1/rates", content=body)
            assert (refused.status_code, refused.json()["error"]["code"]) == (400, reason)
        unknown = await http.post("/api/v1/packets", content=documents.packets_request(1, [999_999]))
        assert unknown.status_code == 404
        forms = (await http.get("/api/v1/forms")).json()["forms"]
        assert [i["id"] for i in forms[0]["indicators"]] == [9, 10, 11, 12, 13]
        listed = (await http.get("/api/v1/packets")).json()["items"]
        assert {(p["packet_id"], p["status"]) for p in listed} == {
            (ids[0], "accepted"),
            (ids[2], "refused"),
            (ids[3], "refused"),
        }
        page = await http.get(f"/packets/{ids[2]}")
        assert page.status_code == 200
        assert "похож на СНИЛС" in page.text
        assert (await http.get("/packets/0")).status_code == 404


async def test_through_the_smev_adapter_rejects_and_errors_fail_or_resend_a_packet(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path, smev_transport="amqp", **RATES_SETTINGS) as system:
        adapter, exporter, route = await _through_adapter(system)
        row = await exporter.export("rates", *NOVEMBER)
        assert row.status == "sent"
        adapter.replies.clear()  # the RatesResponses are lost on the way: what comes instead is below
        first, second, third = await exporter.packets([row.batch_id])

        async def back(reply: InboundResponse | InboundStatus | InboundError) -> bool:
            inbound = parse_query_result(query_result(reply))
            assert isinstance(inbound, InboundResponse | InboundStatus | InboundError)
            return await route.on_reply(inbound)

        rejected = InboundResponse(
            meta=SmevMetadata(message_id=str(uuid.uuid4())),
            client_id="ias-emulated-reply",
            reply_to_client_id=first.client_id,
            rejects=(Reject("ACCESS_DENIED", "Нет доступа к виду сведений"),),
        )
        assert await back(rejected)
        server_error = InboundError(
            meta=SmevMetadata(message_id=str(uuid.uuid4())),
            client_id=None,
            original_client_id=second.client_id,
            status="ERROR",
            error_type="SERVER",
            fault_code="FAILURE",
            fault_description="Внутренняя ошибка СМЭВ",
        )
        assert await back(server_error)
        undelivered = InboundStatus(
            meta=SmevMetadata(message_id=str(uuid.uuid4())),
            client_id=None,
            original_client_id=third.client_id,
            status="ERROR",
            details="Получатель не найден",
        )
        assert await back(undelivered)

        first, second, third = await exporter.packets([row.batch_id])
        assert (first.state, third.state) == ("failed", "failed")
        assert first.reason is not None
        assert "ACCESS_DENIED: Нет доступа к виду сведений" in first.reason
        assert third.reason is not None
        assert "Получатель не найден" in third.reason
        assert second.state == "pending"  # a СМЭВ server error: sent again by its batch
        batch = await exporter.get(row.batch_id)
        assert batch is not None
        assert batch.status == "pending"
        resent = await exporter.settle(row.batch_id)
        assert resent.status == "sent"
        assert len(adapter.sent) == 4
        resent_id = etree.fromstring(adapter.sent[-1]).findtext(f".//{{{ADAPTER_NS}}}clientId")
        assert resent_id == f"{second.client_id}.1"  # sent again under a clientId of its own
        assert [p.state for p in await exporter.packets([row.batch_id])] == ["failed", "sent", "failed"]
        assert await adapter.deliver(route) == 1
        assert [p.state for p in await exporter.packets([row.batch_id])] == ["failed", "registered", "failed"]


async def test_a_packet_the_channel_refused_goes_again_when_its_batch_is_redriven(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path, **RATES_SETTINGS) as system:
        fixture = await build(system)
        await give_frgu_ids(system, fixture)
        exporter = system.ias_exporter()
        await fail_next(system, 1, status=400)
        failed = await exporter.export("rates", *NOVEMBER)
        assert (failed.status, failed.dead_at is not None) == ("failed", True)
        assert failed.last_error is not None
        assert "HTTP 400" in failed.last_error
        packets = await exporter.packets([failed.batch_id])
        assert [p.state for p in packets] == ["failed", "registered", "registered"]
        assert packets[0].reason is not None
        assert "HTTP 400" in packets[0].reason

        # `posog outbox redrive ias-export:<batch>`: the worker sends the refused packet again.
        assert await exporter.outbox.redrive([failed.batch_id]) == [failed.batch_id]
        assert await exporter.retry_due() == 1
        batch = await exporter.get(failed.batch_id)
        assert batch is not None
        assert batch.status == "sent"
        packets = await exporter.packets([failed.batch_id])
        assert [p.state for p in packets] == ["registered"] * 3
        assert len({p.packet_id for p in packets}) == 3


async def test_a_packet_whose_rates_response_never_comes_is_sent_again(tmp_path: Path) -> None:
    settings = RATES_SETTINGS | {"ias_reply_timeout_s": 0.3}
    async with analytics_stack("embedded", tmp_path, smev_transport="amqp", **settings) as system:
        adapter, exporter, route = await _through_adapter(system)
        row = await exporter.export("rates", *NOVEMBER)
        assert row.status == "sent"
        adapter.replies.clear()  # every RatesResponse lost
        assert await exporter.poll_due() == 0  # within the timeout: nothing to do yet
        assert [p.state for p in await exporter.packets([row.batch_id])] == ["sent"] * 3
        await asyncio.sleep(0.5)
        await exporter.poll_due()
        packets = await exporter.packets([row.batch_id])
        assert [p.state for p in packets] == ["pending"] * 3
        assert all(p.reason and "нет RatesResponse" in p.reason for p in packets)
        assert (await exporter.settle(row.batch_id)).status == "sent"
        assert len(adapter.sent) == 6  # each packet twice, each time under a clientId of its own
        client_ids = [etree.fromstring(m).findtext(f".//{{{ADAPTER_NS}}}clientId") for m in adapter.sent]
        assert len(set(client_ids)) == 6, "the adapter takes a clientId once: a repeated one never leaves"
        assert sorted(client_ids[3:]) == sorted(f"{p.client_id}.1" for p in packets)
        assert await adapter.deliver(route) == 3
        packets = await exporter.packets([row.batch_id])
        assert [p.state for p in packets] == ["registered"] * 3
        assert len(await emulator_packets(system)) == 3  # ИАС made one packet of each document
