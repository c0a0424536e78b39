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


@dataclass(frozen=True)
class Target:
    """An absolute target for a measurement's rate."""

    label: str
    key: str
    minimum: float


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
    _facts: list[dict[str, Any]] | None = None
    _messages: list[AmqpMessage] | None = None

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
    def profiled(self, name: str) -> Iterator[None]:
        """cProfile the block when ``--profile`` is on: ``<results>/<name>.prof`` and a summary
        ``<name>.profile.txt`` (top functions by own time, and own time grouped by package)."""
        if not self.profile:
            yield
            return
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            self.results_dir.mkdir(parents=True, exist_ok=True)
            raw = self.results_dir / f"{name}.prof"
            profiler.dump_stats(raw)
            summary = self.results_dir / f"{name}.profile.txt"
            summary.write_text(profile_summary(profiler), encoding="utf-8")
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


# --- Profiles ------------------------------------------------------------------------------------


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
    return "stdlib " + Path(path).stem


def profile_hotspots(profiler: cProfile.Profile, top: int = 15) -> dict[str, Any]:
    """Own time (tottime) per function and per package, as shares of the profiled total."""
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
    return {
        "total_s": total,
        "functions": [
            {"function": f, "own_s": own, "cumulative_s": cum, "share": own / total} for f, own, cum in functions[:top]
        ],
        "packages": [
            {"package": p, "own_s": s, "share": s / total}
            for p, s in sorted(packages.items(), key=lambda item: item[1], reverse=True)[:top]
        ],
    }


def profile_summary(profiler: cProfile.Profile) -> str:
    hotspots = profile_hotspots(profiler, top=25)
    out = io.StringIO()
    out.write(f"profiled total own time: {hotspots['total_s']:.2f} s\n\nown time by package:\n")
    for p in hotspots["packages"]:
        out.write(f"  {p['share']:6.1%}  {p['own_s']:8.2f} s  {p['package']}\n")
    out.write("\nown time by function:\n")
    for f in hotspots["functions"]:
        out.write(f"  {f['share']:6.1%}  {f['own_s']:8.2f} s  (cum {f['cumulative_s']:7.2f} s)  {f['function']}\n")
    out.write("\ncumulative (pstats):\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(60)
    return out.getvalue()


def python_version() -> str:
    return sys.version.split()[0]
