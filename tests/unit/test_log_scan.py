"""The suite-wide personal-data check is not vacuous: it finds a planted СНИЛС, name or birth date."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import scan_logs_for_pii


def test_scan_finds_planted_personal_data(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("ok line\nintake card_id=A snils=11223344595\nanother Иванов Иван line\n", encoding="utf-8")
    assert scan_logs_for_pii([log], {"11223344595"}) == [f"{log}:2"]
    assert scan_logs_for_pii([log], {"Иванов Иван"}) == [f"{log}:3"]
    assert scan_logs_for_pii([log], {"1980-05-17"}) == []
