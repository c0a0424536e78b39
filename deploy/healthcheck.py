"""Container health check of a ПОС ОГ process (the image's HEALTHCHECK; compose.yaml passes a URL).

``python /app/deploy/healthcheck.py URL`` succeeds when URL answers 2xx within 3 seconds. Without a
URL it looks at the container's command: ``posog serve <system> [--port P]`` is probed on its
liveness path; a ``posog worker`` has no HTTP endpoint, so it is healthy while it runs (it exits on a
fatal error and the restart policy takes over). Standard library only: the image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# Where each `posog serve` target answers without touching anything but itself.
LIVENESS_PATHS = {"all": "/module/healthz", "emulators": "/epgu/"}


def _command() -> list[str]:
    try:
        with open("/proc/1/cmdline", "rb") as stream:
            return [part.decode(errors="replace") for part in stream.read().split(b"\0") if part]
    except OSError:
        return []


def default_url(argv: list[str]) -> str | None:
    """The URL to probe for a container started with ``argv``, or None for a worker."""
    if "serve" not in argv:
        return None
    rest = argv[argv.index("serve") + 1 :]
    system = next((arg for arg in rest if not arg.startswith("-")), "all")
    port = os.environ.get("POSOG_PORT", "8000")
    for i, arg in enumerate(rest):
        if arg == "--port" and i + 1 < len(rest):
            port = rest[i + 1]
        elif arg.startswith("--port="):
            port = arg.partition("=")[2]
    return f"http://127.0.0.1:{port}{LIVENESS_PATHS.get(system, '/healthz')}"


def main(args: list[str]) -> int:
    url = args[0] if args else default_url(_command())
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (a fixed local http URL)
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
