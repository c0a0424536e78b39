"""The ГЭПС business document behind a mapping of its own (INTEGRATION §3).

ЕПГУ owns the ГЭПС вид сведений and its registered schema is not public. Everything that depends on
that schema is here, behind :class:`GepsMapping`: the XML the module sends for a notification (the one
element of the ``RequestMessage``'s ``MessagePrimaryContent``) and how ЕПГУ's status text says
"delivered". :class:`PosogGepsMapping` is ПОС ОГ's stand-in (namespace
``urn://x-artefacts-posog/geps-notification/1.0.0``, root ``GepsNotification``, its XSD in
``docs/geps-notification-1.0.0.xsd``); the real schema is plugged in by another implementation of
the protocol, nothing else changes.

Every document is validated against the mapping's schema before it is sent: real СМЭВ refuses business
data that does not match the registered schema, and a document that cannot match is refused here, with
the field named — never with the personal data it holds."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib import resources
from typing import Protocol

from lxml import etree

from posog.core import ids
from posog.module.contracts import GepsNotification

GEPS_NS = "urn://x-artefacts-posog/geps-notification/1.0.0"
SCHEMA_FILE = "geps-notification-1.0.0.xsd"
# The first word of a status's text (``delivered: …``) or a ResponseMessage status code meaning that
# the notification reached the citizen's inbox (what the ЕПГУ emulator sends).
DELIVERED_CODES = frozenset({"delivered"})


class GepsDocumentError(Exception):
    """A notification that cannot be written as a valid business document. ``problems`` name the
    elements and what is wrong (libxml2's messages without the values), never the personal data."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class GepsMapping(Protocol):
    """What the ГЭПС exchange needs of ЕПГУ's schema."""

    namespace: str

    def document(self, notification: GepsNotification) -> bytes:
        """The business XML of ``notification`` (one element, UTF-8), valid against the registered
        schema; raises :class:`GepsDocumentError` when it cannot be."""
        ...

    def is_delivered(self, status: str) -> bool:
        """Whether ЕПГУ's status text or code (a ``StatusMessage``'s details, a ``ResponseMessage``'s
        status code) says that the notification was delivered to the citizen."""
        ...


@cache
def geps_schema() -> etree.XMLSchema:
    """The stand-in schema, read once from the package (``docs/`` holds the same file)."""
    text = resources.files("posog.module.notifications").joinpath("schemas", SCHEMA_FILE).read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.fromstring(text, parser))


def _problems(root: etree._Element, log: etree._ListErrorLog) -> list[str]:
    """libxml2's complaints without the offending values: the element's path by local names
    (``GepsNotification/Recipient/LastName``) and the kind of error — never libxml2's message, which
    quotes the value (a СНИЛС, a name)."""
    found = []
    for error in log:
        found.append(f"{_element_path(root, error.path)}: {error.type_name.lower().removeprefix('schemav_')}")
    return found or ["GepsNotification: invalid"]


def _element_path(root: etree._Element, path: str | None) -> str:
    try:
        nodes = root.getroottree().xpath(path) if path else []
    except etree.XPathError:
        nodes = []
    if not isinstance(nodes, list) or not nodes or not isinstance(nodes[0], etree._Element):
        return "GepsNotification"
    node: etree._Element | None = nodes[0]
    names = []
    while node is not None:
        names.append(etree.QName(node).localname)
        node = node.getparent()
    return "/".join(reversed(names))


class PosogGepsMapping:
    """ПОС ОГ's own ``GepsNotification`` 1.0.0 (see the module docstring and the XSD)."""

    namespace = GEPS_NS

    def element(self, notification: GepsNotification) -> etree._Element:
        """The ``GepsNotification`` element of ``notification`` (not validated yet)."""

        def child(parent: etree._Element, name: str, text: str) -> None:
            etree.SubElement(parent, f"{{{GEPS_NS}}}{name}").text = text

        root = etree.Element(f"{{{GEPS_NS}}}GepsNotification", nsmap={None: GEPS_NS})
        child(root, "NotificationId", notification.notification_id)
        recipient = etree.SubElement(root, f"{{{GEPS_NS}}}Recipient")
        person = notification.recipient
        child(recipient, "Snils", ids.normalize_snils(person.snils))
        child(recipient, "LastName", person.last_name)
        child(recipient, "FirstName", person.first_name)
        if person.middle_name:
            child(recipient, "MiddleName", person.middle_name)
        child(root, "Title", notification.title)
        child(root, "Text", notification.text)
        child(root, "Link", notification.link)
        # The contract's ISO text (Moscow offset) is already an xs:dateTime; re-read so a bad one fails here.
        child(root, "ExpiresAt", datetime.fromisoformat(notification.expires_at).isoformat())
        if notification.frgu_service_id:
            child(root, "FrguServiceId", notification.frgu_service_id)
        return root

    def document(self, notification: GepsNotification) -> bytes:
        try:
            root = self.element(notification)
        except ids.IdError as exc:  # the СНИЛС is not 11 digits (the reason only, never the value)
            raise GepsDocumentError([f"GepsNotification/Recipient/Snils: {exc.reason}"]) from None
        except ValueError as exc:  # an expiry that is no date and time, text XML cannot hold
            raise GepsDocumentError([f"GepsNotification: {exc.__class__.__name__}"]) from None
        validate_document(root)
        return etree.tostring(root, encoding="UTF-8", xml_declaration=False)

    def is_delivered(self, status: str) -> bool:
        code = status.strip().split(":", 1)[0].strip().casefold()
        return code in DELIVERED_CODES


def validate_document(root: etree._Element) -> None:
    """Raise :class:`GepsDocumentError` unless ``root`` is valid against the stand-in schema."""
    schema = geps_schema()
    if not schema.validate(root):
        raise GepsDocumentError(_problems(root, schema.error_log))
