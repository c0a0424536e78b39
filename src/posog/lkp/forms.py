"""The survey form: field names, parsing the submitted form against the pinned questionnaire, and the
same checks ЛКО makes (required questions, ranges, option ids, text length), with the messages in
Russian the citizen reads next to each question.

Parsing never trusts the browser: a value that is not one the questionnaire offers is an error, not
an answer. The citizen's input is kept (``values``) so the re-rendered form shows what they chose."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from posog.lko.contracts import AnswerValue, Question, QuestionnaireDocument

IDEMPOTENCY_FIELD = "idempotency_key"
QUESTIONNAIRE_ID_FIELD = "questionnaire_id"
QUESTIONNAIRE_VERSION_FIELD = "questionnaire_version"
FORM_MAX_BYTES = 256 * 1024
FORM_MAX_FIELDS = 1000

# Tokens and idempotency keys are URL-safe base64 (``secrets.token_urlsafe``).
_URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")
# Control characters other than tab and newline never belong in a comment (PostgreSQL refuses NUL),
# nor do bidirectional overrides; ЛКО drops the same ones.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# ЛКО's limit for a text question that names none.
DEFAULT_TEXT_LENGTH = 2000

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


def plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian plural form for ``n`` (1 символ, 2 символа, 5 символов)."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def normalize_text(raw: str) -> str:
    """What a textarea's value means: browsers send line breaks as CRLF (counted as one character by
    ``maxlength``), so they are counted as one here too; stray control characters are dropped and the
    text is NFC-normalised, as ЛКО stores it."""
    text = unicodedata.normalize("NFC", raw).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


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


def _single(values: Sequence[str]) -> str | None:
    """The one submitted value; blank counts as none, several as a tampered form (None as well)."""
    filled = [v for v in values if v != ""]
    return filled[0] if len(filled) == 1 else None


def _options(question: Question) -> list[str]:
    return [option.id for option in question.options or ()]


def _missing(question: Question, raw: Sequence[str], message: str) -> tuple[AnswerValue, str | None]:
    """No single value: an error if the question is required or several values came (a tampered form)."""
    tampered = any(v != "" for v in raw)
    return None, message if (question.required or tampered) else None


def _parse_rating(question: Question, raw: Sequence[str]) -> tuple[AnswerValue, str | None]:
    scale = question.scale or 5
    message = f"Выберите оценку от 1 до {scale}"
    value = _single(raw)
    if value is None:
        return _missing(question, raw, message)
    # Short ASCII digits only: int() of a huge string is refused (and slow), "１" is a digit too.
    if not (value.isascii() and value.isdigit() and len(value) <= 4) or not 1 <= int(value) <= scale:
        return None, message
    return int(value), None


def _parse_single(question: Question, raw: Sequence[str]) -> tuple[AnswerValue, str | None]:
    value = _single(raw)
    if value is None:
        return _missing(question, raw, "Выберите один из вариантов ответа")
    if value not in _options(question):
        return None, "Выберите вариант ответа из списка"
    return value, None


def _parse_multiple(question: Question, raw: Sequence[str]) -> tuple[AnswerValue, str | None]:
    chosen = list(dict.fromkeys(v for v in raw if v != ""))
    if not chosen:
        return None, "Выберите хотя бы один вариант ответа" if question.required else None
    offered = _options(question)
    if any(v not in offered for v in chosen):
        return [v for v in chosen if v in offered], "Выберите варианты ответа из списка"
    return sorted(chosen, key=offered.index), None


def _parse_yes_no(question: Question, raw: Sequence[str]) -> tuple[AnswerValue, str | None]:
    value = _single(raw)
    if value is None:
        return _missing(question, raw, "Ответьте «Да» или «Нет»")
    if value not in (YES, NO):
        return None, "Ответьте «Да» или «Нет»"
    return value == YES, None


def _parse_text(question: Question, raw: Sequence[str]) -> tuple[AnswerValue, str | None, str]:
    text = normalize_text(raw[0]) if raw else ""
    stripped = text.strip()
    if not stripped:
        return None, "Напишите ответ" if question.required else None, text
    limit = question.max_length or DEFAULT_TEXT_LENGTH
    if len(stripped) > limit:
        over = len(stripped) - limit
        return (
            None,
            f"Ответ должен быть не длиннее {limit} {plural(limit, 'символа', 'символов', 'символов')} — "
            f"сократите его на {over} {plural(over, 'символ', 'символа', 'символов')}",
            text,
        )
    return stripped, None, text


def parse_answers(questionnaire: QuestionnaireDocument, form: Mapping[str, Sequence[str]]) -> ParsedAnswers:
    """Read the answers to ``questionnaire`` from a submitted form (field name → submitted values)."""
    parsed = ParsedAnswers()
    for question in questionnaire.questions:
        raw = list(form.get(field_name(question.id), ()))
        error: str | None
        if question.kind == "rating":
            value, error = _parse_rating(question, raw)
            shown: AnswerValue = value
        elif question.kind == "single_choice":
            value, error = _parse_single(question, raw)
            shown = value
        elif question.kind == "multiple_choice":
            value, error = _parse_multiple(question, raw)
            shown = value
            if error is not None:
                value = None
        elif question.kind == "yes_no":
            value, error = _parse_yes_no(question, raw)
            shown = value
        else:
            value, error, text = _parse_text(question, raw)
            shown = text or None
        if shown is not None:
            parsed.values[question.id] = shown
        if error is not None:
            parsed.errors[question.id] = error
        elif value is not None:
            parsed.answers[question.id] = value
    return parsed


def first_input_id(question: Question) -> str:
    """The id of the element an error-summary link points at: the question's first input."""
    if question.kind == "text":
        return f"answer-{question.id}"
    return f"answer-{question.id}-1"
