"""The operator's command line (SPEC §11, README «Command line») driven for real on the embedded
default (SQLite under a temporary ``POSOG_VAR_DIR``, in-process bus): ingest, rejected facts —
listed, inspected, re-driven — and the errors an operator gets for bad input.

The CLI runs ``asyncio.run`` itself, so its tests are plain synchronous functions. The re-drive that
ends in acceptance needs the directory changed between the two attempts; it is tested at the handler
level, at the end of this file."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import structlog
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from posog import cli
from posog.cli import app
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.lko.org_types.model import OrgTypeEntry
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen
from tests.support import count, stack

Invoke = Callable[..., Result]

VALID = 30
# Broken in ways that keep the citizen block intact, so the masking of each can be checked.
INVALID_KINDS = ("inn_checksum", "service_date_future", "kpp_format", "snils_checksum", "type_unknown")


@pytest.fixture
def posog(tmp_path: Path) -> Invoke:
    """``posog ARGS…`` in-process with ``POSOG_ENV=test`` and ``POSOG_VAR_DIR=tmp_path``.

    The CLI calls ``configure_logging``, whose ``basicConfig(force=True)`` would close the root
    logger's handlers — among them the suite's log file that the personal-data check scans. The
    suite's handlers are detached around that call and put back, so the CLI's log lines also reach
    the suite's log file; the handler the CLI adds (bound to the runner's stderr) is removed after
    each command, and the suite's log level and structlog configuration are restored."""
    runner = CliRunner()
    env: dict[str, str | None] = {
        "POSOG_ENV": "test",
        "POSOG_VAR_DIR": str(tmp_path / "var"),
        "POSOG_DATABASE_URL": None,
        "POSOG_AMQP_URL": None,
        "POSOG_LKO_URL": None,
        "POSOG_LOG_JSON": None,
    }
    real_configure = cli.configure_logging
    root = logging.getLogger()

    def configure_keeping_suite_handlers(level: str = "INFO", *, json: bool = False) -> None:
        kept = root.handlers[:]
        for handler in kept:
            root.removeHandler(handler)
        real_configure(level, json=json)
        for handler in kept:
            root.addHandler(handler)

    def invoke(*args: str) -> Result:
        before = root.handlers[:]
        level = root.level
        structlog_config = structlog.get_config()
        try:
            with mock.patch.object(cli, "configure_logging", configure_keeping_suite_handlers):
                return runner.invoke(app, list(args), env=env)
        finally:
            for added in [h for h in root.handlers if h not in before]:
                root.removeHandler(added)
            for original in before:
                if original not in root.handlers:
                    root.addHandler(original)
            root.setLevel(level)
            structlog.configure(**structlog_config)

    return invoke


def _ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result.output


