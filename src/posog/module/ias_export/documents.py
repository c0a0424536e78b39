"""The ИАС МКГУ (vashkontrol) messages, built and read with lxml and checked against the project's own
schema (``schemas/rates-1.2.0.xsd`` and the common types it imports; INTEGRATION.md §4):

- ``RatesRequest`` (namespace ``http://vashkontrol.ru/service/rates/1.2.0``) = ``vendor@id`` +
  ``forms/form+``; a ``form`` has the attribute ``foreign-id`` (our id of the rating), ``data``
  {``user@id`` — a pseudonym, ``authority@id``, ``service@id``, ``procedure@id``? — ФРГУ ids, ``date`` and
  ``received-date`` — xs:dateTime, ``okato`` — 11 digits} and ``rates/rate+`` {``@indicator-id``,
  ``@value-id``: ids of the form ИАС serves, never the rating itself};
- ``RatesResponse/packet/id`` — the packet ИАС made of a RatesRequest;
- ``PacketsRequest`` = ``vendor@id`` + ``packet/id``+ and ``PacketsResponse/packet{id, status, error*}``.

Pure: no I/O. Every builder validates what it built (a document that does not match the schema is a
bug here, raised as :class:`DocumentError`, never sent); every reader refuses DTDs, entities, network
access and bodies above a size limit, and names what is wrong in :attr:`DocumentError.reason`.

The ids of the federal form "direct" 0.0.4 (INTEGRATION.md §4) are here too, as ИАС serves them
(:data:`FEDERAL_FORM_DIRECT`): the module's default form and what the ИАС emulator serves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Final

from lxml import etree

RATES_NS: Final = "http://vashkontrol.ru/service/rates/1.2.0"
TYPES_NS: Final = "http://vashkontrol.ru/service/common/types/1.1.0"
MAX_BYTES: Final = 20 * 1024 * 1024
FINAL_STATUSES: Final = frozenset({"accepted", "refused"})


class DocumentError(ValueError):
    """A document that is not what it should be. ``reason``: ``not_xml``, ``too_large``, ``dtd``,
    ``wrong_root``, ``invalid`` (the schema's complaint follows in the message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message


@dataclass(frozen=True)
class Rate:
    indicator_id: int
    value_id: int


@dataclass(frozen=True)
class RateForm:
    """One rating as a ``form``: no personal data (``user_id`` is a pseudonym)."""

    foreign_id: str
    user_id: str
    authority_id: str
    service_id: str
    procedure_id: str | None
    service_date: datetime
    received_date: datetime
    okato: str
    rates: tuple[Rate, ...]
    authority_name: str | None = None
    service_name: str | None = None


@dataclass(frozen=True)
class RatesRequestDocument:
    vendor_id: int
    forms: tuple[RateForm, ...]


@dataclass(frozen=True)
class PacketStatus:
    packet_id: int
    status: str
    errors: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


# --- The federal form "direct" 0.0.4 ---------------------------------------------------------------

_LEVELS: Final = ("Очень плохо", "Плохо", "Нормально", "Хорошо", "Отлично")
_DIRECT_INDICATORS: Final = (
    (9, "Время предоставления государственной услуги"),
    (10, "Время ожидания в очереди при получении государственной услуги"),
    (
        11,
        "Вежливость и компетентность сотрудника, взаимодействующего с заявителем "
        "при предоставлении государственной услуги",
    ),
    (12, "Комфортность условий в помещении, в котором предоставлена государственная услуга"),
    (13, "Доступность информации о порядке предоставления государственной услуги"),
)  # fmt: skip
FEDERAL_FORM_DIRECT: Final[dict[str, Any]] = {
    "serviceType": "direct",
    "version": "0.0.4",
    "indicators": [
        {
            "id": indicator,
            "title": title,
            # values 41–45, 46–50 … 61–65: «Очень плохо» … «Отлично», in that order
            "values": [{"id": 41 + 5 * n + i, "title": level} for i, level in enumerate(_LEVELS)],
        }
        for n, (indicator, title) in enumerate(_DIRECT_INDICATORS)
    ],
}


# --- Parsing and validation ------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def parse(body: bytes, *, max_bytes: int = MAX_BYTES) -> etree._Element:
    """A document's root element; no DTD, no entities, no network, at most ``max_bytes``."""
    if len(body) > max_bytes:
        raise DocumentError("too_large", f"the document has {len(body)} bytes, more than {max_bytes}")
    try:
        tree = etree.fromstring(body, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise DocumentError("not_xml", str(exc)[:300]) from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise DocumentError("dtd", "DTDs and entities are not accepted")
    return tree.getroot()


@cache
def schema() -> etree.XMLSchema:
    """The project's schema of the rates namespace (with the common types it imports)."""
    folder = resources.files("posog.module.ias_export") / "schemas"
    with resources.as_file(folder / "rates-1.2.0.xsd") as path:
        return etree.XMLSchema(etree.parse(str(path), _parser()))


def validate(element: etree._Element, *, against: etree.XMLSchema | None = None) -> None:
    """Raise :class:`DocumentError` (``invalid``) unless ``element`` matches the schema."""
    checker = against or schema()
    if not checker.validate(element):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in list(checker.error_log)[:5])
        raise DocumentError("invalid", errors)


def root_name(element: etree._Element) -> str:
    """The local name of a document of the rates namespace, else :class:`DocumentError` ``wrong_root``."""
    qname = etree.QName(element)
    if qname.namespace != RATES_NS:
        raise DocumentError("wrong_root", f"expected an element of {RATES_NS}, got {qname.text}")
    return str(qname.localname)


def read(body: bytes | etree._Element, expected: str) -> etree._Element:
    element = body if isinstance(body, etree._Element) else parse(body)
    name = root_name(element)
    if name != expected:
        raise DocumentError("wrong_root", f"expected {expected}, got {name}")
    validate(element)
    return element


# --- Building --------------------------------------------------------------------------------------


def _q(tag: str) -> str:
    return f"{{{RATES_NS}}}{tag}"


def _named(parent: etree._Element, tag: str, ident: str, name: str | None = None) -> None:
    element = etree.SubElement(parent, _q(tag), {"id": ident})
    if name:
        element.text = name[:1000]


def _text(parent: etree._Element, tag: str, value: str) -> None:
    etree.SubElement(parent, _q(tag)).text = value


def _datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("a dateTime for ИАС needs its time zone")
    return value.isoformat(timespec="seconds")


def _serialise(root: etree._Element) -> bytes:
    validate(root)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


def rates_request_element(vendor_id: int, forms: Iterable[RateForm]) -> etree._Element:
    root = etree.Element(_q("RatesRequest"), nsmap={None: RATES_NS})
    etree.SubElement(root, _q("vendor"), {"id": str(vendor_id)})
    container = etree.SubElement(root, _q("forms"))
    for form in forms:
        element = etree.SubElement(container, _q("form"), {"foreign-id": form.foreign_id})
        data = etree.SubElement(element, _q("data"))
        _named(data, "user", form.user_id)
        _named(data, "authority", form.authority_id, form.authority_name)
        _named(data, "service", form.service_id, form.service_name)
        if form.procedure_id:
            _named(data, "procedure", form.procedure_id)
        _text(data, "date", _datetime(form.service_date))
        _text(data, "received-date", _datetime(form.received_date))
        _text(data, "okato", form.okato)
        rates = etree.SubElement(element, _q("rates"))
        for rate in form.rates:
            etree.SubElement(
                rates, _q("rate"), {"indicator-id": str(rate.indicator_id), "value-id": str(rate.value_id)}
            )
    return root


def rates_request(vendor_id: int, forms: Iterable[RateForm]) -> bytes:
    """A ``RatesRequest`` document (UTF-8, with declaration), checked against the schema."""
    return _serialise(rates_request_element(vendor_id, forms))


def rates_response(packet_id: int) -> bytes:
    root = etree.Element(_q("RatesResponse"), nsmap={None: RATES_NS})
    _text(etree.SubElement(root, _q("packet")), "id", str(packet_id))
    return _serialise(root)


def packets_request(vendor_id: int, packet_ids: Sequence[int]) -> bytes:
    root = etree.Element(_q("PacketsRequest"), nsmap={None: RATES_NS})
    etree.SubElement(root, _q("vendor"), {"id": str(vendor_id)})
    for packet_id in packet_ids:
        _text(etree.SubElement(root, _q("packet")), "id", str(packet_id))
    return _serialise(root)


def packets_response(statuses: Sequence[PacketStatus]) -> bytes:
    root = etree.Element(_q("PacketsResponse"), nsmap={None: RATES_NS})
    for status in statuses:
        packet = etree.SubElement(root, _q("packet"))
        _text(packet, "id", str(status.packet_id))
        _text(packet, "status", status.status)
        for error in status.errors:
            _text(packet, "error", error[:1000])
    return _serialise(root)


# --- Reading ---------------------------------------------------------------------------------------


def _ns(element: etree._Element, path: str) -> str:
    found = element.findtext(path.replace("r:", f"{{{RATES_NS}}}"))
    return (found or "").strip()


def _find(element: etree._Element, path: str) -> etree._Element | None:
    return element.find(path.replace("r:", f"{{{RATES_NS}}}"))


def parse_rates_response(body: bytes | etree._Element) -> int:
    return int(_ns(read(body, "RatesResponse"), "r:packet/r:id"))


def parse_packets_response(body: bytes | etree._Element) -> list[PacketStatus]:
    root = read(body, "PacketsResponse")
    return [
        PacketStatus(
            int(_ns(packet, "r:id")),
            _ns(packet, "r:status"),
            tuple((e.text or "").strip() for e in packet.iterfind(f"{{{RATES_NS}}}error")),
        )
        for packet in root.iterfind(f"{{{RATES_NS}}}packet")
    ]


def parse_packets_request(body: bytes | etree._Element) -> tuple[int, list[int]]:
    root = read(body, "PacketsRequest")
    vendor = _find(root, "r:vendor")
    assert vendor is not None  # the schema requires it
    return int(vendor.get("id", "0")), [int(_ns(p, "r:id")) for p in root.iterfind(f"{{{RATES_NS}}}packet")]


def parse_rates_request(body: bytes | etree._Element) -> RatesRequestDocument:
    """A ``RatesRequest`` read back (the ИАС emulator, tests): schema-checked first."""
    root = read(body, "RatesRequest")
    vendor = _find(root, "r:vendor")
    assert vendor is not None
    forms = []
    for form in root.iterfind(f"{{{RATES_NS}}}forms/{{{RATES_NS}}}form"):
        data = _find(form, "r:data")
        assert data is not None

        def ident(tag: str, data: etree._Element = data) -> str | None:
            found = _find(data, f"r:{tag}")
            return None if found is None else found.get("id")

        def name(tag: str, data: etree._Element = data) -> str | None:
            found = _find(data, f"r:{tag}")
            return None if found is None or not found.text else found.text

        forms.append(
            RateForm(
                foreign_id=form.get("foreign-id", ""),
                user_id=ident("user") or "",
                authority_id=ident("authority") or "",
                service_id=ident("service") or "",
                procedure_id=ident("procedure"),
                service_date=datetime.fromisoformat(_ns(data, "r:date")),
                received_date=datetime.fromisoformat(_ns(data, "r:received-date")),
                okato=_ns(data, "r:okato"),
                rates=tuple(
                    Rate(int(r.get("indicator-id", "0")), int(r.get("value-id", "0")))
                    for r in form.iterfind(f"{{{RATES_NS}}}rates/{{{RATES_NS}}}rate")
                ),
                authority_name=name("authority"),
                service_name=name("service"),
            )
        )
    return RatesRequestDocument(int(vendor.get("id", "0")), tuple(forms))
