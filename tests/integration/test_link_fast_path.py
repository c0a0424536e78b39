"""The module's lean path for ``GET /api/v1/survey-links/{token}`` (``posog.module.links.fastpath``)
answers exactly as the FastAPI route does — status, headers, body, state changes, attempt limiting,
unexpected errors — and every request it does not serve reaches the full app as before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posog.bootstrap import System
from posog.core.clock import utcnow
from posog.module.api import ModuleApp, create_app
from posog.module.links import api as links_api
from posog.module.links import fastpath
from posog.module.links.model import COMPLETED, OPENED, REVOKED, SurveyLink, new_token
from tests.integration.survey_support import KEYS, Survey, issue_surveys
from tests.support import BACKENDS, stack

pytestmark = pytest.mark.integration

LINKS = "/api/v1/survey-links/"
MALFORMED = ["", "x", "a/b", "../../etc/passwd", "a\nb", "ё€😀", "' OR 1=1 --", "%00", "a" * 300, " "]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def call(
    app: ASGIApp,
    path: str,
    *,
    caller: str | None = "lkp",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    peer: tuple[str, int] | None = ("192.0.2.10", 41000),
) -> Answer:
    """One request straight through the ASGI interface (nothing between the test and the app)."""
    sent = dict(headers or {})
    if caller is not None:
        sent.setdefault("Authorization", f"Bearer {KEYS[caller]}")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"module.test")]
        + [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in sent.items()],
        "client": peer,
        "server": ("module.test", 80),
        "state": {},
    }
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start, *rest = messages
    assert start["type"] == "http.response.start"
    return Answer(start["status"], list(start["headers"]), b"".join(m.get("body", b"") for m in rest))


class Served:
    """Counts the requests the fast path resolved (the route's own calls are not counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = fastpath.resolve_link

        async def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(fastpath, "resolve_link", counting)


def module_app(system: System) -> ModuleApp:
    app = system.module_asgi.app
    assert isinstance(app, ModuleApp)
    return app


async def both(app: ModuleApp, path: str, **options: Any) -> tuple[Answer, Answer]:
    """The same request through the fast path, then through the full app."""
    fast = await call(app, path, **options)
    app.link_fast_path = False
    try:
        full = await call(app, path, **options)
    finally:
        app.link_fast_path = True
    return fast, full


async def set_link(system: System, survey: Survey, **values: object) -> None:
    async with system.db.uow() as uow:
        await uow.session.execute(update(SurveyLink).where(SurveyLink.card_id == survey.card_id).values(**values))
        await uow.commit()


async def link_row(system: System, survey: Survey) -> SurveyLink:
    async with system.db.uow() as uow:
        return (await uow.session.scalars(select(SurveyLink).where(SurveyLink.card_id == survey.card_id))).one()


def error_of(answer: Answer) -> str:
    import json

    code: str = json.loads(answer.body)["error"]["code"]
    return code


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_answer_of_the_fast_path_is_the_routes(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stack(backend, tmp_path, link_attempts_per_minute=1_000_000) as system:
        first, second, expired, completed, revoked, gone = await issue_surveys(system, 6, seed=301)
        app = module_app(system)
        served = Served(monkeypatch)

        # 200, first open and reopen: the fast path's first open = the route's reopen = the fast reopen.
        opened_fast = await call(app, LINKS + first.token)
        reopened_full, reopened_fast = await both(app, LINKS + first.token)
        assert opened_fast.status == 200, opened_fast.body
        assert opened_fast == reopened_full == reopened_fast
        assert opened_fast.headers == [
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(opened_fast.body)).encode()),
            (b"content-type", b"application/json"),
        ]
        app.link_fast_path = False
        opened_full = await call(app, LINKS + second.token)
        app.link_fast_path = True
        assert opened_full == await call(app, LINKS + second.token)
        for survey in (first, second):
            row = await link_row(system, survey)
            assert (row.state, row.opened_at is not None) == (OPENED, True)

        # Refusals: 404 (unknown and malformed alike), 410 expired/completed/revoked, 409 version gone.
        await set_link(system, expired, expires_at=utcnow() - timedelta(seconds=1))
        await set_link(system, completed, state=COMPLETED, completed_at=utcnow(), response_id="r-1")
        await set_link(system, revoked, state=REVOKED)
        await set_link(system, gone, questionnaire_version=99)
        expected = {
            new_token(): (404, "link_not_found"),
            expired.token: (410, "link_expired"),
            completed.token: (410, "survey_completed"),
            revoked.token: (410, "link_revoked"),
            gone.token: (409, "questionnaire_unavailable"),
        }
        expected |= {token: (404, "link_not_found") for token in MALFORMED}
        for token, (status, code) in expected.items():
            fast, full = await both(app, LINKS + token)
            assert fast == full, token
            assert (fast.status, error_of(fast)) == (status, code), token
            assert (b"cache-control", b"no-store") in fast.headers

        # The route's own answers where the fast path steps aside: 401 (no, unknown or non-bearer
        # key), 403 (a caller without links:read); ЛКО's key may read links.
        for caller, headers, status in (
            (None, {}, 401),
            (None, {"Authorization": "Bearer not-a-key"}, 401),
            (None, {"Authorization": f"Basic {KEYS['lkp']}"}, 401),
            (None, {"Authorization": "Bearer "}, 401),
            (None, {"Authorization": f"bearer   {KEYS['lkp']}  "}, 200),
            ("analytics", {}, 403),
            ("lko", {}, 200),
        ):
            fast, full = await both(app, LINKS + first.token, caller=caller, headers=headers)
            assert fast == full, (caller, headers)
            assert fast.status == status, (caller, headers, fast.body)
        assert error_of((await both(app, LINKS + first.token, caller=None))[0]) == "unauthorized"
        assert error_of((await both(app, LINKS + first.token, caller="analytics"))[0]) == "forbidden"

    # Every request with a valid key went through the fast path (the 401/403 ones did not).
    fast_calls = 1 + 1 + 1 + len(expected) + 2
    assert served.count == fast_calls


