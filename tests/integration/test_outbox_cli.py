"""``posog outbox dead|redrive``: the operator lists the rows the engine gave up on, across every
delivery, and re-drives them; the commands neither migrate nor seed."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posog.cli import app as cli_app
from posog.core.db import Database
from posog.core.migrate import upgrade
from posog.module.ias_export.model import FAILED, PENDING, IasExport

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _export(batch: str, status: str, *, dead: bool) -> IasExport:
    return IasExport(
        batch_id=batch,
        kind="aggregates",
        period_from=date(2026, 11, 1),
        period_to=date(2026, 11, 1),
        status=status,
        attempts=3 if dead else 0,
        next_attempt_at=None if dead else WHEN,
        last_error="HTTP 400: schema" if dead else None,
        dead_at=WHEN if dead else None,
        payload=b"{}",
        payload_sha256="0" * 64,
        payload_size=2,
        items=1,
        created_at=WHEN,
        updated_at=WHEN,
    )


async def _prepared(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'posog.sqlite3'}"
    await upgrade(url)
    db = Database(url)
    try:
        async with db.uow() as uow:
            uow.session.add_all([_export("b-dead", FAILED, dead=True), _export("b-due", PENDING, dead=False)])
            await uow.commit()
    finally:
        await db.dispose()
    return url


async def _row(url: str, batch: str) -> IasExport:
    db = Database(url)
    try:
        async with db.uow() as uow:
            row = await uow.session.get(IasExport, batch)
    finally:
        await db.dispose()
    assert row is not None
    return row


def test_dead_rows_are_listed_and_redriven(tmp_path: Path) -> None:
    url = asyncio.run(_prepared(tmp_path))
    env = {"POSOG_ENV": "test", "POSOG_DATABASE_URL": url, "COLUMNS": "200"}
    runner = CliRunner()

    listed = runner.invoke(cli_app, ["outbox", "dead"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "ias-export:b-dead" in listed.output
    assert "HTTP 400: schema" in listed.output
    assert "b-due" not in listed.output
    none = runner.invoke(cli_app, ["outbox", "dead", "--delivery", "geps"], env=env)
    assert (none.exit_code, "Таких строк нет" in none.output) == (0, True), none.output
    unknown = runner.invoke(cli_app, ["outbox", "dead", "--delivery", "nope"], env=env)
    assert unknown.exit_code == 2

    redriven = runner.invoke(cli_app, ["outbox", "redrive", "ias-export:b-dead"], env=env)
    assert redriven.exit_code == 0, redriven.output
    assert "ias-export:b-dead — будет отправлена снова" in redriven.output
    row = asyncio.run(_row(url, "b-dead"))
    assert (row.status, row.dead_at, row.attempts) == (PENDING, None, 0)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > WHEN, "due now"
    assert "b-dead" not in runner.invoke(cli_app, ["outbox", "dead"], env=env).output

    # Not dead (any more, or ever): said so, nothing changed.
    again = runner.invoke(cli_app, ["outbox", "redrive", "b-dead", "b-due", "--delivery", "ias-export"], env=env)
    assert again.exit_code == 1
    assert "ias-export:b-dead, ias-export:b-due" in again.output
    assert asyncio.run(_row(url, "b-due")).next_attempt_at == WHEN
    bare = runner.invoke(cli_app, ["outbox", "redrive", "b-dead"], env=env)
    assert bare.exit_code == 2
    assert "--delivery" in bare.output


def test_the_outbox_commands_ask_for_a_migrated_database(tmp_path: Path) -> None:
    env = {"POSOG_ENV": "test", "POSOG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"}
    for command in (["outbox", "dead"], ["outbox", "redrive", "geps:1"]):
        result = CliRunner().invoke(cli_app, command, env=env)
        assert result.exit_code == 2, result.output
        assert "posog db upgrade" in result.output
