"""The ИАС МКГУ emulator's pages: the received batches of aggregates, the RatesRequest packets with what
ИАС says of each (received, accepted, refused with the reasons), and each one's content. Nothing
personal is there to show: the module sends none."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from posog.core.russian import moscow_time
from posog.emulators.ias.model import IasStore
from posog.emulators.ias.service import IasService
from posog.web.security import SecurityHeadersMiddleware
from posog.web.templating import make_templates, static_files

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
KIND_NAMES = {"aggregates": "Агрегированные показатели", "rates": "Индивидуальные оценки (rates)"}
STATUS_NAMES = {"received": "в обработке", "accepted": "принят", "refused": "отклонён"}
CHANNEL_NAMES = {"http": "HTTP", "smev": "СМЭВ"}


def install_pages(app: FastAPI, store: IasStore, service: IasService) -> None:
    templates = make_templates(TEMPLATES_DIR)
    app.mount("/static", static_files(), name="static")

    @app.get("/", name="ias_batches", response_class=HTMLResponse, include_in_schema=False)
    async def ias_batches(request: Request) -> Response:
        """Every received batch, the newest first."""
        rows = [
            {
                "batch_id": b.batch_id,
                "kind": KIND_NAMES.get(b.kind, b.kind),
                "received": moscow_time(b.received_at, seconds=True),
                "deliveries": b.deliveries,
                "size": b.size,
            }
            for b in await store.batches()
        ]
        packets = []
        for p in await service.packets.packets():
            reported = service.reported(p)
            packets.append(
                {
                    "packet_id": p.packet_id,
                    "vendor_id": p.vendor_id,
                    "forms": p.forms,
                    "channel": CHANNEL_NAMES.get(p.channel, p.channel),
                    "status": STATUS_NAMES.get(reported.status, reported.status),
                    "refused": reported.status == "refused",
                    "errors": list(reported.errors),
                    "received": moscow_time(p.received_at, seconds=True),
                }
            )
        return templates.TemplateResponse(request, "ias_batches.html", {"batches": rows, "packets": packets})

    @app.get("/packets/{packet_id}", name="ias_packet", response_class=HTMLResponse, include_in_schema=False)
    async def ias_packet(request: Request, packet_id: int) -> Response:
        """One RatesRequest as received, and its status."""
        packet = await service.packets.get(packet_id) if 0 < packet_id < 2**31 else None
        if packet is None:
            raise StarletteHTTPException(404)
        reported = service.reported(packet)
        return templates.TemplateResponse(
            request,
            "ias_packet.html",
            {
                "packet_id": packet.packet_id,
                "status": STATUS_NAMES.get(reported.status, reported.status),
                "errors": list(reported.errors),
                "channel": CHANNEL_NAMES.get(packet.channel, packet.channel),
                "forms": packet.forms,
                "received": moscow_time(packet.received_at, seconds=True),
                "body": packet.body,
            },
        )

    @app.get("/batches/{batch_id}", name="ias_batch", response_class=HTMLResponse, include_in_schema=False)
    async def ias_batch(request: Request, batch_id: str) -> Response:
        """One batch's content."""
        batch = await store.get(batch_id[:100])
        if batch is None:
            raise StarletteHTTPException(404)
        body = batch.body
        if batch.kind == "aggregates":
            body = json.dumps(json.loads(body), ensure_ascii=False, indent=2)
        return templates.TemplateResponse(
            request,
            "ias_batch.html",
            {
                "batch_id": batch.batch_id,
                "kind": KIND_NAMES.get(batch.kind, batch.kind),
                "deliveries": batch.deliveries,
                "received": moscow_time(batch.received_at, seconds=True),
                "body": body,
            },
        )

    app.add_middleware(SecurityHeadersMiddleware)
