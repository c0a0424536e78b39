"""A served process collects and freezes its start-up heap once it is up, so that full garbage
collections later walk only what requests made (see ``posog.web.server.settle_heap``)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
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


async def test_connections_accepted_on_a_listening_socket_answer_without_waiting_for_acks() -> None:
    """The demo serves on a socket it binds itself: each connection accepted on it must have Nagle's
    algorithm off, or every answer (head, then body) waits for the client's delayed acknowledgement —
    43 ms a request on loopback. Checked on the server's side of a real connection."""
    import socket

    from posog.web.server import listening_socket

    accepted: list[int] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    sock = listening_socket("127.0.0.1", 0)
    server = await asyncio.start_server(on_connection, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(200):
            if accepted:
                break
            await asyncio.sleep(0.01)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert accepted, "the connection was not accepted"
    assert accepted[0] != 0, "Nagle's algorithm is on for accepted connections"


def test_a_taken_address_is_an_os_error_and_leaves_no_socket_open() -> None:
    from posog.web.server import listening_socket

    first = listening_socket("127.0.0.1", 0)
    first.listen()
    try:
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            listening_socket("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()
