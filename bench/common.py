"""What every benchmark shares: the workload registry, measurements and ratios, throwaway PostgreSQL
databases, unique RabbitMQ names (deleted afterwards), the pre-generated fact messages, waiting for
conditions, confirmed publishing and an optional cProfile of the timed part.

A workload is an ``async def`` taking a :class:`BenchContext` and returning :class:`Measurement`\\ s,
registered with :func:`workload` in any module of the ``bench`` package (modules are discovered; see
``bench/__main__.py``). Everything it creates must be removed even when it fails or times out: use
:func:`scratch_database`, :func:`rabbit_names` and :func:`system_stack`, which do that.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import aio_pika
import aiormq
import asyncpg
from rich.console import Console

from posog.settings import Settings

if TYPE_CHECKING:
    from posog.bootstrap import System

PG_ADMIN_DSN = os.environ.get("POSOG_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("POSOG_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RUN_ID = uuid.uuid4().hex[:8]
DATABASE_PREFIX = "posog_bench_"
CLEANUP_TIMEOUT_S = 30.0

Kind = Literal["workload", "limit"]


class BenchError(Exception):
    """A workload could not complete; the message is shown in the table."""


# --- Results -------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """``count`` things done in ``seconds`` (the timed part only); the rate is count / seconds."""

    key: str
    label: str
    kind: Kind
    count: int
    seconds: float
    unit: str
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Ratio:
    """``numerator``'s rate ÷ ``denominator``'s rate (measurement keys), optionally with a target."""

    label: str
    numerator: str
    denominator: str
    minimum: float | None = None
    # Both sides are bound by this Python process's CPU: also report the ratio per CPU-second of the
    # process, which other load on the machine hardly moves.
    cpu_bound: bool = False


@dataclass(frozen=True)
class Target:
    """An absolute target for a measurement's rate."""

    label: str
    key: str
    minimum: float


@dataclass(frozen=True)
class Ceiling(Target):
    """A target on a figure of a measurement's ``extra`` (``field``) that must stay at most ``maximum``
    (``minimum`` is unused), e.g. the growth of a worker's memory. ``bench/__main__.py`` evaluates any
    target with ``field`` and ``maximum``."""

    field: str = ""
    maximum: float | None = None
    unit: str = ""


WorkloadFunction = Callable[["BenchContext"], Awaitable[list[Measurement]]]


@dataclass(frozen=True)
class Workload:
    name: str
    kind: Kind
    run: WorkloadFunction
    description: str
    limits: tuple[str, ...] = ()
    ratios: tuple[Ratio, ...] = ()
    targets: tuple[Target, ...] = ()


REGISTRY: dict[str, Workload] = {}


def workload(
    name: str,
    *,
    kind: Kind = "workload",
    limits: Sequence[str] = (),
    ratios: Sequence[Ratio] = (),
    targets: Sequence[Target] = (),
) -> Callable[[WorkloadFunction], WorkloadFunction]:
    """Register a workload. ``limits`` name the raw-limit workloads it is measured beside (they run
    in the same invocation, right before it, also under ``--only``); ``ratios`` and ``targets``
    refer to measurement keys."""

    def register(function: WorkloadFunction) -> WorkloadFunction:
        if name in REGISTRY:
            raise ValueError(f"workload {name!r} registered twice")
        description = (function.__doc__ or name).strip().splitlines()[0]
        REGISTRY[name] = Workload(name, kind, function, description, tuple(limits), tuple(ratios), tuple(targets))
        return function

    return register


# --- The context a workload runs in --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AmqpMessage:
    body: bytes
    message_id: str
    headers: dict[str, str] | None = None


