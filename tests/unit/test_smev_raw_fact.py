"""A fact that came in an adapter envelope reaches intake as its parsed element, serialised only when
something needs its bytes: the size limit is still exact (the bound on the element's size holds for
the documents that grow most when an element is serialised on its own), and a rejected fact is still
sealed as the OgFactRequest document it was."""

from __future__ import annotations

import pytest
from lxml import etree

from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import TYPES, FactFactory
from posog.emulators.smev_adapter.envelopes import request_document
from posog.module.contracts import FactContext, FactProblem
from posog.module.intake.handlers import IntakeHandler, RawFact
from posog.module.intake.parsing import Rejection
from posog.module.smev.envelope import InboundRequest, parse_query_result, parse_xml
from posog.module.smev.facts import SERIALISED_GROWTH, raw_fact
from posog.module.smev.ogfact import OG_FACT_NS, og_fact_element, og_fact_xml, read_og_fact_bytes

TODAY = today(utcnow)
CONTEXT = FactContext(today=TODAY, horizon_days=365, known_types=frozenset(TYPES))
ADAPTER = "urn://x-artefacts-smev-gov-ru/services/service-adapter/types"


def _request(document: bytes) -> InboundRequest:
    inbound = parse_query_result(document)
    assert isinstance(inbound, InboundRequest)
    return inbound


def _handler(max_fact_bytes: int) -> IntakeHandler:
    # Only the reading of a message is exercised: nothing here touches the database or the catalog.
    return IntakeHandler(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        utcnow,
        horizon_days=365,
        lkp_base_url="http://lkp.test",
        max_fact_bytes=max_fact_bytes,
    )


def test_a_usual_fact_is_not_serialised_and_its_bytes_are_the_element_when_needed() -> None:
    fact = FactFactory(seed=5, today=TODAY).fact()
    document = request_document(og_fact_xml(fact), client_id="c-1", message_id=fact["message_id"])
    request = _request(document)
    raw = raw_fact(request, len(document))
    assert raw.within(64 * 1024)
    assert raw._body is None  # the size was settled by the bound alone
    # The bytes a rejection or conflict seals: the OgFactRequest document, which reads back the same.
    body = raw.body
    assert body == etree.tostring(request.content, encoding="UTF-8")
    again = read_og_fact_bytes(body, CONTEXT, message_id=raw.message_id, max_bytes=64 * 1024)
    assert not isinstance(again, Rejection)
    assert again.card_id == fact["card_id"]


def test_a_business_element_over_the_fact_limit_is_too_large_as_before() -> None:
    fact = FactFactory(seed=6, today=TODAY).fact()
    fact["service"]["name"] = "Услуга " * 2000  # ≈ 26 kB in UTF-8
    document = request_document(og_fact_xml(fact), client_id="c-2", message_id=fact["message_id"])
    raw = raw_fact(_request(document), len(document))
    exact = len(etree.tostring(raw.element, encoding="UTF-8"))
    for limit, fits in ((exact - 1, False), (exact, True), (exact + 1, True)):
        fresh = raw_fact(_request(document), len(document))
        assert fresh.within(limit) is fits
        outcome = _handler(limit)._read(fresh, CONTEXT)
        if fits:
            assert not isinstance(outcome, Rejection) or FactProblem("payload", "too_large") not in outcome.problems
        else:
            assert isinstance(outcome, Rejection)
            assert outcome.problems == (FactProblem("payload", "too_large"),)


def _nested(document: bytes) -> etree._Element:
    root = parse_xml(document, max_bytes=len(document))
    found = root.find(f".//{{{OG_FACT_NS}}}OgFactRequest")
    assert found is not None
    return found


# Documents whose business element grows most when serialised alone: escapes that are longer than
# what they stand for, characters of a single-byte encoding that take 3 bytes in UTF-8, namespace
# declarations inherited from the envelope.
_OPEN = f"<e xmlns='{ADAPTER}'><OgFactRequest xmlns='{OG_FACT_NS}'"
_CLOSE = "</OgFactRequest></e>"
GROWING = {
    "quotes in an attribute": (_OPEN + " a='" + '"' * 3000 + "'/></e>").encode(),
    "ampersands in CDATA": (_OPEN + "><![CDATA[" + "&" * 3000 + "]]>" + _CLOSE).encode(),
    "greater-than in text": (_OPEN + ">" + ">" * 3000 + _CLOSE).encode(),
    "cp1251 signs": ("<?xml version='1.0' encoding='windows-1251'?>" + _OPEN + ">" + "№" * 3000 + _CLOSE).encode(
        "cp1251"
    ),
    "inherited namespaces": (
        "<e " + " ".join(f"xmlns:p{i}='urn:x:{i}'" for i in range(300)) + f"><OgFactRequest xmlns='{OG_FACT_NS}'/></e>"
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(GROWING))
def test_the_bound_holds_for_the_documents_that_grow_most(name: str) -> None:
    document = GROWING[name]
    element = _nested(document)
    serialised = len(etree.tostring(element, encoding="UTF-8"))
    assert serialised <= SERIALISED_GROWTH * len(document)
    raw = RawFact(element=element, size_bound=SERIALISED_GROWTH * len(document))
    for limit in (serialised - 1, serialised, SERIALISED_GROWTH * len(document)):
        assert raw.within(limit) is (serialised <= limit)


def test_a_raw_fact_needs_a_body_or_an_element() -> None:
    with pytest.raises(ValueError, match="body or its element"):
        RawFact()
    assert RawFact(b"{}").body == b"{}"
    element = og_fact_element(FactFactory(seed=2, today=TODAY).fact())
    assert RawFact(element=element).within(10) is False  # no bound: measured
