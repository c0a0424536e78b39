"""Helpers of the process-level tests: ``posog`` worker processes on a test stack, stopping them, and
waiting for a process to be ready on a real signal (a port that answers, a row in the database, a
line in its log) under a generous deadline — the suite runs on loaded machines, where a process may
take many seconds to start. A process that exits while it is waited for fails the wait at once, with
its log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from posog.bootstrap import System
from tests.conftest import LOG_DIR

# How long a process may take to be ready, or a stream to settle, on a loaded machine (two e2e tests
# may run at once beside other work: a stream that settles in 30 s alone took 200 s so).
DEADLINE_S = 400.0

_LOGS: dict[int, Path] = {}  # a spawned worker's log, by process id


def spawn_worker(name: str, system: System, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """``python -m posog.cli worker NAME`` on the stack's database and queues; its log (stdout and
    stderr) joins the suite's logs, which the personal-data check reads."""
    return spawn_posog(f"worker-{name}", system, "worker", name, *args, **env)


def spawn_posog(label: str, system: System, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """``python -m posog.cli ARGS…`` on the stack's database and queues (see :func:`spawn_worker`)."""
    s = system.settings
    assert s.amqp_url is not None
    environment = {
        **os.environ,
        "POSOG_ENV": "test",
        "POSOG_VAR_DIR": str(s.var_dir),
        "POSOG_DATABASE_URL": s.resolved_database_url,
        "POSOG_AMQP_URL": s.amqp_url,
        "POSOG_FACTS_QUEUE": s.facts_queue,
        "POSOG_FACTS_DEAD_LETTER_EXCHANGE": s.facts_dead_letter_exchange,
        "POSOG_FACTS_DEAD_LETTER_QUEUE": s.facts_dead_letter_queue,
        "POSOG_GEPS_EXCHANGE": s.geps_exchange,
        "POSOG_GEPS_INBOX_QUEUE": s.geps_inbox_queue,
        "POSOG_LKP_BASE_URL": s.lkp_base_url,
        "POSOG_RELAY_IDLE_SLEEP_MS": "20",
        **env,
    }
    log_path = LOG_DIR / f"{label}-{uuid.uuid4().hex[:6]}.log"
    log = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "posog.cli", *args], env=environment, stdout=log, stderr=log)
    log.close()  # the child has its own descriptor
    _LOGS[process.pid] = log_path
    return process


def log_of(process: subprocess.Popen[bytes]) -> str:
    """The end of a spawned worker's log (for a failure's message)."""
    path = _LOGS.get(process.pid)
    if path is None or not path.exists():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")[-4000:]


async def kill_hard(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 60)
    assert process.returncode == -signal.SIGKILL


async def stop_cleanly(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, 60)
    assert process.returncode == 0, "a worker stops cleanly on SIGTERM"


async def wait_while_running(
    process: subprocess.Popen[bytes],
    condition: Callable[[], Awaitable[bool]],
    *,
    what: str,
    timeout: float = DEADLINE_S,
    interval: float = 0.1,
) -> None:
    """Poll ``condition`` until true; fail at once should ``process`` exit meanwhile, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if await condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}:\n{log_of(process)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{log_of(process)}")
        await asyncio.sleep(interval)


def until(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = DEADLINE_S,
    interval: float = 0.2,
    processes: dict[str, subprocess.Popen[bytes]] | None = None,
) -> None:
    """Poll ``condition`` (an HTTP error or timeout counts as "not yet") until true; fail at once when
    one of ``processes`` has exited, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        for label, process in (processes or {}).items():
            if process.poll() is not None:
                raise AssertionError(f"{label} exited ({process.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def answers(url: str, path: str = "/healthz", headers: dict[str, str] | None = None) -> bool:
    """``GET url+path`` answers 200 (a slow answer on a loaded machine is waited for, up to 10 s)."""
    try:
        return httpx.get(f"{url}{path}", headers=headers, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name{labels}`` in a Prometheus exposition, None when it is absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


async def scrape(port: int) -> str:
    """A worker's ``/metrics`` (``posog worker … --metrics-port PORT``); empty while it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""
