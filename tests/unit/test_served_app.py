"""One system served alone (``posog serve <system>``): its own app at ``/`` behind
``posog.web.app.ServedApp``, which answers the ASGI lifespan protocol with the process's lifespan and
passes every request straight to the app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message, Receive, Scope, Send

from posog.web.app import ServedApp


class _App:
    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _lifespan_run(app: ServedApp, *, shutdown: bool = True) -> list[Message]:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    with contextlib.suppress(RuntimeError):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent


async def test_the_lifespan_runs_around_serving_and_requests_reach_the_app() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    inner = _App()
    served = ServedApp(inner, lifespan)
    scope: Scope = {"type": "http", "method": "GET", "path": "/healthz"}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await served(scope, receive, send)
    assert inner.scopes == [scope]  # untouched: no mount's path_params, root_path or endpoint
    assert sent[0]["status"] == 204

    assert [m["type"] for m in await _lifespan_run(served)] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert events == ["start", "stop"]
    assert len(inner.scopes) == 1, "the app's own lifespan does not run (as when it was mounted)"


@pytest.mark.parametrize("fails_at", ["startup", "shutdown"])
async def test_a_failing_lifespan_is_reported_to_the_server(fails_at: str) -> None:
    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        if fails_at == "startup":
            raise RuntimeError("no database")
        yield
        raise RuntimeError("could not close")

    sent = await _lifespan_run(ServedApp(_App(), lifespan))
    if fails_at == "startup":
        assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
        assert "no database" in sent[0]["message"]
    else:
        assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
        assert "could not close" in sent[1]["message"]
