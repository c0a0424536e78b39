"""What a sender reads in a reject: ``field: reason — a Russian sentence`` for every reason intake and
the envelope can give, and never a value of the message."""

from __future__ import annotations

import re

import pytest

from posog.module.contracts import _REASONS, FactProblem
from posog.module.intake.handlers import Outcome
from posog.module.smev.answers import DEFAULT_REASON_TEXT, REASON_TEXT, answer_of, describe

# Every reason the module can name: pydantic's (mapped), the identifiers', the contract's own checks,
# the bounded JSON reader's, the XML reader's, the envelope's and the unhandled message's.
REASONS = (
    set(_REASONS.values())
    | {"bad_checksum", "bad_length", "bad_format", "required"}
    | {"in_future", "too_old", "unknown_type", "unknown_region", "not_allowed_for_individual", "implausible"}
    | {"after_service_date", "unresolved", "control_character", "duplicate_key", "too_many_problems"}
    | {"too_large", "not_utf8", "too_deep", "unreadable"}
    | {"wrong_namespace", "wrong_element"}
    | {"not_xml", "entities", "invalid"}
    | {"processing_error", "delivery_limit"}
)
_CYRILLIC = re.compile("[А-Яа-яЁё]")


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_reason_has_its_own_russian_sentence(reason: str) -> None:
    assert reason in REASON_TEXT
    text = describe(FactProblem("organization.inn", reason))
    assert text.startswith(f"organization.inn: {reason} — ")
    sentence = text.split(" — ", 1)[1]
    assert sentence == REASON_TEXT[reason]
    assert _CYRILLIC.search(sentence)
    assert sentence.endswith(".")


def test_an_unknown_reason_still_gets_a_sentence() -> None:
    assert describe(FactProblem("x", "something_new")) == f"x: something_new — {DEFAULT_REASON_TEXT}"


def test_statuses_say_what_the_sender_needs() -> None:
    accepted = answer_of(Outcome("accepted", "C-1", card_status="linked"))
    assert accepted["status"]["code"] == "accepted"
    assert accepted["status"]["parameters"] == [["card_id", "C-1"], ["link_state", "issued"]]
    assert answer_of(Outcome("accepted", "C-2", card_status="waiting"))["status"]["parameters"][1] == [
        "link_state",
        "waiting",
    ]
    assert answer_of(Outcome("duplicate", "C-3", card_status="late"))["status"]["parameters"] == [
        ["card_id", "C-3"],
        ["link_state", "late"],
    ]
    conflict = answer_of(Outcome("conflict", "C-4", fields=("service.name", "citizen.snils")))
    assert conflict["status"]["parameters"] == [["card_id", "C-4"], ["fields", "service.name,citizen.snils"]]
    rejected = answer_of(
        Outcome("rejected", None, (FactProblem("organization.inn", "bad_checksum"), FactProblem("card_id", "required")))
    )
    assert [r["code"] for r in rejected["rejects"]] == ["UNKNOWN_REQUEST_DESCRIPTION"] * 2
    assert [r["description"].split(" — ")[0] for r in rejected["rejects"]] == [
        "organization.inn: bad_checksum",
        "card_id: required",
    ]
