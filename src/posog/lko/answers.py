"""The rules for a citizen's answers to a questionnaire version (SPEC §7), in one place.

ЛКО checks a submission with :func:`check_answers` before storing it, and ЛКП checks the survey form
with it before sending it, so the page never accepts what ЛКО refuses nor refuses what ЛКО accepts.
A problem is a machine code per question id; each system says it in its own Russian words.

Other systems import these names from :mod:`posog.lko.contracts`.

The rules:

- an unanswered question is ``None`` whatever was sent: null, no options, or a string that is empty
  once cleaned (see :func:`clean_text`) — every string answer is cleaned, option ids included;
- a required question must be answered (``required``); an answer to a question the version does not
  have is refused (``unknown_question``; at most :data:`MAX_REPORTED_UNKNOWN` are reported, their ids
  cut to :data:`UNKNOWN_ID_LENGTH` characters);
- a rating is a whole number (``wrong_type`` otherwise; a bool is not one) from 1 to the scale,
  5 when the question names none (``out_of_range``);
- a single choice is one of the question's option ids (``wrong_type`` if not a string,
  ``not_an_option`` if not offered);
- a multiple choice is a list of option ids (``wrong_type`` if not a list of strings, ``not_an_option``
  if any is not offered); a choice given twice counts once, the order given is kept;
- a yes/no answer is a bool (``wrong_type``);
- a text is a string (``wrong_type``) of at most the question's ``max_length`` characters once
  cleaned, 2000 when it names none (``too_long``, with the cleaned length)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # only types: posog.lko.contracts re-exports this module
    from posog.lko.contracts import AnswerValue, Question, QuestionnaireDocument

AnswerCode = Literal["required", "unknown_question", "wrong_type", "out_of_range", "not_an_option", "too_long"]
ANSWER_CODES: tuple[AnswerCode, ...] = get_args(AnswerCode)

DEFAULT_SCALE = 5
DEFAULT_TEXT_LENGTH = 2000
MAX_REPORTED_UNKNOWN = 20
UNKNOWN_ID_LENGTH = 64

# Control characters (C0, DEL, C1) except line feed and tab, and the bidirectional overrides and
# isolates that can make a comment read differently in the cabinet than it was written. PostgreSQL
# refuses NUL in text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class AnswerProblem:
    """Why one answer is refused. ``length`` is the cleaned text's length (``too_long`` only)."""

    code: AnswerCode
    length: int | None = None


@dataclass(frozen=True)
class AnswerCheck:
    """Answers read against a version: ``answers`` as they are stored (texts cleaned, unanswered
    questions left out, in the questionnaire's order) and ``problems`` by question id (unknown ids
    first, then the questions in order)."""

    answers: dict[str, AnswerValue]
    problems: dict[str, AnswerProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


def scale_of(question: Question) -> int:
    """The top of a rating's scale."""
    return question.scale or DEFAULT_SCALE


def text_limit(question: Question) -> int:
    """The longest text answer a question takes, in characters once cleaned."""
    return question.max_length or DEFAULT_TEXT_LENGTH


def normalize_text(raw: str) -> str:
    """Text as it is counted and kept, before trimming: line breaks as ``\\n`` (a browser's CRLF counts
    as one character, as ``maxlength`` counts it), no control characters, Unicode NFC. Composed last,
    so a letter and its accent that a dropped character kept apart are composed too, and cleaning
    cleaned text changes nothing."""
    text = _CONTROL.sub("", raw.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFC", text)


def clean_text(text: str) -> str:
    """Text as stored: :func:`normalize_text`, trimmed."""
    return normalize_text(text).strip()


def check_answers(document: QuestionnaireDocument, answers: Mapping[str, AnswerValue]) -> AnswerCheck:
    """Check ``answers`` (question id → value) against ``document``: every rule of this module."""
    known = {question.id for question in document.questions}
    problems: dict[str, AnswerProblem] = {}
    unknown = [question_id for question_id in answers if question_id not in known]
    for question_id in unknown[:MAX_REPORTED_UNKNOWN]:
        problems[question_id[:UNKNOWN_ID_LENGTH]] = AnswerProblem("unknown_question")
    cleaned: dict[str, AnswerValue] = {}
    for question in document.questions:
        value = _normalized(answers.get(question.id))
        if value is None:
            if question.required:
                problems[question.id] = AnswerProblem("required")
            continue
        checked = _check(question, value)
        if isinstance(checked, AnswerProblem):
            problems[question.id] = checked
        else:
            cleaned[question.id] = checked
    return AnswerCheck(cleaned, problems)


def _normalized(value: AnswerValue) -> AnswerValue:
    """An unanswered question is None whatever was sent: null, an empty (cleaned) string or no options."""
    if isinstance(value, str):
        return clean_text(value) or None
    if isinstance(value, list) and not value:
        return None
    return value


def _check(question: Question, value: AnswerValue) -> AnswerValue | AnswerProblem:
    if question.kind == "rating":
        # bool is an int in Python, but a checkbox is not a rating.
        if isinstance(value, bool) or not isinstance(value, int):
            return AnswerProblem("wrong_type")
        if not 1 <= value <= scale_of(question):
            return AnswerProblem("out_of_range")
        return value
    if question.kind == "single_choice":
        if not isinstance(value, str):
            return AnswerProblem("wrong_type")
        if value not in _option_ids(question):
            return AnswerProblem("not_an_option")
        return value
    if question.kind == "multiple_choice":
        if not isinstance(value, list) or not all(isinstance(choice, str) for choice in value):
            return AnswerProblem("wrong_type")
        options = _option_ids(question)
        if any(choice not in options for choice in value):
            return AnswerProblem("not_an_option")
        return list(dict.fromkeys(value))  # a choice given twice counts once
    if question.kind == "yes_no":
        if not isinstance(value, bool):
            return AnswerProblem("wrong_type")
        return value
    # text
    if not isinstance(value, str):
        return AnswerProblem("wrong_type")
    if len(value) > text_limit(question):
        return AnswerProblem("too_long", length=len(value))
    return value


def _option_ids(question: Question) -> set[str]:
    return {option.id for option in question.options or ()}