@pytest.mark.parametrize("backend", BACKENDS)
async def test_failed_attempts_are_limited_alike(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path, link_attempts_per_minute=3) as system:
        (valid,) = await issue_surveys(system, 1, seed=302)
        app = module_app(system)

        async def attempts(client: str) -> list[Answer]:
            answers = [await call(app, LINKS + new_token(), headers={"X-Posog-Client": client}) for _ in range(3)]
            answers.append(await call(app, LINKS + valid.token, headers={"X-Posog-Client": client}))
            answers.append(await call(app, LINKS + valid.token, headers={"X-Posog-Client": f" {client} "}))
            return answers

        fast = await attempts("203.0.113.1")
        app.link_fast_path = False
        full = await attempts("203.0.113.2")
        app.link_fast_path = True
        assert [a.status for a in fast] == [a.status for a in full] == [404, 404, 404, 429, 429]
        for mine, theirs in zip(fast, full, strict=True):
            assert mine.body == theirs.body
            assert [name for name, _ in mine.headers] == [name for name, _ in theirs.headers]
        retry_after = dict(fast[-1].headers)[b"retry-after"]
        assert 1 <= int(retry_after) <= 60
        assert error_of(fast[-1]) == "too_many_requests"

        # Without X-Posog-Client the peer address is the client, on both paths.
        for use_fast, peer in ((True, "198.51.100.1"), (False, "198.51.100.2")):
            app.link_fast_path = use_fast
            for _ in range(3):
                assert (await call(app, LINKS + new_token(), peer=(peer, 1))).status == 404
            assert (await call(app, LINKS + valid.token, peer=(peer, 2))).status == 429
            assert (await call(app, LINKS + valid.token, peer=("198.51.100.3", 3))).status == 200
        app.link_fast_path = True


async def test_an_unexpected_error_is_answered_and_raised_as_by_the_full_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=303)
        app = module_app(system)

        async def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("the database vanished")

        monkeypatch.setattr(fastpath, "resolve_link", broken)
        monkeypatch.setattr(links_api, "resolve_link", broken)
        answers = []
        for use_fast in (True, False):
            app.link_fast_path = use_fast
            messages: list[Message] = []
            with pytest.raises(RuntimeError, match="the database vanished"):
                await _raw(app, LINKS + survey.token, messages)
            answers.append(messages)
        app.link_fast_path = True
        fast, full = answers
        assert fast == full
        assert fast[0]["status"] == 500
        assert b'"internal_error"' in fast[1]["body"]


