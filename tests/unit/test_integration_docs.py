"""docs/integration.md: its example envelopes are valid against the project's schemas and the adapter's
published one, the fact example reads as a fact, and the answer examples are exactly what the code
builds for those outcomes."""

from __future__ import annotations

import re
from datetime import date

import pytest
from lxml import etree

from posog.module.contracts import FactContext, FactProblem, OgFact
from posog.module.intake.handlers import Outcome
from posog.module.smev.answers import answer_of
from posog.module.smev.envelope import (
    InboundRequest,
    OutboundResponse,
    Reject,
    Status,
    adapter_schema,
    client_message_element,
    parse_query_result,
)
from posog.module.smev.ogfact import og_fact_schema, read_og_fact
from tests.reference import ADAPTER_REFERENCE, REPO_ROOT, assert_valid_against_reference

DOC = REPO_ROOT / "docs" / "integration.md"
_EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\s*```xml\n(.*?)```", re.DOTALL)


def _examples() -> dict[str, bytes]:
    return {name: body.encode() for name, body in _EXAMPLE.findall(DOC.read_text(encoding="utf-8"))}


def _compact(document: bytes | etree._Element) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    text = document if isinstance(document, bytes) else etree.tostring(document)
    return etree.tostring(etree.fromstring(text, parser), method="c14n")


def test_the_doc_has_its_examples() -> None:
    assert set(_examples()) >= {"query-result-og-fact", "answer-accepted", "answer-conflict", "answer-rejects"}


@pytest.mark.parametrize("name", sorted(_examples()))
def test_every_example_is_valid_against_both_schemas(name: str) -> None:
    document = _examples()[name]
    root = etree.fromstring(document)
    assert adapter_schema().validate(root), adapter_schema().error_log
    assert_valid_against_reference(document, ADAPTER_REFERENCE)


def test_the_fact_example_reads_as_a_fact() -> None:
    request = parse_query_result(_examples()["query-result-og-fact"])
    assert isinstance(request, InboundRequest)
    assert request.client_id == "mfc77-000123"
    assert og_fact_schema().validate(request.content), og_fact_schema().error_log
    fact = read_og_fact(
        request.content, FactContext(today=date(2026, 11, 25), horizon_days=28), message_id=request.meta.message_id
    )
    assert isinstance(fact, OgFact), fact
    assert (fact.card_id, fact.service.frgu_service_id, fact.organization.frgu_authority_id) == (
        "MFC-77-2026-000123",
        "10000000001",
        "10000000003",
    )


def _built(client_id: str, reply_to: str, outcome: Outcome) -> etree._Element:
    answer = answer_of(outcome)
    status = answer.get("status")
    return client_message_element(
        "POSOG",
        OutboundResponse(
            client_id,
            reply_to,
            rejects=tuple(Reject(r["code"], r["description"]) for r in answer.get("rejects", ())),
            status=None
            if status is None
            else Status(status["code"], status["description"], tuple(tuple(p) for p in status["parameters"])),  # type: ignore[misc]
        ),
    )


def test_the_answer_examples_are_what_the_code_builds() -> None:
    examples = _examples()
    accepted = _built(
        "ans-5f0c2b9e6c1d4c3e8a7b9d0e1f2a3b4c",
        "mfc77-000123",
        Outcome("accepted", "MFC-77-2026-000123", card_status="linked"),
    )
    assert _compact(examples["answer-accepted"]) == _compact(accepted)
    conflict = _built(
        "ans-9a8b7c6d5e4f40312a1b2c3d4e5f6a7b",
        "mfc77-000123-bis",
        Outcome("conflict", "MFC-77-2026-000123", fields=("organization.name", "citizen.first_name")),
    )
    assert _compact(examples["answer-conflict"]) == _compact(conflict)
    rejects = _built(
        "ans-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "mfc77-000124",
        Outcome(
            "rejected",
            None,
            (FactProblem("organization.inn", "bad_checksum"), FactProblem("citizen.snils", "bad_checksum")),
        ),
    )
    assert _compact(examples["answer-rejects"]) == _compact(rejects)
