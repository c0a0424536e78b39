"""Bounded reading of a message body: whatever the bytes, the fact or its problems, never an exception;
every limit with its own reason; no value of the message in a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.module.contracts import FactContext, FactProblem, OgFact
from posog.module.intake.parsing import KNOWN_FIELDS, Rejection, card_id_of, metric_field, read_fact
from tests.hostile import DEEP_ARRAY, DEEP_OBJECT, FIELDS, hostile_message, nul_in_card_id

CONTEXT = FactContext(today=today(utcnow), horizon_days=365)
LIMIT = 64 * 1024


def _fact(seed: int = 7) -> dict[str, Any]:
    return FactFactory(seed=seed, today=today(utcnow)).fact()


def _read(raw: bytes) -> OgFact | Rejection:
    return read_fact(raw, CONTEXT, max_bytes=LIMIT)


def _problems(raw: bytes) -> list[str]:
    result = _read(raw)
    assert isinstance(result, Rejection), "expected a rejection"
    return [str(p) for p in result.problems]


def test_a_valid_fact_reads() -> None:
    assert isinstance(_read(json.dumps(_fact(), ensure_ascii=False).encode()), OgFact)


def test_the_probes_deep_messages_are_too_deep_not_a_recursion_error() -> None:
    assert _problems(DEEP_ARRAY) == ["payload: too_deep"]
    assert _problems(DEEP_OBJECT) == ["payload: too_deep"]
    fact = _fact()
    deep_extra = json.dumps(fact, ensure_ascii=False)[:-1] + ', "extra": ' + "[" * 5000 + "]" * 5000 + "}"
    assert _problems(deep_extra.encode()) == ["payload: too_deep"]
    assert card_id_of(DEEP_OBJECT) is None


def test_a_nul_in_card_id_is_a_control_character_and_no_card_id_is_taken_from_it() -> None:
    result = _read(nul_in_card_id(_fact()))
    assert isinstance(result, Rejection)
    assert [str(p) for p in result.problems] == ["card_id: control_character"]
    assert result.card_id is None  # never stored: PostgreSQL refuses NUL


@pytest.mark.parametrize("path", FIELDS, ids=".".join)
@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x7f", "\x9f", "\u2028", "\n"])
def test_control_characters_are_refused_in_every_text_field_with_its_name(
    path: tuple[str, ...], character: str
) -> None:
    fact = _fact()
    node = fact
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = f"{node.get(path[-1]) or 'x'}{character}"
    problems = _problems(json.dumps(fact, ensure_ascii=False).encode())
    field = ".".join(path)
    if field in {"survey_level", "schema", "service.date", "citizen.birth_date"}:
        assert problems
        assert problems[0].startswith(field + ": ")  # not a text field: its own reason
    else:
        assert f"{field}: control_character" in problems


def test_size_utf8_and_json_each_have_their_reason() -> None:
    fact = _fact()
    fact["service"]["name"] = "я" * LIMIT
    assert _problems(json.dumps(fact, ensure_ascii=False).encode()) == ["payload: too_large"]
    assert _problems(b'{"card_id": "\xff"}') == ["payload: not_utf8"]
    assert _problems(b'{"card_id": ') == ["payload: invalid_json"]
    assert _problems(b"") == ["payload: invalid_json"]


def test_a_key_named_twice_is_refused() -> None:
    text = json.dumps(_fact(), ensure_ascii=False)
    twice = text[:-1] + ', "card_id": "another-card"}'
    result = _read(twice.encode())
    assert isinstance(result, Rejection)
    assert [str(p) for p in result.problems] == ["card_id: duplicate_key"]


def test_invented_keys_never_carry_their_text_into_reasons_or_metric_labels() -> None:
    text = json.dumps(_fact(), ensure_ascii=False)
    for name in ["Иванов Иван Иванович", "\x00", "k" * 5000, "123-456-789 64"]:
        problems = _problems((text[:-1] + f", {json.dumps(name)}: 1}}").encode())
        assert problems == ["?: unknown_field"]
        assert metric_field("?") == "unknown"
    problems = _problems((text[:-1] + ', "color": 1}').encode())
    assert problems == ["color: unknown_field"]
    assert metric_field("color") == "unknown"
    assert metric_field("citizen.snils") == "citizen.snils"


def test_ten_thousand_invented_keys_give_a_bounded_list_of_reasons() -> None:
    fact = _fact()
    fact.update({f"k{i}": i for i in range(10_000)})
    problems = _problems(json.dumps(fact).encode()[: LIMIT * 4])
    assert len(problems) <= 50
    assert problems[-1] in {"payload: too_many_problems", "payload: too_large"}


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(hostile_message([_fact(1), _fact(2), _fact(3)]))
def test_no_message_makes_reading_raise_and_every_reason_names_a_safe_field(raw: bytes) -> None:
    result = _read(raw)
    if isinstance(result, Rejection):
        assert result.problems
        for problem in result.problems:
            assert isinstance(problem, FactProblem)
            for part in problem.field.split("."):
                assert part == "?" or (part.replace("_", "a").isalnum() and part.isascii())
            assert metric_field(problem.field) in KNOWN_FIELDS | {"unknown"}
        if result.card_id is not None:
            assert "\x00" not in result.card_id
            assert len(result.card_id) <= 100


@given(st.binary(max_size=5000))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_card_id_of_random_bytes_never_raises(raw: bytes) -> None:
    value = card_id_of(raw)
    assert value is None or (0 < len(value) <= 100)
