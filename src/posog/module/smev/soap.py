"""The СМЭВ adapter's web service (``SMEVServiceAdapterService`` WSDL, SOAP 1.1, document/literal):
``Get`` (``MessageQuery`` → ``QueryResult``, one message of our queue) and ``Send`` (``ClientMessage``
→ ``MessageResult``), built with lxml and sent with httpx.

SOAPAction and parts follow the WSDL binding: ``urn:Get`` / ``urn:Send``, the body holding exactly the
part's element. Faults are SOAP 1.1 ``Fault`` with a ``detail`` holding ``SystemFault`` (the adapter
failed: retry without limit), ``ValidationFault`` (our request is wrong: do not retry it unchanged)
or ``SyncFault``. An empty queue answers ``Get`` with a ``QueryResult`` holding no ``Message`` (or an
empty body), which :meth:`SoapAdapterClient.get` returns as ``None``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import httpx
import structlog
from lxml import etree

log = structlog.get_logger(__name__)

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
ADAPTER_TYPES_NS = "urn://x-artefacts-smev-gov-ru/services/service-adapter/types"
FAULTS_NS = f"{ADAPTER_TYPES_NS}/faults"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
ACTION_GET = "urn:Get"
ACTION_SEND = "urn:Send"
FAULT_KINDS = ("SystemFault", "ValidationFault", "SyncFault")

MessageKind = Literal["REQUEST", "RESPONSE"]


def _q(local: str, ns: str = ADAPTER_TYPES_NS) -> str:
    return f"{{{ns}}}{local}"


def safe_xml_parser() -> etree.XMLParser:
    """No entities, no DTD, no network, no huge trees: an answer can only be what it says."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


class AdapterFault(Exception):
    """The adapter refused or failed a call. ``kind``: SystemFault | ValidationFault | SyncFault (from
    the WSDL), ``http`` (no SOAP answer: a status, a network error) or ``malformed`` (an answer that is
    not the WSDL's). ``permanent``: the same request will be refused again (ValidationFault)."""

    def __init__(self, kind: str, description: str, *, code: str | None = None, answer: bytes | None = None) -> None:
        super().__init__(f"{kind}{f' {code}' if code else ''}: {description}")
        self.kind = kind
        self.code = code
        self.description = description
        # A ``Get`` answered with HTTP 200 that is not the WSDL's answer: the adapter took a message off
        # our queue and this is all we have of it. The poller keeps it (as a refused document).
        self.answer = answer

    @property
    def permanent(self) -> bool:
        return self.kind == "ValidationFault"


def soap_envelope(payload: etree._Element) -> bytes:
    """A SOAP 1.1 envelope whose body holds ``payload``."""
    envelope = etree.Element(_q("Envelope", SOAP_NS), nsmap={"soap": SOAP_NS})
    etree.SubElement(envelope, _q("Body", SOAP_NS)).append(payload)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def message_query(it_system: str, kind: MessageKind | None = None) -> etree._Element:
    """``MessageQuery``: one message of ``it_system``'s queue (only requests or only responses when asked)."""
    query = etree.Element(_q("MessageQuery"), nsmap={"tns": ADAPTER_TYPES_NS})
    etree.SubElement(query, _q("itSystem")).text = it_system
    if kind is not None:
        specific = etree.SubElement(query, _q("specificQuery"))
        etree.SubElement(specific, _q("messageTypeCriteria")).text = kind
    return query


