"""The ИАС feature's ``ReplyRoute`` (SMEV_INTERFACE.md): answers coming back through the СМЭВ adapter
about the documents the export sent, recognised by our clientIds (``ias-…``: a packet's ``client_id``,
or the ``poll_client_id`` of the PacketsRequest asking its status).

- a ``ResponseMessage`` with ``RatesResponse`` → the packet's id is stored, its status asked from then;
- a ``ResponseMessage`` with ``PacketsResponse`` → the packets' statuses (``accepted``, ``refused`` with
  the reason…);
- a ``ResponseMessage`` with rejects, or a ``status``, an ``ErrorMessage`` or an ERROR ``StatusMessage``
  → the packet failed with that reason; a СМЭВ server error (``SERVER``) sends it again instead;
- an ``OTHER`` status is logged (it says where the message is, not what ИАС made of it).

A reply that names no packet of ours is left to the next route (``False``)."""

from __future__ import annotations

from typing import Final

import structlog

from posog.module.ias_export.channel import business_root
from posog.module.ias_export.documents import DocumentError, parse_packets_response, parse_rates_response
from posog.module.ias_export.handlers import IasExporter
from posog.module.smev.envelope import InboundError, InboundResponse, InboundStatus

log = structlog.get_logger(__name__)

PREFIX: Final = "ias-"


class IasReplies:
    def __init__(self, exporter: IasExporter) -> None:
        self._exporter = exporter

    async def on_reply(self, reply: InboundResponse | InboundStatus | InboundError) -> bool:
        client_id = reply.reply_to_client_id if isinstance(reply, InboundResponse) else reply.original_client_id
        if not client_id or not client_id.startswith(PREFIX):
            return False
        if isinstance(reply, InboundResponse):
            return await self._response(client_id, reply)
        if isinstance(reply, InboundError):
            reason = reply.fault_description or reply.details or reply.fault_code or "ошибка СМЭВ"
            code = f" ({reply.fault_code})" if reply.fault_code else ""
            return await self._exporter.on_refusal(
                client_id, f"СМЭВ, {reply.error_type}{code}: {reason}", retry=reply.error_type == "SERVER"
            )
        if reply.status == "ERROR":
            return await self._exporter.on_refusal(
                client_id, f"СМЭВ: {reply.details or 'ошибка доставки'}", retry=False
            )
        if not await self._exporter.knows(client_id):
            return False
        log.info("ias.reply.status", client_id=client_id, status=reply.status, details=reply.details)
        return True

    async def _response(self, client_id: str, reply: InboundResponse) -> bool:
        if reply.rejects:
            reasons = "; ".join(f"{r.code}: {r.description}" for r in reply.rejects)
            return await self._exporter.on_refusal(client_id, f"ИАС отклонила: {reasons}", retry=False)
        if reply.status is not None:
            status = reply.status
            return await self._exporter.on_refusal(client_id, f"ИАС: {status.code} — {status.description}", retry=False)
        root = business_root(reply.content)
        try:
            if root == "RatesResponse" and reply.content is not None:
                return await self._exporter.on_rates_response(client_id, parse_rates_response(reply.content))
            if root == "PacketsResponse" and reply.content is not None:
                return await self._exporter.on_packets_response(client_id, parse_packets_response(reply.content))
        except DocumentError as exc:
            return await self._exporter.on_refusal(client_id, f"ответ ИАС не по схеме: {exc}", retry=False)
        return await self._exporter.on_refusal(
            client_id, f"неожиданный ответ ИАС: {root or 'без содержимого'}", retry=False
        )
