"""Reading one message body into an ОГ fact, bounded: whatever the bytes, this returns the fact or its
problems and never raises.

The limits are checked once, in this order, each with its own reason:

* ``payload: too_large`` — more bytes than ``max_bytes`` (nothing is parsed);
* ``payload: not_utf8`` — not UTF-8 text;
* ``payload: too_deep`` — JSON nested deeper than the parser's recursion limit (pydantic's parser stops
  at about 200 levels; a fact has 3), instead of Python's ``RecursionError``;
* ``payload: invalid_json`` — anything else that is not JSON;
* ``<field>: duplicate_key`` — an object naming a key twice (which value counts would depend on the
  parser);
* then the schema's own ``field: reason`` problems (``card_id: control_character`` for a NUL, …);
* ``organization.region_code: unresolved`` — no region from the code, the address, the КПП or the ИНН.

A problem's field is a path of the schema's names: a key the sender invented is reported only when it
is a plain identifier, so that no value of the message — personal data included — ends up in a
reason, a log line or a metric label."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from posog.module.contracts import CARD_ID_PATTERN, CONTROL_CHARACTERS, FactContext, FactProblem, OgFact, problems_from

MAX_PROBLEMS = 50  # a message with 10 000 unknown fields gets 50 reasons and a note, not 10 000
_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CARD_ID = re.compile(CARD_ID_PATTERN)

# Every field path of og.fact/1: the only names a metric label may carry.
KNOWN_FIELDS = frozenset(
    {
        "payload",
        "schema",
        "message_id",
        "card_id",
        "survey_level",
        "service",
        "service.date",
        "service.name",
        "service.code",
        "service.frgu_service_id",
        "service.frgu_procedure_id",
        "organization",
        "organization.name",
        "organization.address",
        "organization.inn",
        "organization.ogrn",
        "organization.kpp",
        "organization.type_code",
        "organization.region_code",
        "organization.frgu_authority_id",
        "citizen",
        "citizen.last_name",
        "citizen.first_name",
        "citizen.middle_name",
        "citizen.birth_date",
        "citizen.snils",
    }
)


@dataclass(frozen=True)
class Rejection:
    """Why a message is not a fact, and its ``card_id`` when one could be read safely (for the sender's
    sake: operators look rejected facts up by it)."""

    problems: tuple[FactProblem, ...]
    card_id: str | None = None


def metric_field(field: str) -> str:
    """The field as a metric label: one of the schema's paths, or ``unknown`` (a sender's invented
    keys must not create a time series each)."""
    return field if field in KNOWN_FIELDS else "unknown"


DEFAULT_MAX_FACT_BYTES = 64 * 1024  # a fact is about 1 kB


def read_fact(raw: bytes, context: FactContext, *, max_bytes: int = DEFAULT_MAX_FACT_BYTES) -> OgFact | Rejection:
    """Parse and validate one message body under the limits above. Never raises."""
    if len(raw) > max_bytes:
        return Rejection((FactProblem("payload", "too_large"),))
    try:
        fact = OgFact.model_validate_json(raw, context=context)
    except ValidationError as error:
        return _rejection(raw, error)
    except Exception:  # pydantic should not raise anything else; if it does, it is the message's fault
        return Rejection((FactProblem("payload", "unreadable"),))
    duplicate = _duplicate_key(raw)
    if duplicate is not None:
        return Rejection((FactProblem(duplicate, "duplicate_key"),), _safe_card_id(fact.card_id))
    if _MAYBE_CONTROL.search(raw):  # rare: then find the fields that really hold one, as sent
        controlled = [FactProblem(path, "control_character") for path in _control_fields(raw)]
        if controlled:
            return Rejection(tuple(controlled), _safe_card_id(fact.card_id))
    if fact.resolved_region() is None:
        return Rejection((FactProblem("organization.region_code", "unresolved"),), fact.card_id)
    return fact


def card_id_of(raw: bytes) -> str | None:
    """The message's ``card_id`` when it is well-formed, else None. Never raises (bounded parser)."""
    try:
        value = orjson.loads(raw)  # its own depth limit (1 024) raises JSONDecodeError, not RecursionError
    except Exception:
        return None
    return _safe_card_id(value.get("card_id") if isinstance(value, dict) else None)


def _safe_card_id(value: object) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        if 0 < len(value) <= 100 and _CARD_ID.match(value):
            return value
    return None


def _rejection(raw: bytes, error: ValidationError) -> Rejection:
    items = error.errors(include_url=False, include_context=False)
    if any(item["type"] in {"json_invalid", "json_type"} for item in items):
        return Rejection((FactProblem("payload", _why_not_json(raw, items)),))
    # A value with a control character is refused for that, whatever else is wrong with it (a NUL in
    # card_id also breaks its pattern). Only the value is looked at, never kept.
    controlled = {
        ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        for item in items
        if _has_control(item.get("input"))
    }
    problems = [
        _safe(FactProblem(p.field, "control_character") if p.field in controlled else p) for p in problems_from(error)
    ]
    unique = list(dict.fromkeys(problems))
    if len(unique) > MAX_PROBLEMS:
        unique = [*unique[: MAX_PROBLEMS - 1], FactProblem("payload", "too_many_problems")]
    return Rejection(tuple(unique), card_id_of(raw))


def _why_not_json(raw: bytes, items: list[Any]) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    if any("recursion limit" in str(item.get("msg", "")) for item in items):
        return "too_deep"
    return "invalid_json"


def _safe(problem: FactProblem) -> FactProblem:
    """The problem with every part of its field path a schema name or a plain identifier (``?``
    otherwise): a key may hold a NUL, 100 kB or a citizen's name."""
    parts = [part if _SAFE_KEY.match(part) else "?" for part in problem.field.split(".")]
    return FactProblem(".".join(parts), problem.reason)


# A control character in a JSON text: escaped (\u0000–\u001f, \u007f–\u009f, \u2028/9, or one of the
# short escapes), or C1 / U+2028/9 as raw UTF-8 (C0 cannot stand unescaped in a JSON string). It may
# match an escaped backslash followed by "n" (a false alarm the field check then clears), never miss.
_MAYBE_CONTROL = re.compile(
    rb"\\(?:[nrtbf]|u00[01][0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F]|u202[89])|\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]"
)


def _has_control(value: object) -> bool:
    return isinstance(value, str) and CONTROL_CHARACTERS.search(value) is not None


_TEXT_FIELDS = tuple(
    tuple(path.split("."))
    for path in sorted(KNOWN_FIELDS)
    if path not in {"payload", "schema", "survey_level", "service", "organization", "citizen"}
    and not path.endswith("date")
)


def _control_fields(raw: bytes) -> list[str]:
    """The text fields whose value, as sent (before any trimming or normalising), holds a control
    character. Only called on a body pydantic has parsed as a valid fact."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    found = []
    for path in _TEXT_FIELDS:
        value: Any = document
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if _has_control(value):
            found.append(".".join(path))
    return found


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _duplicate_key(raw: bytes) -> str | None:
    """The first key named twice in one object (as a safe field name), or None. Only called on a body
    pydantic has parsed as a valid fact, so its nesting is that of a fact."""
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as duplicate:
        return _safe(FactProblem(duplicate.key, "")).field
    except Exception:
        return "payload"
    return None
