"""Вид сведений ОГ: the OgFactRequest element reads into the same og.fact/1 fact as the JSON channel,
with the same ``field: reason`` problems; what only XML can get wrong is named by field too; the
schema published in docs/ is the one the code uses."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import INVALID_KINDS, TYPES, FactFactory
from posog.module.contracts import FactContext, OgFact
from posog.module.intake.handlers import fact_hash
from posog.module.intake.parsing import Rejection, read_fact
from posog.module.smev.ogfact import (
    OG_FACT_NS,
    OG_FACT_XSD,
    card_id_of_xml,
    looks_like_og_fact,
    og_fact_element,
    og_fact_schema,
    og_fact_xml,
    read_og_fact,
    read_og_fact_bytes,
)
from tests.reference import REPO_ROOT

TODAY = today(utcnow)
CONTEXT = FactContext(today=TODAY, horizon_days=365, known_types=frozenset(TYPES))
N = "{" + OG_FACT_NS + "}"


def _fact(seed: int = 7) -> dict[str, Any]:
    return FactFactory(seed=seed, today=TODAY).fact()


def _xml(fact: dict[str, Any]) -> etree._Element:
    return og_fact_element(fact)


def _read_xml(element: etree._Element, message_id: str | None = "6b1e4c2a-0c3d-11ee-9e2f-0242ac120002") -> Any:
    return read_og_fact(element, CONTEXT, message_id=message_id)


def _problems(element: etree._Element) -> list[str]:
    result = _read_xml(element)
    assert isinstance(result, Rejection), "expected a rejection"
    return [str(p) for p in result.problems]


def test_the_published_schema_is_the_one_the_code_uses() -> None:
    assert (REPO_ROOT / "docs" / "og-fact-1.0.0.xsd").read_bytes() == OG_FACT_XSD.read_bytes()
    assert og_fact_schema().validate(_xml(_fact()))


def test_the_schema_is_shipped_as_package_data() -> None:
    # hatch ships every file under src/posog; the schemas must not be excluded by name or .gitignore.
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'packages = ["src/posog"]' in pyproject
    ignored = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8") if (REPO_ROOT / ".gitignore").exists() else ""
    assert ".xsd" not in ignored
    assert OG_FACT_XSD.parent == REPO_ROOT / "src" / "posog" / "module" / "smev" / "schemas"


@pytest.mark.parametrize("seed", range(40))
def test_a_fact_in_xml_is_the_same_fact_as_in_json(seed: int) -> None:
    fact = _fact(seed)
    element = _xml(fact)
    assert og_fact_schema().validate(element), og_fact_schema().error_log
    from_xml = _read_xml(element, fact["message_id"])
    from_json = read_fact(json.dumps(fact, ensure_ascii=False).encode(), CONTEXT)
    assert isinstance(from_xml, OgFact)
    assert isinstance(from_json, OgFact)
    assert from_xml == from_json
    assert fact_hash(from_xml) == fact_hash(from_json)
    # and back: the model written out reads the same
    assert _read_xml(og_fact_element(from_xml), fact["message_id"]) == from_xml


def test_the_frgu_ids_are_read_and_change_the_hash_only_when_present() -> None:
    fact = _fact()
    plain = _read_xml(_xml(fact))
    fact["service"]["frgu_service_id"] = "10000000001"
    fact["service"]["frgu_procedure_id"] = "10000000002"
    fact["organization"]["frgu_authority_id"] = "10000000003"
    element = _xml(fact)
    assert og_fact_schema().validate(element)
    with_ids = _read_xml(element)
    assert isinstance(with_ids, OgFact)
    assert isinstance(plain, OgFact)
    assert (with_ids.service.frgu_service_id, with_ids.service.frgu_procedure_id) == ("10000000001", "10000000002")
    assert with_ids.organization.frgu_authority_id == "10000000003"
    assert fact_hash(with_ids) != fact_hash(plain)
    # A card stored before the ids existed keeps its hash: absent ids are not part of it.
    legacy = json.dumps(
        plain.model_dump(
            mode="json",
            by_alias=True,
            exclude={
                "message_id": True,
                "service": {"frgu_service_id", "frgu_procedure_id"},
                "organization": {"frgu_authority_id"},
            },
        ),
        sort_keys=True,
        ensure_ascii=False,
    )
    import hashlib

    assert fact_hash(plain) == hashlib.sha256(legacy.encode()).hexdigest()
    fact["service"]["frgu_service_id"] = "ФРГУ-1"
    assert _problems(_xml(fact)) == ["service.frgu_service_id: bad_format"]


SAME_AS_JSON = sorted(set(INVALID_KINDS) - {"not_json", "not_object", "schema", "unknown_field"})


@pytest.mark.parametrize("kind", SAME_AS_JSON)
def test_every_invalid_fact_has_the_same_problems_as_in_json(kind: str) -> None:
    factory = FactFactory(seed=3, today=TODAY)
    body, expected = factory.invalid(kind)
    fact = json.loads(body)
    from_json = read_fact(body, CONTEXT)
    assert isinstance(from_json, Rejection)
    problems = _problems(_xml(fact))
    assert expected in problems
    assert problems == [str(p) for p in from_json.problems]


def _replace(element: etree._Element, path: str, new: etree._Element) -> etree._Element:
    old = element.find(path)
    assert old is not None
    old.getparent().replace(old, new)  # type: ignore[union-attr]
    return element


def test_what_only_xml_gets_wrong_is_named_by_field() -> None:
    fact = _fact()
    # an element the schema does not have, at the top and in a section
    element = _xml(fact)
    etree.SubElement(element, N + "Priority").text = "high"
    etree.SubElement(element.find(N + "Service"), N + "Colour").text = "red"  # type: ignore[arg-type]
    assert _problems(element) == ["service.Colour: unknown_field", "Priority: unknown_field"]  # document order
    # an element twice
    element = _xml(fact)
    etree.SubElement(element.find(N + "Organization"), N + "INN").text = "7703012348"  # type: ignore[arg-type]
    assert _problems(element) == ["organization.inn: duplicate_key"]
    # an element of another namespace where a field belongs
    element = _xml(fact)
    stranger = etree.Element("{urn:other}INN")
    stranger.text = fact["organization"]["inn"]
    _replace(element, f"{N}Organization/{N}INN", stranger)
    assert _problems(element) == ["organization.inn: wrong_namespace", "organization.inn: required"]
    # elements where a value belongs, a value where a section belongs
    element = _xml(fact)
    card = element.find(N + "CardId")
    assert card is not None
    etree.SubElement(card, N + "Part").text = "1"
    citizen = etree.Element(N + "Citizen")
    citizen.text = "Иванов Иван"
    _replace(element, N + "Citizen", citizen)
    assert _problems(element) == ["card_id: bad_type", "citizen: bad_type"]
    # a whole section missing
    element = _xml(fact)
    service = element.find(N + "Service")
    assert service is not None
    element.remove(service)
    assert _problems(element) == ["service: required"]
    # a name that is not an identifier is not echoed
    element = _xml(fact)
    etree.SubElement(element, N + "Иванов").text = "x"
    assert _problems(element) == ["?: unknown_field"]


def test_control_characters_are_refused_as_in_json_and_xml_white_space_trimmed() -> None:
    fact = _fact()
    element = _xml(fact)
    name = element.find(f"{N}Citizen/{N}LastName")
    assert name is not None
    name.text = "Ива\u0085нов"
    result = _read_xml(element)
    assert isinstance(result, Rejection)
    assert [str(p) for p in result.problems] == ["citizen.last_name: control_character"]
    assert "Ива" not in repr(result)
    name.text = "\n      Иванов\n    "  # pretty-printing
    read = _read_xml(element)
    assert isinstance(read, OgFact)
    assert read.citizen.last_name == "Иванов"


def test_another_root_and_a_missing_message_id() -> None:
    assert _problems(etree.Element("{urn:other}OgFactRequest")) == ["payload: wrong_namespace"]
    assert _problems(etree.Element(N + "GepsNotification")) == ["payload: wrong_element"]
    assert _problems(etree.Element(N + "GepsNotification")) == ["payload: wrong_element"]
    result = read_og_fact(_xml(_fact()), CONTEXT, message_id=None)
    assert isinstance(result, Rejection)
    assert [str(p) for p in result.problems] == ["message_id: required"]


def test_a_stored_document_reads_again_and_its_card_id_is_found() -> None:
    fact = _fact()
    body = og_fact_xml(fact)
    assert looks_like_og_fact(body)
    assert not looks_like_og_fact(json.dumps(fact).encode())
    assert not looks_like_og_fact(b"<html/>")
    read = read_og_fact_bytes(body, CONTEXT, message_id=fact["message_id"], max_bytes=64 * 1024)
    assert isinstance(read, OgFact)
    assert read.card_id == fact["card_id"]
    assert card_id_of_xml(body) == fact["card_id"]
    assert card_id_of_xml(b"<broken") is None
    too_large = read_og_fact_bytes(body, CONTEXT, message_id="m", max_bytes=100)
    assert isinstance(too_large, Rejection)
    assert [str(p) for p in too_large.problems] == ["payload: too_large"]
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><OgFactRequest xmlns="'
        + OG_FACT_NS.encode()
        + b'">&a;</OgFactRequest>'
    )
    assert [str(p) for p in read_og_fact_bytes(bomb, CONTEXT, message_id="m", max_bytes=64 * 1024).problems] == [  # type: ignore[union-attr]
        "payload: entities"
    ]


def test_the_schema_refuses_what_smev_would_refuse() -> None:
    fact = _fact()
    fact["survey_level"] = "global"
    assert not og_fact_schema().validate(_xml(fact))
    fact = _fact()
    fact["service"]["date"] = date(2026, 1, 2).strftime("%d.%m.%Y")
    assert not og_fact_schema().validate(_xml(fact))


# Random changes to a valid fact (a field removed, or any printable text without XML's white space
# at its ends): the XML channel must give exactly the JSON channel's problems — or the same fact.
_CHANGEABLE = [
    ("card_id",),
    ("survey_level",),
    ("service", "date"),
    ("service", "name"),
    ("service", "code"),
    ("service", "frgu_service_id"),
    ("organization", "name"),
    ("organization", "address"),
    ("organization", "inn"),
    ("organization", "ogrn"),
    ("organization", "kpp"),
    ("organization", "type_code"),
    ("organization", "region_code"),
    ("citizen", "last_name"),
    ("citizen", "first_name"),
    ("citizen", "middle_name"),
    ("citizen", "birth_date"),
    ("citizen", "snils"),
]
_TEXT = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=24).map(lambda t: t.strip(" \t\r\n"))
_VALUE = st.one_of(
    st.none(),
    _TEXT,
    st.sampled_from(
        ["", "0", "2026-02-30", "1900-01-01", "7707083893", "770701001", "federal", "regional", "77", "99"]
    ),
)


@given(seed=st.integers(0, 5_000), changes=st.lists(st.tuples(st.sampled_from(_CHANGEABLE), _VALUE), max_size=4))
@settings(max_examples=200, deadline=None)
def test_xml_and_json_agree_on_random_changes(seed: int, changes: list[tuple[tuple[str, ...], str | None]]) -> None:
    fact = _fact(seed)
    for path, value in changes:
        target = fact
        for key in path[:-1]:
            target = target[key]
        if value is None:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    from_json = read_fact(json.dumps(fact, ensure_ascii=False).encode(), CONTEXT)
    from_xml = _read_xml(_xml(fact), message_id=fact["message_id"])
    if isinstance(from_json, Rejection):
        assert isinstance(from_xml, Rejection)
        assert [str(p) for p in from_xml.problems] == [str(p) for p in from_json.problems]
        assert from_xml.card_id == from_json.card_id
    else:
        assert not isinstance(from_xml, Rejection)
        assert from_xml == from_json
        assert fact_hash(from_xml) == fact_hash(from_json)
