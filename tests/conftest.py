"""Shared fixtures: settings, databases (a migrated one of its own per test, SQLite file or PostgreSQL
database: a copy of the run's template, migrated once — ``tests/databases.py``), RabbitMQ
availability, and the suite-wide check that no test citizen's personal data reaches any log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from posog.core.logging import configure_logging
from posog.core.migrate import upgrade
from posog.settings import Settings
from tests import databases

AMQP_URL = os.environ.get("POSOG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("POSOG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOG_DIR = Path("test-output/logs")


# --- The suite's logs, kept for the personal-data check ---------------------------------------------------


_SUITE_HANDLER: logging.Handler | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _SUITE_HANDLER
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old in LOG_DIR.glob("*.log"):
        old.unlink()
    configure_logging("DEBUG")
    (LOG_DIR / "suite.log").write_text("", encoding="utf-8")
    # Append mode: when code under test closes the handler (logging.basicConfig(force=True) does),
    # the handler reopens its file on the next line instead of dropping it.
    _SUITE_HANDLER = logging.FileHandler(LOG_DIR / "suite.log", mode="a", encoding="utf-8")
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
    """Lines of the given log files that contain any needle (reported without the needle itself)."""
    leaks: list[str] = []
    for path in paths:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if any(needle in line for needle in needles):
                leaks.append(f"{path}:{number}")
    return leaks


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite fails if any log line of any test (or worker process) holds a test citizen's СНИЛС,
    name or birth date."""
    with contextlib.suppress(databases.PgUnavailable):
        databases.drop_templates()
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(ValueError):  # a handler left on a CliRunner's closed stream
            handler.flush()
    needles = pii_needles()
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
            f"Personal-data log check: {len(SEEN_CITIZENS)} test citizens, no trace in "
            f"{len(list(LOG_DIR.glob('*.log')))} log file(s)."
        )
