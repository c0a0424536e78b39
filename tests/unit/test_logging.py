"""The second line of defence (SPEC §10): whatever reaches a logger, personal data does not reach the
log output — fields named like personal data and anything shaped like a СНИЛС become ``***``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from posog.core.logging import configure_logging, redact_personal_data
from tests.conftest import remember_citizen

CITIZEN = {
    "last_name": "Полуэктова",
    "first_name": "Евпраксия",
    "middle_name": "Феофилактовна",
    "birth_date": "1961-02-13",
    "snils": "112-233-445 95",
}
SNILS_DIGITS = "11223344595"
remember_citizen(CITIZEN)  # the suite-wide check also looks for this citizen in every log file


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        """The lines as written, JSON lines decoded (the JSON renderer escapes Cyrillic as \\uXXXX,
        which would hide a leaked name from a plain substring search)."""
        return "\n".join(_readable(line) for line in self.lines)


def _readable(line: str) -> str:
    try:
        return json.dumps(json.loads(line), ensure_ascii=False)
    except ValueError:
        return line


def _configure_keeping_handlers(level: str, *, json: bool) -> None:
    """``configure_logging`` resets the root logger (``force=True`` closes its handlers): detach the
    suite's handlers (its log file for the personal-data check, pytest's capture) first and put them
    back afterwards, so the rest of the suite still logs to them."""
    root = logging.getLogger()
    kept = root.handlers[:]
    for handler in kept:
        root.removeHandler(handler)
    configure_logging(level, json=json)
    for handler in kept:
        root.addHandler(handler)


@pytest.fixture(params=[False, True], ids=["console", "json"])
def collector(request: pytest.FixtureRequest) -> Iterator[Collector]:
    root = logging.getLogger()
    before = root.handlers[:]
    level = root.level
    structlog_config = structlog.get_config()
    _configure_keeping_handlers("DEBUG", json=request.param)
    handler = Collector()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        for added in [h for h in root.handlers if h not in before]:
            root.removeHandler(added)
        for original in before:
            if original not in root.handlers:
                root.addHandler(original)
        root.setLevel(level)
        structlog.configure(**structlog_config)


def _assert_no_personal_data(text: str) -> None:
    for needle in (
        SNILS_DIGITS,
        CITIZEN["snils"],
        "112-233-445",
        CITIZEN["last_name"],
        CITIZEN["first_name"],
        CITIZEN["middle_name"],
        CITIZEN["birth_date"],
    ):
        assert needle not in text, f"personal data ({needle[:3]}…) reached the log"


def test_a_snils_field_is_masked(collector: Collector) -> None:
    structlog.get_logger("posog.test").info("citizen.looked_up", snils=CITIZEN["snils"], card_id="MFC-1")
    _assert_no_personal_data(collector.text)
    assert "***" in collector.text
    assert "citizen.looked_up" in collector.text
    assert "MFC-1" in collector.text


def test_a_citizen_field_is_masked_whole(collector: Collector) -> None:
    structlog.get_logger("posog.test").warning("intake.odd", citizen=dict(CITIZEN), card_id="MFC-77-1")
    _assert_no_personal_data(collector.text)
    assert "***" in collector.text
    assert "MFC-77-1" in collector.text


@pytest.mark.parametrize(
    "event",
    [
        f"lookup of {SNILS_DIGITS} failed",
        f"lookup of {CITIZEN['snils']} failed",
        "lookup of 112-233-44595 failed",
        f"СНИЛС:{SNILS_DIGITS}",
    ],
)
def test_a_snils_inside_the_event_text_is_masked(collector: Collector, event: str) -> None:
    structlog.get_logger("posog.test").error(event)
    _assert_no_personal_data(collector.text)
    assert "***" in collector.text
    assert "lookup of" in collector.text or "СНИЛС:" in collector.text


def test_personal_fields_nested_in_other_values_are_masked(collector: Collector) -> None:
    structlog.get_logger("posog.test").info(
        "intake.debug",
        payload={"card_id": "MFC-2", "citizen": dict(CITIZEN)},
        recipients=[{"last_name": CITIZEN["last_name"], "snils": SNILS_DIGITS}],
        note=f"sent to {SNILS_DIGITS}",
    )
    _assert_no_personal_data(collector.text)
    assert "MFC-2" in collector.text


def test_ordinary_fields_pass_unchanged(collector: Collector) -> None:
    card_id = "MFC-77-2026-000000123-0042"
    structlog.get_logger("posog.test").info(
        "intake.fact_rejected",
        card_id=card_id,
        reasons=["citizen.snils: bad_checksum", "organization.inn: bad_checksum"],
        count=30,
    )
    text = collector.text
    assert card_id in text
    assert "citizen.snils: bad_checksum" in text
    assert "organization.inn: bad_checksum" in text
    assert "***" not in text


def test_json_output_is_one_parsable_object_per_line() -> None:
    root = logging.getLogger()
    before = root.handlers[:]
    structlog_config = structlog.get_config()
    _configure_keeping_handlers("INFO", json=True)
    handler = Collector()
    root.addHandler(handler)
    try:
        structlog.get_logger("posog.test").info("x.happened", card_id="MFC-3", snils=SNILS_DIGITS)
        structlog.get_logger("posog.test").debug("below the level")
    finally:
        for added in [h for h in root.handlers if h not in before]:
            root.removeHandler(added)
        structlog.configure(**structlog_config)
        root.setLevel(logging.DEBUG)
    assert len(handler.lines) == 1, "DEBUG is filtered at level INFO"
    record = json.loads(handler.lines[0])
    assert record["event"] == "x.happened"
    assert record["card_id"] == "MFC-3"
    assert record["snils"] == "***"
    assert record["level"] == "info"


def test_the_processor_masks_keys_and_values() -> None:
    event = redact_personal_data(
        None,
        "info",
        {
            "event": f"about {SNILS_DIGITS}",
            "fio": "Полуэктова Е. Ф.",
            "birth_date": CITIZEN["birth_date"],
            "recipient": {"snils": SNILS_DIGITS},
            "card_id": "MFC-4",
            "items": ("a", f"{CITIZEN['snils']}"),
        },
    )
    assert event == {
        "event": "about ***",
        "fio": "***",
        "birth_date": "***",
        "recipient": "***",
        "card_id": "MFC-4",
        "items": ["a", "***"],
    }
