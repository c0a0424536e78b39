"""Answers against a questionnaire version: every kind, required questions, unknown ids, text cleaning."""

from __future__ import annotations

import pytest

from posog.lko.contracts import Option, Question, QuestionnaireDocument
from posog.lko.responses.validation import REQUIRED, UNKNOWN_QUESTION, AnswersInvalid, clean_text, validate_answers

DOCUMENT = QuestionnaireDocument(
    id="00000000-0000-4000-8000-000000000001",
    version=2,
    type_code="mfc",
    level="federal",
    title="Анкета",
    questions=(
        Question(id="rate", kind="rating", text="Оценка", required=True),
        Question(id="one", kind="single_choice", text="Один", options=(Option(id="a", text="А"),)),
        Question(
            id="many",
            kind="multiple_choice",
            text="Много",
            options=(Option(id="x", text="X"), Option(id="y", text="Y")),
        ),
        Question(id="yn", kind="yes_no", text="Да/нет"),
        Question(id="text", kind="text", text="Текст", max_length=5),
        Question(id="long", kind="text", text="Длинный текст"),
    ),
)


def fields(answers: dict[str, object]) -> dict[str, str]:
    with pytest.raises(AnswersInvalid) as invalid:
        validate_answers(DOCUMENT, answers)  # type: ignore[arg-type]
    return invalid.value.fields


def test_valid_answers_are_cleaned_and_empty_ones_dropped() -> None:
    assert validate_answers(
        DOCUMENT, {"rate": 5, "one": "a", "many": ["y", "y", "x"], "yn": True, "text": " ок\x1b ", "long": "   "}
    ) == {"rate": 5, "one": "a", "many": ["y", "x"], "yn": True, "text": "ок"}
    assert validate_answers(DOCUMENT, {"rate": 1, "one": None, "many": []}) == {"rate": 1}


@pytest.mark.parametrize("value", [0, 6, -1, True, False, "5", 4.5, ["5"]])
def test_ratings_are_whole_numbers_within_the_scale(value: object) -> None:
    assert fields({"rate": value}) == {"rate": "Выберите оценку от 1 до 5."}


def test_each_wrong_answer_is_named_with_a_russian_message() -> None:
    assert fields({"one": "b", "many": "x", "yn": 1, "text": "шесть!", "long": "я" * 2001, "zzz": 1}) == {
        "rate": REQUIRED,
        "one": "Выберите один из предложенных вариантов ответа.",
        "many": "Выберите один или несколько из предложенных вариантов ответа.",
        "yn": "Ответьте «Да» или «Нет».",
        "text": "Ответ слишком длинный: не более 5 символов, сейчас 6. Сократите его.",
        "long": "Ответ слишком длинный: не более 2000 символов, сейчас 2001. Сократите его.",
        "zzz": UNKNOWN_QUESTION,
    }


def test_a_flood_of_unknown_ids_is_reported_briefly() -> None:
    reported = fields({"rate": 3, **{f"x{n}" * 20: 1 for n in range(500)}})
    assert len(reported) == 20
    assert all(len(key) <= 64 for key in reported)


def test_text_is_stored_without_control_or_direction_characters() -> None:
    assert clean_text("\u202eтекст\r\nвторая\tстрока\x00\x85") == "текст\nвторая\tстрока"
    assert clean_text("e\u0301") == "\u00e9", "composed (NFC), as the cabinet compares and counts it"
