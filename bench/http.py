"""What the HTTP workloads share (links, submissions, the analytics dashboard): ПОС ОГ's systems served by
real ``posog serve <system>`` processes, the production way, on a scratch database; a load generator
in a process of its own (``bench/_loadgen.py``); links issued by the real intake; latency figures and
targets on them (a p99 is a target with a maximum).

Servers: ``posog serve module|lko|analytics --no-workers`` on ``127.0.0.1`` and a free port, one uvicorn
process each (uvloop + httptools, as installed), production mode (``POSOG_AMQP_URL`` set, so nothing
embedded: no migrations at start, no workers), pointing at each other with ``POSOG_LKO_URL`` /
``POSOG_MODULE_URL``. Other ``POSOG_*`` variables of the environment apply as usual (e.g.
``POSOG_DB_POOL_SIZE``). Each server's log goes to ``<results>/<workload>.<system>.log``. They are
stopped with SIGTERM (then SIGKILL after 10 s) by their pid in ``finally``: after success, failure,
timeout or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import (
    AMQP_URL,
    BenchContext,
    BenchError,
    CpuUsage,
    ScratchDatabase,
    Target,
    cpu_meter,
    scratch_database,
)

SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 10.0
HOST = "127.0.0.1"


# --- Targets with a maximum ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bound(Target):
    """A target on a figure of a measurement's ``extra`` (``field``, e.g. ``p99_ms``) rather than on its
    rate: met when the figure is at most ``maximum`` (``minimum`` is unused then). ``bench/__main__.py``
    evaluates it."""

    field: str = ""
    maximum: float | None = None
    unit: str = ""


# --- Servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def posog_executable() -> str:
    candidate = Path(sys.executable).parent / "posog"
    return str(candidate) if candidate.exists() else "posog"


@dataclass
class Server:
    system: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_s(self) -> float:
        import psutil

        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)


def server_env(database: ScratchDatabase, var_dir: Path, **urls: str) -> dict[str, str]:
    """The environment of a server process: production mode on ``database``; ``urls`` are
    ``lko_url=…``, ``module_url=…``, ``analytics_url=…`` (the other systems' servers)."""
    env = dict(os.environ)
    env.update(
        {
            "POSOG_ENV": "test",  # development keys (POSOG_SERVICE_KEYS etc. from the environment win)
            "POSOG_DATABASE_URL": database.url,
            "POSOG_AMQP_URL": AMQP_URL,  # production mode; --no-workers: never connected
            "POSOG_VAR_DIR": str(var_dir),
            "POSOG_LKP_BASE_URL": "https://lkp.bench.invalid/lkp",
        }
    )
    for name, url in urls.items():
        env[f"POSOG_{name.upper()}"] = url
    return env


async def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                tail = server.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise BenchError(f"posog serve {server.system} exited ({server.process.returncode}): {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise BenchError(f"posog serve {server.system} did not answer /healthz within {SERVER_START_TIMEOUT_S:g} s")


async def _stop(ctx: BenchContext, server: Server) -> None:
    process = server.process
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), SERVER_STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        try:
            await asyncio.wait_for(process.wait(), SERVER_STOP_TIMEOUT_S)
        except TimeoutError:
            ctx.leftovers.append(f"posog serve {server.system} (pid {process.pid}) did not stop")


@contextlib.asynccontextmanager
async def serving(
    ctx: BenchContext, workload: str, database: ScratchDatabase, systems: Sequence[str]
) -> AsyncIterator[dict[str, Server]]:
    """``posog serve <system>`` for each of ``systems`` on ``database``, each knowing where the others
    are; all stopped afterwards, whatever happened."""
    ports = {system: free_port() for system in systems}
    urls = {f"{system}_url": f"http://{HOST}:{port}" for system, port in ports.items()}
    var_dir = Path(tempfile.mkdtemp(prefix="posog-bench-serve-"))
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    servers: dict[str, Server] = {}
    try:
        for system, port in ports.items():
            others = {name: url for name, url in urls.items() if name != f"{system}_url"}
            log_path = ctx.results_dir / f"{workload}.{system}.log"
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    posog_executable(),
                    "serve",
                    system,
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--no-workers",
                    env=server_env(database, var_dir, **others),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            servers[system] = Server(system, port, process, log_path)
        for server in servers.values():
            await _wait_ready(server)
        yield servers
    finally:
        for server in servers.values():
            await _stop(ctx, server)
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def sampled(ctx: BenchContext, name: str, servers: Sequence[Server]) -> AsyncIterator[None]:
    """With ``--profile``: py-spy samples each server process during the block (wall clock, idle
    frames dropped) into ``<results>/<name>.<system>.pyspy.txt`` (collapsed stacks, for flame-graph
    tools or ``bench/http.py``'s :func:`summarise_collapsed`) and ``….summary.txt`` (own and
    cumulative shares of the hottest frames). Without ``--profile`` (or without py-spy) nothing."""
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not ctx.profile or not Path(spy).exists():
        yield
        return
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    processes: list[tuple[Path, asyncio.subprocess.Process]] = []
    for server in servers:
        out = ctx.results_dir / f"{name}.{server.system}.pyspy.txt"
        process = await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(server.process.pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        processes.append((out, process))
    try:
        yield
    finally:
        for out, process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
            if out.exists():
                summary = out.with_suffix(".summary.txt")
                summary.write_text(summarise_collapsed(out.read_text(encoding="utf-8")), encoding="utf-8")
                ctx.log.print(f"py-spy profile: {out} (summary: {summary})")


def summarise_collapsed(collapsed: str, top: int = 40) -> str:
    """Own and cumulative shares of frames in py-spy's collapsed stacks (``frame;frame;… count``)."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
    lines = [f"samples: {total}", "", "own:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)] if total else []
    lines += ["", "cumulative:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in cumulative.most_common(top)] if total else []
    return "\n".join(lines) + "\n"


# --- Load ----------------------------------------------------------------------------------------

Request = tuple[str, str, dict[str, str], str | None]  # method, path, headers, body


@dataclass
class LoadResult:
    count: int
    seconds: float
    latencies: list[float]
    statuses: list[int]
    bodies: list[str | None] | None
    loadgen_cpu_s: float
    errors: list[str]
    cpu: dict[str, float | None] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float, indices: Sequence[int] | None = None) -> float:
        values = sorted(self.latencies if indices is None else [self.latencies[i] for i in indices])
        if not values:
            return 0.0
        rank = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
        return values[rank] * 1000

    def status_counts(self, indices: Sequence[int] | None = None) -> dict[str, int]:
        chosen = self.statuses if indices is None else [self.statuses[i] for i in indices]
        return {str(k): v for k, v in sorted(Counter(chosen).items())}

    def figures(self) -> dict[str, Any]:
        """What goes into a measurement's ``extra``."""
        return {
            "p50_ms": round(self.percentile_ms(50), 2),
            "p90_ms": round(self.percentile_ms(90), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "max_ms": round(max(self.latencies, default=0.0) * 1000, 2),
            "statuses": self.status_counts(),
            "loadgen_cpu_s": round(self.loadgen_cpu_s, 3),
            "connection_errors": len(self.errors),
            "cpu": self.cpu,
        }


async def run_load(
    ctx: BenchContext,
    servers: Sequence[Server],
    port: int,
    requests: Sequence[Request],
    *,
    concurrency: int,
    database: ScratchDatabase | None = None,
    keep_bodies: bool = False,
    name: str = "",
) -> LoadResult:
    """Send ``requests`` to ``port`` from a load-generator process (``bench/_loadgen.py``) with
    ``concurrency`` connections. CPU: ``python_s`` is the CPU of the ``servers`` (the processes doing
    the work), ``postgres_s`` that of the database's backends, ``loadgen_s`` the load generator's. With
    ``--profile`` and a ``name``, the per-request latencies go to ``<results>/<name>.requests.json``."""
    spec = {"host": HOST, "port": port, "concurrency": concurrency, "requests": requests, "keep_bodies": keep_bodies}
    with tempfile.TemporaryDirectory(prefix="posog-bench-load-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        connection = await asyncpg.connect(database.dsn, timeout=10) if database is not None else None
        try:
            before = {s.system: s.cpu_s() for s in servers}
            async with cpu_meter(connection) as usage:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench._loadgen",
                    str(spec_path),
                    str(out_path),
                    stdin=asyncio.subprocess.DEVNULL,
                )
                try:
                    code = await process.wait()
                finally:
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
            server_cpu = sum(s.cpu_s() - before[s.system] for s in servers)
        finally:
            if connection is not None:
                await connection.close()
        if code != 0 or not out_path.exists():
            raise BenchError(f"the load generator failed (exit {code})")
        out = json.loads(out_path.read_text(encoding="utf-8"))
        if ctx.profile and name:  # per-request latencies and statuses, in request order, for a closer look
            ctx.results_dir.mkdir(parents=True, exist_ok=True)
            (ctx.results_dir / f"{name}.requests.json").write_text(
                json.dumps({"latencies": out["latencies"], "statuses": out["statuses"]}), encoding="utf-8"
            )
    cpu = _cpu_dict(usage, server_cpu, out["cpu_s"], out["seconds"])
    return LoadResult(
        out["count"], out["seconds"], out["latencies"], out["statuses"], out["bodies"], out["cpu_s"], out["errors"], cpu
    )


def _cpu_dict(usage: CpuUsage, server_cpu: float, loadgen_cpu: float, seconds: float) -> dict[str, float | None]:
    """The CPU columns of an HTTP row: "py" is the server processes (not the bench process, which only
    waits), over the load generator's own wall time."""
    values = usage.as_dict()
    scale = seconds / usage.wall_s if usage.wall_s else 1.0  # the meter also saw the generator's start-up
    values["bench_process_s"] = values.pop("python_s")
    values["python_s"] = round(server_cpu * scale, 3)
    values["loadgen_s"] = round(loadgen_cpu, 3)
    values["wall_s"] = round(seconds, 3)
    for key in ("postgres_s", "machine_busy_s", "rabbitmq_s"):
        if values.get(key) is not None:
            values[key] = round(float(values[key] or 0.0) * scale, 3)
    values["machine_capacity_s"] = None
    return values


# --- Links issued by the real intake -------------------------------------------------------------


@dataclass
class SeededLinks:
    database: ScratchDatabase
    tokens: list[str]  # in the order of the facts
    card_ids: list[str]


@contextlib.asynccontextmanager
async def seeded_links(ctx: BenchContext, workload: str) -> AsyncIterator[SeededLinks]:
    """A scratch database (migrated, seeded with ЛКО's defaults) where the real intake
    (``IntakeHandler.handle``, ЛКО in process) turned the run's N facts into cards, links and outbox
    rows; the tokens are read back from the sealed notifications, as the citizen receives them."""
    from sqlalchemy import select

    from posog.bootstrap import bootstrap
    from posog.module.intake.handlers import RawFact
    from posog.module.notifications.model import OutboxMessage

    messages = ctx.fact_messages()
    async with scratch_database(ctx, seed=True) as database:
        var_dir = Path(tempfile.mkdtemp(prefix="posog-bench-seed-"))
        settings = ctx.defaults().model_copy(
            update={"database_url": database.url, "amqp_url": None, "var_dir": var_dir, "lko_url": None}
        )
        system = bootstrap(settings)
        try:
            ctx.step(workload, f"issuing {len(messages)} links with the real intake (not timed)")
            batch = settings.intake_batch_size
            raws = [RawFact(m.body, m.message_id) for m in messages]
            for start in range(0, len(raws), batch):
                outcomes = await system.intake.handle(raws[start : start + batch])
                bad = [o for o in outcomes if o.kind != "accepted"]
                if bad:
                    raise BenchError(f"intake did not accept: {bad[:3]}")
                ctx.progress = f"{start + batch}/{len(raws)} facts"
            async with system.db.uow() as uow:
                rows = (await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
            tokens, card_ids = [], []
            for row in rows:
                body = json.loads(system.cipher.open(row.pii_key_id, row.body, context=row.message_id))
                tokens.append(body["link"].rsplit("/s/", 1)[1])
                card_ids.append(row.card_id)
        finally:
            await system.close()
            import shutil

            shutil.rmtree(var_dir, ignore_errors=True)
        if len(tokens) != len(messages):
            raise BenchError(f"{len(tokens)} links for {len(messages)} facts")
        yield SeededLinks(database, tokens, card_ids)


def service_key(ctx: BenchContext, caller: str) -> str:
    return ctx.defaults().service_keys[caller].get_secret_value()
