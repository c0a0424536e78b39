"""Fakes of the module's link API and ЛКО's responses API at the HTTP level: ЛКП's real clients talk to
them through ``httpx.MockTransport``, so the pages are tested down to the wire format (SPEC §6, §7)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx

from posog.lko.client import LkoClient
from posog.lko.contracts import Option, Question, QuestionnaireDocument
from posog.lkp.app import create_app
from posog.module.client import ModuleClient
from posog.module.contracts import LINK_ERRORS
from posog.settings import Settings

QUESTIONNAIRE = QuestionnaireDocument(
    id="7c1f3c55-5b7e-4d8e-9f4a-0a4c3e2d1b00",
    version=2,
    type_code="mfc",
    level="federal",
    title="Оценка качества предоставления услуги",
    questions=(
        Question(
            id="q1",
            kind="rating",
            scale=5,
            criterion="staff",
            text="Оцените вежливость и компетентность сотрудника",
            required=True,
            hint="1 — очень плохо, 5 — отлично",
        ),
        Question(
            id="q2",
            kind="single_choice",
            text="Как вы записались на приём?",
            required=True,
            options=(
                Option(id="portal", text="Через Госуслуги"),
                Option(id="phone", text="По телефону"),
                Option(id="queue", text="В живой очереди"),
            ),
        ),
        Question(
            id="q3",
            kind="multiple_choice",
            text="Что было удобно?",
            options=(
                Option(id="parking", text="Парковка"),
                Option(id="signs", text="Понятные указатели"),
                Option(id="wifi", text="Wi-Fi"),
            ),
        ),
        Question(id="q4", kind="yes_no", text="Вы получили услугу с первого обращения?", required=True),
        Question(id="q5", kind="text", text="Ваш комментарий", max_length=50),
    ),
)

LINK_PAYLOAD: dict[str, Any] = {
    "card_id": "MFC-77-2026-000123",
    "expires_at": datetime(2026, 12, 20, 20, 59, 59, tzinfo=UTC).isoformat(),
    "survey_level": "federal",
    "state": "opened",
    "service": {"date": date(2026, 11, 20).isoformat(), "name": "Выдача паспорта гражданина РФ"},
    "organization": {
        "name": "ГБУ «МФЦ города Москвы»",
        "address": "г. Москва, ул. Тверская, д. 1",
        "inn": "7703012345",
        "ogrn": "1027700000000",
        "kpp": "770301001",
        "region_code": "77",
        "type_code": "mfc",
    },
}

TOKEN = "Tk_valid-token-0123456789abcdefXYZ"
MESSAGES = {
    "link_not_found": "Ссылка не найдена",
    "link_expired": "Срок действия ссылки истёк",
    "survey_completed": "Опрос уже пройден",
    "link_revoked": "Ссылка отозвана",
    "questionnaire_unavailable": "Анкета недоступна",
    "too_many_requests": "Слишком много попыток",
}


def _error(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}, **extra})


@dataclass
class Backends:
    """The state of the fake module and ЛКО: links by token, stored responses by idempotency key."""

    links: dict[str, str] = field(default_factory=lambda: {TOKEN: "ok"})  # token → "ok" or an error code
    module_down: bool = False
    module_broken: bool = False  # answers 200 with garbage
    lko_down: bool = False
    lko_fields: dict[str, str] = field(default_factory=dict)  # answers 422 with these messages
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key → response
    completed_by: dict[str, str] = field(default_factory=dict)  # token → idempotency key
    module_calls: list[httpx.Request] = field(default_factory=list)
    lko_calls: list[httpx.Request] = field(default_factory=list)

    def module(self, request: httpx.Request) -> httpx.Response:
        self.module_calls.append(request)
        if self.module_down:
            raise httpx.ConnectError("refused", request=request)
        match = re.fullmatch(r"/api/v1/survey-links/([^/]+)", request.url.path)
        assert match, request.url
        assert request.method == "GET", request.url
        if self.module_broken:
            return httpx.Response(200, json={"unexpected": True})
        token = match.group(1)
        state = "survey_completed" if token in self.completed_by else self.links.get(token, "link_not_found")
        if state != "ok":
            return _error(LINK_ERRORS[state], state, MESSAGES[state])
        return httpx.Response(200, json={**LINK_PAYLOAD, "questionnaire": QUESTIONNAIRE.model_dump(mode="json")})

    def lko(self, request: httpx.Request) -> httpx.Response:
        self.lko_calls.append(request)
        if self.lko_down:
            raise httpx.ConnectError("refused", request=request)
        path = request.url.path
        if request.method == "GET" and path == f"/api/v1/questionnaires/{QUESTIONNAIRE.id}/versions/2":
            return httpx.Response(200, json=QUESTIONNAIRE.model_dump(mode="json"))
        if request.method == "GET":
            return _error(404, "questionnaire_not_found", "Анкета не найдена")
        assert (request.method, path) == ("POST", "/api/v1/responses"), request.url
        body = json.loads(request.content)
        key, token = body["idempotency_key"], body["token"]
        if key in self.responses:  # the same submission again: the stored response
            return httpx.Response(201, json=self.responses[key])
        if token in self.completed_by:
            return _error(410, "survey_completed", MESSAGES["survey_completed"])
        if self.links.get(token, "link_not_found") != "ok":
            state = self.links.get(token, "link_not_found")
            return _error(LINK_ERRORS[state], state, MESSAGES[state])
        if self.lko_fields:
            return _error(422, "validation_error", "Проверьте ответы", fields=self.lko_fields)
        stored = {
            "id": f"resp-{len(self.responses) + 1}",
            "card_id": LINK_PAYLOAD["card_id"],
            "questionnaire_id": QUESTIONNAIRE.id,
            "questionnaire_version": QUESTIONNAIRE.version,
            "type_code": "mfc",
            "survey_level": "federal",
            "inn": "7703012345",
            "ogrn": "1027700000000",
            "kpp": "770301001",
            "region_code": "77",
            "org_name": LINK_PAYLOAD["organization"]["name"],
            "service_date": "2026-11-20",
            "answers": body["answers"],
            "submitted_at": datetime.now(UTC).isoformat(),
        }
        self.responses[key] = stored
        self.completed_by[token] = key
        return httpx.Response(201, json=stored)

    def submissions(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.lko_calls if r.method == "POST"]


def lkp_client(backends: Backends, *, peer: str = "203.0.113.7", **overrides: Any) -> httpx.AsyncClient:
    """An HTTP client on the ЛКП app wired to the fakes, as a citizen's browser (at ``peer``)."""
    module = ModuleClient(httpx.AsyncClient(transport=httpx.MockTransport(backends.module), base_url="http://module"))
    lko = LkoClient(httpx.AsyncClient(transport=httpx.MockTransport(backends.lko), base_url="http://lko"))
    settings = Settings(env="test", _env_file=None, **overrides)  # type: ignore[call-arg]
    app = create_app(module, lko, settings)
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://lkp.test")
