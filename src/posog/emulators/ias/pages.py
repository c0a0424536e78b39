"""The ИАС МКГУ emulator's pages: the received batches of aggregates and of individual ratings, and
each one's content. Nothing personal is there to show: the module sends none."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from posog.core.russian import moscow_time
from posog.emulators.ias.model import IasStore
from posog.web.security import SecurityHeadersMiddleware
from posog.web.templating import make_templates, static_files

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
KIND_NAMES = {"aggregates": "Агрегированные показатели", "rates": "Индивидуальные оценки (rates)"}


def install_pages(app: FastAPI, store: IasStore) -> None:
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
        return templates.TemplateResponse(request, "ias_batches.html", {"batches": rows})

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