def soap_fault(kind: str, code: str, description: str, *, client: bool) -> bytes:
    """A SOAP 1.1 fault whose detail is the WSDL's fault element (for the adapter's emulator)."""
    envelope = etree.Element(_q("Envelope", SOAP_NS), nsmap={"soap": SOAP_NS})
    body = etree.SubElement(envelope, _q("Body", SOAP_NS))
    fault = etree.SubElement(body, _q("Fault", SOAP_NS))
    etree.SubElement(fault, "faultcode").text = "soap:Client" if client else "soap:Server"
    etree.SubElement(fault, "faultstring").text = description
    detail = etree.SubElement(etree.SubElement(fault, "detail"), _q(kind, FAULTS_NS), nsmap={"f": FAULTS_NS})
    etree.SubElement(detail, _q("code", FAULTS_NS)).text = code
    etree.SubElement(detail, _q("description", FAULTS_NS)).text = description
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def read_soap(body: bytes, *, max_bytes: int) -> etree._Element | None:
    """The one element of a SOAP 1.1 body (None when the body is empty); raises :class:`AdapterFault`
    for a fault (its WSDL kind) or anything that is not a SOAP 1.1 envelope."""
    if len(body) > max_bytes:
        raise AdapterFault("malformed", f"answer larger than {max_bytes} bytes")
    try:
        root = etree.fromstring(body, safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise AdapterFault("malformed", f"answer is not XML: {exc.msg}") from None
    if root.tag != _q("Envelope", SOAP_NS):
        raise AdapterFault("malformed", f"answer is not a SOAP 1.1 envelope ({etree.QName(root).localname})")
    soap_body = root.find(_q("Body", SOAP_NS))
    if soap_body is None:
        raise AdapterFault("malformed", "SOAP envelope without a Body")
    children = [child for child in soap_body if isinstance(child.tag, str)]
    if not children:
        return None
    if children[0].tag == _q("Fault", SOAP_NS):
        raise _fault(children[0])
    if len(children) > 1:
        raise AdapterFault("malformed", "SOAP body with more than one element")
    return children[0]


def _fault(fault: etree._Element) -> AdapterFault:
    text = fault.findtext("faultstring") or "SOAP fault"
    detail = fault.find("detail")
    if detail is not None:
        for element in detail:
            if isinstance(element.tag, str) and etree.QName(element).localname in FAULT_KINDS:
                return AdapterFault(
                    etree.QName(element).localname,
                    element.findtext(_q("description", FAULTS_NS)) or text,
                    code=element.findtext(_q("code", FAULTS_NS)),
                )
    client = (fault.findtext("faultcode") or "").endswith("Client")
    return AdapterFault("ValidationFault" if client else "SystemFault", text)


class SoapAdapterClient:
    """Calls the adapter's web service at ``url`` as ``it_system``."""

    def __init__(self, http: httpx.AsyncClient, url: str, *, it_system: str, max_bytes: int = 1024 * 1024) -> None:
        self._http = http
        self._url = url
        self._it_system = it_system
        self._max_bytes = max_bytes

    async def _call(self, action: str, payload: etree._Element) -> etree._Element | None:
        headers = {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": f'"{action}"'}
        try:
            answer = await self._http.post(self._url, content=soap_envelope(payload), headers=headers)
        except httpx.HTTPError as exc:
            raise AdapterFault("http", f"{action}: {exc.__class__.__name__}") from exc
        if answer.status_code != 200 and not answer.content.lstrip().startswith(b"<"):
            raise AdapterFault("http", f"{action}: HTTP {answer.status_code}")
        return read_soap(answer.content, max_bytes=self._max_bytes + 64 * 1024)

    async def get(self, kind: MessageKind | None = None) -> bytes | None:
        """The next ``QueryResult`` of our queue as a document, or None when the queue is empty."""
        headers = {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": f'"{ACTION_GET}"'}
        payload = soap_envelope(message_query(self._it_system, kind))
        try:
            answer = await self._http.post(self._url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise AdapterFault("http", f"{ACTION_GET}: {exc.__class__.__name__}") from exc
        if answer.status_code != 200 and not answer.content.lstrip().startswith(b"<"):
            raise AdapterFault("http", f"{ACTION_GET}: HTTP {answer.status_code}")
        try:
            result = read_soap(answer.content, max_bytes=self._max_bytes + 64 * 1024)
        except AdapterFault as fault:
            if fault.kind == "malformed" and answer.status_code == 200:
                fault.answer = answer.content
            raise
        if result is None:
            return None
        if result.tag != _q("QueryResult"):
            raise AdapterFault(
                "malformed", f"Get answered {etree.QName(result).localname}, not QueryResult", answer=answer.content
            )
        if result.find(_q("Message")) is None:
            return None
        return bytes(etree.tostring(result, encoding="UTF-8"))

    async def send(self, document: bytes) -> str:
        """Send one ``ClientMessage`` document; the adapter's ``MessageId`` for it."""
        try:
            message = etree.fromstring(document, safe_xml_parser())
        except etree.XMLSyntaxError as exc:
            raise AdapterFault("ValidationFault", f"not a ClientMessage document: {exc.msg}") from None
        if message.tag != _q("ClientMessage"):
            raise AdapterFault("ValidationFault", f"not a ClientMessage document ({etree.QName(message).localname})")
        result = await self._call(ACTION_SEND, message)
        if result is None or result.tag != _q("MessageResult"):
            raise AdapterFault("malformed", "Send did not answer with a MessageResult")
        message_id = result.findtext(_q("MessageId"))
        if not message_id:
            raise AdapterFault("malformed", "MessageResult without a MessageId")
        return message_id


class SoapOutbound:
    """:class:`~posog.module.smev.port.AdapterOutbound` on the web service: one ``Send`` per document,
    in order; returns once every one was answered with a ``MessageResult``, raises
    :class:`AdapterFault` at the first that was not (``permanent`` for a ValidationFault)."""

    def __init__(self, client: SoapAdapterClient) -> None:
        self._client = client

    async def send(self, documents: Sequence[bytes]) -> None:
        for document in documents:
            await self._client.send(document)
