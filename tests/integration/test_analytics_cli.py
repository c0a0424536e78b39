"""``posog analytics poll | rebuild [--repull] | status`` and ``posog worker analytics`` on the embedded
default: the commands an operator runs give the same rollups."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from unittest import mock

from typer.testing import CliRunner, Result

from posog import cli
from posog.cli import app
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from tests.conftest import remember_citizen


def _invoke(tmp_path: Path, *args: str) -> Result:
    env: dict[str, str | None] = {
        "POSOG_ENV": "test",
        "POSOG_VAR_DIR": str(tmp_path / "var"),
        "POSOG_DATABASE_URL": None,
        "POSOG_AMQP_URL": None,
        "POSOG_LKO_URL": None,
        "POSOG_MODULE_URL": None,
        "POSOG_ANALYTICS_URL": None,
        "POSOG_LOG_JSON": None,
    }
    # The suite keeps its own logging (the personal-data check reads it): the CLI must not replace it.
    with mock.patch.object(cli, "configure_logging", return_value=None):
        return CliRunner().invoke(app, list(args), env=env)


def _rollups(tmp_path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "var" / "posog.sqlite3")) as connection:
        return connection.execute("SELECT * FROM analytics_rollups ORDER BY 1, 2, 3, 4, 5").fetchall()


def test_poll_rebuild_and_repull_from_the_command_line(tmp_path: Path) -> None:
    factory = FactFactory(seed=77, today=today(utcnow))
    facts = [factory.fact() for _ in range(25)]
    for fact in facts:
        remember_citizen(fact["citizen"])
    source = tmp_path / "facts.jsonl"
    source.write_text("\n".join(json.dumps(f, ensure_ascii=False) for f in facts), encoding="utf-8")

    result = _invoke(tmp_path, "db", "upgrade")
    assert result.exit_code == 0, result.output
    result = _invoke(tmp_path, "ingest", str(source))
    assert result.exit_code == 0, result.output
    result = _invoke(tmp_path, "analytics", "poll")
    assert result.exit_code == 0, result.output
    assert "module.cards: 25 items read, 25 changed" in result.output
    polled = _rollups(tmp_path)
    assert sum(int(str(row[5])) for row in polled) == 25  # services
    assert sum(int(str(row[6])) for row in polled) == 25  # ingest relayed every notification

    result = _invoke(tmp_path, "analytics", "rebuild")
    assert result.exit_code == 0, result.output
    assert "Rebuilt from 25 cards and 0 responses" in result.output
    assert _rollups(tmp_path) == polled

    result = _invoke(tmp_path, "analytics", "rebuild", "--repull")
    assert result.exit_code == 0, result.output
    assert "module.cards: 25 items" in result.output
    assert _rollups(tmp_path) == polled

    result = _invoke(tmp_path, "analytics", "status")
    assert result.exit_code == 0, result.output
    assert "module.cards" in result.output
    assert "lko.responses" in result.output


def test_analytics_is_a_worker() -> None:
    assert "analytics" in cli.WORKERS
