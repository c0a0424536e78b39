"""Running ``posog demo`` as a newcomer does — the real command in its own process, in an empty
directory — and knowing which citizens it made up (for the suite's personal-data check of its log)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select

from posog.bootstrap import bootstrap
from posog.module.intake.model import ServiceCard
from posog.settings import Settings
from tests.conftest import LOG_DIR, remember_citizen

POSOG = str(Path(sys.executable).with_name("posog"))
READY = "Демонстрация готова"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSOG_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def citizens_in(settings: Settings) -> list[dict[str, str]]:
    """The citizens of every card in the module's database (decrypted, as only the module can),
    registered for the suite's personal-data check of every log."""

    async def read() -> list[dict[str, str]]:
        system = bootstrap(settings)
        try:
            async with system.db.uow() as uow:
                rows = (await uow.session.execute(select(ServiceCard))).scalars().all()
            return [
                system.cipher.open_json(r.pii_key_id, r.pii, context=r.card_id) for r in rows if r.pii and r.pii_key_id
            ]
        finally:
            await system.close()

    citizens = asyncio.run(read())
    for citizen in citizens:
        remember_citizen(citizen)
    return citizens


def demo_citizens(workdir: Path) -> list[dict[str, str]]:
    """The citizens of the demo run in ``workdir`` (its embedded database)."""
    return citizens_in(Settings(_env_file=None, env="development", var_dir=workdir / "var"))  # type: ignore[call-arg]


class DemoProcess:
    """``posog demo`` in ``workdir`` on a free port; ``start`` returns once it says it is ready."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = ["demo", "--port", str(self.port), *args]
        self.env = env or demo_env()
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 300) -> DemoProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [POSOG, *self.args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the demo did not become ready:\n" + self.output)
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if READY in line:
                self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a newcomer stops it; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the demo did not stop on Ctrl-C:\n" + self.output) from None
        keep_log(self.workdir, f"demo-{self.port}")
        return code


def run_demo_to_end(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``posog demo … --no-serve``: the whole run, then exit."""
    done = subprocess.run(
        [POSOG, "demo", "--port", str(free_port()), "--no-serve", *args],
        cwd=workdir,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    keep_log(workdir, f"demo-run-{time.monotonic_ns()}")
    return done


def keep_log(workdir: Path, name: str) -> None:
    """The demo's log joins the suite's logs, which the personal-data check reads."""
    log = workdir / "var" / "posog.log"
    if log.exists():
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, LOG_DIR / f"{name}.log")
