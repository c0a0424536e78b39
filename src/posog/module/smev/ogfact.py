"""Вид сведений ОГ (INTEGRATION §2): the ``OgFactRequest`` element of namespace
``urn://x-artefacts-posog/og-fact/1.0.0`` read into the same og.fact/1 fact as the JSON channel, with
the same ``field: reason`` problems (``organization.inn: bad_checksum``), and written back.

The element is walked once (lxml has parsed it already, with the envelope) into the dictionary the
JSON channel would have given pydantic; the same model validates it with the same context. What only
XML can get wrong is named with the og.fact/1 field too: an element holding elements where a value
belongs (``card_id: bad_type``), an element twice (``service.date: duplicate_key``), an element in
another namespace (``organization.inn: wrong_namespace``), an element the schema does not have
(``Service.Colour: unknown_field`` — its name only when it is a plain identifier). Leaf values are
trimmed of XML white space (pretty-printing) and then refused for any control character left, as
the JSON channel refuses them. Element order is not checked: СМЭВ validates the registered schema
(``schemas/og-fact-1.0.0.xsd``, published as ``docs/og-fact-1.0.0.xsd``) before delivery.

The fact's identity does not depend on the channel: the content hash is taken of the validated fact
(:func:`posog.module.intake.handlers.fact_hash`), so a fact sent as XML and again as JSON (or under a
new СМЭВ MessageID) is a duplicate, and a changed field a conflict."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from lxml import etree
from pydantic import ValidationError

from posog.module.contracts import CONTROL_CHARACTERS, FactContext, FactProblem, OgFact, problems_from
from posog.module.intake.parsing import MAX_PROBLEMS, Rejection
from posog.module.smev.envelope import SCHEMAS, EnvelopeError, parse_xml

OG_FACT_NS = "urn://x-artefacts-posog/og-fact/1.0.0"
OG_FACT_ROOT = "{" + OG_FACT_NS + "}OgFactRequest"
OG_FACT_XSD = SCHEMAS / "og-fact-1.0.0.xsd"  # docs/og-fact-1.0.0.xsd is the same file (a test keeps them equal)

_N = "{" + OG_FACT_NS + "}"
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_XML_SPACE = " \t\r\n"

# XML element → og.fact/1 key; a section maps its own children.
_SECTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "Service": (
        "service",
        {
            "Date": "date",
            "Name": "name",
            "Code": "code",
            "FrguServiceId": "frgu_service_id",
            "FrguProcedureId": "frgu_procedure_id",
        },
    ),
    "Organization": (
        "organization",
        {
            "Name": "name",
            "Address": "address",
            "INN": "inn",
            "OGRN": "ogrn",
            "KPP": "kpp",
            "TypeCode": "type_code",
            "RegionCode": "region_code",
            "FrguAuthorityId": "frgu_authority_id",
        },
    ),
    "Citizen": (
        "citizen",
        {
            "LastName": "last_name",
            "FirstName": "first_name",
            "MiddleName": "middle_name",
            "BirthDate": "birth_date",
            "SNILS": "snils",
        },
    ),
}
_LEAVES = {"CardId": "card_id", "SurveyLevel": "survey_level"}
_ROOT_ORDER = ("CardId", "SurveyLevel", "Service", "Organization", "Citizen")


@functools.cache
def og_fact_schema() -> etree.XMLSchema:
    """The XSD of the вид сведений (package data): what a sender's system — and the emulators — validate against."""
    return etree.XMLSchema(etree.parse(str(OG_FACT_XSD), etree.XMLParser(resolve_entities=False, no_network=True)))


def is_og_fact(element: etree._Element) -> bool:
    return element.tag == OG_FACT_ROOT


# --- Reading --------------------------------------------------------------------------------------


