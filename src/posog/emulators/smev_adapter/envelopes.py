"""The adapter's documents as the emulator writes and reads them: ``QueryResult`` (adapter → ИС) and
``ClientMessage`` (ИС → adapter), in the adapter's namespace. Written independently of the module's
own envelope code (``posog.module.smev.envelope``), so the tests exercise two implementations of one
public schema against each other."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

NS = "urn://x-artefacts-smev-gov-ru/services/service-adapter/types"
FAULTS_NS = f"{NS}/faults"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_A = f"{{{NS}}}"


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse(document: bytes) -> etree._Element:
    """A document parsed without entities, DTD or network (``etree.XMLSyntaxError`` if it is not XML)."""
    return etree.fromstring(document, _parser())


def _query_result(message_type: str, *, message_id: str | None = None) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(_A + "QueryResult", nsmap={"tns": NS, "xsi": XSI_NS})
    metadata = etree.SubElement(root, _A + "smevMetadata")
    etree.SubElement(metadata, _A + "MessageId").text = message_id or str(uuid.uuid4())
    message = etree.SubElement(root, _A + "Message")
    message.set(f"{{{XSI_NS}}}type", f"tns:{message_type}")
    return root, message


def _content(parent: etree._Element, business: bytes | etree._Element) -> None:
    element = parse(business) if isinstance(business, bytes) else business
    primary = etree.SubElement(etree.SubElement(parent, _A + "content"), _A + "MessagePrimaryContent")
    primary.append(element)


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def request_document(
    business: bytes | etree._Element, *, client_id: str, message_id: str | None = None, frgu: str | None = None
) -> bytes:
    """A ``QueryResult`` holding a request (``RequestMessageType``) of a provider's system."""
    root, message = _query_result("RequestMessageType", message_id=message_id)
    metadata = etree.SubElement(message, _A + "RequestMetadata")
    etree.SubElement(metadata, _A + "clientId").text = client_id
    if frgu is not None:
        group = etree.SubElement(metadata, _A + "createGroupIdentity")
        etree.SubElement(group, _A + "FRGUServiceCode").text = frgu
    _content(etree.SubElement(message, _A + "RequestContent"), business)
    return _bytes(root)


def response_document(
    *,
    client_id: str,
    reply_to_client_id: str,
    business: bytes | etree._Element | None = None,
    rejects: tuple[tuple[str, str], ...] = (),
    status: tuple[str, str, tuple[tuple[str, str], ...]] | None = None,
) -> bytes:
    """A ``QueryResult`` holding a response to one of the ИС's requests: content, rejects or a status."""
    root, message = _query_result("ResponseMessageType")
    metadata = etree.SubElement(message, _A + "ResponseMetadata")
    etree.SubElement(metadata, _A + "clientId").text = client_id
    etree.SubElement(metadata, _A + "replyToClientId").text = reply_to_client_id
    body = etree.SubElement(message, _A + "ResponseContent")
    if business is not None:
        _content(body, business)
    for code, description in rejects:
        reject = etree.SubElement(body, _A + "rejects")
        etree.SubElement(reject, _A + "code").text = code
        etree.SubElement(reject, _A + "description").text = description
    if status is not None:
        code, description, parameters = status
        element = etree.SubElement(body, _A + "status")
        etree.SubElement(element, _A + "code").text = code
        etree.SubElement(element, _A + "description").text = description
        for key, value in parameters:
            parameter = etree.SubElement(element, _A + "parameter")
            etree.SubElement(parameter, _A + "key").text = key
            etree.SubElement(parameter, _A + "value").text = value
    return _bytes(root)


