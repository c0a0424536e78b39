"""A served process collects and freezes its start-up heap once it is up, so that full garbage
collections later walk only what requests made (see ``posog.web.server.settle_heap``)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import uvicorn

from posog.web.server import Server, serve_until_signalled


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_the_heap_is_frozen_once_the_server_is_up() -> None:
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        server = Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None))
        serving = asyncio.create_task(serve_until_signalled(server))
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        assert gc.get_freeze_count() > 1000  # at least the modules and objects this test process holds
        server.stop()
        await asyncio.wait_for(serving, 10)
    finally:
        gc.unfreeze()
