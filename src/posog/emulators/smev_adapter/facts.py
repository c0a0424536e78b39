"""ОГ facts as a provider's system sends them through СМЭВ: ``OgFactRequest`` of the вид сведений ОГ
(``urn://x-artefacts-posog/og-fact/1.0.0``, INTEGRATION.md §2), written from an og.fact/1 dictionary
(the fact generator's). A field the dictionary lacks is left out, a field XML has no place for
(``schema``, ``message_id`` — the latter travels as ``smevMetadata/MessageId``) is not written."""

from __future__ import annotations

from typing import Any

from lxml import etree

OG_FACT_NS = "urn://x-artefacts-posog/og-fact/1.0.0"
_N = f"{{{OG_FACT_NS}}}"

# og.fact/1 key → element, in the schema's order.
_SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "service",
        "Service",
        (
            ("date", "Date"),
            ("name", "Name"),
            ("code", "Code"),
            ("frgu_service_id", "FrguServiceId"),
            ("frgu_procedure_id", "FrguProcedureId"),
        ),
    ),
    (
        "organization",
        "Organization",
        (
            ("name", "Name"),
            ("address", "Address"),
            ("inn", "INN"),
            ("ogrn", "OGRN"),
            ("kpp", "KPP"),
            ("type_code", "TypeCode"),
            ("region_code", "RegionCode"),
            ("frgu_authority_id", "FrguAuthorityId"),
        ),
    ),
    (
        "citizen",
        "Citizen",
        (
            ("last_name", "LastName"),
            ("first_name", "FirstName"),
            ("middle_name", "MiddleName"),
            ("birth_date", "BirthDate"),
            ("snils", "SNILS"),
        ),
    ),
)
# Kinds of the fact generator's broken facts that XML can carry (the others are JSON's own: a body
# that is not JSON or not an object, a wrong ``schema``, a key og.fact/1 does not have).
XML_INVALID_KINDS = frozenset(
    {
        "card_id_missing",
        "card_id_format",
        "level",
        "service_date_format",
        "service_date_future",
        "service_date_old",
        "org_name_missing",
        "inn_checksum",
        "inn_length",
        "inn_format",
        "ogrn_checksum",
        "kpp_format",
        "kpp_missing",
        "kpp_for_individual",
        "type_unknown",
        "region_unknown",
    }
)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def og_fact_element(fact: dict[str, Any]) -> etree._Element:
    """``OgFactRequest`` for an og.fact/1 dictionary."""
    root = etree.Element(_N + "OgFactRequest", nsmap={None: OG_FACT_NS})
    if fact.get("card_id") is not None:
        etree.SubElement(root, _N + "CardId").text = _text(fact["card_id"])
    if fact.get("survey_level") is not None:
        etree.SubElement(root, _N + "SurveyLevel").text = _text(fact["survey_level"])
    for key, element, fields in _SECTIONS:
        part = fact.get(key)
        if not isinstance(part, dict):
            continue
        section = etree.SubElement(root, _N + element)
        for field, name in fields:
            if part.get(field) is not None:
                etree.SubElement(section, _N + name).text = _text(part[field])
    return root


def og_fact_xml(fact: dict[str, Any]) -> bytes:
    return bytes(etree.tostring(og_fact_element(fact), encoding="UTF-8"))
