"""The СМЭВ adapter's transports on their own: the web service's SOAP 1.1 calls as the WSDL binds
them (actions, parts, faults by kind), the adapter emulator's side of them, the AMQP outbound port,
and the worker's isolation of a document that breaks the dispatcher."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import httpx
import pytest
from lxml import etree

from posog.core.bus import InProcessBus
from posog.emulators.smev_adapter.adapter import SmevAdapterEmulator
from posog.emulators.smev_adapter.api import create_app
from posog.emulators.smev_adapter.envelopes import request_document, status_document
from posog.module.smev.envelope import (
    InboundRequest,
    InboundStatus,
    OutboundResponse,
    Status,
    client_message,
    parse_query_result,
)
from posog.module.smev.soap import (
    ADAPTER_TYPES_NS,
    SOAP_NS,
    AdapterFault,
    SoapAdapterClient,
    SoapOutbound,
    message_query,
    soap_fault,
)
from posog.module.smev.transport import AmqpOutbound, adapter_topology
from posog.module.smev.worker import InboundProcessor
from tests.reference import ADAPTER_REFERENCE, assert_valid_against_reference

URL = "http://adapter.test/ws"
FACT = b'<OgFactRequest xmlns="urn://x-artefacts-posog/og-fact/1.0.0"><CardId>C-1</CardId></OgFactRequest>'


def _emulator(mode: str = "soap", bus: InProcessBus | None = None) -> SmevAdapterEmulator:
    return SmevAdapterEmulator(bus, mode=mode, in_queue="in", out_queue="out", it_system="POSOG")  # type: ignore[arg-type]


def _answer() -> bytes:
    status = Status("accepted", "Сведения приняты.", (("card_id", "C-1"), ("link_state", "issued")))
    return client_message("POSOG", OutboundResponse(client_id="ans-1", reply_to_client_id="og-1", status=status))


async def test_get_takes_one_document_at_a_time_until_the_queue_is_empty() -> None:
    emulator = _emulator()
    client = SoapAdapterClient(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emulator))), URL, it_system="POSOG"
    )
    assert await client.get() is None
    await emulator.submit("ИС МФЦ", [FACT, FACT], client_ids=["og-1", "og-2"])
    first, second = await client.get(), await client.get()
    assert await client.get() is None
    assert first is not None
    assert second is not None
    read = [parse_query_result(first), parse_query_result(second)]
    assert all(isinstance(r, InboundRequest) for r in read)
    assert [r.client_id for r in read] == ["og-1", "og-2"]
    assert etree.QName(read[0].content).localname == "OgFactRequest"  # type: ignore[union-attr]


async def test_send_hands_the_client_message_to_the_adapter_and_returns_its_message_id() -> None:
    emulator = _emulator()
    await emulator.submit("ИС МФЦ", [FACT], client_ids=["og-1"])
    client = SoapAdapterClient(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emulator))), URL, it_system="POSOG"
    )
    message_id = await client.send(_answer())
    assert uuid.UUID(message_id)
    (answer,) = emulator.answers["og-1"]
    assert answer.sender == "ИС МФЦ"
    assert (answer.kind, answer.code) == ("status", "accepted")
    assert dict(answer.parameters) == {"card_id": "C-1", "link_state": "issued"}


async def test_requests_follow_the_wsdl_binding() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = etree.fromstring(request.content).find(f"{{{SOAP_NS}}}Body")
        assert body is not None
        if request.headers["SOAPAction"] == '"urn:Get"':
            empty = b'<soap:Envelope xmlns:soap="%s"><soap:Body/></soap:Envelope>' % SOAP_NS.encode()
            return httpx.Response(200, content=empty)
        result = (
            f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body><MessageResult xmlns="{ADAPTER_TYPES_NS}">'
            f"<itSystem>POSOG</itSystem><MessageId>{uuid.uuid1()}</MessageId></MessageResult></soap:Body></soap:Envelope>"
        )
        return httpx.Response(200, content=result.encode())

    client = SoapAdapterClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), URL, it_system="POSOG")
    assert await client.get() is None
    await client.send(_answer())
    get, send = seen
    for request in (get, send):
        assert request.method == "POST"
        assert str(request.url) == URL
        assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
        root = etree.fromstring(request.content)
        assert root.tag == f"{{{SOAP_NS}}}Envelope"
        (body,) = root
        assert len(body) == 1  # document/literal: the part's element alone
    query = etree.fromstring(get.content)[0][0]
    assert query.tag == f"{{{ADAPTER_TYPES_NS}}}MessageQuery"
    assert_valid_against_reference(query, ADAPTER_REFERENCE)
    message = etree.fromstring(send.content)[0][0]
    assert message.tag == f"{{{ADAPTER_TYPES_NS}}}ClientMessage"
    assert_valid_against_reference(message, ADAPTER_REFERENCE)
    assert_valid_against_reference(message_query("POSOG", "REQUEST"), ADAPTER_REFERENCE)


@pytest.mark.parametrize(
    ("kind", "permanent"), [("SystemFault", False), ("ValidationFault", True), ("SyncFault", False)]
)
async def test_faults_are_told_apart_by_their_wsdl_kind(kind: str, permanent: bool) -> None:
    fault = soap_fault(kind, "E42", "Описание ошибки", client=kind == "ValidationFault")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=fault, headers={"Content-Type": "text/xml"})

    outbound = SoapOutbound(
        SoapAdapterClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), URL, it_system="POSOG")
    )
    with pytest.raises(AdapterFault) as raised:
        await outbound.send([_answer()])
    assert raised.value.kind == kind
    assert raised.value.code == "E42"
    assert raised.value.description == "Описание ошибки"
    assert raised.value.permanent is permanent


async def test_an_unreachable_or_broken_adapter_is_a_retryable_fault() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, content=b"Bad Gateway")

    for handler in (down, gateway):
        client = SoapAdapterClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), URL, it_system="POSOG")
        with pytest.raises(AdapterFault) as raised:
            await client.send(_answer())
        assert raised.value.kind == "http"
        assert not raised.value.permanent


async def test_the_emulator_refuses_what_the_adapter_would_refuse() -> None:
    emulator = _emulator()
    client = SoapAdapterClient(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emulator))), URL, it_system="STRANGER"
    )
    with pytest.raises(AdapterFault) as raised:
        await client.get()
    assert raised.value.kind == "ValidationFault"
    with pytest.raises(AdapterFault) as refused:
        await client.send(_answer().replace(b"<itSystem>POSOG<", b"<itSystem>STRANGER<"))
    assert refused.value.permanent
    assert emulator.refused == 1


async def test_amqp_outbound_publishes_each_document_to_the_out_queue_and_the_emulator_reads_it() -> None:
    bus = InProcessBus()
    await bus.declare(
        adapter_topology(in_queue="in", out_queue="out", dead_letter_exchange="dlx", dead_letter_queue="dead")
    )
    emulator = _emulator("amqp", bus)
    await emulator.submit("ИС МФЦ", [FACT], client_ids=["og-1"])
    assert await bus.queue_depth("in") == 1
    await AmqpOutbound(bus, "out").send([_answer()])
    assert await bus.queue_depth("out") == 1
    reader = asyncio.create_task(emulator.consume_out())
    try:
        async with asyncio.timeout(5):
            while "og-1" not in emulator.answers:
                await asyncio.sleep(0.01)
    finally:
        reader.cancel()
    assert emulator.answers["og-1"][0].code == "accepted"


async def test_emulator_replies_to_requests_through_a_registered_recipient() -> None:
    bus = InProcessBus()
    await bus.declare(
        adapter_topology(in_queue="in", out_queue="out", dead_letter_exchange="dlx", dead_letter_queue="dead")
    )
    emulator = _emulator("amqp", bus)

    async def epgu(client_id: str, content: etree._Element) -> Sequence[bytes]:
        return [status_document(client_id="epgu-1", original_client_id=client_id, details="Доставлено")]

    emulator.register_recipient("urn://x-test/notification", epgu)
    request = client_message_request()
    await emulator.take(request)
    stream = bus.consume("in", prefetch=1)
    delivery = await anext(stream)  # type: ignore[call-overload]
    reply = parse_query_result(delivery.body)
    assert isinstance(reply, InboundStatus)
    assert reply.original_client_id == "n-1"
    assert reply.details == "Доставлено"
    # The emulator's page lists ПОС ОГ's own requests with what their recipients answered.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emulator)), base_url="http://a") as http:
        page = await http.get("/requests")
        senders = await http.get("/")
    assert page.status_code == 200
    assert "n-1" in page.text
    assert "статус: Доставлено" in page.text
    assert 'href="/requests"' in senders.text


def client_message_request() -> bytes:
    from posog.module.smev.envelope import OutboundRequest

    return client_message(
        "POSOG", OutboundRequest(client_id="n-1", content=b'<Note xmlns="urn://x-test/notification"/>')
    )


class _Flaky:
    """A dispatcher that breaks on one document and is unavailable for a while."""

    def __init__(self) -> None:
        self.handled: list[bytes] = []
        self.kept: list[tuple[bytes, str]] = []
        self.outages = 2

    async def handle(self, documents: Sequence[bytes]) -> None:
        if self.outages:
            self.outages -= 1
            raise ConnectionError("database away")
        if b"poison" in b"".join(documents):
            raise ValueError("a bug that this document triggers")
        self.handled.extend(documents)

    async def keep_unhandled(self, document: bytes, reason: str) -> None:
        self.kept.append((document, reason))


async def test_a_document_that_breaks_the_dispatcher_is_kept_and_the_others_go_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("posog.module.smev.worker.worker_delay", lambda failures, cap_s: 0.0)  # no real pauses
    handler = _Flaky()
    processor = InboundProcessor(handler)
    documents = [b"one", b"poison", b"three", request_document(FACT, client_id="og-9")]
    assert await processor.process(documents)
    assert handler.handled == [b"one", b"three", documents[3]]
    assert handler.kept == [(b"poison", "processing_error")]
    assert processor.processed == 4


def test_the_smev_emulator_sends_each_fact_through_the_adapter_as_a_valid_og_fact_request() -> None:
    from datetime import date

    from posog.core.bus import OutgoingMessage
    from posog.emulators.datagen.facts import FactFactory
    from posog.emulators.smev import SmevEmulator
    from posog.lko.org_types.defaults import DEFAULT_ORG_TYPES
    from posog.module.contracts import FactContext, OgFact
    from posog.module.intake.parsing import Rejection
    from posog.module.smev.ogfact import og_fact_schema, read_og_fact

    today = date(2026, 11, 20)
    delivered: list[bytes] = []

    class Adapter(SmevAdapterEmulator):
        async def deliver(self, documents: Sequence[bytes]) -> None:
            delivered.extend(documents)

    class NoBus:
        async def publish(self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]) -> None:
            raise AssertionError("envelope mode publishes through the adapter only")

    emulator = Adapter(None, mode="soap", in_queue="in", out_queue="out", it_system="POSOG")
    smev = SmevEmulator(NoBus(), "facts", FactFactory(seed=5, today=today), adapter=emulator)  # type: ignore[arg-type]
    published = asyncio.run(smev.publish(300, invalid_share=0.1))
    assert len(delivered) == 300
    context = FactContext(today=today, horizon_days=365, known_types=frozenset(t.code for t in DEFAULT_ORG_TYPES))
    valid = rejected = 0
    for document in delivered:
        request = parse_query_result(document)
        assert isinstance(request, InboundRequest)
        assert request.client_id is not None
        assert request.client_id.startswith("og-")
        assert emulator.answers == {}
        read = read_og_fact(request.content, context, message_id=request.meta.message_id)
        if isinstance(read, OgFact):
            assert og_fact_schema().validate(request.content), "a valid fact is valid against the вид сведений"
            valid += 1
        else:
            assert isinstance(read, Rejection)
            assert read.problems
            rejected += 1
    assert (valid, rejected) == (published.valid, published.invalid) == (270, 30)
