"""The channel RatesRequest and PacketsRequest documents reach ИАС МКГУ by (INTEGRATION.md §4–§5).

:class:`IasChannel` is the port. Two implementations:

- :class:`HttpChannel` — directly over HTTP (``POSOG_SMEV_TRANSPORT=none``): ``POST <ИАС>/api/v1/rates``
  with the RatesRequest answers the RatesResponse (the packet id) at once, ``POST <ИАС>/api/v1/packets``
  with a PacketsRequest answers the PacketsResponse. A connection error, 5xx, 408, 425 or 429 is worth
  another attempt; any other refusal is final, with ИАС's reason.
- :class:`SmevChannel` — through the СМЭВ adapter (a transport set): each document is the content of a
  ``RequestMessage`` whose ``clientId`` is ours (``ias-…``), handed to an
  :class:`~posog.module.smev.port.AdapterOutbound`; the answers (a ``ResponseMessage`` with the
  RatesResponse or PacketsResponse, or rejects, statuses and errors) come back later through
  :class:`posog.module.ias_export.replies.IasReplies`, the feature's ``ReplyRoute``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

import httpx
from lxml import etree

from posog.module.ias_export import documents
from posog.module.ias_export.documents import DocumentError, PacketStatus
from posog.module.smev.envelope import OutboundRequest, client_message
from posog.module.smev.port import AdapterOutbound

_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
XML: Final = "application/xml; charset=utf-8"


@dataclass(frozen=True)
class Handover:
    """What sending a RatesRequest got: ``registered`` (ИАС answered with ``packet_id``), ``sent`` (the
    СМЭВ adapter has it; the packet id comes later), ``retry`` or ``refused`` (final, ``detail`` says why)."""

    outcome: Literal["registered", "sent", "retry", "refused"]
    detail: str = ""
    packet_id: int | None = None


@dataclass(frozen=True)
class Asked:
    """What asking for packets' statuses got: ``statuses`` now (HTTP), or ``None`` when the answer comes
    later (СМЭВ); ``error`` when the question did not go through (asked again at the next poll)."""

    statuses: list[PacketStatus] | None = None
    error: str | None = None


class IasChannel(Protocol):
    name: str

    async def send_rates(self, client_id: str, document: bytes) -> Handover: ...

    async def ask_packets(self, client_id: str, document: bytes) -> Asked: ...


def _reason(response: httpx.Response) -> str:
    """ИАС's reason for a refusal: the JSON ``error.message`` of the emulator, else the body's start."""
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        if isinstance(message, str) and message:
            return f"HTTP {response.status_code}: {message[:300]}"
    except ValueError:
        pass
    return f"HTTP {response.status_code}: {response.text[:300]}"


class HttpChannel:
    name = "http"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _post(self, path: str, client_id: str, document: bytes) -> httpx.Response | str:
        try:
            return await self._http.post(
                path, content=document, headers={"Content-Type": XML, "X-Client-Id": client_id}
            )
        except httpx.HTTPError as exc:
            return f"ИАС недоступна: {exc.__class__.__name__}"

    async def send_rates(self, client_id: str, document: bytes) -> Handover:
        response = await self._post("/api/v1/rates", client_id, document)
        if isinstance(response, str):
            return Handover("retry", response)
        code = response.status_code
        if 200 <= code < 300:
            try:
                return Handover("registered", f"HTTP {code}", documents.parse_rates_response(response.content))
            except DocumentError as exc:
                return Handover("retry", f"ИАС ответила не RatesResponse: {exc}")
        if code >= 500 or code in _RETRYABLE_4XX:
            return Handover("retry", _reason(response))
        return Handover("refused", _reason(response))

    async def ask_packets(self, client_id: str, document: bytes) -> Asked:
        response = await self._post("/api/v1/packets", client_id, document)
        if isinstance(response, str):
            return Asked(error=response)
        if response.status_code != 200:
            return Asked(error=_reason(response))
        try:
            return Asked(statuses=documents.parse_packets_response(response.content))
        except DocumentError as exc:
            return Asked(error=f"ИАС ответила не PacketsResponse: {exc}")


class SmevChannel:
    name = "smev"

    def __init__(self, outbound: AdapterOutbound, it_system: str) -> None:
        self._outbound = outbound
        self._it_system = it_system

    async def _send(self, client_id: str, document: bytes) -> str | None:
        message = client_message(self._it_system, OutboundRequest(client_id=client_id, content=document))
        try:
            await self._outbound.send([message])
        except Exception as exc:  # the adapter or the broker is away: the delivery retries
            return f"СМЭВ-адаптер недоступен: {exc.__class__.__name__}"
        return None

    async def send_rates(self, client_id: str, document: bytes) -> Handover:
        error = await self._send(client_id, document)
        return Handover("retry", error) if error else Handover("sent", "передан в СМЭВ-адаптер")

    async def ask_packets(self, client_id: str, document: bytes) -> Asked:
        error = await self._send(client_id, document)
        return Asked(error=error)


def business_root(element: etree._Element | None) -> str | None:
    """The local name of a reply's business element when it is of the rates namespace."""
    if element is None:
        return None
    qname = etree.QName(element)
    return str(qname.localname) if qname.namespace == documents.RATES_NS else None