@dataclass
class BenchContext:
    facts: int
    results_dir: Path
    profile: bool = False
    seed: int = 20_26
    log: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    phase: str = "starting"
    progress: str = ""
    leftovers: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # data workloads pre-generate and share
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # hotspots of --profile runs
    recorded: list[Measurement] = field(default_factory=list)  # see record()
    # Facts of the backlog a worker drains in the memory workload (POSOG_BENCH_BACKLOG, 1 000 000).
    backlog: int = field(default_factory=lambda: int(os.environ.get("POSOG_BENCH_BACKLOG", "1000000")))
    _facts: list[dict[str, Any]] | None = None
    _messages: list[AmqpMessage] | None = None

    def record(self, measurement: Measurement) -> None:
        """Keep a measurement as soon as it is taken: it is reported even if the workload fails or
        times out later (a workload may also just return its measurements)."""
        self.recorded.append(measurement)

    def step(self, workload: str, phase: str) -> None:
        """Name what is running (shown if the workload times out) and say so on stderr."""
        self.phase = f"{workload}: {phase}"
        self.progress = ""
        self.log.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {self.phase}")

    def fact_dicts(self) -> list[dict[str, Any]]:
        """``facts`` valid ОГ facts, generated once per run (deterministic for the seed)."""
        if self._facts is None:
            from posog.core.clock import today, utcnow
            from posog.emulators.datagen.facts import FactFactory

            started = time.perf_counter()
            factory = FactFactory(seed=self.seed, today=today(utcnow))
            self._facts = [factory.fact() for _ in range(self.facts)]
            self.log.print(f"[dim]generated {self.facts} facts in {time.perf_counter() - started:.1f} s[/dim]")
        return self._facts

    def fact_messages(self) -> list[AmqpMessage]:
        """The same facts as AMQP bodies (JSON, UTF-8) with their СМЭВ MessageIDs."""
        if self._messages is None:
            self._messages = [
                AmqpMessage(json.dumps(f, ensure_ascii=False).encode(), f["message_id"]) for f in self.fact_dicts()
            ]
        return self._messages

    def defaults(self) -> Settings:
        """The settings a real process would get (environment ``POSOG_*`` overrides apply), used for
        batch sizes and prefetch so that limits are measured with the same parameters."""
        return Settings(_env_file=None, env="test", amqp_url=AMQP_URL, lko_url=None)  # type: ignore[call-arg]

    def settings(self, *, database_url: str, var_dir: Path, names: RabbitNames, **overrides: Any) -> Settings:
        """Production-like settings on the given database with queue and exchange names of their own."""
        values: dict[str, Any] = {
            "env": "test",
            "var_dir": var_dir,
            "database_url": database_url,
            "amqp_url": AMQP_URL,
            "lko_url": None,
            "lkp_base_url": "https://lkp.bench.invalid/lkp",
            "facts_queue": names.queue("facts"),
            "facts_dead_letter_exchange": names.exchange("facts.dlx"),
            "facts_dead_letter_queue": names.queue("facts.dead"),
            "geps_exchange": names.exchange("geps"),
            "geps_inbox_queue": names.queue("geps.epgu"),
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    @contextlib.contextmanager
    def profiled(self, name: str, steps: Sequence[tuple[str, str]] = ()) -> Iterator[None]:
        """cProfile (CPU time) the block when ``--profile`` is on: ``<results>/<name>.prof`` and a summary
        ``<name>.profile.txt`` (own time by area, package and function; cumulative time of the
        named ``steps``, see :func:`profile_hotspots`); the hotspots also go into the JSON."""
        if not self.profile:
            yield
            return
        # CPU time, not wall time: on a shared machine a wall-clock profile charges every preemption
        # to whatever was running (a socket send, a greenlet switch) and hides where the CPU went.
        # Waiting is measured separately (cpu_meter: wall vs CPU of each process).
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            self.results_dir.mkdir(parents=True, exist_ok=True)
            raw = self.results_dir / f"{name}.prof"
            profiler.dump_stats(raw)
            summary = self.results_dir / f"{name}.profile.txt"
            summary.write_text(profile_summary(profiler, steps), encoding="utf-8")
            self.profiles[name] = profile_hotspots(profiler, steps, top=10)
            self.log.print(f"profile of {name}: {raw} (summary: {summary})")


# --- PostgreSQL ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchDatabase:
    name: str

    @property
    def dsn(self) -> str:
        """asyncpg / libpq DSN."""
        return urlsplit(PG_ADMIN_DSN)._replace(path=f"/{self.name}").geturl()

    @property
    def url(self) -> str:
        """SQLAlchemy URL (asyncpg driver)."""
        scheme, rest = self.dsn.split("://", 1)
        return f"{scheme.split('+')[0]}+asyncpg://{rest}"


async def _admin(statement: str) -> None:
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"PostgreSQL at {safe_url(PG_ADMIN_DSN)} is not reachable: {exc!r}") from exc
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def scratch_database(
    ctx: BenchContext, *, migrate: bool = True, seed: bool = False
) -> AsyncIterator[ScratchDatabase]:
    """A throwaway database (``posog_bench_<run>_<n>``), migrated to head with
    ``posog.core.migrate.upgrade`` and optionally seeded with ``posog.lko.seed.seed_defaults``;
    dropped (``WITH (FORCE)``) afterwards, whatever happened."""
    database = ScratchDatabase(f"{DATABASE_PREFIX}{RUN_ID}_{uuid.uuid4().hex[:6]}")
    await _admin(f'CREATE DATABASE "{database.name}"')
    try:
        if migrate:
            from posog.core.migrate import upgrade

            await upgrade(database.url)
        if seed:
            from posog.core.db import Database
            from posog.lko.seed import seed_defaults

            db = Database(database.url, pool_size=1)
            try:
                await seed_defaults(db)
            finally:
                await db.dispose()
        yield database
    finally:
        await cleanup(
            ctx, f'database "{database.name}"', _admin(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        )


# --- RabbitMQ ------------------------------------------------------------------------------------


@dataclass
class RabbitNames:
    """Unique queue and exchange names (``bench.<run>.<n>.<what>``); remembers them for deletion."""

    prefix: str = field(default_factory=lambda: f"bench.{RUN_ID}.{uuid.uuid4().hex[:6]}")
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def queue(self, what: str) -> str:
        name = f"{self.prefix}.{what}"
        self.queues.append(name)
        return name

    def exchange(self, what: str) -> str:
        name = f"{self.prefix}.{what}"
        self.exchanges.append(name)
        return name


@contextlib.asynccontextmanager
async def amqp_connection() -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=10)
    except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
        raise BenchError(f"RabbitMQ at {safe_url(AMQP_URL)} is not reachable: {exc!r}") from exc
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _delete_rabbit_objects(names: RabbitNames) -> None:
    async with amqp_connection() as connection:
        for queue in names.queues:
            channel = await connection.channel()
            await channel.queue_delete(queue)
            await channel.close()
        for exchange in names.exchanges:
            channel = await connection.channel()
            await channel.exchange_delete(exchange)
            await channel.close()


