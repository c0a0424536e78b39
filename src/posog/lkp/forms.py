"""The survey form: field names, parsing the submitted form against the pinned questionnaire, and ЛКО's
own checks of the answers (:func:`posog.lko.contracts.check_answers`: required questions, ranges,
option ids, text length), with the messages in Russian the citizen reads next to each question.

Parsing never trusts the browser: a value that is not one the questionnaire offers is an error, not
an answer. The citizen's input is kept (``values``) so the re-rendered form shows what they chose."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from posog.core.russian import plural as plural
from posog.lko.contracts import (
    AnswerProblem,
    AnswerValue,
    Question,
    QuestionnaireDocument,
    check_answers,
    scale_of,
    text_limit,
)
from posog.lko.contracts import normalize_text as normalize_text

IDEMPOTENCY_FIELD = "idempotency_key"
QUESTIONNAIRE_ID_FIELD = "questionnaire_id"
QUESTIONNAIRE_VERSION_FIELD = "questionnaire_version"
FORM_MAX_BYTES = 256 * 1024
FORM_MAX_FIELDS = 1000

# Tokens and idempotency keys are URL-safe base64 (``secrets.token_urlsafe``).
_URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")

YES, NO = "yes", "no"


def field_name(question_id: str) -> str:
    """The form field of a question's answer."""
    return f"answer_{question_id}"


def new_idempotency_key() -> str:
    """A fresh key for one rendered form: a resubmission of that form is the same submission."""
    return secrets.token_urlsafe(24)


def looks_like_token(value: str) -> bool:
    """Whether ``value`` can be a link token at all (URL-safe, 16–128 characters). Anything else is
    answered as an unknown link without asking the module."""
    return 16 <= len(value) <= 128 and bool(_URLSAFE.match(value))


def valid_idempotency_key(value: str | None) -> str | None:
    """The submitted key if it has the shape we issue, else None."""
    if value is not None and 16 <= len(value) <= 128 and _URLSAFE.match(value):
        return value
    return None


def parse_urlencoded(body: bytes) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body as name → values (bad UTF-8 replaced)."""
    return parse_qs(
        body.decode("utf-8", errors="replace"),
        keep_blank_values=True,
        max_num_fields=FORM_MAX_FIELDS,
    )


@dataclass(frozen=True)
class ParsedAnswers:
    """A submitted form read against a questionnaire.

    ``answers`` — the valid answers to send to ЛКО (unanswered optional questions are left out);
    ``values`` — what the citizen entered, to show again; ``errors`` — question id → Russian message."""

    answers: dict[str, AnswerValue] = field(default_factory=dict)
    values: dict[str, AnswerValue] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _filled(values: Sequence[str]) -> list[str]:
    """The submitted values that are not blank (a blank field is no answer)."""
    return [v for v in values if v != ""]


def _one(values: Sequence[str]) -> AnswerValue:
    """A single-valued field: its one value; none as None, several (a tampered form) as a list, which
    no single-valued question takes."""
    filled = _filled(values)
    if not filled:
        return None
    return filled[0] if len(filled) == 1 else filled


def _options(question: Question) -> list[str]:
    return [option.id for option in question.options or ()]


def _submitted(question: Question, raw: Sequence[str]) -> AnswerValue:
    """The form's fields as the answer ЛКО would be sent: a rating's digits as a number, «yes»/«no» as a
    bool, the ticked options as a list. Anything else is passed on as it came, for the shared rules to
    refuse (or, a blank once cleaned, to count as no answer)."""
    if question.kind == "multiple_choice":
        return list(dict.fromkeys(_filled(raw)))
    if question.kind == "text":
        return raw[0] if raw else None
    value = _one(raw)
    if not isinstance(value, str):
        return value
    # Short ASCII digits only: int() of a huge string is refused (and slow), "１" is a digit too.
    if question.kind == "rating" and value.isascii() and value.isdigit() and len(value) <= 4:
        return int(value)
    if question.kind == "yes_no" and value in (YES, NO):
        return value == YES
    return value


def message(question: Question, problem: AnswerProblem) -> str:
    """The words the citizen reads next to ``question`` for ``problem``."""
    if question.kind == "rating":
        return f"Выберите оценку от 1 до {scale_of(question)}"
    if question.kind == "single_choice":
        if problem.code == "not_an_option":
            return "Выберите вариант ответа из списка"
        return "Выберите один из вариантов ответа"
    if question.kind == "multiple_choice":
        if problem.code == "required":
            return "Выберите хотя бы один вариант ответа"
        return "Выберите варианты ответа из списка"
    if question.kind == "yes_no":
        return "Ответьте «Да» или «Нет»"
    if problem.code == "too_long":
        limit = text_limit(question)
        over = (problem.length or 0) - limit
        return (
            f"Ответ должен быть не длиннее {limit} {plural(limit, 'символа', 'символов', 'символов')} — "
            f"сократите его на {over} {plural(over, 'символ', 'символа', 'символов')}"
        )
    return "Напишите ответ"


def parse_answers(questionnaire: QuestionnaireDocument, form: Mapping[str, Sequence[str]]) -> ParsedAnswers:
    """Read the answers to ``questionnaire`` from a submitted form (field name → submitted values) and
    check them by ЛКО's rules (:func:`~posog.lko.contracts.check_answers`)."""
    raw = {question.id: list(form.get(field_name(question.id), ())) for question in questionnaire.questions}
    submitted = {question.id: _submitted(question, raw[question.id]) for question in questionnaire.questions}
    check = check_answers(questionnaire, submitted)
    parsed = ParsedAnswers()
    for question in questionnaire.questions:
        problem = check.problems.get(question.id)
        value = check.answers.get(question.id)
        if question.kind == "multiple_choice" and isinstance(value, list):
            value = sorted(value, key=_options(question).index)  # sent in the questionnaire's order
        shown: AnswerValue = value
        if question.kind == "text":
            # The text as typed (not trimmed), for editing.
            shown = (normalize_text(raw[question.id][0]) if raw[question.id] else "") or None
        elif question.kind == "multiple_choice" and problem is not None and problem.code != "required":
            chosen = submitted[question.id]
            shown = [v for v in chosen if v in _options(question)] if isinstance(chosen, list) else None
        if shown is not None:
            parsed.values[question.id] = shown
        if problem is not None:
            parsed.errors[question.id] = message(question, problem)
        elif value is not None:
            parsed.answers[question.id] = value
    return parsed


def first_input_id(question: Question) -> str:
    """The id of the element an error-summary link points at: the question's first input."""
    if question.kind == "text":
        return f"answer-{question.id}"
    return f"answer-{question.id}-1"
