"""The HTTP contract every system's API keeps whatever a client sends (issue 13): a callee's refusal
never escapes as a 500, the service key is checked before the body, a missing or broken body is named
as such, every error — the mounted apps' and the root's too — is in the envelope, and an unexpected
exception is answered 500 in the envelope and logged without anything the request put in it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from posog.bootstrap import System
from posog.core.clock import utcnow
from posog.core.http import install_error_handlers
from posog.core.service_auth import ServiceKeyFirstRoute, _service_operations
from posog.lko.client import LkoClient
from posog.module.api import LKO_UNAVAILABLE
from posog.module.client import LinkRefused, ModuleClient
from posog.module.links.api import MESSAGES
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.release import WaitingCardsReleaser
from posog.module.state import module_state
from posog.web.app import ServedApp, create_web_app
from tests.integration.survey_support import KEYS, client
from tests.support import stack

pytestmark = pytest.mark.integration

ENVELOPE_KEYS = {"error"}


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    async with stack("embedded", tmp_path_factory.mktemp("http-contract")) as built:
        yield built


def _apps(system: System) -> dict[str, Any]:
    return {"module": system.module_asgi.app, "lko": system.lko_asgi.app, "analytics": system.analytics_asgi.app}


def assert_envelope(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert sum("а" <= ch.lower() <= "я" for ch in message) > 5, message
    return message


# --- 1. A callee's refusal is the module's own 4xx or a 503, never a 500 -----------------------------


@pytest.mark.parametrize("type_code", ["", "X", "a b", "a" * 41, "мфц"])
async def test_a_release_for_a_type_code_lko_could_never_have_is_the_modules_own_422(
    system: System, type_code: str
) -> None:
    async with client(system.module_asgi, "lko") as lko:
        response = await lko.post("/api/v1/cards/release", json={"level": "federal", "type_code": type_code})
    message = assert_envelope(response, 422, "validation_error")
    assert "«type_code»" in message


async def test_a_release_answers_503_when_lko_refuses_or_cannot_be_reached(system: System) -> None:
    def refusing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "нет ключа"}})

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    state = module_state(system.module_asgi.app)
    real = state.releaser
    try:
        for handler in (refusing, unreachable):
            lko_http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://lko.internal")
            catalog = QuestionnaireCatalog(LkoClient(lko_http), ttl_s=0.01)
            state.releaser = WaitingCardsReleaser(
                system.db, catalog, system.cipher, utcnow, lkp_base_url="https://lkp.test/lkp"
            )
            async with client(system.module_asgi, "lko") as lko:
                response = await lko.post("/api/v1/cards/release", json={"level": "federal", "type_code": "mfc"})
            assert assert_envelope(response, 503, "lko_unavailable") == LKO_UNAVAILABLE
            assert response.headers["retry-after"] == "30"
    finally:
        state.releaser = real


@pytest.mark.parametrize("token", ["a" * 20 + "\n", "a" * 20 + "?x=1#y", "../../../healthz/" + "a" * 20, "\udada" * 20])
async def test_any_token_a_citizen_sends_reaches_the_link_look_up(system: System, token: str) -> None:
    async with client(system.module_asgi, "lkp") as lkp:
        with pytest.raises(LinkRefused) as refused:
            await ModuleClient(lkp).resolve_link(token)
    assert refused.value.code == "link_not_found"
    async with client(system.lko_asgi, "lkp") as lkp:
        # As JSON escapes: a lone surrogate has no UTF-8 of its own.
        body = json.dumps({"token": token, "idempotency_key": "k" * 16, "answers": {}})
        response = await lkp.post("/api/v1/responses", content=body, headers={"content-type": "application/json"})
    if "\udada" in token:  # no UTF-8 string holds it: ЛКО's JSON parser refuses it, in Russian
        assert "поле «token»: должен быть строкой в UTF-8" in assert_envelope(response, 422, "validation_error")
    else:
        assert assert_envelope(response, 404, "link_not_found") == MESSAGES["link_not_found"]


# --- 3. The key before the body; a missing or broken body named as such ----------------------------


def _bodied_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(path, route) of every route of ``app`` with a request body and a service key."""
    found: list[tuple[str, APIRoute]] = []
    for entry in app.routes:
        # FastAPI keeps an included router's routes behind it, each with its path under the prefix.
        contexts = entry.effective_route_contexts() if hasattr(entry, "effective_route_contexts") else ()
        candidates = [(context.path, context.original_route) for context in contexts]
        candidates += [(entry.path, entry)] if isinstance(entry, APIRoute) else []
        for path, route in candidates:
            if isinstance(route, APIRoute) and route.body_field is not None and _service_operations(route.dependant):
                found.append((path, route))
    return found