def _write_facts(path: Path, *, seed: int = 21) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """30 valid and 5 broken facts as JSON Lines (broken ones interleaved); returns every citizen
    (registered for the personal-data log check) and the expected reason by card_id."""
    factory = FactFactory(seed=seed, today=today(utcnow))
    lines: list[bytes] = []
    citizens: list[dict[str, Any]] = []
    expected: dict[str, str] = {}
    for i in range(VALID):
        fact = factory.fact()
        citizens.append(fact["citizen"])
        lines.append(json.dumps(fact, ensure_ascii=False).encode())
        if i % 6 == 0:
            body, reason = factory.invalid(INVALID_KINDS[i // 6])
            broken = json.loads(body)
            citizens.append(broken["citizen"])
            expected[broken["card_id"]] = reason
            lines.append(body)
    assert len(expected) == len(INVALID_KINDS)
    for citizen in citizens:
        remember_citizen(citizen)
    path.write_bytes(b"\n".join(lines) + b"\n\n")  # a trailing blank line is skipped
    return citizens, expected


def _stat(output: str, label: str) -> int:
    match = re.search(rf"{label}\W+(\d+)", output)
    assert match, f"no {label!r} row in the summary:\n{output}"
    return int(match.group(1))


def _personal_values(citizen: dict[str, Any]) -> list[str]:
    digits = re.sub(r"\D", "", citizen["snils"])
    return [citizen["last_name"], citizen["snils"], digits, citizen["birth_date"]]


def _assert_no_personal_data(output: str, citizens: list[dict[str, Any]]) -> None:
    for citizen in citizens:
        for value in _personal_values(citizen):
            assert value not in output, f"personal data ({value[:3]}…) in the CLI output"


@pytest.fixture
def ingested(posog: Invoke, tmp_path: Path) -> tuple[Path, list[dict[str, Any]], dict[str, str], str]:
    path = tmp_path / "facts.jsonl"
    citizens, expected = _write_facts(path)
    _ok(posog("db", "upgrade"))  # operator commands never migrate: the deployment (or the demo) does
    output = _ok(posog("ingest", str(path)))
    return path, citizens, expected, output


def _rejected(posog: Invoke, *extra: str) -> dict[str, Any]:
    result = posog("facts", "rejected", "--json", *extra)
    _ok(result)
    listing: dict[str, Any] = json.loads(result.stdout)
    return listing


# --- ingest ----------------------------------------------------------------------------------------


def test_ingest_reports_accepted_and_rejected(
    ingested: tuple[Path, list[dict[str, Any]], dict[str, str], str],
) -> None:
    _, citizens, expected, output = ingested
    assert "Итоги приёма" in output
    assert _stat(output, "принято") == VALID
    assert _stat(output, "отклонено") == len(INVALID_KINDS)
    assert _stat(output, "повторы") == 0
    assert _stat(output, "конфликты") == 0
    assert "Причины отклонения" in output
    for reason in expected.values():
        assert reason in output
    _assert_no_personal_data(output, citizens)


def test_ingesting_the_same_file_again_creates_nothing(
    posog: Invoke, ingested: tuple[Path, list[dict[str, Any]], dict[str, str], str]
) -> None:
    path, citizens, _, _ = ingested
    output = _ok(posog("ingest", str(path)))
    assert _stat(output, "принято") == 0
    assert _stat(output, "повторы") == VALID
    assert _stat(output, "конфликты") == 0
    assert _stat(output, "отклонено") == len(INVALID_KINDS)
    _assert_no_personal_data(output, citizens)
    assert _rejected(posog)["total"] == len(INVALID_KINDS), "the same rejection twice is one record"


def test_ingest_delivers_the_notifications_to_the_embedded_inbox(
    tmp_path: Path, ingested: tuple[Path, list[dict[str, Any]], dict[str, str], str]
) -> None:
    import asyncio

    from posog.bootstrap import bootstrap
    from posog.emulators.epgu.model import InboxNotification
    from posog.settings import Settings

    async def counts() -> tuple[int, int, int]:
        settings = Settings(_env_file=None, env="test", var_dir=tmp_path / "var")  # type: ignore[call-arg]
        system = bootstrap(settings)
        try:
            return (
                await count(system, InboxNotification),
                await count(system, OutboxMessage, OutboxMessage.sent_at.is_(None)),
                await count(system, SurveyLink, SurveyLink.state == "notified"),
            )
        finally:
            await system.close()

    assert asyncio.run(counts()) == (VALID, 0, VALID)


def test_ingest_of_a_missing_file_fails_clearly(posog: Invoke, tmp_path: Path) -> None:
    result = posog("ingest", str(tmp_path / "no-such-file.jsonl"))
    assert result.exit_code != 0
    # Typer prints the error in a box that wraps long paths: compare without the frame and spaces.
    squeezed = re.sub(r"[\s│╭╮╰╯─]", "", result.output)
    assert "Invalidvaluefor'file'" in squeezed
    assert f"{tmp_path.name}/no-such-file.jsonl" in squeezed
    assert "doesnotexist" in squeezed
    assert result.exception is None or isinstance(result.exception, SystemExit), "no traceback"


# --- facts rejected / show -------------------------------------------------------------------------


def test_rejected_lists_reasons_without_personal_data(
    posog: Invoke, ingested: tuple[Path, list[dict[str, Any]], dict[str, str], str]
) -> None:
    _, citizens, expected, _ = ingested
    result = posog("facts", "rejected", "--json")
    _ok(result)
    listing = json.loads(result.stdout)
    assert listing["total"] == len(INVALID_KINDS)
    items = listing["items"]
    assert len(items) == len(INVALID_KINDS)
    assert {item["card_id"]: item["reasons"] for item in items} == {
        card_id: [reason] for card_id, reason in expected.items()
    }
    for item in items:
        assert item["status"] == "rejected"
        assert item["attempts"] == 1
        assert all(re.fullmatch(r"[\w.]+: \w+", reason) for reason in item["reasons"])
    _assert_no_personal_data(result.output, citizens)

    table = _ok(posog("facts", "rejected"))
    assert f"Отклонённые сведения ({len(INVALID_KINDS)} из {len(INVALID_KINDS)})" in table
    assert "…" not in table, "a cell was truncated: ids and reasons must be shown whole, folded if need be"
    for item in items:
        assert item["id"][:8] in table
    _assert_no_personal_data(table, citizens)


def test_show_masks_the_citizen_unless_revealed(
    posog: Invoke, ingested: tuple[Path, list[dict[str, Any]], dict[str, str], str]
) -> None:
    path, _, expected, _ = ingested
    card_id = next(c for c, reason in expected.items() if reason == "organization.inn: bad_checksum")
    facts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    citizen = next(f["citizen"] for f in facts if f["card_id"] == card_id)
    rejected_id = next(i["id"] for i in _rejected(posog)["items"] if i["card_id"] == card_id)

    masked = _ok(posog("facts", "show", rejected_id))
    assert rejected_id in masked
    assert f"card_id={card_id}" in masked
    assert "organization.inn: bad_checksum" in masked
    for value in _personal_values(citizen):
        assert f'"{value}"' not in masked
    # The bare surname might also be a street name in the address; СНИЛС and birth date cannot.
    for value in (citizen["snils"], re.sub(r"\D", "", citizen["snils"]), citizen["birth_date"]):
        assert value not in masked
    assert f"{citizen['last_name']} {citizen['first_name']}" not in masked
    assert '"last_name": "***"' in masked
    assert '"snils": "***"' in masked
    assert '"birth_date": "***"' in masked

    revealed = _ok(posog("facts", "show", rejected_id, "--reveal"))
    payload = json.loads(revealed[revealed.index("{") :])
    assert payload["citizen"] == citizen
    assert payload["card_id"] == card_id
    for value in (citizen["last_name"], citizen["snils"], citizen["birth_date"]):
        assert value in revealed


def test_show_of_an_unknown_id_exits_2(posog: Invoke) -> None:
    _ok(posog("db", "upgrade"))
    result = posog("facts", "show", "00000000-0000-0000-0000-000000000000")
    assert result.exit_code == 2
    assert "No rejected fact 00000000-0000-0000-0000-000000000000" in result.output


# --- facts redrive ---------------------------------------------------------------------------------


def test_redrive_of_a_still_invalid_fact_counts_the_attempt(
    posog: Invoke, ingested: tuple[Path, list[dict[str, Any]], dict[str, str], str]
) -> None:
    _, citizens, expected, _ = ingested
    card_id = next(c for c, reason in expected.items() if reason == "organization.kpp: bad_format")
    before = {i["id"]: i for i in _rejected(posog)["items"]}
    rejected_id = next(i for i, item in before.items() if item["card_id"] == card_id)

    output = _ok(posog("facts", "redrive", rejected_id))
    assert f"{rejected_id}: rejected organization.kpp: bad_format" in output
    _assert_no_personal_data(output, citizens)

    after = {i["id"]: i for i in _rejected(posog)["items"]}
    assert set(after) == set(before), "still rejected, nothing new recorded"
    assert after[rejected_id]["attempts"] == 2
    assert after[rejected_id]["status"] == "rejected"
    assert after[rejected_id]["reasons"] == ["organization.kpp: bad_format"]
    assert all(after[i]["attempts"] == 1 for i in after if i != rejected_id)

    # --all re-drives every fact still rejected; none of them can pass yet.
    output = _ok(posog("facts", "redrive", "--all"))
    assert output.count(": rejected ") == len(INVALID_KINDS)
    final = {i["id"]: i for i in _rejected(posog)["items"]}
    assert final[rejected_id]["attempts"] == 3
    assert all(final[i]["attempts"] == 2 for i in final if i != rejected_id)
    assert _rejected(posog, "--status", "redriven")["items"] == []


def test_redrive_of_an_unknown_id_exits_2(posog: Invoke) -> None:
    _ok(posog("db", "upgrade"))
    result = posog("facts", "redrive", "unknown-id")
    assert result.exit_code == 2
    assert "Unknown rejected fact id(s): unknown-id" in result.output


def test_redrive_without_ids_exits_2(posog: Invoke) -> None:
    result = posog("facts", "redrive")
    assert result.exit_code == 2
    assert "Nothing to re-drive" in result.output


# --- worker, db ------------------------------------------------------------------------------------


def test_an_unknown_worker_exits_2(posog: Invoke) -> None:
    result = posog("worker", "nonsense")
    assert result.exit_code == 2
    assert "Unknown worker 'nonsense'" in result.output
    assert "intake, outbox, epgu-inbox" in result.output


def test_db_upgrade_is_idempotent(posog: Invoke, tmp_path: Path) -> None:
    first = _ok(posog("db", "upgrade"))
    assert "Schema is up to date" in first
    assert (tmp_path / "var" / "posog.sqlite3").exists()
    second = _ok(posog("db", "upgrade"))
    assert "Schema is up to date" in second


# --- Re-drive after the directory was fixed (handler level) --------------------------------------------


async def _set_type_active(system: Any, code: str, active: bool) -> None:
    async with system.db.uow() as uow:
        await uow.session.execute(update(OrgTypeEntry).where(OrgTypeEntry.code == code).values(active=active))
        await uow.session.commit()
    system.catalog._types = None  # the catalog caches the directory for a few seconds


async def test_a_fact_of_an_unknown_type_is_accepted_on_redrive_once_the_type_is_back(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        factory = FactFactory(seed=23, today=today(utcnow))
        mfc = next(o for o in factory.organizations if o.type_code == "mfc")
        fact = factory.fact(organization=mfc)
        remember_citizen(fact["citizen"])
        body = json.dumps(fact, ensure_ascii=False).encode()

        await _set_type_active(system, "mfc", False)
        [outcome] = await system.intake.handle([RawFact(body, fact["message_id"])])
        assert outcome.kind == "rejected"
        assert [str(p) for p in outcome.problems] == ["organization.type_code: unknown_type"]
        async with system.db.uow() as uow:
            row = (await uow.session.execute(select(RejectedFact))).scalar_one()
        assert (row.status, row.attempts, row.card_id) == ("rejected", 1, fact["card_id"])
        assert await count(system, ServiceCard) == 0

        await _set_type_active(system, "mfc", True)
        [outcome] = await system.intake.redrive([row.id])
        assert outcome.kind == "accepted"
        assert outcome.card_id == fact["card_id"]
        assert outcome.card_status == "linked"
        assert await count(system, ServiceCard, ServiceCard.card_id == fact["card_id"]) == 1
        assert await count(system, SurveyLink, SurveyLink.card_id == fact["card_id"]) == 1
        assert await count(system, OutboxMessage) == 1
        async with system.db.uow() as uow:
            row = (await uow.session.execute(select(RejectedFact))).scalar_one()
            card = (await uow.session.execute(select(ServiceCard))).scalar_one()
        assert row.status == "redriven"
        assert row.attempts == 2
        assert card.message_id == fact["message_id"]
        assert (
            system.cipher.open_json(card.pii_key_id or "", card.pii or b"", context=card.card_id)["last_name"]
            == fact["citizen"]["last_name"]
        )

        # Re-driving it once more is harmless: the card exists, nothing new is created.
        [again] = await system.intake.redrive([row.id])
        assert again.kind == "duplicate"
        assert await count(system, ServiceCard) == 1
        assert await count(system, SurveyLink) == 1
        assert await count(system, OutboxMessage) == 1
        async with system.db.uow() as uow:
            row = (await uow.session.execute(select(RejectedFact))).scalar_one()
        assert (row.status, row.attempts) == ("redriven", 3)


# --- Operator commands on a database nobody migrated ---------------------------------------------------

# Every operator command that reads or writes the database, with arguments it would otherwise accept.
OPERATOR_COMMANDS = (
    ("ingest", "{facts}"),
    ("facts", "rejected"),
    ("facts", "show", "00000000-0000-0000-0000-000000000000"),
    ("facts", "redrive", "--all"),
    ("export", "log"),
    ("export", "ias", "--period", "2026-01-01..2026-01-31"),
    ("export", "unsendable"),
    ("export", "forms"),
    ("export", "rebuild", "posog-rates-20260101-20260131"),
    ("analytics", "status"),
    ("analytics", "poll"),
    ("pii", "purge"),
    ("users", "list"),
    ("users", "locks"),
    ("links", "revoke", "card-1", "--reason", "проверка"),
    ("outbox", "dead"),
)


async def _tables(url: str) -> list[str]:
    from sqlalchemy import inspect

    from posog.core.db import Database

    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", ["embedded", "production"])
def test_operator_commands_refuse_an_unmigrated_database_and_create_nothing(backend: str, tmp_path: Path) -> None:
    """Only ``posog db upgrade`` (and ``posog demo``) migrate and seed: an operator command on an empty
    database says to run it, exits 2 and leaves the database as empty as it found it."""
    import asyncio

    from tests.support import create_pg_database, drop_pg_database

    url = (
        asyncio.run(create_pg_database(migrated=False))
        if backend == "production"
        else f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    )
    facts = tmp_path / "facts.jsonl"
    fact = FactFactory(seed=31, today=today(utcnow)).fact()
    remember_citizen(fact["citizen"])
    facts.write_text(json.dumps(fact, ensure_ascii=False) + "\n", encoding="utf-8")
    env = {"POSOG_ENV": "test", "POSOG_VAR_DIR": str(tmp_path / "var"), "POSOG_DATABASE_URL": url, "COLUMNS": "200"}
    try:
        for command in OPERATOR_COMMANDS:
            args = [part.format(facts=facts) for part in command]
            with mock.patch.object(cli, "configure_logging", return_value=None):
                result = CliRunner().invoke(app, args, env=env)
            assert result.exit_code == 2, f"{' '.join(command)}: exit {result.exit_code}\n{result.output}"
            assert "сначала «posog db upgrade»" in result.output, f"{' '.join(command)}:\n{result.output}"
            assert result.exception is None or isinstance(result.exception, SystemExit), "no traceback"
            assert asyncio.run(_tables(url)) == [], f"{' '.join(command)} created tables"
    finally:
        if backend == "production":
            asyncio.run(drop_pg_database(url))
