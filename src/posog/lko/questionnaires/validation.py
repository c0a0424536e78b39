"""Validation of a questionnaire's editable content (title, validity, questions) before it is saved
or published, with a precise Russian message per problem naming the question it concerns.

The input is whatever the editor sent (parsed JSON, or the form builder's state), never trusted:
every field is checked here, so the messages are ours and not the parser's."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from posog.lko.contracts import CRITERIA, QuestionKind, QuestionnaireDraft

KINDS: dict[str, str] = {
    "rating": "оценка по шкале",
    "single_choice": "выбор одного варианта",
    "multiple_choice": "выбор нескольких вариантов",
    "text": "свободный ответ",
    "yes_no": "да или нет",
}
assert set(KINDS) == set(get_args(QuestionKind))
CHOICE_KINDS = frozenset({"single_choice", "multiple_choice"})

MAX_TITLE = 300
MAX_QUESTIONS = 100
MAX_QUESTION_TEXT = 1000
MAX_HINT = 500
MAX_OPTIONS = 50
MAX_OPTION_TEXT = 500
MAX_ID = 40
SCALE_RANGE = (2, 10)
MAX_LENGTH_RANGE = (1, 5000)
VALIDITY_RANGE = (1, 365)
DEFAULT_VALIDITY_DAYS = 30
_ID = re.compile(r"^[A-Za-z0-9_\-]+$")

ProblemSink = Callable[[str, str], None]  # (field, message) of the question being checked

_TOP_FIELDS = frozenset({"title", "validity_days", "questions"})
# A whole document (e.g. a version's JSON pasted back) also carries these; they belong to the
# questionnaire, not to its content, and are ignored (type and level must agree, see below).
_DOCUMENT_FIELDS = frozenset({"id", "version", "type_code", "level"})
_QUESTION_FIELDS = frozenset({"id", "kind", "text", "required", "scale", "criterion", "options", "max_length", "hint"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the content. ``path`` is machine-readable (``questions[2].scale``);
    ``question`` is the 0-based index of the question concerned, ``field`` its field."""

    path: str
    message: str
    question: int | None = None
    field: str | None = None


