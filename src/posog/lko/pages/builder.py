"""The questionnaire form builder without JavaScript: the whole questionnaire travels in one form;
buttons (``action``) add, remove and reorder questions and options, or save. Every action but saving
only re-renders the form with the changed state; saving validates the content
(:func:`~posog.lko.questionnaires.validation.validate_content`) and stores it.

Field names: ``title``, ``validity_days``, ``q-count``; per question ``q{i}.id``, ``q{i}.kind``,
``q{i}.text``, ``q{i}.required``, ``q{i}.hint``, ``q{i}.scale``, ``q{i}.criterion``,
``q{i}.max_length``, ``q{i}.o-count`` and per option ``q{i}.o{j}.id``, ``q{i}.o{j}.text``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from posog.lko.contracts import QuestionnaireDraft
from posog.lko.questionnaires.validation import CHOICE_KINDS, MAX_OPTIONS, MAX_QUESTIONS

DEFAULT_SCALE = "5"
DEFAULT_MAX_LENGTH = "2000"
_FIELD_LIMIT = 5000


@dataclass(frozen=True)
class BuilderOption:
    id: str = ""
    text: str = ""


@dataclass(frozen=True)
class BuilderQuestion:
    id: str = ""
    kind: str = "rating"
    text: str = ""
    required: bool = False
    hint: str = ""
    scale: str = ""
    criterion: str = ""
    max_length: str = ""
    options: tuple[BuilderOption, ...] = ()


@dataclass(frozen=True)
class BuilderState:
    title: str = ""
    validity_days: str = "30"
    questions: tuple[BuilderQuestion, ...] = field(default_factory=tuple)


def from_draft(draft: QuestionnaireDraft) -> BuilderState:
    """The builder's state showing a saved draft."""
    return BuilderState(
        title=draft.title,
        validity_days=str(draft.validity_days),
        questions=tuple(
            BuilderQuestion(
                id=q.id,
                kind=q.kind,
                text=q.text,
                required=q.required,
                hint=q.hint or "",
                scale="" if q.scale is None else str(q.scale),
                criterion=q.criterion or "",
                max_length="" if q.max_length is None else str(q.max_length),
                options=tuple(BuilderOption(o.id, o.text) for o in q.options or ()),
            )
            for q in draft.questions
        ),
    )


def _get(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value[:_FIELD_LIMIT] if isinstance(value, str) else ""


def _count(form: Mapping[str, Any], name: str, limit: int) -> int:
    raw = _get(form, name)
    return min(int(raw), limit) if raw.isdigit() else 0


def parse_form(form: Mapping[str, Any]) -> BuilderState:
    """The state the browser posted (never trusted: the content is validated when saved)."""
    questions = []
    for i in range(_count(form, "q-count", MAX_QUESTIONS + 1)):
        prefix = f"q{i}."
        options = tuple(
            BuilderOption(_get(form, f"{prefix}o{j}.id").strip(), _get(form, f"{prefix}o{j}.text"))
            for j in range(_count(form, f"{prefix}o-count", MAX_OPTIONS + 1))
        )
        questions.append(
            BuilderQuestion(
                id=_get(form, f"{prefix}id").strip(),
                kind=_get(form, f"{prefix}kind").strip(),
                text=_get(form, f"{prefix}text"),
                required=_get(form, f"{prefix}required") == "on",
                hint=_get(form, f"{prefix}hint"),
                scale=_get(form, f"{prefix}scale").strip(),
                criterion=_get(form, f"{prefix}criterion").strip(),
                max_length=_get(form, f"{prefix}max_length").strip(),
                options=options,
            )
        )
    return BuilderState(
        title=_get(form, "title"), validity_days=_get(form, "validity_days").strip(), questions=tuple(questions)
    )


def _number(value: str) -> int | str | None:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value  # reported as given by the validation


def to_content(state: BuilderState) -> dict[str, Any]:
    """The content to validate and save: only the fields of each question's kind."""
    questions: list[dict[str, Any]] = []
    for q in state.questions:
        question: dict[str, Any] = {"id": q.id, "kind": q.kind, "text": q.text, "required": q.required}
        if q.hint.strip():
            question["hint"] = q.hint
        if q.kind == "rating":
            question["scale"] = _number(q.scale)
            if q.criterion:
                question["criterion"] = q.criterion
        if q.kind == "text":
            question["max_length"] = _number(q.max_length)
        if q.kind in CHOICE_KINDS:
            question["options"] = [{"id": o.id, "text": o.text} for o in q.options]
        questions.append(question)
    validity = _number(state.validity_days)
    return {"title": state.title, "validity_days": validity, "questions": questions}


def _next_id(existing: set[str], prefix: str, start: int) -> str:
    n = start
    while f"{prefix}{n}" in existing:
        n += 1
    return f"{prefix}{n}"


def with_kind_defaults(question: BuilderQuestion) -> BuilderQuestion:
    """Fill what a newly chosen kind needs, so the form shows sensible starting values."""
    if question.kind == "rating" and not question.scale:
        question = replace(question, scale=DEFAULT_SCALE)
    if question.kind == "text" and not question.max_length:
        question = replace(question, max_length=DEFAULT_MAX_LENGTH)
    if question.kind in CHOICE_KINDS and not question.options:
        question = replace(question, options=(BuilderOption("a", ""), BuilderOption("b", "")))
    return question


def apply_action(state: BuilderState, action: str) -> BuilderState:
    """The state after a builder button: ``add``, ``remove:i``, ``up:i``, ``down:i``, ``add-option:i``,
    ``remove-option:i:j`` or ``refresh`` (re-show after changing kinds). Unknown actions change nothing."""
    questions = list(state.questions)
    verb, _, rest = action.partition(":")
    numbers = [int(part) for part in rest.split(":") if part.isdigit()] if rest else []
    i = numbers[0] if numbers else -1
    if verb == "add" and len(questions) < MAX_QUESTIONS:
        new_id = _next_id({q.id for q in questions}, "q", len(questions) + 1)
        questions.append(BuilderQuestion(id=new_id, kind="rating", scale=DEFAULT_SCALE, required=True))
    elif verb == "remove" and 0 <= i < len(questions):
        del questions[i]
    elif verb == "up" and 0 < i < len(questions):
        questions[i - 1], questions[i] = questions[i], questions[i - 1]
    elif verb == "down" and 0 <= i < len(questions) - 1:
        questions[i + 1], questions[i] = questions[i], questions[i + 1]
    elif verb == "add-option" and 0 <= i < len(questions) and len(questions[i].options) < MAX_OPTIONS:
        options = questions[i].options
        letters = "abcdefghijklmnopqrstuvwxyz"
        new_id = next(
            (c for c in letters if c not in {o.id for o in options}),
            _next_id({o.id for o in options}, "o", len(options) + 1),
        )
        questions[i] = replace(questions[i], options=(*options, BuilderOption(new_id, "")))
    elif verb == "remove-option" and len(numbers) == 2 and 0 <= i < len(questions):
        j = numbers[1]
        options = questions[i].options
        if 0 <= j < len(options):
            questions[i] = replace(questions[i], options=options[:j] + options[j + 1 :])
    return replace(state, questions=tuple(with_kind_defaults(q) for q in questions))