@contextlib.asynccontextmanager
async def rabbit_names(ctx: BenchContext) -> AsyncIterator[RabbitNames]:
    """Names for queues and exchanges; every one handed out is deleted afterwards, whatever happened."""
    names = RabbitNames()
    try:
        yield names
    finally:
        if names.queues or names.exchanges:
            what = ", ".join([*names.queues, *names.exchanges])
            await cleanup(ctx, f"RabbitMQ objects {what}", _delete_rabbit_objects(names))


async def publish_confirmed(
    exchange: aio_pika.abc.AbstractExchange, routing_key: str, messages: Sequence[AmqpMessage], *, batch: int
) -> None:
    """Publish persistent, mandatory messages ``batch`` at a time, each batch concurrently, waiting
    for the broker's confirms of a batch before the next (as the outbox relay does)."""
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        results = await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body=m.body,
                        message_id=m.message_id,
                        content_type="application/json",
                        headers=m.headers,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key,
                    mandatory=True,
                )
                for m in chunk
            )
        )
        refused = [r for r in results if not isinstance(r, aiormq.spec.Basic.Ack)]
        if refused:
            raise BenchError(f"{len(refused)} of {len(chunk)} publishes not confirmed: {refused[0]!r}")


# --- A whole system ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    system: System
    database: ScratchDatabase
    names: RabbitNames


@contextlib.asynccontextmanager
async def system_stack(ctx: BenchContext, **overrides: Any) -> AsyncIterator[Stack]:
    """``bootstrap(settings)`` on a fresh, migrated and seeded database with RabbitMQ names of its own
    and the bus started (topology declared); database, queues and exchanges removed afterwards.
    ``overrides`` are :class:`~posog.settings.Settings` fields."""
    from posog.bootstrap import bootstrap

    var_dir = Path(tempfile.mkdtemp(prefix="posog-bench-"))
    try:
        async with scratch_database(ctx, seed=True) as database, rabbit_names(ctx) as names:
            settings = ctx.settings(database_url=database.url, var_dir=var_dir, names=names, **overrides)
            system = bootstrap(settings)
            try:
                await system.start_bus()
                yield Stack(system, database, names)
            finally:
                await cleanup(ctx, "the system's connections", system.close())
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


