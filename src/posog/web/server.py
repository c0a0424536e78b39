"""uvicorn under ПОС ОГ's own signal handling: SIGTERM or Ctrl-C asks the server to finish its requests,
run the shutdown (workers cancelled, connections closed) and return — the process then exits 0, as a
process manager expects of a clean stop. (uvicorn's own handling re-raises the signal after shutdown,
so the process would die of it.)"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import uvicorn


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller handles signals (see serve_until_signalled)

    def stop(self) -> None:
        self.should_exit = True


async def serve_until_signalled(server: Server, sockets: list[socket.socket] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    try:
        await server.serve(sockets)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
