"""The СМЭВ 3 adapter's envelope (INTEGRATION §1): reading the ``QueryResult`` documents the adapter
delivers and building the ``ClientMessage`` documents the module hands it. Pure: no I/O.

Reading is safe whatever the bytes: a size limit before parsing, no DTD (so no entity, internal or
external, is ever expanded), no network, libxml2's ``huge_tree`` off. Every failure is an
:class:`EnvelopeError` with a short ``reason`` — ``not_xml``, ``too_large``, ``entities``,
``wrong_namespace``, ``unknown_type`` (an unknown ``xsi:type`` of the message) or ``invalid`` (against
the project's schema, ``schemas/adapter.xsd``) — and with the request's ``clientId`` when the document
was readable enough to answer it. Nothing else is ever raised.

What the module sends is validated against the same schema before it leaves: real СМЭВ refuses a
malformed document, and a bug should fail here, loudly, not at the adapter."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from lxml import etree

ADAPTER_NS = "urn://x-artefacts-smev-gov-ru/services/service-adapter/types"
FAULTS_NS = "urn://x-artefacts-smev-gov-ru/services/service-adapter/types/faults"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMAS = Path(__file__).with_name("schemas")
ADAPTER_SCHEMA = SCHEMAS / "adapter.xsd"

DEFAULT_MAX_BYTES = 1_048_576

RejectCode = Literal["ACCESS_DENIED", "NO_DATA", "UNKNOWN_REQUEST_DESCRIPTION"]
REJECT_CODES: frozenset[str] = frozenset({"ACCESS_DENIED", "NO_DATA", "UNKNOWN_REQUEST_DESCRIPTION"})

_A = "{" + ADAPTER_NS + "}"
_F = "{" + FAULTS_NS + "}"
_XSI_TYPE = "{" + XSI_NS + "}type"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DOCTYPE = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_KNOWN_TYPES = ("RequestMessageType", "ResponseMessageType", "StatusMessage", "ErrorMessage")


class EnvelopeError(Exception):
    """A malformed or unusable inbound document. ``reason`` is a short code; ``client_id`` is the
    request's clientId when the document was readable enough to answer it, ``message_id`` its СМЭВ
    MessageId. The message names elements only, never a value of the business content."""

    def __init__(
        self, reason: str, detail: str = "", *, client_id: str | None = None, message_id: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.client_id = client_id
        self.message_id = message_id


class OutboundInvalid(ValueError):
    """A document the module was about to send does not match the schema: a bug, never sent."""


# --- Values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmevMetadata:
    message_id: str | None = None
    reference_message_id: str | None = None
    transaction_code: str | None = None
    original_message_id: str | None = None


@dataclass(frozen=True)
class Reject:
    code: str  # ACCESS_DENIED | NO_DATA | UNKNOWN_REQUEST_DESCRIPTION
    description: str


@dataclass(frozen=True)
class Status:
    code: str
    description: str
    parameters: tuple[tuple[str, str], ...] = ()

    def parameter(self, key: str) -> str | None:
        return next((value for name, value in self.parameters if name == key), None)


@dataclass(frozen=True)
class InboundRequest:
    meta: SmevMetadata
    client_id: str | None
    content: etree._Element  # the one business element of MessagePrimaryContent
    frgu_service_code: str | None = None
    test_message: bool = False


@dataclass(frozen=True)
class InboundResponse:
    meta: SmevMetadata
    client_id: str | None
    reply_to_client_id: str | None
    content: etree._Element | None = None
    rejects: tuple[Reject, ...] = ()
    status: Status | None = None


@dataclass(frozen=True)
class InboundStatus:
    meta: SmevMetadata
    client_id: str | None
    original_client_id: str | None
    status: str  # OTHER | ERROR
    details: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class InboundError:
    meta: SmevMetadata
    client_id: str | None
    original_client_id: str | None
    status: str
    details: str | None = None
    timestamp: datetime | None = None
    error_type: str = "SERVER"  # SERVER (СМЭВ) | CLIENT (the adapter)
    fault_code: str | None = None
    fault_description: str | None = None


Inbound = InboundRequest | InboundResponse | InboundStatus | InboundError


@dataclass(frozen=True)
class OutboundRequest:
    client_id: str
    content: bytes  # business XML: one element of the вид сведений's namespace
    frgu_service_code: str | None = None
    test_message: bool = False


@dataclass(frozen=True)
class OutboundResponse:
    """An answer to a request: exactly one of ``content``, ``rejects``, ``status``."""

    client_id: str
    reply_to_client_id: str
    content: bytes | None = None
    rejects: tuple[Reject, ...] = ()
    status: Status | None = None


# --- Safe parsing ---------------------------------------------------------------------------------


def safe_parser() -> etree.XMLParser:
    """A parser that never loads a DTD, expands an entity or touches the network, keeps libxml2's
    limits on depth and text size (``huge_tree`` off), and drops comments and processing instructions."""
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


_PARSER = safe_parser()


def parse_xml(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """The root element of ``body``, parsed safely; :class:`EnvelopeError` (``too_large``,
    ``entities``, ``not_xml``) otherwise. A document with a DTD is refused whole: no message of the
    adapter has one, and refusing it is the only sure defence against entity bombs."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise EnvelopeError("not_xml", "not bytes")
    body = bytes(body)
    if len(body) > max_bytes:
        raise EnvelopeError("too_large", f"more than {max_bytes} bytes")
    if b"<!" in body and _DOCTYPE.search(body):  # "<!" is rare outside a DTD: comments and CDATA
        raise EnvelopeError("entities", "a DTD or an entity declaration")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as error:
        text = str(error).lower()
        reason = "entities" if "entity" in text else "not_xml"
        raise EnvelopeError(reason, _first_line(str(error))) from None
    except Exception as error:  # lxml raises little else; whatever it is, it is the document's fault
        raise EnvelopeError("not_xml", error.__class__.__name__) from None
    if root is None:
        raise EnvelopeError("not_xml", "empty document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # in an encoding the byte scan above cannot read
        raise EnvelopeError("entities", "a DTD")
    return root


@functools.cache
def adapter_schema() -> etree.XMLSchema:
    """The project's schema of the adapter's envelope (package data)."""
    return etree.XMLSchema(etree.parse(str(ADAPTER_SCHEMA), safe_parser()))


def schema_errors(schema: etree.XMLSchema, element: etree._Element) -> list[str]:
    """Why ``element`` does not match ``schema`` (element paths and libxml2's messages), or []."""
    if schema.validate(element):
        return []
    return [f"{e.path}: {_first_line(e.message)}" for e in schema.error_log][:5]


# --- Reading a QueryResult ------------------------------------------------------------------------


def parse_query_result(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Inbound:
    """The adapter's ``QueryResult`` document as a value; raises :class:`EnvelopeError` and nothing else."""
    try:
        root = parse_xml(body, max_bytes=max_bytes)
        return parse_query_result_element(root)
    except EnvelopeError:
        raise
    except Exception as error:  # a bug must not stop the worker any more than a bad document
        raise EnvelopeError("invalid", error.__class__.__name__) from None


def parse_query_result_element(element: etree._Element) -> Inbound:
    """The same for a ``QueryResult`` element already parsed (the SOAP ``Get`` answer holds one)."""
    try:
        return _read_query_result(element)
    except EnvelopeError:
        raise
    except Exception as error:
        raise EnvelopeError("invalid", error.__class__.__name__) from None


def _read_query_result(root: etree._Element) -> Inbound:
    tag = root.tag if isinstance(root.tag, str) else ""
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if namespace != ADAPTER_NS:
        raise EnvelopeError("wrong_namespace", f"root in {namespace or 'no namespace'!r}")
    metadata: etree._Element | None = None
    message: etree._Element | None = None
    for child in root:  # the first of each, in one pass (as _child would find them)
        child_tag = child.tag
        if child_tag == _SMEV_METADATA:
            if metadata is None:
                metadata = child
        elif child_tag == _MESSAGE and message is None:
            message = child
    meta = _metadata(metadata)
    if local != "QueryResult":
        raise EnvelopeError(
            "invalid",
            f"root {local}, not QueryResult",
            client_id=_request_client_id(message),
            message_id=meta.message_id,
        )
    if message is None:
        raise EnvelopeError("invalid", "no Message", message_id=meta.message_id)
    kind = _message_type(message)
    if kind not in _KNOWN_TYPES:
        raise EnvelopeError(
            "unknown_type", "xsi:type of Message", client_id=_request_client_id(message), message_id=meta.message_id
        )
    errors = schema_errors(adapter_schema(), root)
    if errors:
        raise EnvelopeError(
            "invalid", "; ".join(errors), client_id=_request_client_id(message), message_id=meta.message_id
        )
    if kind == "RequestMessageType":
        return _request(message, meta)
    if kind == "ResponseMessageType":
        return _response(message, meta)
    return _status(message, meta, error=kind == "ErrorMessage")


def _message_type(message: etree._Element) -> str | None:
    """The local name of the message's ``xsi:type`` when it is of the adapter's namespace."""
    value = message.get(_XSI_TYPE)
    if value is None:
        return None
    prefix, _, local = value.strip().rpartition(":")
    # The message's own prefix is bound to the adapter's namespace (its tag is checked): no need to
    # build the element's whole namespace map for the usual document.
    if (prefix or None) != message.prefix and message.nsmap.get(prefix or None) != ADAPTER_NS:
        return None
    return local


def _child(parent: etree._Element | None, *tags: str) -> etree._Element | None:
    """The first child element ``tags[0]``, then its first child ``tags[1]``… A plain loop over the few
    children: ``find`` compiles an ElementPath expression and ``iterchildren(tag)`` a tag matcher on
    every call, each costing more than the whole loop."""
    for tag in tags:
        if parent is None:
            return None
        for child in parent:
            if child.tag == tag:
                parent = child
                break
        else:
            return None
    return parent


def _text(parent: etree._Element | None, *tags: str) -> str | None:
    found = _child(parent, *tags)
    if found is None:
        return None
    return found.text or ""


_META_FIELDS = {
    _A + "MessageId": "message_id",
    _A + "ReferenceMessageID": "reference_message_id",
    _A + "TransactionCode": "transaction_code",
    _A + "OriginalMessageID": "original_message_id",
}


def _metadata(element: etree._Element | None) -> SmevMetadata:
    """smevMetadata in one pass over its children; a MessageId that is not a UUID is left out (the
    schema refuses it anyway, and a refused document's error must not carry it)."""
    values: dict[str, str] = {}
    for child in () if element is None else element:
        name = _META_FIELDS.get(child.tag)  # type: ignore[arg-type]
        if name is None or name in values:
            continue
        text = (child.text or "").strip()
        if name == "transaction_code":
            values[name] = text[:1500]
        elif _UUID.match(text):
            values[name] = text
    return SmevMetadata(**values)


def _request_client_id(message: etree._Element | None) -> str | None:
    """A request's clientId when it is usable as an address (≤ 50 characters, printable), else None."""
    value = _text(message, _A + "RequestMetadata", _A + "clientId")
    if value is None:
        return None
    value = value.strip()
    return value if 0 < len(value) <= 50 and value.isprintable() else None


def _content(parent: etree._Element | None) -> etree._Element | None:
    primary = None if parent is None else _child(parent, _CONTENT, _PRIMARY_CONTENT)
    if primary is None:
        return None
    for child in primary:
        if isinstance(child.tag, str):
            return child
    return None


_SMEV_METADATA = _A + "smevMetadata"
_MESSAGE = _A + "Message"
_REQUEST_METADATA = _A + "RequestMetadata"
_REQUEST_CONTENT = _A + "RequestContent"
_CONTENT = _A + "content"
_PRIMARY_CONTENT = _A + "MessagePrimaryContent"
_CLIENT_ID = _A + "clientId"
_TEST_MESSAGE = _A + "testMessage"
_GROUP = _A + "createGroupIdentity"
_FRGU_SERVICE_CODE = _A + "FRGUServiceCode"


def _request(message: etree._Element, meta: SmevMetadata) -> InboundRequest:
    """A request, valid against the schema: the metadata's children read in one pass (the hot path of
    every fact that comes through СМЭВ)."""
    metadata: etree._Element | None = None
    request_content: etree._Element | None = None
    for part in message:  # the first of each, in one pass
        part_tag = part.tag
        if part_tag == _REQUEST_METADATA:
            if metadata is None:
                metadata = part
        elif part_tag == _REQUEST_CONTENT and request_content is None:
            request_content = part
    content = _content(request_content)
    assert metadata is not None
    assert content is not None
    client_id: str | None = None
    frgu_service_code: str | None = None
    test_message = False
    for child in metadata:
        tag = child.tag
        if tag == _CLIENT_ID:
            client_id = child.text or ""
        elif tag == _GROUP:
            frgu_service_code = _text(child, _FRGU_SERVICE_CODE)
        elif tag == _TEST_MESSAGE:
            test_message = (child.text or "").strip() in {"true", "1"}
    return InboundRequest(
        meta=meta,
        client_id=client_id,
        content=content,
        frgu_service_code=frgu_service_code,
        test_message=test_message,
    )


def _response(message: etree._Element, meta: SmevMetadata) -> InboundResponse:
    metadata = _child(message, _A + "ResponseMetadata")
    body = _child(message, _A + "ResponseContent")
    assert body is not None
    status = _child(body, _A + "status")
    return InboundResponse(
        meta=meta,
        client_id=_text(metadata, _A + "clientId"),
        reply_to_client_id=_text(metadata, _A + "replyToClientId"),
        content=_content(body),
        rejects=tuple(
            Reject(_text(r, _A + "code") or "", _text(r, _A + "description") or "")
            for r in body.iterchildren(_A + "rejects")
        ),
        status=None
        if status is None
        else Status(
            code=_text(status, _A + "code") or "",
            description=_text(status, _A + "description") or "",
            parameters=tuple(
                (_text(p, _A + "key") or "", _text(p, _A + "value") or "")
                for p in status.iterchildren(_A + "parameter")
            ),
        ),
    )


def _status(message: etree._Element, meta: SmevMetadata, *, error: bool) -> InboundStatus | InboundError:
    metadata = _child(message, _A + "statusMetadata")
    stamp = _text(message, _A + "timestamp")
    common = {
        "meta": meta,
        "client_id": _text(metadata, _A + "clientId"),
        "original_client_id": _text(metadata, _A + "originalClientId"),
        "status": (_text(message, _A + "status") or "").strip(),
        "details": _text(message, _A + "details"),
        "timestamp": _datetime(stamp),
    }
    if not error:
        return InboundStatus(**common)  # type: ignore[arg-type]
    fault = _child(message, _A + "fault")
    return InboundError(
        **common,  # type: ignore[arg-type]
        error_type=(_text(message, _A + "type") or "").strip(),
        fault_code=_text(fault, _F + "code"),
        fault_description=_text(fault, _F + "description"),
    )


def _datetime(value: str | None) -> datetime | None:
    """An xs:dateTime (validated by the schema) as a datetime; None when Python cannot represent it."""
    if value is None:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else ""


# --- Building a ClientMessage ---------------------------------------------------------------------


def client_message_element(it_system: str, message: OutboundRequest | OutboundResponse) -> etree._Element:
    """A ``ClientMessage`` element for the adapter, validated against the project's schema
    (:class:`OutboundInvalid` otherwise; the business content is parsed with the safe parser)."""
    root = etree.Element(_A + "ClientMessage", nsmap={None: ADAPTER_NS})
    etree.SubElement(root, _A + "itSystem").text = it_system
    if isinstance(message, OutboundRequest):
        request = etree.SubElement(root, _A + "RequestMessage")
        _add_request_metadata(request, message.client_id, message.frgu_service_code, message.test_message)
        _add_content(etree.SubElement(request, _A + "RequestContent"), message.content)
    else:
        chosen = (message.content is not None) + bool(message.rejects) + (message.status is not None)
        if chosen != 1:
            raise OutboundInvalid("a response holds exactly one of content, rejects, status")
        response = etree.SubElement(root, _A + "ResponseMessage")
        metadata = etree.SubElement(response, _A + "ResponseMetadata")
        etree.SubElement(metadata, _A + "clientId").text = message.client_id
        etree.SubElement(metadata, _A + "replyToClientId").text = message.reply_to_client_id
        body = etree.SubElement(response, _A + "ResponseContent")
        if message.content is not None:
            _add_content(body, message.content)
        _add_rejects_and_status(body, message.rejects, message.status)
    errors = schema_errors(adapter_schema(), root)
    if errors:
        raise OutboundInvalid("; ".join(errors))
    return root


def client_message(it_system: str, message: OutboundRequest | OutboundResponse) -> bytes:
    """The ``ClientMessage`` document (UTF-8, with an XML declaration) — see :func:`client_message_element`."""
    return etree.tostring(client_message_element(it_system, message), xml_declaration=True, encoding="UTF-8")


def _add_content(parent: etree._Element, content: bytes) -> None:
    try:
        business = parse_xml(content, max_bytes=max(len(content), 1))
    except EnvelopeError as error:
        raise OutboundInvalid(f"business content: {error.reason}") from None
    primary = etree.SubElement(etree.SubElement(parent, _A + "content"), _A + "MessagePrimaryContent")
    primary.append(business)


def _add_request_metadata(parent: etree._Element, client_id: str, frgu: str | None, test_message: bool) -> None:
    metadata = etree.SubElement(parent, _A + "RequestMetadata")
    etree.SubElement(metadata, _A + "clientId").text = client_id
    if frgu is not None:
        group = etree.SubElement(metadata, _A + "createGroupIdentity")
        etree.SubElement(group, _A + "FRGUServiceCode").text = frgu
    if test_message:
        etree.SubElement(metadata, _A + "testMessage").text = "true"


def _add_rejects_and_status(parent: etree._Element, rejects: Sequence[Reject], status: Status | None) -> None:
    """A response's rejects (each code and description) or its status, in the schema's order."""
    for reject in rejects:
        element = etree.SubElement(parent, _A + "rejects")
        etree.SubElement(element, _A + "code").text = reject.code
        etree.SubElement(element, _A + "description").text = reject.description
    if status is not None:
        _add_status(parent, status)


def _add_status(parent: etree._Element, status: Status) -> None:
    element = etree.SubElement(parent, _A + "status")
    etree.SubElement(element, _A + "code").text = status.code
    etree.SubElement(element, _A + "description").text = status.description
    for key, value in status.parameters:
        parameter = etree.SubElement(element, _A + "parameter")
        etree.SubElement(parameter, _A + "key").text = key
        etree.SubElement(parameter, _A + "value").text = value


# --- Building a QueryResult (what the adapter delivers: the emulator's and the tests' side) ----------


def query_result_element(message: Inbound) -> etree._Element:
    """The ``QueryResult`` the adapter would deliver for ``message`` — the inverse of
    :func:`parse_query_result_element`, validated against the project's schema."""
    root = etree.Element(_A + "QueryResult", nsmap={None: ADAPTER_NS, "xsi": XSI_NS})
    metadata = etree.SubElement(root, _A + "smevMetadata")
    for name, value in (
        ("MessageId", message.meta.message_id),
        ("ReferenceMessageID", message.meta.reference_message_id),
        ("TransactionCode", message.meta.transaction_code),
        ("OriginalMessageID", message.meta.original_message_id),
    ):
        if value is not None:
            etree.SubElement(metadata, _A + name).text = value
    body = etree.SubElement(root, _A + "Message")
    if isinstance(message, InboundRequest):
        body.set(_XSI_TYPE, "RequestMessageType")
        _add_request_metadata(body, message.client_id or "", message.frgu_service_code, message.test_message)
        _append_content(etree.SubElement(body, _A + "RequestContent"), message.content)
    elif isinstance(message, InboundResponse):
        body.set(_XSI_TYPE, "ResponseMessageType")
        response_metadata = etree.SubElement(body, _A + "ResponseMetadata")
        etree.SubElement(response_metadata, _A + "clientId").text = message.client_id or ""
        etree.SubElement(response_metadata, _A + "replyToClientId").text = message.reply_to_client_id or ""
        content = etree.SubElement(body, _A + "ResponseContent")
        if message.content is not None:
            _append_content(content, message.content)
        _add_rejects_and_status(content, message.rejects, message.status)
    else:
        body.set(_XSI_TYPE, "ErrorMessage" if isinstance(message, InboundError) else "StatusMessage")
        status_metadata = etree.SubElement(body, _A + "statusMetadata")
        etree.SubElement(status_metadata, _A + "clientId").text = message.client_id or ""
        etree.SubElement(status_metadata, _A + "originalClientId").text = message.original_client_id or ""
        etree.SubElement(body, _A + "status").text = message.status
        if message.details is not None:
            etree.SubElement(body, _A + "details").text = message.details
        if message.timestamp is not None:
            etree.SubElement(body, _A + "timestamp").text = message.timestamp.isoformat()
        if isinstance(message, InboundError):
            etree.SubElement(body, _A + "type").text = message.error_type
            fault = etree.SubElement(body, _A + "fault", nsmap={"f": FAULTS_NS})
            if message.fault_code is not None:
                etree.SubElement(fault, _F + "code").text = message.fault_code
            if message.fault_description is not None:
                etree.SubElement(fault, _F + "description").text = message.fault_description
    errors = schema_errors(adapter_schema(), root)
    if errors:
        raise OutboundInvalid("; ".join(errors))
    return root


def query_result(message: Inbound) -> bytes:
    """The ``QueryResult`` document — see :func:`query_result_element`."""
    return etree.tostring(query_result_element(message), xml_declaration=True, encoding="UTF-8")


def _append_content(parent: etree._Element, content: etree._Element) -> None:
    primary = etree.SubElement(etree.SubElement(parent, _A + "content"), _A + "MessagePrimaryContent")
    primary.append(copy.deepcopy(content))