class _Walk:
    """One pass over an OgFactRequest: the dictionary for the model and the problems only XML has.
    Tags are looked up whole (``{namespace}Local``), so the usual document costs one dictionary
    lookup per element; names are split only to report a problem."""

    def __init__(self) -> None:
        self.problems: list[FactProblem] = []
        self.texts: list[tuple[str, str]] = []  # (field, value) of every leaf read

    def root(self, element: etree._Element) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for child in element:
            entry = _ROOT_TAGS.get(child.tag)  # type: ignore[arg-type]
            if entry is None:
                self._unknown(child, "")
                continue
            key, names = entry
            if key in found:
                self.problems.append(FactProblem(key, "duplicate_key"))
            elif names is None:
                found[key] = self.leaf(child, key)
            elif len(child) == 0 and (child.text or "").strip(_XML_SPACE):
                found[key] = child.text  # a value where a section belongs: the model says bad_type
            else:
                found[key] = self.section(child, key, names)
        return found

    def section(self, element: etree._Element, path: str, names: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for child in element:
            entry = names.get(child.tag)  # type: ignore[arg-type]
            if entry is None:
                self._unknown(child, path)
                continue
            key, field = entry
            if key in found:
                self.problems.append(FactProblem(field, "duplicate_key"))
            elif len(child) == 0:  # the usual leaf, inline
                text = child.text
                value = text.strip(_XML_SPACE) if text else ""
                self.texts.append((field, value))
                found[key] = value
            else:
                found[key] = self.leaf(child, field)
        return found

    def leaf(self, element: etree._Element, field: str) -> Any:
        if len(element) == 0:
            text = element.text or ""
        elif any(isinstance(child.tag, str) for child in element):
            return {}  # elements where a value belongs: the model says bad_type
        else:
            text = "".join(element.itertext())  # split by a comment or processing instruction
        text = text.strip(_XML_SPACE)
        self.texts.append((field, text))
        return text

    def controlled(self) -> set[str]:
        """The fields whose value holds a control character: one search over all the values, and
        field by field only when it finds one."""
        if not CONTROL_CHARACTERS.search("".join([value for _, value in self.texts])):
            return set()
        return {field for field, value in self.texts if CONTROL_CHARACTERS.search(value)}

    def _unknown(self, child: etree._Element, path: str) -> None:
        """An element that is not where the schema has it: in another namespace, or unknown."""
        if not isinstance(child.tag, str):  # a comment or processing instruction (when the parser kept them)
            return
        namespace, local = _split(child.tag)
        if not path and local in _LEAVES:
            known: str | None = _LEAVES[local]
        elif not path and local in _SECTIONS:
            known = _SECTIONS[local][0]
        else:
            section = next((names for key, names in _SECTIONS.values() if key == path), {})
            known = f"{path}.{section[local]}" if local in section else None
        if known is not None and namespace != OG_FACT_NS:
            self.problems.append(FactProblem(known, "wrong_namespace"))
            return
        name = local if _SAFE_NAME.match(local) else "?"
        self.problems.append(FactProblem(f"{path}.{name}" if path else name, "unknown_field"))


# Whole tags → og.fact/1 keys (and a section's own children, by whole tag).
_ROOT_TAGS: dict[str, tuple[str, dict[str, tuple[str, str]] | None]] = {
    **{_N + local: (key, None) for local, key in _LEAVES.items()},
    **{
        _N + local: (key, {_N + child: (name, f"{key}.{name}") for child, name in names.items()})
        for local, (key, names) in _SECTIONS.items()
    },
}


def read_og_fact(element: etree._Element, context: FactContext, *, message_id: str | None) -> OgFact | Rejection:
    """An OgFactRequest element as the og.fact/1 fact, or every problem with it. ``message_id`` is the
    СМЭВ MessageID (the envelope's). Never raises."""
    try:
        return _read(element, context, message_id)
    except Exception:  # pydantic and lxml should not raise anything else; if they do, it is the message's fault
        return Rejection((FactProblem("payload", "unreadable"),))


def _read(element: etree._Element, context: FactContext, message_id: str | None) -> OgFact | Rejection:
    if element.tag != OG_FACT_ROOT:
        _namespace, local = _split(element.tag if isinstance(element.tag, str) else "")
        return Rejection((FactProblem("payload", "wrong_namespace" if local == "OgFactRequest" else "wrong_element"),))
    walk = _Walk()
    data: dict[str, Any] = {"schema": "og.fact/1", **walk.root(element)}
    if message_id is not None:
        data["message_id"] = message_id
    controlled = walk.controlled()
    problems: list[FactProblem] = []
    fact: OgFact | None = None
    try:
        fact = OgFact.model_validate(data, context=context)
    except ValidationError as error:
        problems = [
            FactProblem(p.field, "control_character") if p.field in controlled else p for p in problems_from(error)
        ]
    named = {p.field for p in problems}
    problems += [FactProblem(field, "control_character") for field in sorted(controlled) if field not in named]
    problems = walk.problems + problems
    if problems:
        unique = list(dict.fromkeys(problems))
        if len(unique) > MAX_PROBLEMS:
            unique = [*unique[: MAX_PROBLEMS - 1], FactProblem("payload", "too_many_problems")]
        return Rejection(tuple(unique), _card_id(data.get("card_id")))
    assert fact is not None
    if fact.resolved_region() is None:
        return Rejection((FactProblem("organization.region_code", "unresolved"),), fact.card_id)
    return fact


def read_og_fact_bytes(
    body: bytes, context: FactContext, *, message_id: str | None, max_bytes: int
) -> OgFact | Rejection:
    """An OgFactRequest document (a stored rejected fact re-driven): parsed safely, then as above."""
    try:
        element = parse_xml(body, max_bytes=max_bytes)
    except EnvelopeError as error:
        reason = {"not_xml": "not_xml", "too_large": "too_large", "entities": "entities"}.get(error.reason, "not_xml")
        return Rejection((FactProblem("payload", reason),))
    return read_og_fact(element, context, message_id=message_id)


def looks_like_og_fact(body: bytes) -> bool:
    """Whether a stored body is an OgFactRequest document (the XML channel) rather than JSON."""
    return body.lstrip()[:1] == b"<" and OG_FACT_NS.encode() in body[:1024]


def card_id_of_xml(body: bytes) -> str | None:
    """The ``CardId`` of an OgFactRequest document when it can be read safely, else None. Never raises."""
    try:
        element = parse_xml(body, max_bytes=max(len(body), 1))
        return _card_id(element.findtext(_N + "CardId"))
    except Exception:
        return None


def _card_id(value: object) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        if 0 < len(value) <= 100 and re.match(r"^[\w.:/\-]+$", value):
            return value
    return None


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


# --- Writing --------------------------------------------------------------------------------------


def og_fact_element(fact: Mapping[str, Any] | OgFact) -> etree._Element:
    """The OgFactRequest of an og.fact/1 fact (a model, or its JSON form as a dictionary). Absent and
    null fields are left out; values are written as given (an invalid fact makes an invalid element,
    which is what tests of rejections want)."""
    data = fact.model_dump(mode="json", by_alias=True) if isinstance(fact, OgFact) else fact
    root = etree.Element(OG_FACT_ROOT, nsmap={None: OG_FACT_NS})
    for local in _ROOT_ORDER:
        if local in _LEAVES:
            _put(root, local, data.get(_LEAVES[local]))
            continue
        key, names = _SECTIONS[local]
        section = data.get(key)
        if not isinstance(section, Mapping):
            continue
        element = etree.SubElement(root, _N + local)
        for child, child_key in names.items():
            _put(element, child, section.get(child_key))
    return root


def og_fact_xml(fact: Mapping[str, Any] | OgFact) -> bytes:
    """:func:`og_fact_element` as a document (UTF-8, no declaration: it goes inside an envelope)."""
    return etree.tostring(og_fact_element(fact), encoding="UTF-8")


def _put(parent: etree._Element, local: str, value: Any) -> None:
    if value is None:
        return
    etree.SubElement(parent, _N + local).text = str(value)
