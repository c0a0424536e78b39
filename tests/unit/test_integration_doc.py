"""docs/integration.md's XML examples are what the code really reads and builds: each QueryResult is
read by the module's envelope reader (the fact in it is a valid fact of the вид сведений ОГ), each
ClientMessage is exactly the document the module builds for those values, each SOAP message is what
the web-service client sends or reads — and the adapter's documents are valid against the adapter's
published schema."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from posog.lko.org_types.defaults import DEFAULT_ORG_TYPES
from posog.module.contracts import FactContext, FactProblem, OgFact
from posog.module.smev.answers import STATUS_TEXT, describe
from posog.module.smev.envelope import (
    InboundRequest,
    InboundStatus,
    OutboundResponse,
    Reject,
    Status,
    client_message,
    parse_query_result,
)
from posog.module.smev.ogfact import read_og_fact
from posog.module.smev.soap import AdapterFault, message_query, read_soap, soap_envelope
from tests.reference import ADAPTER_REFERENCE, assert_valid_against_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "integration.md"
EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) -->\n```xml\n(.*?)```", re.DOTALL)


def _examples() -> dict[str, bytes]:
    return {name: body.encode() for name, body in EXAMPLE.findall(DOC.read_text(encoding="utf-8"))}


def _c14n(document: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(document, parser), method="c14n")


def test_the_doc_has_every_example() -> None:
    assert sorted(_examples()) == sorted(
        [
            "soap-get-request",
            "soap-send-response",
            "soap-fault",
            "query-result-fact",
            "client-message-accepted",
            "client-message-rejects",
            "query-result-status",
        ]
    )


def test_the_fact_example_reads_as_a_valid_fact() -> None:
    document = _examples()["query-result-fact"]
    assert_valid_against_reference(document, ADAPTER_REFERENCE)
    request = parse_query_result(document)
    assert isinstance(request, InboundRequest)
    assert request.client_id == "mfc77-2026-11-20-000042"
    assert request.meta.message_id == "1f0c7a52-8d4e-11f1-9a1b-0242ac120002"
    context = FactContext(
        today=date(2026, 12, 1), horizon_days=365, known_types=frozenset(t.code for t in DEFAULT_ORG_TYPES)
    )
    fact = read_og_fact(request.content, context, message_id=request.meta.message_id)
    assert isinstance(fact, OgFact), fact
    assert fact.card_id == "MFC-77-2026-000000001-0042"


def test_the_answer_examples_are_what_the_module_builds() -> None:
    examples = _examples()
    accepted = OutboundResponse(
        client_id="ans-6f1d2c3b4a5948e7b6c5d4e3f2a1b0c9",
        reply_to_client_id="mfc77-2026-11-20-000042",
        status=Status(
            "accepted",
            STATUS_TEXT["accepted"],
            (("card_id", "MFC-77-2026-000000001-0042"), ("link_state", "issued")),
        ),
    )
    rejects = OutboundResponse(
        client_id="ans-0a1b2c3d4e5f40718293a4b5c6d7e8f9",
        reply_to_client_id="mfc77-2026-11-20-000043",
        rejects=tuple(
            Reject("UNKNOWN_REQUEST_DESCRIPTION", describe(FactProblem(field, "bad_checksum")))
            for field in ("organization.inn", "citizen.snils")
        ),
    )
    for name, message in (("client-message-accepted", accepted), ("client-message-rejects", rejects)):
        assert _c14n(examples[name]) == _c14n(client_message("POSOG", message)), name
        assert_valid_against_reference(examples[name], ADAPTER_REFERENCE)


def test_the_status_example_reads_as_a_status_about_an_answer() -> None:
    document = _examples()["query-result-status"]
    assert_valid_against_reference(document, ADAPTER_REFERENCE)
    status = parse_query_result(document)
    assert isinstance(status, InboundStatus)
    assert status.original_client_id == "ans-6f1d2c3b4a5948e7b6c5d4e3f2a1b0c9"
    assert status.status == "OTHER"


def test_the_soap_examples_are_what_the_client_sends_and_reads() -> None:
    examples = _examples()
    assert _c14n(examples["soap-get-request"]) == _c14n(soap_envelope(message_query("POSOG")))
    result = read_soap(examples["soap-send-response"], max_bytes=65536)
    assert result is not None
    assert etree.QName(result).localname == "MessageResult"
    with pytest.raises(AdapterFault) as fault:
        read_soap(examples["soap-fault"], max_bytes=65536)
    assert (fault.value.kind, fault.value.code, fault.value.permanent) == ("SystemFault", "ADAPTER_UNAVAILABLE", False)