@pytest.mark.parametrize("name", ["module", "lko"])
async def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(system: System, name: str) -> None:
    app = _apps(system)[name]
    routes = _bodied_routes(app)
    assert len(routes) >= (2 if name == "module" else 4), routes
    transport = httpx.ASGITransport(app=app)
    refusals = {None: (401, "unauthorized"), "not-a-key": (401, "unauthorized"), "analytics": (403, "forbidden")}
    for template, route in routes:
        assert isinstance(route, ServiceKeyFirstRoute), template
        path = template.replace("{questionnaire_id}", "x").replace("{token}", "t" * 20)
        for key, (status, code) in refusals.items():
            headers = {} if key is None else {"Authorization": f"Bearer {KEYS.get(key, key)}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http:
                for body in (b"{not json", b"", b"\xff\xfe"):
                    method = sorted(route.methods)[0]
                    response = await http.request(
                        method, path, content=body, headers={"content-type": "application/json"}
                    )
                    assert (response.status_code, response.json()["error"]["code"]) == (status, code), (
                        method,
                        route.path,
                        key,
                        body,
                        response.text,
                    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (None, "тело запроса обязательно, но не передано"),
        (b"", "тело запроса обязательно, но не передано"),
        (b"{not json", "тело запроса не является корректным JSON"),
        (b'"a string"', "тело запроса должно быть JSON-объектом"),
    ],
)
async def test_a_missing_or_broken_body_is_named_as_the_body(system: System, body: bytes | None, named: str) -> None:
    content = {} if body is None else {"content": body, "headers": {"content-type": "application/json"}}
    async with client(system.module_asgi, "lko") as lko:
        response = await lko.post("/api/v1/cards/release", **content)  # type: ignore[arg-type]
    message = assert_envelope(response, 422, "validation_error")
    assert named in message
    assert "«?»" not in message
    assert set(response.json()) == ENVELOPE_KEYS


async def test_a_body_that_is_not_utf8_is_named_too(system: System) -> None:
    async with client(system.module_asgi, "lko") as lko:
        response = await lko.post(
            "/api/v1/cards/release", content=b"\xff\xfe{", headers={"content-type": "application/json"}
        )
    assert "тело запроса" in assert_envelope(response, 400, "bad_request")


async def test_routes_listing_their_problems_list_a_broken_body_the_same_way(system: System) -> None:
    admin = {"Authorization": "Bearer dev-admin-key", "content-type": "application/json"}
    transport = httpx.ASGITransport(app=system.lko_asgi.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=admin) as http:
        draft = await http.post("/api/v1/questionnaires", content=b"{not json")
        imported = await http.put("/api/v1/org-types", content=b"")
    assert_envelope(draft, 422, "validation_error")
    assert draft.json()["problems"] == [{"path": "", "message": "тело запроса не является корректным JSON"}]
    assert_envelope(imported, 422, "validation_error")
    (row,) = imported.json()["rows"]
    assert row["row"] == 0
    assert row["message"].startswith("тело запроса обязательно")


# --- 3. Every error in the envelope, through the mounted apps too ------------------------------------


