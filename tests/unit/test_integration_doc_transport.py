"""docs/integration.md's transport examples (the envelope and answer examples are
``test_integration_docs``'s): the status is read by the module's envelope reader and valid against the
adapter's published schema, and each SOAP message is what the web-service client sends or reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from posog.module.smev.envelope import (
    InboundStatus,
    parse_query_result,
)
from posog.module.smev.soap import AdapterFault, message_query, read_soap, soap_envelope
from tests.reference import ADAPTER_REFERENCE, assert_valid_against_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "integration.md"
EXAMPLE = re.compile(r"<!-- (example|soap-example): ([a-z-]+) -->\n```xml\n(.*?)```", re.DOTALL)


def _examples() -> dict[str, bytes]:
    found = EXAMPLE.findall(DOC.read_text(encoding="utf-8"))
    return {("soap-" if kind == "soap-example" else "") + name: body.encode() for kind, name, body in found}


def _c14n(document: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(document, parser), method="c14n")


def test_the_doc_has_the_transport_examples() -> None:
    assert {"soap-get-request", "soap-send-response", "soap-fault", "query-result-status"} <= set(_examples())


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
