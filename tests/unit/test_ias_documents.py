"""The ИАС МКГУ messages (INTEGRATION.md §4) and the forms: every document the module builds is valid
against the project's schema and, when ../shared is there (always in CI), against the shared reference
``rates-1.2.0.xsd``; malformed input is refused with its reason; the form's ids — never the rating — are
what a ``rate`` carries; the user is a keyed pseudonym."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from posog.module.ias_export import documents
from posog.module.ias_export.documents import DocumentError, PacketStatus, Rate, RateForm
from posog.module.ias_export.forms import (
    CRITERIA,
    DEFAULT_FORM,
    FormError,
    form_from_document,
    forms_from_file,
    forms_from_json,
    mapping,
)
from posog.module.ias_export.handlers import packet_client_id, pseudonym
from posog.module.ias_export.queries import CardFacts
from tests.reference import shared_dir

MSK = timezone(timedelta(hours=3))
SNILS = "11223344595"


def reference(relative: str) -> Path | None:
    """A shared reference file; None only outside CI (in CI a missing one FAILS the test)."""
    shared = shared_dir()
    path = None if shared is None else shared / "reference" / relative
    if path is None or not path.is_file():
        assert not os.environ.get("CI"), f"CI runs with ../shared/reference/{relative}: it is missing"
        return None
    return path


def reference_schema() -> etree.XMLSchema | None:
    path = reference("ias-mkgu/rates-1.2.0.xsd")
    return None if path is None else etree.XMLSchema(etree.parse(str(path)))


def form(foreign_id: str = "resp-1", **changes: object) -> RateForm:
    values: dict[str, object] = {
        "foreign_id": foreign_id,
        "user_id": "u" + "a" * 40,
        "authority_id": "10000000001",
        "service_id": "10000000123",
        "procedure_id": "10000000456",
        "service_date": datetime(2026, 11, 20, tzinfo=MSK),
        "received_date": datetime(2026, 11, 21, 12, 30, tzinfo=MSK),
        "okato": "45000000000",
        "rates": (Rate(9, 45), Rate(10, 46), Rate(13, 63)),
        "authority_name": "ГБУ «МФЦ города Москвы»",
        "service_name": "Выдача паспорта",
    }
    values.update(changes)
    return RateForm(**values)  # type: ignore[arg-type]


def test_every_built_document_is_valid_against_both_schemas() -> None:
    built = {
        "RatesRequest": documents.rates_request(4242, [form("a"), form("b", procedure_id=None, service_name=None)]),
        "RatesResponse": documents.rates_response(17),
        "PacketsRequest": documents.packets_request(4242, [17, 18]),
        "PacketsResponse": documents.packets_response(
            [PacketStatus(17, "accepted"), PacketStatus(18, "refused", ("значение 141 не относится к показателю 9",))]
        ),
    }
    schema = reference_schema()
    for name, body in built.items():
        element = documents.parse(body)
        assert documents.root_name(element) == name
        documents.validate(element)  # the project's own schema
        if schema is not None and name in ("RatesRequest", "RatesResponse"):  # the reference has these two
            assert schema.validate(element), [e.message for e in schema.error_log]

    document = documents.parse_rates_request(built["RatesRequest"])
    assert document.vendor_id == 4242
    assert document.forms[0] == form("a")
    assert document.forms[1].procedure_id is None
    root = documents.parse(built["RatesRequest"])
    first = root.find(f"{{{documents.RATES_NS}}}forms/{{{documents.RATES_NS}}}form")
    assert first is not None
    assert first.get("foreign-id") == "a"  # an attribute, not an element
    ns = {"r": documents.RATES_NS}
    assert root.xpath("string(r:vendor/@id)", namespaces=ns) == "4242"
    assert root.xpath("string(r:forms/r:form[1]/r:data/r:date)", namespaces=ns) == "2026-11-20T00:00:00+03:00"
    assert root.xpath("string(r:forms/r:form[1]/r:data/r:received-date)", namespaces=ns) == "2026-11-21T12:30:00+03:00"
    assert documents.parse_rates_response(built["RatesResponse"]) == 17
    assert documents.parse_packets_request(built["PacketsRequest"]) == (4242, [17, 18])
    statuses = documents.parse_packets_response(built["PacketsResponse"])
    assert [(s.packet_id, s.status, s.final) for s in statuses] == [(17, "accepted", True), (18, "refused", True)]
    assert statuses[1].errors == ("значение 141 не относится к показателю 9",)
    assert not PacketStatus(1, "received").final


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"okato": "45000000"}, "okato"),
        ({"rates": ()}, "rate"),
        ({"foreign_id": ""}, "foreign-id"),
        ({"user_id": ""}, "id"),
        ({"service_id": "10 000"}, "id"),
    ],
)
def test_a_document_the_schema_refuses_is_never_built(changes: dict[str, object], complaint: str) -> None:
    with pytest.raises(DocumentError) as caught:
        documents.rates_request(1, [form(**changes)])
    assert caught.value.reason == "invalid"
    assert complaint in str(caught.value)


def test_the_reference_refuses_what_our_schema_refuses() -> None:
    """The two schemas agree on the facts they share: an 8-digit ОКАТО and a missing vendor fail both."""
    schema = reference_schema()
    good = documents.rates_request_element(1, [form()])
    for breaks in ("okato", "vendor"):
        bad = copy.deepcopy(good)
        if breaks == "okato":
            okato = bad.find(f".//{{{documents.RATES_NS}}}okato")
            assert okato is not None
            okato.text = "4500000"
        else:
            vendor = bad.find(f"{{{documents.RATES_NS}}}vendor")
            assert vendor is not None
            bad.remove(vendor)
        with pytest.raises(DocumentError):
            documents.validate(bad)
        if schema is not None:
            assert not schema.validate(bad)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        documents.rates_request(1, [form(service_date=datetime(2026, 11, 20))])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not xml at all", "not_xml"),
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>', "dtd"),
        (b'<RatesRequest xmlns="urn:somebody-else"/>', "wrong_root"),
        (b'<PacketsResponse xmlns="http://vashkontrol.ru/service/rates/1.2.0"/>', "wrong_root"),
        (b'<RatesRequest xmlns="http://vashkontrol.ru/service/rates/1.2.0"><vendor id="0"/></RatesRequest>', "invalid"),
        (b"<a>" + b"x" * 2048 + b"</a>", "too_large"),
    ],
)
def test_malformed_documents_are_refused_with_their_reason(body: bytes, reason: str) -> None:
    limit = 1024 if reason == "too_large" else documents.MAX_BYTES
    with pytest.raises(DocumentError) as caught:
        documents.read(documents.parse(body, max_bytes=limit), "RatesRequest")
    assert caught.value.reason == reason


# --- Forms -------------------------------------------------------------------------------------------


def test_the_default_form_maps_each_criterion_to_its_indicator_and_values() -> None:
    default = mapping(DEFAULT_FORM, "default")
    assert DEFAULT_FORM.name == "direct 0.0.4"
    assert default.unmapped == []
    assert {c: default.indicators[c].id for c in CRITERIA} == {
        "service_time": 9,
        "queue_time": 10,
        "staff": 11,
        "comfort": 12,
        "information": 13,
    }
    rates = default.rates({"service_time": 1, "queue_time": 5, "staff": 3, "comfort": 2, "information": 4})
    assert [(r.indicator_id, r.value_id) for r in rates] == [(9, 41), (10, 50), (11, 53), (12, 57), (13, 64)]
    assert default.rates({"staff": 5}) == (Rate(11, 55),)  # an unrated criterion has no rate


def test_the_default_form_is_the_one_ias_serves() -> None:
    """Cross-check against ../shared/reference/ias-mkgu/form-direct-0.0.4.json (the ids as ИАС serves
    them, with the criterion and rating of each): every criterion and rating gives the same value id."""
    path = reference("ias-mkgu/form-direct-0.0.4.json")
    if path is None:
        return
    served = json.loads(path.read_text(encoding="utf-8"))
    default = mapping(DEFAULT_FORM, "default")
    pairs = 0
    for indicator in served["indicators"]:
        ours = default.indicators[indicator["criterion"]]
        assert ours.id == indicator["id"]
        for value in indicator["values"]:
            assert default.value_id(ours, value["rating"]) == value["id"]
            pairs += 1
    assert pairs == 25
    assert forms_from_file(path)[0].value_ids() == DEFAULT_FORM.value_ids()


def test_a_form_as_ias_serves_it_maps_by_title_and_order() -> None:
    """ИАС's own answer names no criterion and no rating: the titles and the order of the values do."""
    bare = json.loads(json.dumps(documents.FEDERAL_FORM_DIRECT))
    bare["version"] = "0.0.5"
    for n, indicator in enumerate(reversed(bare["indicators"])):
        indicator["id"] = 100 + n
        for i, value in enumerate(indicator["values"]):
            value["id"] = 500 + 10 * n + i
    bare["indicators"].reverse()
    (served,) = forms_from_json(json.dumps({"forms": [bare]}))
    found = mapping(served, "ias")
    assert found.unmapped == []
    assert found.indicators["service_time"].id == 104
    assert found.indicators["information"].id == 100
    assert found.rates({"service_time": 5, "information": 1}) == (Rate(100, 500), Rate(104, 544))