# --- Worker processes ----------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``posog worker NAME`` process (production mode: the stack's PostgreSQL and RabbitMQ, its
    queue names), its output in a log file of its own."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int | None:
        """Resident set size in bytes (psutil), None once the process is gone."""
        import psutil

        try:
            return int(psutil.Process(self.pid).memory_info().rss)
        except psutil.Error:
            return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            raise BenchError(
                f"worker {self.name} (pid {self.pid}) exited with {self.process.returncode}:\n{self.log_tail()}"
            )


def worker_environment(stack: Stack, **overrides: str) -> dict[str, str]:
    """The environment of a worker process on ``stack`` (the bench's own ``POSOG_*`` settings pass on,
    as for the in-process workers)."""
    s = stack.system.settings
    assert s.amqp_url is not None
    return {
        **os.environ,
        "POSOG_ENV": "test",
        "POSOG_VAR_DIR": str(s.var_dir),
        "POSOG_DATABASE_URL": s.resolved_database_url,
        "POSOG_AMQP_URL": s.amqp_url,
        "POSOG_LKP_BASE_URL": s.lkp_base_url,
        "POSOG_FACTS_QUEUE": s.facts_queue,
        "POSOG_FACTS_DEAD_LETTER_EXCHANGE": s.facts_dead_letter_exchange,
        "POSOG_FACTS_DEAD_LETTER_QUEUE": s.facts_dead_letter_queue,
        "POSOG_GEPS_EXCHANGE": s.geps_exchange,
        "POSOG_GEPS_INBOX_QUEUE": s.geps_inbox_queue,
        "POSOG_LOG_LEVEL": os.environ.get("POSOG_LOG_LEVEL", "WARNING"),
        **overrides,
    }


@contextlib.asynccontextmanager
async def worker_processes(
    ctx: BenchContext, stack: Stack, names: Sequence[str], **env: str
) -> AsyncIterator[list[WorkerProcess]]:
    """Start one ``posog worker`` process per name; on exit stop them (SIGTERM, then SIGKILL after
    the clean-up timeout) — only these processes, by their pid — whatever happened."""
    log_dir = Path(tempfile.mkdtemp(prefix="posog-bench-workers-"))
    environment = worker_environment(stack, **env)
    workers: list[WorkerProcess] = []
    try:
        for index, name in enumerate(names):
            log_path = log_dir / f"{index}-{name}.log"
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "posog.cli", "worker", name, env=environment, stdout=log, stderr=log
                )
            workers.append(WorkerProcess(name, process, log_path))
        yield workers
    finally:
        for worker in workers:
            if worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.terminate()
        for worker in workers:
            try:
                async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                    await worker.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
        shutil.rmtree(log_dir, ignore_errors=True)


