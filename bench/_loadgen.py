"""A closed-loop HTTP/1.1 load generator, run in a process of its own (``python -m bench._loadgen SPEC
OUT``) so that it does not share an event loop — or a GIL — with what it measures.

``SPEC`` (JSON): ``{"host", "port", "concurrency", "requests": [[method, path, headers, body|null], …],
"keep_bodies": bool}``. ``concurrency`` keep-alive connections are opened first; then each connection
sends the next request not yet taken (in list order) as soon as its previous answer has been read, so
at most ``concurrency`` requests are in flight and adjacent requests of the list are in flight at once.
Every request is timed from its write to the last byte of its answer.

``OUT`` (JSON): ``count``, ``seconds`` (first write → last answer), per request ``latencies`` (s) and
``statuses`` (and ``bodies`` when asked), ``cpu_s`` (this process), ``errors``.

It speaks just enough HTTP/1.1 for uvicorn's answers (``Content-Length`` or chunked bodies) over raw
asyncio streams on uvloop: a few tens of µs of CPU per request, against several hundred for an httpx
client, which matters when the load generator and the server share two cores."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def encode(host: str, port: int, method: str, path: str, headers: dict[str, str], body: str | None) -> bytes:
    data = b"" if body is None else body.encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    length: int | None = None
    chunked = False
    for line in header_lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, bytes(body)
            body += await reader.readexactly(size + 2)
            del body[-2:]
    if length is None:
        raise RuntimeError(f"answer {status} without Content-Length")
    return status, await reader.readexactly(length)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    host, port, concurrency = spec["host"], int(spec["port"]), int(spec["concurrency"])
    keep_bodies = bool(spec.get("keep_bodies"))
    payloads = [encode(host, port, m, p, h, b) for m, p, h, b in spec["requests"]]
    n = len(payloads)
    latencies = [0.0] * n
    statuses = [0] * n
    bodies: list[str | None] = [None] * n
    errors: list[str] = []
    connections = [await asyncio.open_connection(host, port) for _ in range(min(concurrency, n))]
    next_index = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_index
        while next_index < n:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            writer.write(payloads[index])
            try:
                status, body = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:  # reconnect and go on
                errors.append(f"request {index}: {exc!r}")
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies[index] = time.perf_counter() - started
            statuses[index] = status
            if keep_bodies:
                bodies[index] = body.decode()
        writer.close()

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in connections))
    seconds = time.perf_counter() - started
    return {
        "count": n,
        "seconds": seconds,
        "latencies": latencies,
        "statuses": statuses,
        "bodies": bodies if keep_bodies else None,
        "cpu_s": time.process_time() - cpu,
        "errors": errors[:20],
        "error_count": len(errors),
    }


def main() -> None:
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    try:
        import uvloop

        result = uvloop.run(run(spec))
    except ImportError:
        result = asyncio.run(run(spec))
    out_path.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
