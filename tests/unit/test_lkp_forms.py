"""Reading the survey form against the questionnaire: every question kind, the checks ЛКО makes, and
the citizen's input kept for the re-rendered form."""

from __future__ import annotations

import pytest

from posog.lkp.forms import (
    looks_like_token,
    normalize_text,
    parse_answers,
    parse_urlencoded,
    plural,
    valid_idempotency_key,
)
from tests.unit.lkp_fakes import QUESTIONNAIRE

COMPLETE = {
    "answer_q1": ["4"],
    "answer_q2": ["phone"],
    "answer_q3": ["wifi", "parking"],
    "answer_q4": ["no"],
    "answer_q5": ["  Всё хорошо  "],
}


def test_a_complete_form_gives_typed_answers_in_the_questionnaires_order() -> None:
    parsed = parse_answers(QUESTIONNAIRE, COMPLETE)
    assert parsed.ok
    assert parsed.answers == {"q1": 4, "q2": "phone", "q3": ["parking", "wifi"], "q4": False, "q5": "Всё хорошо"}


def test_unanswered_optional_questions_are_left_out() -> None:
    parsed = parse_answers(QUESTIONNAIRE, {"answer_q1": ["5"], "answer_q2": ["portal"], "answer_q4": ["yes"]})
    assert parsed.ok
    assert parsed.answers == {"q1": 5, "q2": "portal", "q4": True}


def test_required_questions_without_an_answer_get_a_message_each() -> None:
    parsed = parse_answers(QUESTIONNAIRE, {"answer_q5": [""], "answer_q3": []})
    assert parsed.errors == {
        "q1": "Выберите оценку от 1 до 5",
        "q2": "Выберите один из вариантов ответа",
        "q4": "Ответьте «Да» или «Нет»",
    }
    assert parsed.answers == {}


@pytest.mark.parametrize(
    ("field", "values", "question", "message"),
    [
        ("answer_q1", ["0"], "q1", "Выберите оценку от 1 до 5"),
        ("answer_q1", ["6"], "q1", "Выберите оценку от 1 до 5"),
        ("answer_q1", ["4.5"], "q1", "Выберите оценку от 1 до 5"),
        ("answer_q1", ["٣"], "q1", "Выберите оценку от 1 до 5"),  # a digit, but not one of ours
        ("answer_q1", ["9" * 5000], "q1", "Выберите оценку от 1 до 5"),
        ("answer_q1", ["3", "4"], "q1", "Выберите оценку от 1 до 5"),
        ("answer_q2", ["fax"], "q2", "Выберите вариант ответа из списка"),
        ("answer_q2", ["phone", "portal"], "q2", "Выберите один из вариантов ответа"),
        ("answer_q3", ["wifi", "sauna"], "q3", "Выберите варианты ответа из списка"),
        ("answer_q4", ["maybe"], "q4", "Ответьте «Да» или «Нет»"),
    ],
)
def test_values_the_questionnaire_does_not_offer_are_errors(
    field: str, values: list[str], question: str, message: str
) -> None:
    parsed = parse_answers(QUESTIONNAIRE, {**COMPLETE, field: values})
    assert parsed.errors == {question: message}
    assert question not in parsed.answers


def test_a_too_long_comment_is_an_error_and_is_kept_for_editing() -> None:
    text = "а" * 53
    parsed = parse_answers(QUESTIONNAIRE, {**COMPLETE, "answer_q5": [text]})
    assert parsed.errors == {"q5": "Ответ должен быть не длиннее 50 символов — сократите его на 3 символа"}
    assert parsed.values["q5"] == text
    assert "q5" not in parsed.answers


def test_line_breaks_count_as_one_character_as_the_browsers_maxlength_does() -> None:
    # 25 lines of one letter: 25 letters + 24 breaks = 49 characters, although CRLF makes 73 bytes.
    text = "\r\n".join(["ж"] * 25)
    parsed = parse_answers(QUESTIONNAIRE, {**COMPLETE, "answer_q5": [text]})
    assert parsed.ok
    assert parsed.answers["q5"] == "\n".join(["ж"] * 25)


def test_control_characters_and_direction_overrides_are_dropped_from_comments() -> None:
    assert normalize_text("a\x00b\x07c\td\r\ne\u202ef") == "abc\td\nef"
    assert normalize_text("е\u0308") == "ё", "stored NFC-normalised, as ЛКО stores it"


def test_a_text_question_without_a_limit_has_lkos_default_of_2000() -> None:
    unlimited = QUESTIONNAIRE.model_copy(
        update={"questions": (QUESTIONNAIRE.questions[4].model_copy(update={"max_length": None}),)}
    )
    assert parse_answers(unlimited, {"answer_q5": ["я" * 2000]}).ok
    assert parse_answers(unlimited, {"answer_q5": ["я" * 2001]}).errors == {
        "q5": "Ответ должен быть не длиннее 2000 символов — сократите его на 1 символ"
    }


def test_the_citizens_input_is_kept_even_when_other_questions_have_errors() -> None:
    parsed = parse_answers(QUESTIONNAIRE, {"answer_q3": ["signs"], "answer_q4": ["yes"], "answer_q5": ["Спасибо"]})
    assert set(parsed.errors) == {"q1", "q2"}
    assert parsed.values == {"q3": ["signs"], "q4": True, "q5": "Спасибо"}


def test_urlencoded_bodies_decode_russian_and_repeated_fields() -> None:
    body = b"answer_q3=wifi&answer_q3=signs&answer_q5=%D0%94%D0%B0&answer_q2="
    assert parse_urlencoded(body) == {"answer_q3": ["wifi", "signs"], "answer_q5": ["Да"], "answer_q2": [""]}
    assert parse_urlencoded(b"answer_q5=%FF") == {"answer_q5": ["\ufffd"]}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("Tk_valid-token-0123456789abcdefXYZ", True),
        ("short", False),
        ("x" * 129, False),
        ("..", False),
        ("with space inside 0123456789", False),
        ("токен-кириллицей-0123456789", False),
    ],
)
def test_only_token_shaped_values_are_asked_about(value: str, ok: bool) -> None:
    assert looks_like_token(value) is ok


def test_idempotency_keys_are_accepted_only_in_the_shape_issued() -> None:
    assert valid_idempotency_key("abcdefghijklmnop_-12") == "abcdefghijklmnop_-12"
    assert valid_idempotency_key("short") is None
    assert valid_idempotency_key(None) is None
    assert valid_idempotency_key("<script>alert(1)</script>") is None


@pytest.mark.parametrize(
    ("n", "word"), [(1, "символ"), (2, "символа"), (5, "символов"), (11, "символов"), (21, "символ"), (104, "символа")]
)
def test_russian_plurals(n: int, word: str) -> None:
    assert plural(n, "символ", "символа", "символов") == word