async def queue_consumers(queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of ``queue`` (passive declare on a connection of its own)."""
    async with amqp_connection() as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)


# --- A backlog of facts, published fast -----------------------------------------------------------

_CARD_MARK = "@@posog-bench-card@@"
_MESSAGE_MARK = "@@posog-bench-message@@"


def backlog_templates(ctx: BenchContext) -> list[tuple[bytes, ...]]:
    """Each pre-generated fact as JSON bytes cut around its ``card_id`` and ``message_id`` values, so
    that a copy with fresh identifiers costs three concatenations: (head, card_id, middle,
    message_id, tail) with the identifiers left out."""
    templates = []
    for fact in ctx.fact_dicts():
        marked = {**fact, "card_id": _CARD_MARK, "message_id": _MESSAGE_MARK}
        text = json.dumps(marked, ensure_ascii=False)
        card_at, message_at = text.index(_CARD_MARK), text.index(_MESSAGE_MARK)
        first, second = sorted([(card_at, _CARD_MARK), (message_at, _MESSAGE_MARK)])
        parts = (
            text[: first[0]],
            text[first[0] + len(first[1]) : second[0]],
            text[second[0] + len(second[1]) :],
        )
        card_first = first[1] == _CARD_MARK
        templates.append((*(part.encode() for part in parts), b"c" if card_first else b"m", fact["card_id"].encode()))
    return templates


def backlog_message(templates: Sequence[tuple[bytes, ...]], n: int) -> tuple[bytes, str]:
    """The ``n``-th fact of a backlog: pre-generated fact ``n mod len`` with card_id
    ``<its card_id>.b<n>`` and message_id ``bench-<n>`` (new cards, never duplicates)."""
    head, middle, tail, order, card_id = templates[n % len(templates)]
    card = card_id + f".b{n}".encode()
    message = f"bench-{n}".encode()
    first, second = (card, message) if order == b"c" else (message, card)
    return head + first + middle + second + tail, message.decode()


async def publish_backlog(ctx: BenchContext, queue: str, total: int, *, publishers: int = 4, window: int = 500) -> None:
    """Put ``total`` distinct facts into ``queue``: persistent, with publisher confirms, ``publishers``
    channels in parallel, ``window`` messages in flight on each. Bodies are the pre-generated facts
    with fresh identifiers (:func:`backlog_message`); aiormq directly, without aio-pika's per-message
    objects, so that a million takes minutes, not tens of minutes."""
    templates = backlog_templates(ctx)
    done = 0
    started = time.perf_counter()

    async def publisher(channel: aiormq.abc.AbstractChannel, first: int, step: int) -> None:
        nonlocal done
        numbers = range(first, total, step)
        for start in range(0, len(numbers), window):
            chunk = numbers[start : start + window]
            confirmations = await asyncio.gather(
                *(
                    channel.basic_publish(
                        body,
                        routing_key=queue,
                        properties=aiormq.spec.Basic.Properties(
                            message_id=message_id, content_type="application/json", delivery_mode=2
                        ),
                        mandatory=True,
                    )
                    for body, message_id in (backlog_message(templates, n) for n in chunk)
                )
            )
            refused = [c for c in confirmations if not isinstance(c, aiormq.spec.Basic.Ack)]
            if refused:
                raise BenchError(f"{len(refused)} of {len(chunk)} backlog publishes not confirmed: {refused[0]!r}")
            done += len(chunk)
            elapsed = time.perf_counter() - started
            ctx.progress = f"{done}/{total} published ({done / elapsed:,.0f}/s)"

    async with amqp_connection() as connection:
        channels = [await connection.channel(publisher_confirms=True) for _ in range(publishers)]
        raw = [channel.channel for channel in channels]  # type: ignore[attr-defined]
        await asyncio.gather(*(publisher(channel, i, publishers) for i, channel in enumerate(raw)))


# --- Waiting and stopping ------------------------------------------------------------------------


async def wait_until(
    ctx: BenchContext,
    check: Callable[[], Awaitable[bool]],
    *,
    watch: Sequence[asyncio.Task[Any]] = (),
    interval: float = 0.1,
) -> None:
    """Poll ``check`` every ``interval`` seconds until it is true; fail at once if a watched task
    ended (a crashed worker). The per-workload timeout bounds the wait."""
    while True:
        for task in watch:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise BenchError(f"{task.get_name()} stopped during {ctx.phase}: {error!r}") from error
        if await check():
            return
        await asyncio.sleep(interval)


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel a worker task and wait (bounded) until it has finished its own clean-up."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
        async with asyncio.timeout(CLEANUP_TIMEOUT_S):
            await task


async def cleanup(ctx: BenchContext, what: str, operation: Awaitable[Any]) -> None:
    """Best-effort, bounded clean-up that never raises; what could not be removed is reported."""
    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT_S):
            await operation
    except Exception as exc:
        ctx.leftovers.append(f"{what}: {exc!r}")
        ctx.log.print(f"[yellow]could not remove {what}: {exc!r}[/yellow]")


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return parts.geturl()


# --- CPU accounting ------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _broker_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in ("beam.smp", "beam")]


async def _backend_pids(connection: asyncpg.Connection | None) -> list[int]:
    """The PostgreSQL backends of the connection's database, except the connection itself."""
    if connection is None:
        return []
    rows = await connection.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return [int(r["pid"]) for r in rows]


@dataclass
class CpuUsage:
    """CPU seconds spent during a block, beside its wall time: this (Python) process, the PostgreSQL
    backends serving the benchmark's database, the RabbitMQ broker (all of it: other users of the
    broker count too) and the whole machine (busy time; capacity = wall × CPUs)."""

    wall_s: float = 0.0
    python_s: float = 0.0
    postgres_s: float | None = None
    rabbitmq_s: float | None = None
    machine_busy_s: float | None = None
    machine_capacity_s: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {k: None if v is None else round(v, 3) for k, v in self.__dict__.items()}


@contextlib.asynccontextmanager
async def cpu_meter(
    connection: asyncpg.Connection | None = None, *, processes: Callable[[], Sequence[int]] | None = None
) -> AsyncIterator[CpuUsage]:
    """Measure :class:`CpuUsage` of the block (psutil, if installed; else only wall and this process).
    ``connection`` (asyncpg, on the benchmark's database) finds the backends to charge. With
    ``processes`` (pids of worker processes, asked at the start and at the end: workers that ran
    throughout), the "Python" figure is theirs instead of this process's."""
    if processes is not None:
        workers = {pid: _cpu_of(pid) for pid in processes()}
        usage: CpuUsage
        async with cpu_meter(connection) as usage:
            yield usage
        usage.python_s = sum(_cpu_of(pid) - cpu for pid, cpu in workers.items() if pid in set(processes()))
        return
    usage = CpuUsage()
    try:
        import psutil
    except ImportError:  # a dev dependency: without it, only this process is measured
        psutil = None  # type: ignore[assignment]
    backends: dict[int, float] = {}
    broker: dict[int, float] = {}
    machine = None
    if psutil is not None:
        backends = {pid: _cpu_of(pid) for pid in await _backend_pids(connection)}
        broker = {pid: _cpu_of(pid) for pid in _broker_pids()}
        machine = psutil.cpu_times()
    wall, own = time.perf_counter(), time.process_time()
    try:
        yield usage
    finally:
        usage.wall_s = time.perf_counter() - wall
        usage.python_s = time.process_time() - own
        if psutil is not None and machine is not None:
            now = psutil.cpu_times()
            usage.machine_capacity_s = usage.wall_s * (psutil.cpu_count() or 1)
            busy = [f for f in now._fields if f not in ("idle", "iowait", "guest", "guest_nice")]
            usage.machine_busy_s = sum(getattr(now, f) - getattr(machine, f) for f in busy)
            with contextlib.suppress(Exception):  # the connection may be gone after a failure
                pids = await _backend_pids(connection) if connection is not None else []
                usage.postgres_s = sum(_cpu_of(pid) - backends.get(pid, 0.0) for pid in pids) if pids else None
            usage.rabbitmq_s = sum(_cpu_of(pid) - cpu for pid, cpu in broker.items()) if broker else None


# --- Profiles ------------------------------------------------------------------------------------

# Own time of packages grouped into areas a reader can act on (first match wins).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("waiting in epoll (≈0 in a CPU-time profile)", ("<method 'poll' of 'select.epoll' objects>",)),
    ("AMQP client (aio-pika, aiormq, pamqp)", ("aio_pika", "aiormq", "pamqp")),
    (
        "asyncio event loop, tasks, streams, sockets",
        (
            "stdlib asyncio.",
            "stdlib selectors",
            "stdlib socket",
            "stdlib contextlib",
            "<method 'run' of '_contextvars.Context' objects>",
            "<method 'send' of '_socket.socket' objects>",
            "<method 'recv' of '_socket.socket' objects>",
            "<built-in method _asyncio",
            "<method 'set_result'",
            "<method 'cancel' of",
            "<built-in method builtins.next>",
            "<method 'done' of",
        ),
    ),
    ("SQLAlchemy (ORM, Core, greenlet bridge)", ("sqlalchemy", "greenlet", "<method 'switch' of 'greenlet")),
    ("asyncpg", ("asyncpg",)),
    (
        "pydantic validation and serialisation",
        (
            "pydantic",
            "<method 'validate_json'",
            "<method 'validate_python'",
            "<method 'to_json'",
            "<method 'to_python'",
        ),
    ),
    ("ЛКО calls in process (httpx, ASGI, FastAPI)", ("httpx", "httpcore", "starlette", "fastapi", "anyio")),
    (
        "crypto and hashes",
        (
            "cryptography",
            "<method 'encrypt'",
            "<method 'decrypt'",
            "<built-in method _hashlib",
            "<method 'hexdigest'",
            "<built-in method posix.urandom>",
            "stdlib hmac",
            "stdlib hashlib",
            "stdlib secrets",
        ),
    ),
    ("posog code", ("posog.", "stdnum")),
    ("json", ("stdlib json",)),
    ("metrics and logging", ("prometheus_client", "structlog", "stdlib logging")),
)