def test_a_criterion_the_form_lacks_is_not_sent_and_other_scales_are_scaled() -> None:
    document = {
        "serviceType": "mfc",
        "version": "1",
        "indicators": [
            {"id": 7, "title": "Вежливость сотрудников", "values": [{"id": 70}, {"id": 71}, {"id": 72}]},
        ],
    }
    found = mapping(form_from_document(document), "file")
    assert found.unmapped == ["service_time", "queue_time", "comfort", "information"]
    assert found.rates({"staff": 1, "comfort": 5}) == (Rate(7, 70),)
    assert [found.rates({"staff": r})[0].value_id for r in range(1, 6)] == [70, 70, 71, 72, 72]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"serviceType": "direct", "version": "1", "indicators": []}',
        '{"serviceType": "direct", "version": "1", "indicators": [{"id": 0, "values": [{"id": 1}]}]}',
        '{"serviceType": "direct", "version": "1", "indicators": [{"id": 1, "values": [{"id": true}]}]}',
    ],
)
def test_a_form_that_cannot_be_used_is_refused(text: str) -> None:
    with pytest.raises(FormError):
        forms_from_json(text)


# --- Pseudonyms and ids --------------------------------------------------------------------------------


def test_the_user_is_a_keyed_pseudonym_never_the_snils() -> None:
    card = CardFacts("MFC-77-1", None, None, "77", snils_hash="9" * 64)
    other = CardFacts("MFC-77-2", None, None, "77", snils_hash="9" * 64)
    purged = CardFacts("MFC-77-3", None, None, "77", snils_hash=None)
    first = pseudonym(b"key-1", card)
    assert first == pseudonym(b"key-1", other)  # the same citizen, the same pseudonym
    assert first != pseudonym(b"key-2", card)  # nobody without the key can recompute it
    assert pseudonym(b"key-1", purged) not in (first, pseudonym(b"key-1", card))
    for value in (first, pseudonym(b"key-1", purged)):
        assert SNILS not in value
        assert "9" * 64 not in value
        assert len(value) == 41
    documents.rates_request(1, [form(user_id=first)])


def test_packet_client_ids_fit_the_adapter() -> None:
    client_id = packet_client_id("posog-rates-20261101-20261130", 123)
    assert client_id == "ias-r-20261101-20261130-123"
    assert len(client_id) <= 50


def test_datetimes_keep_their_zone() -> None:
    body = documents.rates_request(1, [form(received_date=datetime(2026, 11, 21, 9, 30, tzinfo=UTC))])
    assert b"<received-date>2026-11-21T09:30:00+00:00</received-date>" in body
