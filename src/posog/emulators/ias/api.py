"""The ИАС МКГУ emulator's receiving API (SPEC §9), mounted at ``/emulators/ias`` (or served in-process
to the module when ``POSOG_IAS_URL`` is unset):

- ``POST /api/v1/batches`` — aggregates, JSON; ``POST /api/v1/rates`` — individual ratings, vashkontrol
  "rates" XML (namespace ``http://vashkontrol.ru/service/rates/1.2.0``). Both need ``X-Batch-Id``;
  201 ``received`` for a new batch id, 200 ``already_received`` for a repeat (stored once), 400/422 for
  a body it cannot take.
- ``GET /api/v1/batches[?kind=]`` — what was received, newest first; ``GET /api/v1/batches/{id}`` — one
  batch's body as sent.
- ``POST /api/v1/control/fail-next`` ``{"count": N, "status": 503}`` — answer the next N batch
  requests with that status (for tests and demos); ``GET /api/v1/control`` — what is armed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Annotated, Final, Literal

import structlog
from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from posog.core.http import error_response, install_error_handlers
from posog.emulators.ias.model import IasStore

log = structlog.get_logger(__name__)

RATES_NAMESPACE: Final = "http://vashkontrol.ru/service/rates/1.2.0"
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


class FailNext(BaseModel):
    count: int = Field(ge=0, le=1000)
    status: int = Field(default=503, ge=400, le=599)


def _accepted(created: bool, batch_id: str) -> Response:
    if created:
        return JSONResponse({"status": "received", "batch_id": batch_id}, status_code=201)
    return JSONResponse({"status": "already_received", "batch_id": batch_id}, status_code=200)


def api_router(store: IasStore, switch: FailureSwitch) -> APIRouter:
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
    async def receive_rates(request: Request, x_batch_id: BatchIdHeader = None) -> Response:
        """Individual ratings in the vashkontrol "rates" XML."""
        gated = await _gate(x_batch_id, request)
        if isinstance(gated, Response):
            return gated
        batch_id, body = gated
        if b"<!DOCTYPE" in body or b"<!ENTITY" in body:  # no DTDs, so no entity expansion
            return error_response(400, "dtd_not_allowed", "DTD и сущности в пакете не допускаются")
        try:
            root = ET.fromstring(body)  # noqa: S314 — DTDs refused above
        except ET.ParseError:
            return error_response(400, "invalid_xml", "Тело пакета — не XML")
        if root.tag != f"{{{RATES_NAMESPACE}}}forms":
            return error_response(422, "wrong_namespace", f"Ожидается корень forms в пространстве {RATES_NAMESPACE}")
        created = await store.receive(batch_id, "rates", "application/xml", body.decode())
        log.info("ias_emulator.rates", batch_id=batch_id, new=created)
        return _accepted(created, batch_id)

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


def create_app(store: IasStore) -> FastAPI:
    """The emulator: the receiving API and the pages (see :mod:`posog.emulators.ias.pages`)."""
    from posog.emulators.ias.pages import install_pages

    app = FastAPI(title="Эмулятор ИАС МКГУ", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.switch = FailureSwitch()
    install_error_handlers(app, system="ias-emulator", unexpected_message="Внутренняя ошибка эмулятора ИАС")
    app.include_router(api_router(store, app.state.switch))
    install_pages(app, store)
    return app