def _package_of(filename: str, function: str) -> str:
    """Where a function's own time is charged: a third-party package, a posog module, a stdlib
    module, or (for C builtins) the builtin itself."""
    if filename == "~":
        return function
    path = filename.replace("\\", "/")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/posog/" in path:
        return "posog." + path.split("/posog/", 1)[1].removesuffix(".py").replace("/", ".")
    match = re.search(r"/lib/python3\.\d+/(.+)\.py$", path)
    module = match.group(1).replace("/", ".").removesuffix(".__init__") if match else Path(path).stem
    return "stdlib " + module


def _area_of(package: str) -> str:
    for area, prefixes in AREAS:
        if package.startswith(prefixes):
            return area
    return "other (builtins, small stdlib helpers)"


def profile_hotspots(
    profiler: cProfile.Profile, steps: Sequence[tuple[str, str]] = (), top: int = 15
) -> dict[str, Any]:
    """Own time (tottime) per area, package and function, as shares of the profiled total, and the
    cumulative time of named ``steps`` (label, ``file.py:function`` suffix). In a coroutine, cProfile
    counts only the time it runs, not the time it waits."""
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    functions = sorted(
        ((f"{Path(fn).name}:{line}({name})", entry[2], entry[3]) for (fn, line, name), entry in entries.items()),
        key=lambda item: item[1],
        reverse=True,
    )
    packages: dict[str, float] = {}
    for (fn, _line, name), entry in entries.items():
        package = _package_of(fn, name)
        packages[package] = packages.get(package, 0.0) + entry[2]
    areas: dict[str, float] = {}
    for package, own in packages.items():
        areas[_area_of(package)] = areas.get(_area_of(package), 0.0) + own
    cumulative = []
    for label, suffix in steps:
        where, _, function = suffix.partition(":")
        found = [
            entry[3]
            for (fn, _line, name), entry in entries.items()
            if name == function and fn.replace("\\", "/").endswith(where)
        ]
        cumulative.append({"step": label, "function": suffix, "cumulative_s": max(found, default=0.0)})

    def ranked(values: dict[str, float], name: str) -> list[dict[str, Any]]:
        ordered = sorted(values.items(), key=lambda item: item[1], reverse=True)[:top]
        return [{name: key, "own_s": own, "share": own / total} for key, own in ordered]

    return {
        "total_s": total,
        "areas": ranked(areas, "area"),
        "packages": ranked(packages, "package"),
        "functions": [
            {"function": f, "own_s": own, "cumulative_s": cum, "share": own / total} for f, own, cum in functions[:top]
        ],
        "steps": [{**step, "share": step["cumulative_s"] / total} for step in cumulative],
    }


