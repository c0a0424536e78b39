"""``make demo``'s own command, as a newcomer runs it: in an empty directory, on the embedded default,
with a small count. While it serves, everything is checked through the public APIs; Ctrl-C stops it
cleanly; running it again continues; ``--reset`` starts over."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.demo_support import DemoProcess, demo_citizens, free_port, run_demo_to_end
from tests.e2e_check import Endpoints, check_agreement, observe

FACTS = 150


def _cards_total(output: str) -> int:
    found = re.search(r"Всего карточек услуг\D+(\d+)", output)
    assert found, output
    return int(found.group(1))


def test_demo_serves_the_whole_flow_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    demo = DemoProcess(tmp_path, "--facts", str(FACTS), "--answer-share", "0.5").start()
    try:
        output = demo.output
        # What the newcomer is told: the URLs to click and a login for each role.
        for path in ("/emulators/epgu/", "/lko/", "/emulators/ias/", "/emulators/smev-adapter/"):
            assert f"{demo.base_url}{path}" in output
        for login in ("demo-federal", "demo-region", "demo-org"):
            assert login in output
        assert "demo-demo-demo" in output
        assert "Ссылки не открылись" not in output  # every simulated citizen's submission went through
        # The facts came through the СМЭВ adapter, and each sender got its answer.
        assert re.search(rf"Ответы отправителям через адаптер СМЭВ\D+{FACTS}\b", output), output

        seen = observe(Endpoints.all_in_one(demo.base_url))
        check_agreement(seen)
        rejected = round(FACTS * 0.03)
        assert len(seen.cards) == FACTS - rejected
        assert all(card["notified"] for card in seen.cards.values())  # every type has a questionnaire
        # About half of the notified citizens answered.
        assert FACTS * 0.3 <= len(seen.responses) <= FACTS * 0.6
        # The facts span the country and the directory: 20+ regions; ratings differ between regions.
        assert len({card["region_code"] for card in seen.cards.values()}) >= 20
        regions = httpx.get(
            f"{demo.base_url}/analytics/api/v1/analytics/ratings",
            params={"level": "region"},
            headers=Endpoints.all_in_one(demo.base_url).auth("lko"),
        ).json()
        indexes = {item["satisfaction_index"] for item in regions["items"] if item["satisfaction_index"] is not None}
        assert len(indexes) >= 5

        # The pages a newcomer opens answer.
        for path in ("/", "/emulators/epgu/", "/lko/login", "/emulators/ias/", "/emulators/smev-adapter/"):
            page = httpx.get(f"{demo.base_url}{path}", follow_redirects=True)
            assert page.status_code == 200, path
            assert "text/html" in page.headers["content-type"]
    finally:
        code = demo.stop()
    assert code == 0, demo.output
    assert "Сервер остановлен" in demo.output
    # Nothing was left running: the port is free again.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{demo.base_url}/", timeout=2)
    # The log tells what happened, without a citizen's personal data.
    log = (tmp_path / "var" / "posog.log").read_text(encoding="utf-8")
    assert "intake.fact_rejected" in log
    citizens = demo_citizens(tmp_path)
    assert len(citizens) == FACTS - round(FACTS * 0.03)
    for citizen in citizens:
        assert citizen["snils"] not in log
        assert citizen["birth_date"] not in log
        assert f"{citizen['last_name']} {citizen['first_name']}" not in log


def test_running_again_continues_and_reset_starts_over(tmp_path: Path) -> None:
    first = run_demo_to_end(tmp_path, "--facts", "40", "--invalid-share", "0")
    assert first.returncode == 0, first.stdout + first.stderr
    assert _cards_total(first.stdout) == 40

    again = run_demo_to_end(tmp_path, "--facts", "30", "--invalid-share", "0")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _cards_total(again.stdout) == 70  # the same database, new citizens, new cards
    assert "demo-org" in again.stdout  # the logins are kept, not created twice

    demo_citizens(tmp_path)  # before --reset removes them
    reset = run_demo_to_end(tmp_path, "--facts", "20", "--invalid-share", "0", "--reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert _cards_total(reset.stdout) == 20
    assert len(demo_citizens(tmp_path)) == 20


def test_a_busy_port_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    import socket
    import subprocess

    from tests.demo_support import POSOG, demo_env

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [POSOG, "demo", "--port", str(port), "--facts", "5"],
            cwd=tmp_path,
            env=demo_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2
    assert f"Не удалось занять порт {port}" in done.stdout
    assert "--port" in done.stdout


def test_the_demo_refuses_to_run_in_production(tmp_path: Path) -> None:
    """Its logins have a published password: a production configuration is refused before anything."""
    from typer.testing import CliRunner

    from posog.cli import app

    env = {
        "POSOG_ENV": "production",
        "POSOG_VAR_DIR": str(tmp_path / "var"),
        "POSOG_DATABASE_URL": "postgresql+asyncpg://posog@db/posog",
        "POSOG_AMQP_URL": "amqp://mq/",
        "POSOG_REDIS_URL": "redis://redis/0",
        "POSOG_LKP_BASE_URL": "https://lkp.example.gov.ru",
        "POSOG_PII_KEYS": '{"k1": "' + "A" * 43 + '="}',
        "POSOG_SNILS_HASH_KEY": "a-real-hash-key",
        "POSOG_IAS_VENDOR_ID": "4242",
        "POSOG_IAS_USER_KEY": "a-real-ias-user-key",
        "POSOG_SERVICE_KEYS": '{"module": "m", "lko": "l", "lkp": "p", "analytics": "a"}',
    }
    result = CliRunner().invoke(app, ["demo", "--facts", "5"], env=env)
    assert result.exit_code == 2, result.output
    assert "not in production" in result.output
    assert not (tmp_path / "var" / "posog.sqlite3").exists()
