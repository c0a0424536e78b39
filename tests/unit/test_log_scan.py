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


def test_scan_finds_each_planted_needle_among_a_whole_runs_worth(tmp_path: Path) -> None:
    """A run remembers tens of thousands of citizens: the scan finds a needle in the middle of a word,
    at a line's end, in a second file, and the same line once however many needles it holds."""
    needles = {f"{n:011d}" for n in range(10_000_000_000, 10_000_090_000)} | {"Петров Пётр", "1975-03-09"}
    first = tmp_path / "a.log"
    second = tmp_path / "b.log"
    first.write_text("clean\nid=x10000012345y\nПетров Пётр\n10000000001 Петров Пётр 1975-03-09\n", encoding="utf-8")
    second.write_text("no\nnothing 1000000000 here 1975-03-08\nborn 1975-03-09", encoding="utf-8")
    assert scan_logs_for_pii([first, second, tmp_path / "gone.log"], needles) == [
        f"{first}:2",
        f"{first}:3",
        f"{first}:4",
        f"{second}:3",
    ]
    assert scan_logs_for_pii([first], set()) == []
