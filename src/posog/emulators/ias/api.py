"""The ИАС МКГУ emulator's receiving API (SPEC §9), mounted at ``/emulators/ias`` (or served in-process
to the module when ``POSOG_IAS_URL`` is unset):

- ``POST /api/v1/batches`` — aggregates, JSON (our own message ``ias.aggregates/1``); needs
  ``X-Batch-Id``; 201 ``received`` for a new batch id, 200 ``already_received`` for a repeat (stored
  once), 400/422 for a body it cannot take.
- ``POST /api/v1/rates`` — a vashkontrol ``RatesRequest`` 1.2.0 → 200 ``RatesResponse`` with the packet id
  (the same document again: the same id); 400 for what is not a RatesRequest at all (not XML, a DTD,
  another root). Whether the packet is accepted is known later: ``POST /api/v1/packets`` with a
  ``PacketsRequest`` → ``PacketsResponse`` (``received``, then ``accepted`` or ``refused`` with the
  reasons: see :mod:`posog.emulators.ias.service`).
- ``GET /api/v1/forms`` — the forms ИАС serves (the federal form "direct" 0.0.4).
- ``GET /api/v1/batches[?kind=]`` — aggregates received, newest first; ``GET /api/v1/batches/{id}`` — one
  batch's body as sent; ``GET /api/v1/packets`` — the packets and their verdicts.
- ``POST /api/v1/control/packets`` ``{"processing_polls": N, "vendors": [..]}`` — how many status
  questions a packet stays ``received``, which vendors are registered (empty: any).
- ``POST /api/v1/control/fail-next`` ``{"count": N, "status": 503}`` — answer the next N batch
  requests with that status (for tests and demos); ``GET /api/v1/control`` — what is armed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Final, Literal

import structlog
from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from posog.core.http import error_response, install_error_handlers
from posog.emulators.ias.model import IasStore, PacketStore
from posog.emulators.ias.service import IasService, RequestRefused
from posog.module.contracts import ias_documents

log = structlog.get_logger(__name__)

RATES_NAMESPACE: Final = ias_documents.RATES_NS
XML: Final = "application/xml; charset=utf-8"
MAX_BODY: Final = 50 * 1024 * 1024
BatchIdHeader = Annotated[str | None, Header(alias="X-Batch-Id", max_length=100)]


@dataclass
class FailureSwitch:
    """Makes the next ``remaining`` batch requests fail with ``status``."""

    remaining: int = 0
    status: int = 503

    def take(self) -> int | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        return self.status


class PacketControl(BaseModel):
    processing_polls: int = Field(default=1, ge=0, le=100)
    vendors: list[int] = Field(default_factory=list, max_length=100)


class FailNext(BaseModel):
    count: int = Field(ge=0, le=1000)
    status: int = Field(default=503, ge=400, le=599)


def _accepted(created: bool, batch_id: str) -> Response:
    if created:
        return JSONResponse({"status": "received", "batch_id": batch_id}, status_code=201)
    return JSONResponse({"status": "already_received", "batch_id": batch_id}, status_code=200)


def api_router(store: IasStore, switch: FailureSwitch, service: IasService) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["ИАС МКГУ"])

    async def _gate(batch_id: str | None, request: Request) -> tuple[str, bytes] | Response:
        failure = switch.take()
        if failure is not None:
            log.info("ias_emulator.failing_on_purpose", status=failure, left=switch.remaining)
            return error_response(failure, "emulated_failure", "Эмулятор ИАС: отказ по настройке")
        if not batch_id:
            return error_response(400, "batch_id_required", "Нужен заголовок X-Batch-Id")
        body = await request.body()
        if len(body) > MAX_BODY:
            return error_response(413, "payload_too_large", "Слишком большой пакет")
        return batch_id, body

    @router.post("/batches")
    async def receive_batch(request: Request, x_batch_id: BatchIdHeader = None) -> Response:
        """A batch of aggregates (JSON object with ``batch_id`` equal to ``X-Batch-Id``)."""
        gated = await _gate(x_batch_id, request)
        if isinstance(gated, Response):
            return gated
        batch_id, body = gated
        try:
            document = json.loads(body)
        except ValueError:
            return error_response(400, "invalid_json", "Тело пакета — не JSON")
        if not isinstance(document, dict) or document.get("batch_id") != batch_id:
            return error_response(422, "batch_id_mismatch", "Поле batch_id не совпадает с заголовком X-Batch-Id")
        created = await store.receive(batch_id, "aggregates", "application/json", body.decode())
        log.info("ias_emulator.batch", batch_id=batch_id, new=created)
        return _accepted(created, batch_id)

    @router.post("/rates")
    async def receive_rates(request: Request) -> Response:
        """A vashkontrol ``RatesRequest`` 1.2.0: answered with its packet id (``RatesResponse``)."""
        failure = switch.take()
        if failure is not None:
            log.info("ias_emulator.failing_on_purpose", status=failure, left=switch.remaining)
            return error_response(failure, "emulated_failure", "Эмулятор ИАС: отказ по настройке")
        body = await request.body()
        if len(body) > MAX_BODY:
            return error_response(413, "payload_too_large", "Слишком большой пакет")
        try:
            packet_id = await service.receive_rates(body, channel="http")
        except RequestRefused as exc:
            return error_response(400, exc.reason, f"Не RatesRequest: {exc}"[:500])
        return Response(ias_documents.rates_response(packet_id), media_type=XML)

    @router.post("/packets")
    async def packet_statuses(request: Request) -> Response:
        """A ``PacketsRequest``: what became of the packets (``PacketsResponse``)."""
        body = await request.body()
        if len(body) > 1024 * 1024:
            return error_response(413, "payload_too_large", "Слишком большой запрос")
        try:
            answer = await service.statuses(body)
        except RequestRefused as exc:
            status = 404 if exc.reason == "unknown_packet" else 400
            return error_response(status, exc.reason, str(exc)[:500])
        return Response(answer, media_type=XML)

    @router.get("/forms")
    async def forms() -> dict[str, object]:
        """The forms ИАС serves: indicators and their values, each with its id."""
        return {"forms": service.settings.forms}

    @router.get("/packets")
    async def list_packets() -> dict[str, list[dict[str, object]]]:
        """The packets received, the newest first, with what ИАС says of each now and its verdict."""
        return {
            "items": [
                {
                    "packet_id": p.packet_id,
                    "vendor_id": p.vendor_id,
                    "forms": p.forms,
                    "channel": p.channel,
                    "status": service.reported(p).status,
                    "verdict": p.status,
                    "errors": [line for line in p.errors.splitlines() if line],
                    "polls": p.polls,
                    "deliveries": p.deliveries,
                    "received_at": p.received_at.isoformat(),
                }
                for p in await service.packets.packets()
            ]
        }

    @router.get("/packets/{packet_id}")
    async def get_packet(packet_id: int) -> Response:
        """One RatesRequest as it was received."""
        packet = await service.packets.get(packet_id) if 0 < packet_id < 2**31 else None
        if packet is None:
            return error_response(404, "packet_not_found", "Пакет с таким номером не получен")
        return Response(packet.body, media_type=XML)

    @router.post("/control/packets")
    async def control_packets(body: PacketControl) -> dict[str, object]:
        """How many status questions a packet stays ``received``; the registered vendors (empty: any)."""
        service.settings.processing_polls = body.processing_polls
        service.settings.vendors = set(body.vendors)
        return {"processing_polls": body.processing_polls, "vendors": sorted(service.settings.vendors)}

    @router.get("/batches")
    async def list_batches(kind: Literal["aggregates", "rates"] | None = None) -> dict[str, list[dict[str, object]]]:
        """What was received, the newest first (without the bodies): for the demo, operators and tests."""
        return {
            "items": [
                {
                    "batch_id": batch.batch_id,
                    "kind": batch.kind,
                    "content_type": batch.content_type,
                    "size": batch.size,
                    "received_at": batch.received_at.isoformat(),
                    "deliveries": batch.deliveries,
                }
                for batch in await store.batches(kind)
            ]
        }

    @router.get("/batches/{batch_id}")
    async def get_batch(batch_id: str) -> Response:
        """One received batch as it was sent (JSON or XML)."""
        batch = await store.get(batch_id[:100])
        if batch is None:
            return error_response(404, "batch_not_found", "Пакет с таким идентификатором не получен")
        return Response(batch.body, media_type=batch.content_type)

    @router.post("/control/fail-next")
    async def fail_next(body: FailNext) -> dict[str, int]:
        """Answer the next ``count`` batch requests with ``status``."""
        switch.remaining, switch.status = body.count, body.status
        return {"remaining": switch.remaining, "status": switch.status}

    @router.get("/control")
    async def control() -> dict[str, int]:
        return {"remaining": switch.remaining, "status": switch.status}

    return router


def create_app(store: IasStore, service: IasService | None = None) -> FastAPI:
    """The emulator: the receiving API and the pages (see :mod:`posog.emulators.ias.pages`).
    ``app.state.ias_service`` handles the vashkontrol messages, also for the СМЭВ-adapter emulator."""
    from posog.emulators.ias.pages import install_pages

    service = service or IasService(PacketStore(store.db, store.clock))
    app = FastAPI(title="Эмулятор ИАС МКГУ", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.switch = FailureSwitch()
    app.state.ias_service = service
    install_error_handlers(app, system="ias-emulator", unexpected_message="Внутренняя ошибка эмулятора ИАС")
    app.include_router(api_router(store, app.state.switch, service))
    install_pages(app, store, service)
    return app
