"""The СМЭВ-adapter emulator's web side: the adapter's web service (``POST /ws``, SOAP 1.1, the
WSDL's ``Get`` and ``Send``) and the pages listing the answers each sender got from ПОС ОГ."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from lxml import etree
from starlette.exceptions import HTTPException as StarletteHTTPException

from posog.core.russian import moscow_time
from posog.emulators.smev_adapter.adapter import SmevAdapterEmulator
from posog.emulators.smev_adapter.envelopes import FAULTS_NS, NS, NotAClientMessage, parse
from posog.web.security import SecurityHeadersMiddleware
from posog.web.templating import make_templates, static_files

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_REQUEST_BYTES = 2 * 1024 * 1024
SENDERS_SHOWN = 200
ANSWERS_SHOWN = 500
_A = f"{{{NS}}}"


def _envelope(payload: etree._Element | None) -> bytes:
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
    body = etree.SubElement(envelope, f"{{{SOAP_NS}}}Body")
    if payload is not None:
        body.append(payload)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def _soap(payload: etree._Element | None) -> Response:
    return Response(_envelope(payload), media_type="text/xml; charset=utf-8")


def _fault(kind: str, code: str, description: str) -> Response:
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
    fault = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP_NS}}}Body"), f"{{{SOAP_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soap:Client" if kind == "ValidationFault" else "soap:Server"
    etree.SubElement(fault, "faultstring").text = description
    detail = etree.SubElement(etree.SubElement(fault, "detail"), f"{{{FAULTS_NS}}}{kind}", nsmap={"f": FAULTS_NS})
    etree.SubElement(detail, f"{{{FAULTS_NS}}}code").text = code
    etree.SubElement(detail, f"{{{FAULTS_NS}}}description").text = description
    return Response(
        etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"),
        status_code=500,
        media_type="text/xml; charset=utf-8",
    )


def create_app(adapter: SmevAdapterEmulator) -> FastAPI:
    """``/ws`` — the web service; ``/`` — senders and their answers; ``/api/answers`` — the same as JSON."""
    app = FastAPI(title="Эмулятор адаптера СМЭВ", docs_url=None, redoc_url=None, openapi_url=None)
    templates = make_templates(TEMPLATES_DIR)
    app.mount("/static", static_files(), name="static")

    @app.post("/ws", name="smev_adapter_ws", include_in_schema=False)
    async def web_service(request: Request) -> Response:
        """SOAP 1.1: ``Get`` (MessageQuery → QueryResult) and ``Send`` (ClientMessage → MessageResult)."""
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            return _fault("ValidationFault", "TOO_LARGE", "Запрос превышает допустимый размер.")
        try:
            root = parse(body)
        except etree.XMLSyntaxError:
            return _fault("ValidationFault", "NOT_XML", "Запрос не является XML-документом.")
        soap_body = root.find(f"{{{SOAP_NS}}}Body") if root.tag == f"{{{SOAP_NS}}}Envelope" else None
        payload = None if soap_body is None else next((c for c in soap_body if isinstance(c.tag, str)), None)
        if payload is None:
            return _fault("ValidationFault", "NOT_SOAP", "Запрос не является сообщением SOAP 1.1.")
        action = request.headers.get("soapaction", "").strip('"')
        if payload.tag == _A + "MessageQuery" and action in {"urn:Get", ""}:
            return await _get(payload)
        if payload.tag == _A + "ClientMessage" and action in {"urn:Send", ""}:
            return await _send(payload)
        return _fault("ValidationFault", "UNKNOWN_OPERATION", "Операция не поддерживается.")

    async def _get(query: etree._Element) -> Response:
        it_system = (query.findtext(_A + "itSystem") or "").strip()
        if it_system != adapter.it_system:
            return _fault("ValidationFault", "UNKNOWN_IT_SYSTEM", f"ИС {it_system!r} не зарегистрирована.")
        document = adapter.take_next()
        if document is None:  # the queue is empty: a QueryResult without a message
            return _soap(etree.Element(_A + "QueryResult", nsmap={"tns": NS}))
        try:
            return _soap(parse(document))
        except etree.XMLSyntaxError:  # a hostile test's bytes: handed over as text, as a broken adapter might
            return Response(
                _envelope(None).replace(b"<soap:Body/>", b"<soap:Body>" + document + b"</soap:Body>"),
                media_type="text/xml; charset=utf-8",
            )

    async def _send(message: etree._Element) -> Response:
        try:
            await adapter.take(etree.tostring(message))
        except NotAClientMessage as error:
            return _fault("ValidationFault", "INVALID_MESSAGE", str(error)[:500])
        result = etree.Element(_A + "MessageResult", nsmap={"tns": NS})
        etree.SubElement(result, _A + "itSystem").text = adapter.it_system
        etree.SubElement(result, _A + "MessageId").text = str(uuid.uuid1())
        return _soap(result)

    @app.get("/", name="smev_adapter_senders", response_class=HTMLResponse)
    async def senders(request: Request) -> Response:
        """Every provider system that sent requests, with the answers it got from ПОС ОГ."""
        rows = []
        for sender, answers in sorted(adapter.by_sender().items()):
            counts: dict[str, int] = {}
            for answer in answers:
                label = answer.code if answer.kind == "status" else "отказ" if answer.kind == "rejects" else "ответ"
                counts[label] = counts.get(label, 0) + 1
            rows.append({"sender": sender, "total": len(answers), "counts": sorted(counts.items())})
        return templates.TemplateResponse(
            request,
            "smev_adapter_senders.html",
            {
                "rows": rows[:SENDERS_SHOWN],
                "mode": adapter.mode,
                "waiting": adapter.waiting(),
                "requests": len(adapter.requests),
                "refused": adapter.refused,
            },
        )

    @app.get("/requests", name="smev_adapter_requests", response_class=HTMLResponse)
    async def requests(request: Request) -> Response:
        """ПОС ОГ's own requests (ГЭПС notifications, ИАС МКГУ) and what each recipient answered, newest first."""
        shown = [
            {
                "client_id": o.client_id,
                "kind": o.kind,
                "sent_at": moscow_time(o.sent_at, seconds=True),
                "replies": o.replies,
            }
            for o in reversed(adapter.outgoing)
        ]
        return templates.TemplateResponse(request, "smev_adapter_requests.html", {"rows": shown})

    @app.get("/senders/{sender}", name="smev_adapter_sender", response_class=HTMLResponse)
    async def sender_answers(request: Request, sender: str) -> Response:
        """One sender's answers, the newest first."""
        answers = adapter.by_sender().get(sender[:100])
        if not answers:
            raise StarletteHTTPException(404)
        shown = [
            {
                "request": a.request_client_id,
                "kind": a.kind,
                "code": a.code,
                "description": a.description,
                "parameters": a.parameters,
                "received": moscow_time(a.received_at),
            }
            for a in answers[:ANSWERS_SHOWN]
        ]
        return templates.TemplateResponse(
            request, "smev_adapter_answers.html", {"sender": sender, "answers": shown, "total": len(answers)}
        )

    @app.get("/api/answers", name="smev_adapter_api_answers")
    async def api_answers() -> dict[str, Any]:
        """The answers by the request's clientId: ``{"total", "by_kind", "items": {clientId: [answer]}}``."""
        by_kind: dict[str, int] = {}
        items: dict[str, list[dict[str, Any]]] = {}
        for client_id, answers in adapter.answers.items():
            for a in answers:
                key = a.code if a.kind == "status" else a.kind
                by_kind[key] = by_kind.get(key, 0) + 1
                items.setdefault(client_id, []).append(
                    {"sender": a.sender, "kind": a.kind, "code": a.code, "description": a.description}
                )
        return {"total": adapter.answer_count(), "by_kind": by_kind, "items": items}

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return HTMLResponse("<!doctype html><title>Не найдено</title><p>Страница не найдена.</p>", status_code=404)

    app.add_exception_handler(StarletteHTTPException, not_found)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
