"""Shared fixtures: settings, databases (a migrated one of its own per test, SQLite file or PostgreSQL
database: a copy of the run's template, migrated once — ``tests/databases.py``), RabbitMQ
availability, and the suite-wide check that no test citizen's personal data reaches any log line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import ahocorasick
import pytest
from argon2 import PasswordHasher

from posog.core.logging import configure_logging
from posog.core.migrate import upgrade
from posog.lko.accounts import passwords
from posog.settings import Settings
from tests import databases

AMQP_URL = os.environ.get("POSOG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("POSOG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOG_DIR = Path("test-output/logs")


# --- The suite's logs, kept for the personal-data check ---------------------------------------------------


_SUITE_HANDLER: logging.Handler | None = None
# Under pytest-xdist (``make test`` runs ``-n 2``) each worker is a process of its own: its name
# ("gw0", "gw1"…), None in the controller or in a run without xdist.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


# Argon2 as production hashes passwords costs about a second a hash on a loaded machine — and the
# cabinet's tests hash and verify many. The suite hashes with the cheapest parameters Argon2 allows;
# tests/unit/test_passwords.py checks the production ones (PRODUCTION_HASHER) once. Processes the
# tests start (``posog users create``, the demo) hash as in production: those hashes verify the same.
PRODUCTION_HASHER = passwords._hasher


@functools.cache
def _cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def pytest_configure(config: pytest.Config) -> None:
    global _SUITE_HANDLER
    databases.run_id()  # made here, before any xdist worker starts: they inherit it
    passwords._hasher = _cheap_hasher
    passwords._dummy_hash.cache_clear()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    if XDIST_WORKER is None:  # the run's first process: the previous run's logs go (not a sibling's)
        for old in LOG_DIR.glob("*.log"):
            old.unlink()
    configure_logging("DEBUG")
    suite_log = LOG_DIR / (f"suite-{XDIST_WORKER}.log" if XDIST_WORKER else "suite.log")
    suite_log.write_text("", encoding="utf-8")
    # Append mode: when code under test closes the handler (logging.basicConfig(force=True) does),
    # the handler reopens its file on the next line instead of dropping it.
    _SUITE_HANDLER = logging.FileHandler(suite_log, mode="a", encoding="utf-8")
    _SUITE_HANDLER.setLevel(logging.DEBUG)
    _attach_suite_log()


def _attach_suite_log() -> None:
    root = logging.getLogger()
    if _SUITE_HANDLER is not None and _SUITE_HANDLER not in root.handlers:
        root.addHandler(_SUITE_HANDLER)
    root.setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def _suite_log() -> Iterator[None]:
    """Code under test may reconfigure logging (the CLI does): every test's lines still reach the
    suite log that the personal-data check reads."""
    _attach_suite_log()
    yield
    _drop_closed_stream_handlers()
    _attach_suite_log()


def _drop_closed_stream_handlers() -> None:
    """A CLI run through CliRunner leaves its ``basicConfig`` handler on the root logger, bound to the
    runner's stream, closed once the run is over: every later log line would then print "Logging
    error" into whatever output comes next (another CliRunner's, which a test parses)."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        stream = getattr(handler, "stream", None)
        if handler is not _SUITE_HANDLER and getattr(stream, "closed", False):
            root.removeHandler(handler)


# --- Parallel runs (pytest-xdist) -------------------------------------------------------------------
#
# ``make test`` runs the suite on two processes (``-n 2 --dist loadgroup``): each test goes to whichever
# is free, except the tests of one group below, which run one after another on one process. Every
# test is safe beside any other — databases, queues, Redis keys, ports and files of its own — so a
# group is about cost: the browser tests share one Chromium and one live system per module; the two
# heaviest end-to-end tests (a dozen processes; two thousand hostile messages) are not run at the same
# time; the files listed build an expensive module- or session-wide fixture. (All end-to-end tests in
# one group made that one process the run's critical path: most of the run's time is theirs.)
TESTS = Path(__file__).resolve().parent
XDIST_GROUPS = {
    "browser": "browser",
    "e2e/test_production_mode.py": "e2e-heavy",
    "e2e/test_intake_hostile_worker.py": "e2e-heavy",
    "integration/test_openapi_fuzz.py": "openapi-fuzz",
    "integration/test_http_contract.py": "http-contract",
    "integration/test_rabbit_bus.py": "rabbit-bus",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the tests' ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = Path(item.path).resolve().relative_to(TESTS).as_posix()
        for prefix, group in XDIST_GROUPS.items():
            if (where == prefix or where.startswith(f"{prefix}/")) and item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(group))


# Every citizen a test creates is registered here; the last test of the session scans all logs.
SEEN_CITIZENS: list[dict[str, str]] = []