async def _raw(app: ASGIApp, path: str, messages: list[Message]) -> None:
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {KEYS['lkp']}".encode())],
        "client": ("192.0.2.1", 1),
        "server": ("module.test", 80),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)


async def test_other_requests_reach_the_full_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=304)
        app = module_app(system)
        served = Served(monkeypatch)
        for method, path, caller, status in (
            ("HEAD", LINKS + survey.token, "lkp", 405),
            ("POST", LINKS + survey.token + "/complete", "lkp", 403),
            ("GET", "/api/v1/survey-links", "lkp", 307),  # redirect_slashes, as before
            ("GET", "/api/v1/survey-link/" + survey.token, "lkp", 404),
            ("GET", "/healthz", None, 200),
        ):
            fast, full = await both(app, path, method=method, caller=caller)
            assert fast == full, (method, path)
            assert fast.status == status, (method, path, fast.body)
        assert served.count == 0

        # No catalog: the route answers 503.
        bare = create_app(system.db, system.releaser, system.settings, catalog=None)
        answer = await call(bare, LINKS + survey.token)
        assert (answer.status, error_of(answer)) == (503, "service_unavailable")
        assert served.count == 0

        # The OpenAPI document still lists the route, with its service key.
        operation = app.openapi()["paths"]["/api/v1/survey-links/{token}"]["get"]
        assert operation["security"] == [{"ServiceKey": []}]
        assert {"200", "401", "403", "404", "410", "429"} <= set(operation["responses"])


async def test_the_fast_path_steps_aside_for_what_it_cannot_stand_in_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stack("embedded", tmp_path) as system:
        first, second, third = await issue_surveys(system, 3, seed=305)
        served = Served(monkeypatch)

        # Middleware added to the app: it sees the link requests too.
        with_middleware = create_app(system.db, system.releaser, system.settings, catalog=system.catalog)
        with_middleware.add_middleware(_Stamp)
        answer = await call(with_middleware, LINKS + first.token)
        assert answer.status == 200
        assert (b"x-stamp", b"1") in answer.headers
        assert served.count == 0

        # Mounted under a prefix (as `posog demo` serves every system): the path below the mount.
        root = FastAPI()
        root.mount("/module", module_app(system))
        answer = await call(root, "/module" + LINKS + second.token)
        assert answer.status == 200
        assert served.count == 1

        # A root_path of the app's own: FastAPI's routing handles it.
        rooted = create_app(system.db, system.releaser, system.settings, catalog=system.catalog)
        rooted.root_path = "/behind-proxy"
        answer = await call(rooted, "/behind-proxy" + LINKS + third.token)
        assert answer.status == 200
        assert served.count == 1


class _Stamp:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-stamp", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


def test_the_tokens_path_is_matched_as_the_route_matches_it() -> None:
    def scope(path: str, root_path: str = "", method: str = "GET") -> Scope:
        return {"type": "http", "method": method, "path": path, "root_path": root_path}

    assert fastpath.link_token(scope(LINKS + "abc")) == "abc"
    assert fastpath.link_token(scope(LINKS)) == ""
    assert fastpath.link_token(scope(LINKS + "a/b/complete")) == "a/b/complete"
    assert fastpath.link_token(scope("/m" + LINKS + "abc", "/m")) == "abc"
    assert fastpath.link_token(scope(LINKS + "abc", method="POST")) is None
    assert fastpath.link_token(scope(LINKS + "abc", method="HEAD")) is None
    assert fastpath.link_token(scope("/api/v1/survey-links")) is None
    assert fastpath.link_token({"type": "websocket", "path": LINKS + "abc"}) is None
    # The key is read as core.service_auth.presented_key reads it.
    assert fastpath.bearer_key("Bearer k") == "k"
    assert fastpath.bearer_key("bearer   k  ") == "k"
    assert fastpath.bearer_key("Basic k") is None
    assert fastpath.bearer_key("Bearer") is None
    assert fastpath.bearer_key("Bearer  ") is None
    assert fastpath.bearer_key(None) is None