def status_document(
    *,
    client_id: str,
    original_client_id: str,
    status: str = "OTHER",
    details: str | None = None,
    timestamp: datetime | None = None,
    error: tuple[str, str, str] | None = None,
) -> bytes:
    """A ``QueryResult`` holding a ``StatusMessage`` about a message of the ИС — or an ``ErrorMessage``
    when ``error`` = (type SERVER|CLIENT, fault code, fault description)."""
    root, message = _query_result("ErrorMessage" if error else "StatusMessage")
    metadata = etree.SubElement(message, _A + "statusMetadata")
    etree.SubElement(metadata, _A + "clientId").text = client_id
    etree.SubElement(metadata, _A + "originalClientId").text = original_client_id
    etree.SubElement(message, _A + "status").text = "ERROR" if error else status
    if details is not None:
        etree.SubElement(message, _A + "details").text = details
    if timestamp is not None:
        etree.SubElement(message, _A + "timestamp").text = timestamp.isoformat()
    if error is not None:
        kind, code, description = error
        etree.SubElement(message, _A + "type").text = kind
        fault = etree.SubElement(message, _A + "fault")
        etree.SubElement(fault, f"{{{FAULTS_NS}}}code").text = code
        etree.SubElement(fault, f"{{{FAULTS_NS}}}description").text = description
    return _bytes(root)


class NotAClientMessage(ValueError):
    """What the ИС handed over is not a ``ClientMessage`` the adapter would take."""


@dataclass(frozen=True)
class ClientMessage:
    """What the emulator reads of a ``ClientMessage``."""

    it_system: str
    kind: str  # request | response
    client_id: str
    reply_to_client_id: str | None = None
    content: etree._Element | None = None
    rejects: tuple[tuple[str, str], ...] = ()
    status: tuple[str, str, tuple[tuple[str, str], ...]] | None = None
    extras: dict[str, str] = field(default_factory=dict)


def read_client_message(root: etree._Element) -> ClientMessage:
    """The parts of a ``ClientMessage`` the emulator acts on; :class:`NotAClientMessage` otherwise."""
    if root.tag != _A + "ClientMessage":
        raise NotAClientMessage(f"root {etree.QName(root).localname!r} is not the adapter's ClientMessage")
    it_system = (root.findtext(_A + "itSystem") or "").strip()
    if not it_system or len(it_system) > 50:
        raise NotAClientMessage("itSystem missing or longer than 50 characters")
    request = root.find(_A + "RequestMessage")
    if request is not None:
        client_id = (request.findtext(f"{_A}RequestMetadata/{_A}clientId") or "").strip()
        content = request.find(f"{_A}RequestContent/{_A}content/{_A}MessagePrimaryContent")
        business = next((c for c in content if isinstance(c.tag, str)), None) if content is not None else None
        if not client_id or business is None:
            raise NotAClientMessage("RequestMessage without clientId or business content")
        return ClientMessage(it_system, "request", client_id, content=business)
    response = root.find(_A + "ResponseMessage")
    if response is None:
        raise NotAClientMessage("neither RequestMessage nor ResponseMessage")
    client_id = (response.findtext(f"{_A}ResponseMetadata/{_A}clientId") or "").strip()
    reply_to = (response.findtext(f"{_A}ResponseMetadata/{_A}replyToClientId") or "").strip()
    body = response.find(_A + "ResponseContent")
    if not client_id or not reply_to or body is None:
        raise NotAClientMessage("ResponseMessage without clientId, replyToClientId or ResponseContent")
    rejects = tuple(
        (r.findtext(_A + "code") or "", r.findtext(_A + "description") or "") for r in body.iter(_A + "rejects")
    )
    status_element = body.find(_A + "status")
    status = None
    if status_element is not None:
        status = (
            status_element.findtext(_A + "code") or "",
            status_element.findtext(_A + "description") or "",
            tuple(
                (p.findtext(_A + "key") or "", p.findtext(_A + "value") or "")
                for p in status_element.iter(_A + "parameter")
            ),
        )
    primary = body.find(f"{_A}content/{_A}MessagePrimaryContent")
    business = next((c for c in primary if isinstance(c.tag, str)), None) if primary is not None else None
    if (business is not None) + bool(rejects) + (status is not None) != 1:
        raise NotAClientMessage("ResponseContent must hold exactly one of content, rejects, status")
    return ClientMessage(it_system, "response", client_id, reply_to, content=business, rejects=rejects, status=status)