def profile_summary(profiler: cProfile.Profile | str, steps: Sequence[tuple[str, str]] = ()) -> str:
    hotspots = profile_hotspots(profiler, steps, top=25)
    out = io.StringIO()
    out.write(f"profiled CPU time of this process (own time of all functions): {hotspots['total_s']:.2f} s\n")
    for title, rows, name in (
        ("own time by area", hotspots["areas"], "area"),
        ("own time by package", hotspots["packages"], "package"),
    ):
        out.write(f"\n{title}:\n")
        for row in rows:
            out.write(f"  {row['share']:6.1%}  {row['own_s']:8.2f} s  {row[name]}\n")
    if hotspots["steps"]:
        out.write("\ncumulative time of steps (running, not waiting):\n")
        for row in hotspots["steps"]:
            out.write(f"  {row['share']:6.1%}  {row['cumulative_s']:8.2f} s  {row['step']}  [{row['function']}]\n")
    out.write("\nown time by function:\n")
    for f in hotspots["functions"]:
        out.write(f"  {f['share']:6.1%}  {f['own_s']:8.2f} s  (cum {f['cumulative_s']:7.2f} s)  {f['function']}\n")
    out.write("\ncumulative (pstats):\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(60)
    return out.getvalue()


def python_version() -> str:
    return sys.version.split()[0]