class DraftInvalid(Exception):
    """The content cannot be saved or published; ``problems`` says why, each precisely."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


def kinds_list() -> str:
    return ", ".join(f"{kind} ({name})" for kind, name in KINDS.items())


def criteria_list() -> str:
    return ", ".join(f"{code} ({name.lower()})" for code, name in CRITERIA.items())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_content(raw: Any, *, type_code: str | None = None, level: str | None = None) -> QuestionnaireDraft:
    """The content as a :class:`QuestionnaireDraft`, or :class:`DraftInvalid` listing every problem.

    ``type_code`` and ``level`` are the questionnaire's: a pasted document naming others is refused
    (they are chosen when the questionnaire is created)."""
    problems: list[Problem] = []
    if not isinstance(raw, Mapping):
        raise DraftInvalid(
            [Problem("", "Анкета должна быть JSON-объектом с полями «title», «validity_days» и «questions»")]
        )
    for key in raw:
        if key not in _TOP_FIELDS and key not in _DOCUMENT_FIELDS:
            problems.append(Problem(str(key), f"Неизвестное поле анкеты «{_shown(key)}»"))
    for key, expected, what in (("type_code", type_code, "тип организации"), ("level", level, "уровень опроса")):
        given = raw.get(key)
        if given is not None and expected is not None and given != expected:
            problems.append(
                Problem(
                    key,
                    f"Поле «{key}»: {what} анкеты — «{expected}», а в документе «{_shown(given)}»; "
                    "он задаётся при создании анкеты и не меняется",
                )
            )

    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append(Problem("title", "Укажите название анкеты", field="title"))
    elif len(title.strip()) > MAX_TITLE:
        problems.append(Problem("title", f"Название анкеты длиннее {MAX_TITLE} символов", field="title"))

    validity = raw.get("validity_days", DEFAULT_VALIDITY_DAYS)
    if validity is None:
        validity = DEFAULT_VALIDITY_DAYS
    if not _is_int(validity) or not VALIDITY_RANGE[0] <= validity <= VALIDITY_RANGE[1]:
        problems.append(
            Problem(
                "validity_days",
                f"Срок действия ссылки должен быть целым числом дней от {VALIDITY_RANGE[0]} до {VALIDITY_RANGE[1]} "
                f"(указано «{_shown(validity)}»)",
                field="validity_days",
            )
        )

    questions = raw.get("questions")
    if questions is None or questions == []:
        problems.append(Problem("questions", "В анкете должен быть хотя бы один вопрос", field="questions"))
    elif not isinstance(questions, list):
        problems.append(Problem("questions", "Поле «questions» должно быть списком вопросов", field="questions"))
    elif len(questions) > MAX_QUESTIONS:
        problems.append(Problem("questions", f"В анкете больше {MAX_QUESTIONS} вопросов", field="questions"))
    else:
        _check_questions(questions, problems)

    if problems:
        raise DraftInvalid(problems)
    assert isinstance(title, str)
    assert isinstance(questions, list)
    return QuestionnaireDraft.model_validate(
        {
            "title": title.strip(),
            "validity_days": validity,
            "questions": [_normalized(question) for question in questions],
        }
    )


def _normalized(question: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        key: value for key, value in question.items() if value is not None and key in _QUESTION_FIELDS
    }
    result["id"] = str(result["id"]).strip()
    result["text"] = str(result["text"]).strip()
    if isinstance(result.get("hint"), str):
        result["hint"] = result["hint"].strip() or None
        if result["hint"] is None:
            del result["hint"]
    if "options" in result:
        result["options"] = [
            {"id": str(option["id"]).strip(), "text": str(option["text"]).strip()} for option in result["options"]
        ]
    return result


def _check_questions(questions: list[Any], problems: list[Problem]) -> None:
    seen_ids: dict[str, int] = {}
    seen_criteria: dict[str, int] = {}
    for index, question in enumerate(questions):
        number = index + 1
        path = f"questions[{index}]"
        if not isinstance(question, Mapping):
            problems.append(Problem(path, f"Вопрос {number}: должен быть объектом с полями вопроса", question=index))
            continue
        raw_id = question.get("id")
        question_id = raw_id.strip() if isinstance(raw_id, str) else None
        name = f"Вопрос {number} («{_shown(question_id)}»)" if question_id else f"Вопрос {number}"

        def problem(field: str, message: str, *, _path: str = path, _index: int = index, _name: str = name) -> None:
            problems.append(Problem(f"{_path}.{field}", f"{_name}: {message}", question=_index, field=field))

        for key in question:
            if key not in _QUESTION_FIELDS:
                problem(str(key), f"неизвестное поле «{_shown(key)}»")

        if not question_id:
            problem("id", "укажите идентификатор вопроса (например, q1)")
        elif len(question_id) > MAX_ID or not _ID.match(question_id):
            problem(
                "id",
                f"идентификатор «{_shown(question_id)}» недопустим: латинские буквы, цифры, «_» и «-», "
                f"не длиннее {MAX_ID} символов",
            )
        elif question_id in seen_ids:
            problem("id", f"идентификатор «{question_id}» уже есть у вопроса {seen_ids[question_id] + 1}")
        else:
            seen_ids[question_id] = index

        kind = question.get("kind")
        if kind is None or kind == "":
            problem("kind", f"укажите тип вопроса: {kinds_list()}")
            kind = None
        elif kind not in KINDS:
            problem("kind", f"неизвестный тип «{_shown(kind)}»; допустимые: {kinds_list()}")
            kind = None

        text = question.get("text")
        if not isinstance(text, str) or not text.strip():
            problem("text", "укажите текст вопроса")
        elif len(text.strip()) > MAX_QUESTION_TEXT:
            problem("text", f"текст вопроса длиннее {MAX_QUESTION_TEXT} символов")

        required = question.get("required")
        if required is not None and not isinstance(required, bool):
            problem("required", "поле «required» должно быть true или false")

        hint = question.get("hint")
        if hint is not None and (not isinstance(hint, str) or len(hint.strip()) > MAX_HINT):
            problem("hint", f"подсказка должна быть строкой не длиннее {MAX_HINT} символов")

        _check_kind_fields(question, kind, problem, seen_criteria, index)


def _check_kind_fields(
    question: Mapping[str, Any],
    kind: str | None,
    problem: ProblemSink,
    seen_criteria: dict[str, int],
    index: int,
) -> None:
    scale = question.get("scale")
    criterion = question.get("criterion")
    options = question.get("options")
    max_length = question.get("max_length")

    if kind == "rating":
        low, high = SCALE_RANGE
        if scale is None:
            problem("scale", f"для оценки укажите шкалу — целое число от {low} до {high}")
        elif not _is_int(scale) or not low <= scale <= high:
            problem("scale", f"шкала оценки должна быть целым числом от {low} до {high} (указано «{_shown(scale)}»)")
        if criterion is not None:
            if criterion not in CRITERIA:
                problem("criterion", f"неизвестный критерий «{_shown(criterion)}»; допустимые: {criteria_list()}")
            elif criterion in seen_criteria:
                problem("criterion", f"критерий «{criterion}» уже оценивается вопросом {seen_criteria[criterion] + 1}")
            else:
                seen_criteria[criterion] = index
    elif kind is not None:
        if scale is not None:
            problem("scale", "шкала (scale) задаётся только для вопроса-оценки (rating)")
        if criterion is not None:
            problem("criterion", "критерий (criterion) задаётся только для вопроса-оценки (rating)")

    if kind in CHOICE_KINDS:
        _check_options(options, problem)
    elif kind is not None and options is not None:
        problem("options", "варианты ответа (options) задаются только для вопросов с выбором")

    if kind == "text":
        low, high = MAX_LENGTH_RANGE
        if max_length is None:
            problem("max_length", f"для свободного ответа укажите максимальную длину — от {low} до {high} символов")
        elif not _is_int(max_length) or not low <= max_length <= high:
            problem(
                "max_length",
                f"максимальная длина ответа должна быть целым числом от {low} до {high} "
                f"(указано «{_shown(max_length)}»)",
            )
    elif kind is not None and max_length is not None:
        problem("max_length", "максимальная длина (max_length) задаётся только для свободного ответа (text)")


def _check_options(options: Any, problem: ProblemSink) -> None:
    if options is None or options == []:
        problem("options", "для вопроса с выбором укажите варианты ответа (не меньше двух)")
        return
    if not isinstance(options, list):
        problem("options", "варианты ответа (options) должны быть списком")
        return
    if len(options) < 2:
        problem("options", "у вопроса с выбором должно быть не меньше двух вариантов ответа")
    if len(options) > MAX_OPTIONS:
        problem("options", f"вариантов ответа больше {MAX_OPTIONS}")
        return
    ids: dict[str, int] = {}
    texts: dict[str, int] = {}
    for position, option in enumerate(options, start=1):
        if not isinstance(option, Mapping):
            problem("options", f"вариант {position} должен быть объектом с полями «id» и «text»")
            continue
        extra = [str(key) for key in option if key not in ("id", "text")]
        if extra:
            problem("options", f"вариант {position}: неизвестное поле «{_shown(extra[0])}»")
        option_id = option.get("id")
        option_id = option_id.strip() if isinstance(option_id, str) else option_id
        if not isinstance(option_id, str) or not option_id:
            problem("options", f"вариант {position}: укажите идентификатор варианта (например, a)")
        elif len(option_id) > MAX_ID or not _ID.match(option_id):
            problem(
                "options",
                f"вариант {position}: идентификатор «{_shown(option_id)}» недопустим — латинские буквы, цифры, "
                f"«_» и «-», не длиннее {MAX_ID} символов",
            )
        elif option_id in ids:
            problem("options", f"вариант {position}: идентификатор «{option_id}» уже есть у варианта {ids[option_id]}")
        else:
            ids[option_id] = position
        text = option.get("text")
        if not isinstance(text, str) or not text.strip():
            problem("options", f"вариант {position}: укажите текст варианта")
        elif len(text.strip()) > MAX_OPTION_TEXT:
            problem("options", f"вариант {position}: текст длиннее {MAX_OPTION_TEXT} символов")
        else:
            folded = " ".join(text.split()).casefold()
            if folded in texts:
                problem("options", f"вариант {position}: такой же текст уже у варианта {texts[folded]}")
            else:
                texts[folded] = position
