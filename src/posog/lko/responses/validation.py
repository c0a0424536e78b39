"""Answers checked against the questionnaire version the link pinned (SPEC §7): required questions,
rating ranges, option ids, yes/no, text length — each failure a Russian message for the citizen,
keyed by question id."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from posog.lko.contracts import AnswerValue, Question, QuestionnaireDocument

DEFAULT_SCALE = 5
DEFAULT_TEXT_LENGTH = 2000
_MAX_REPORTED_UNKNOWN = 20

REQUIRED = "Ответьте на этот вопрос — он обязательный."
UNKNOWN_QUESTION = "В анкете нет такого вопроса. Обновите страницу и заполните анкету заново."
CHOOSE_ONE = "Выберите один из предложенных вариантов ответа."
CHOOSE_SOME = "Выберите один или несколько из предложенных вариантов ответа."
YES_OR_NO = "Ответьте «Да» или «Нет»."
TEXT_EXPECTED = "Ответ должен быть текстом."


class AnswersInvalid(Exception):
    """Some answers do not fit the questionnaire; ``fields`` maps question ids to Russian messages."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(sorted(fields)))
        self.fields = fields


def validate_answers(document: QuestionnaireDocument, answers: Mapping[str, AnswerValue]) -> dict[str, AnswerValue]:
    """The answers as they are stored (texts cleaned, empty answers dropped), or :class:`AnswersInvalid`
    with a message for every question that is wrong, missing or unknown."""
    questions = {question.id: question for question in document.questions}
    errors: dict[str, str] = {}
    unknown = [question_id for question_id in answers if question_id not in questions]
    for question_id in unknown[:_MAX_REPORTED_UNKNOWN]:
        errors[question_id[:64]] = UNKNOWN_QUESTION
    cleaned: dict[str, AnswerValue] = {}
    for question in document.questions:
        value = _normalized(answers.get(question.id))
        if value is None:
            if question.required:
                errors[question.id] = REQUIRED
            continue
        checked = _check(question, value)
        if isinstance(checked, _Problem):
            errors[question.id] = checked.message
        else:
            cleaned[question.id] = checked
    if errors:
        raise AnswersInvalid(errors)
    return cleaned


class _Problem:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _normalized(value: AnswerValue) -> AnswerValue:
    """An unanswered question is None whatever the form sent: null, an empty text or no options."""
    if isinstance(value, str):
        value = clean_text(value)
        return value or None
    if isinstance(value, list) and not value:
        return None
    return value


# Control characters (C0, DEL, C1) except line feed and tab, and the bidirectional overrides and
# isolates that can make a comment read differently in the cabinet than it was written.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """Text as stored: Unicode NFC, line breaks as ``\\n``, no control characters, trimmed."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def _check(question: Question, value: AnswerValue) -> AnswerValue | _Problem:
    if question.kind == "rating":
        scale = question.scale or DEFAULT_SCALE
        # bool is an int in Python, but a checkbox is not a rating.
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= scale:
            return _Problem(f"Выберите оценку от 1 до {scale}.")
        return value
    if question.kind == "single_choice":
        options = {option.id for option in question.options or ()}
        if not isinstance(value, str) or value not in options:
            return _Problem(CHOOSE_ONE)
        return value
    if question.kind == "multiple_choice":
        options = {option.id for option in question.options or ()}
        if not isinstance(value, list) or any(choice not in options for choice in value):
            return _Problem(CHOOSE_SOME)
        return list(dict.fromkeys(value))  # a choice ticked twice counts once
    if question.kind == "yes_no":
        if not isinstance(value, bool):
            return _Problem(YES_OR_NO)
        return value
    # text
    if not isinstance(value, str):
        return _Problem(TEXT_EXPECTED)
    limit = question.max_length or DEFAULT_TEXT_LENGTH
    if len(value) > limit:
        return _Problem(f"Ответ слишком длинный: не более {limit} символов, сейчас {len(value)}. Сократите его.")
    return value