def remember_citizen(citizen: dict[str, str]) -> None:
    SEEN_CITIZENS.append(citizen)


def pii_needles() -> set[str]:
    needles: set[str] = set()
    for c in SEEN_CITIZENS:
        digits = re.sub(r"\D", "", c["snils"])
        needles.update({digits, c["snils"], f"{digits[:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:]}"})
        needles.add(c["birth_date"])
        needles.add(f"{c['last_name']} {c['first_name']}")
    return {n for n in needles if n}


# --- Services ---------------------------------------------------------------------------------------------


def _unavailable(what: str, error: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI and is not reachable: {error}")
    pytest.skip(f"{what} not reachable here ({error}); CI runs this test")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    async def probe() -> None:
        import aio_pika

        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        _unavailable("RabbitMQ", exc)
    return AMQP_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis for the shared limiters (skipped locally when absent, required in CI). Tests give their
    keys a prefix of their own (``redis_prefix``), so they never see each other's."""

    async def probe() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(probe())
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    return f"posog-test:{uuid.uuid4().hex[:12]}:"


async def pg_database(*, migrated: bool = True) -> str:
    """A PostgreSQL database of its own (``databases.create_pg_database``); the test is skipped
    locally, failed in CI, when PostgreSQL cannot be reached."""
    try:
        return await databases.create_pg_database(migrated=migrated)
    except databases.PgUnavailable as exc:
        _unavailable("PostgreSQL", exc)
        raise


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, migrated (a copy of the run's template), dropped afterwards."""
    url = await pg_database()
    yield url
    await databases.drop_pg_database(url)


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """A PostgreSQL database migrated by Alembic for this test alone (for the tests of the migrations
    themselves), dropped afterwards."""
    url = await pg_database(migrated=False)
    try:
        await upgrade(url)
        yield url
    finally:
        await databases.drop_pg_database(url)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database of the test's own (a copy of the run's template)."""
    return await databases.create_sqlite_database(tmp_path / "posog.sqlite3")


@pytest.fixture
async def fresh_sqlite_url(tmp_path: Path) -> str:
    """An SQLite database migrated by Alembic for this test alone."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'posog.sqlite3'}"
    await upgrade(url)
    return url


@pytest.fixture
def test_settings(tmp_path: Path) -> Iterator[Settings]:
    return Settings(env="test", var_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]


def scan_logs_for_pii(paths: list[Path], needles: set[str]) -> list[str]:
    """Lines of the given log files that contain any needle (reported without the needle itself).

    One Aho–Corasick automaton of all the needles reads each line once: a whole run remembers some
    20 000 citizens (≈ 90 000 needles), and asking of each line whether each needle is in it took the
    run's controller two minutes after its last test."""
    if not needles:
        return []
    automaton = ahocorasick.Automaton()
    for needle in needles:
        automaton.add_word(needle, len(needle))
    automaton.make_automaton()
    leaks: list[str] = []
    for path in paths:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if next(automaton.iter(line), None) is not None:
                leaks.append(f"{path}:{number}")
    return leaks


# The needles and citizen counts the xdist workers handed over when they finished (controller only).
_WORKERS_NEEDLES: set[str] = set()
_WORKERS_CITIZENS: list[int] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist (controller): a worker finished; keep what it saw for the personal-data check."""
    output = getattr(node, "workeroutput", {})
    _WORKERS_NEEDLES.update(output.get("pii_needles", ()))
    _WORKERS_CITIZENS.append(int(output.get("pii_citizens", 0)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite fails if any log line of any test (or worker process) holds a test citizen's СНИЛС,
    name or birth date. Under xdist each worker hands its citizens over to the controller, which
    scans every log once all workers are done (a worker's own verdict would not reach the exit
    status); the controller also drops whatever database a worker that died left behind."""
    with contextlib.suppress(databases.PgUnavailable):
        databases.drop_templates()
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(ValueError):  # a handler left on a CliRunner's closed stream
            handler.flush()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker
        workeroutput["pii_needles"] = sorted(pii_needles())
        workeroutput["pii_citizens"] = len(SEEN_CITIZENS)
        return
    if XDIST_WORKER is None:
        with contextlib.suppress(databases.PgUnavailable):
            databases.drop_leftovers()
    needles = pii_needles() | _WORKERS_NEEDLES
    citizens = len(SEEN_CITIZENS) + sum(_WORKERS_CITIZENS)
    if not needles:
        return
    leaks = scan_logs_for_pii(sorted(LOG_DIR.glob("*.log")), needles)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        if reporter is not None:
            reporter.write_line(f"PERSONAL DATA IN LOGS at {len(leaks)} line(s): {leaks[:10]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(
            f"Personal-data log check: {citizens} test citizens, no trace in "
            f"{len(list(LOG_DIR.glob('*.log')))} log file(s)."
        )