async def test_paths_with_a_line_break_reach_the_mounted_system_and_get_its_own_answer(system: System) -> None:
    web = create_web_app(system, serve=["module", "lko", "analytics"], run_workers=False)
    headers = {"Authorization": f"Bearer {KEYS['module']}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web), base_url="http://test", headers=headers
    ) as http:
        for path in ("%0A/status", "%0A/versions/1", "%0A", "a%0Ab/status"):
            response = await http.get(f"/lko/api/v1/questionnaires/{path}")
            message = assert_envelope(response, 404, "questionnaire_not_found")
            assert "\n" not in message
        admin = {"Authorization": "Bearer dev-admin-key"}
        for action in ("publish", "withdraw"):
            response = await http.post(f"/lko/api/v1/questionnaires/%0A/{action}", headers=admin)
            assert_envelope(response, 404, "questionnaire_not_found")
        assert_envelope(await http.get("/nowhere/at/all"), 404, "not_found")
        assert_envelope(await http.get("/module/api/v1/no-such-route%0A"), 404, "not_found")
        assert_envelope(await http.delete("/module/api/v1/cards/release"), 405, "method_not_allowed")


async def test_the_mounted_systems_pages_still_link_their_own_assets(system: System) -> None:
    """The mount that passes line breaks must not hide the systems' route names from ``url_for``
    (a named mount did: every page answered 500)."""
    web = create_web_app(system, serve=["module", "lko", "lkp"], run_workers=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://test") as http:
        login = await http.get("/lko/login")
        assert login.status_code == 200
        assert 'href="/lko/static/posog.css"' in login.text
        assert (await http.get("/lko/static/posog.css")).status_code == 200
        assert (await http.get("/lko/", follow_redirects=False)).status_code == 303


async def test_metrics_are_documented_and_served_as_prometheus_text(system: System) -> None:
    for name in ("module", "analytics"):
        app = _apps(system)[name]
        content = app.openapi()["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        assert content == {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            response = await http.get("/metrics")
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "# TYPE" in response.text


async def test_every_error_status_is_documented_with_the_envelope(system: System) -> None:
    for name, app in _apps(system).items():
        document = app.openapi()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                secured = bool(operation.get("security"))
                if secured:
                    assert {"401", "403"} <= responses.keys(), (name, method, path)
                for status, response in responses.items():
                    if int(status) >= 400:
                        schema = response["content"]["application/json"]["schema"]
                        assert "$ref" in schema or "anyOf" in schema, (name, method, path, status)


# --- 2. The catch-all: 500 in the envelope, logged without the request's data ------------------------

SECRET = "Иванов 123-456-789 01 секрет-из-запроса"


class _FailingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/middleware":
            raise ValueError(SECRET)
        await self.app(scope, receive, send)


def _failing_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, system="test", unexpected_message="Внутренняя ошибка, повторите позже")
    app.add_middleware(_FailingMiddleware)

    async def failing_dependency() -> None:
        raise KeyError(SECRET)

    @app.get("/endpoint/{value}")
    async def endpoint(value: str) -> None:
        raise RuntimeError(f"{SECRET} {value}")

    @app.get("/dependency", dependencies=[Depends(failing_dependency)])
    async def dependency() -> None:
        return None

    return app


async def test_an_unexpected_exception_anywhere_is_a_500_envelope_logged_without_its_message() -> None:
    served = ServedApp(_failing_app(), lifespan=None)  # type: ignore[arg-type]
    # raise_app_exceptions (httpx's default): nothing may escape the served app to the server.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://test") as http:
        for path, error, route in (
            ("/endpoint/token-in-the-path", "RuntimeError", "endpoint /endpoint/{value}"),
            ("/dependency", "KeyError", "dependency /dependency"),
            ("/middleware", "ValueError", "/middleware"),
        ):
            with structlog.testing.capture_logs() as logs:
                response = await http.get(path)
            assert response.json() == {
                "error": {"code": "internal_error", "message": "Внутренняя ошибка, повторите позже"}
            }
            assert response.status_code == 500
            (line,) = [entry for entry in logs if entry["event"] == "api.unexpected_error"]
            assert (line["error"], line["route"], line["method"]) == (error, route, "GET")
            assert line["origin"]
            assert all(":" in frame for frame in line["origin"])
            assert SECRET not in repr(logs)
            assert "token-in-the-path" not in repr(logs)
            assert "exc_info" not in line
