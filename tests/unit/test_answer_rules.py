"""The one set of rules for a citizen's answers (``posog.lko.answers``): every problem code, what is
stored, and that the survey page (ЛКП) and ЛКО, which both check by it, decide alike — the page never
accepts what ЛКО refuses nor refuses what ЛКО accepts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posog.lko import contracts
from posog.lko.answers import (
    ANSWER_CODES,
    DEFAULT_SCALE,
    DEFAULT_TEXT_LENGTH,
    MAX_REPORTED_UNKNOWN,
    UNKNOWN_ID_LENGTH,
    AnswerProblem,
    check_answers,
    clean_text,
    normalize_text,
    scale_of,
    text_limit,
)
from posog.lko.contracts import AnswerValue, Option, Question, QuestionnaireDocument
from posog.lko.responses import validation
from posog.lko.responses.validation import AnswersInvalid, validate_answers
from posog.lkp import forms
from posog.lkp.forms import field_name, parse_answers

OPTIONS = (Option(id="a", text="А"), Option(id="b", text="Б"), Option(id="c-1", text="В"))


def document(*, required: bool) -> QuestionnaireDocument:
    """One question of every kind (and a text without a limit, a rating without a scale)."""
    return QuestionnaireDocument(
        id="00000000-0000-4000-8000-000000000002",
        version=1,
        type_code="mfc",
        level="federal",
        title="Анкета",
        questions=(
            Question(id="rate", kind="rating", text="Оценка", scale=4, required=required),
            Question(id="rate5", kind="rating", text="Оценка по умолчанию", required=required),
            Question(id="one", kind="single_choice", text="Один", options=OPTIONS, required=required),
            Question(id="many", kind="multiple_choice", text="Много", options=OPTIONS, required=required),
            Question(id="yn", kind="yes_no", text="Да или нет", required=required),
            Question(id="text", kind="text", text="Текст", max_length=5, required=required),
            Question(id="long", kind="text", text="Длинный текст", required=required),
        ),
    )


OPTIONAL = document(required=False)
REQUIRED = document(required=True)
QUESTIONS = {question.id: question for question in OPTIONAL.questions}


def codes(doc: QuestionnaireDocument, answers: dict[str, Any]) -> dict[str, str]:
    return {key: problem.code for key, problem in check_answers(doc, answers).problems.items()}


# --- The shared function ------------------------------------------------------------------------


def test_the_contracts_expose_the_one_set_of_rules() -> None:
    assert contracts.check_answers is check_answers
    assert contracts.clean_text is clean_text is validation.clean_text
    assert contracts.normalize_text is normalize_text is forms.normalize_text


def test_valid_answers_are_stored_cleaned_in_the_questionnaires_order() -> None:
    check = check_answers(
        REQUIRED,
        {
            "long": " я\r\nты\x00 ",
            "text": "  ок\u202e  ",
            "yn": False,
            "many": ["c-1", "a", "c-1"],
            "one": " b\x1b ",
            "rate5": 5,
            "rate": 1,
        },
    )
    assert check.ok
    assert check.problems == {}
    assert list(check.answers.items()) == [
        ("rate", 1),
        ("rate5", 5),
        ("one", "b"),
        ("many", ["c-1", "a"]),  # a choice given twice counts once; the order given is kept
        ("yn", False),
        ("text", "ок"),
        ("long", "я\nты"),
    ]


@pytest.mark.parametrize("blank", [None, "", "   ", "\x00\u202e", "\r\n\t", []])
def test_blank_answers_are_no_answer_whatever_the_kind(blank: AnswerValue) -> None:
    answers = {question_id: blank for question_id in QUESTIONS}
    assert check_answers(OPTIONAL, answers).answers == {}
    assert check_answers(OPTIONAL, answers).ok
    assert codes(REQUIRED, answers) == dict.fromkeys(QUESTIONS, "required")


def test_every_answer_code_is_produced() -> None:
    produced = {
        *codes(REQUIRED, {}).values(),
        *codes(OPTIONAL, {"zzz": 1, "rate": 9, "one": "z", "many": "a", "text": "шесть!"}).values(),
    }
    assert produced == set(ANSWER_CODES)
    assert ANSWER_CODES == ("required", "unknown_question", "wrong_type", "out_of_range", "not_an_option", "too_long")


@pytest.mark.parametrize(
    ("question", "value", "code"),
    [
        ("rate", 0, "out_of_range"),
        ("rate", 5, "out_of_range"),  # the scale is 4
        ("rate", -1, "out_of_range"),
        ("rate", 10**30, "out_of_range"),
        ("rate5", 6, "out_of_range"),  # no scale named: 5
        ("rate", True, "wrong_type"),  # bool is an int in Python, but not a rating
        ("rate", False, "wrong_type"),
        ("rate", "3", "wrong_type"),
        ("rate", 2.5, "wrong_type"),
        ("rate", [3], "wrong_type"),
        ("one", "z", "not_an_option"),
        ("one", "A", "not_an_option"),
        ("one", "a b", "not_an_option"),
        ("one", 1, "wrong_type"),
        ("one", True, "wrong_type"),
        ("one", ["a"], "wrong_type"),
        ("many", ["a", "z"], "not_an_option"),
        ("many", [" a"], "not_an_option"),  # the ids of a list are taken as given
        ("many", [""], "not_an_option"),
        ("many", "a", "wrong_type"),
        ("many", True, "wrong_type"),
        ("many", [1], "wrong_type"),
        ("yn", "yes", "wrong_type"),
        ("yn", 1, "wrong_type"),
        ("yn", ["yes"], "wrong_type"),
        ("text", "шесть!", "too_long"),
        ("long", "я" * (DEFAULT_TEXT_LENGTH + 1), "too_long"),
        ("text", 5, "wrong_type"),
        ("text", True, "wrong_type"),
        ("text", ["ok"], "wrong_type"),
    ],
)
def test_each_rule_has_its_code(question: str, value: object, code: str) -> None:
    assert codes(OPTIONAL, {question: value}) == {question: code}


def test_the_limits_are_inclusive_and_counted_on_the_cleaned_text() -> None:
    assert check_answers(OPTIONAL, {"rate": 4, "rate5": DEFAULT_SCALE}).ok
    assert check_answers(OPTIONAL, {"text": "  пять!  ", "long": "я" * DEFAULT_TEXT_LENGTH}).answers == {
        "text": "пять!",
        "long": "я" * DEFAULT_TEXT_LENGTH,
    }
    # A line break a browser sends as CRLF is one character; control characters count for nothing.
    assert check_answers(OPTIONAL, {"text": "аб\r\nв\x00г"}).answers == {"text": "аб\nвг"}
    problem = check_answers(OPTIONAL, {"text": " шесть!\x07 "}).problems["text"]
    assert problem == AnswerProblem("too_long", length=6)


def test_scale_and_limit_defaults() -> None:
    assert (scale_of(QUESTIONS["rate"]), scale_of(QUESTIONS["rate5"])) == (4, DEFAULT_SCALE)
    assert (text_limit(QUESTIONS["text"]), text_limit(QUESTIONS["long"])) == (5, DEFAULT_TEXT_LENGTH)


def test_unknown_question_ids_are_reported_first_and_briefly() -> None:
    answers: dict[str, Any] = {"rate": 9, **{f"x{n:03}" + "y" * 70: 1 for n in range(50)}, "zzz": 1}
    problems = check_answers(OPTIONAL, answers).problems
    unknown = [key for key, problem in problems.items() if problem.code == "unknown_question"]
    assert len(unknown) == MAX_REPORTED_UNKNOWN
    assert all(len(key) == UNKNOWN_ID_LENGTH for key in unknown)
    assert list(problems)[-1] == "rate", "the questions come after the unknown ids"


def test_text_is_normalized_before_it_is_trimmed() -> None:
    assert normalize_text(" a\r\nb\rc\x00\x85\u2066d ") == " a\nb\ncd "
    assert clean_text(" a\r\nb\rc\x00\x85\u2066d ") == "a\nb\ncd"
    assert clean_text("e\u0301") == "\u00e9"


@pytest.mark.parametrize("text", ["e\x00\u0301", "e\u202e\u0301", "e\r\u0301", " e\x07\u0301 "])
def test_a_letter_and_its_accent_kept_apart_by_a_dropped_character_are_composed(text: str) -> None:
    """Composing before dropping the character stored «e» + U+0301 (not NFC), which ЛКО, cleaning again
    what the page sent, stored as «é»: the page did not send what ЛКО stores."""
    assert clean_text(text) in ("\u00e9", "e\n\u0301")
    assert clean_text(clean_text(text)) == clean_text(text)
    assert validate_answers(OPTIONAL, {"text": text}) == {"text": clean_text(text)}
    parsed = parse_answers(OPTIONAL, form_of({"text": text}))
    assert validate_answers(OPTIONAL, parsed.answers) == parsed.answers


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=" \t\r\n\x00\x1b\x85\u202e\u2066\u00a0eaо\u0301\u0308\u0327", max_size=12))
def test_cleaning_cleaned_text_changes_nothing(text: str) -> None:
    assert clean_text(clean_text(text)) == clean_text(text)
    assert normalize_text(normalize_text(text)) == normalize_text(text)


# --- ЛКО and ЛКП say each code in their own words ------------------------------------------------


@pytest.mark.parametrize(
    ("question", "value", "lko", "lkp"),
    [
        ("rate", None, validation.REQUIRED, "Выберите оценку от 1 до 4"),
        ("rate", 7, "Выберите оценку от 1 до 4.", "Выберите оценку от 1 до 4"),
        ("rate", "x", "Выберите оценку от 1 до 4.", "Выберите оценку от 1 до 4"),
        ("one", None, validation.REQUIRED, "Выберите один из вариантов ответа"),
        ("one", "z", validation.CHOOSE_ONE, "Выберите вариант ответа из списка"),
        ("one", ["a", "b"], validation.CHOOSE_ONE, "Выберите один из вариантов ответа"),
        ("many", None, validation.REQUIRED, "Выберите хотя бы один вариант ответа"),
        ("many", ["z"], validation.CHOOSE_SOME, "Выберите варианты ответа из списка"),
        ("yn", None, validation.REQUIRED, "Ответьте «Да» или «Нет»"),
        ("yn", "maybe", validation.YES_OR_NO, "Ответьте «Да» или «Нет»"),
        ("text", None, validation.REQUIRED, "Напишите ответ"),
        (
            "text",
            "шесть!",
            "Ответ слишком длинный: не более 5 символов, сейчас 6. Сократите его.",
            "Ответ должен быть не длиннее 5 символов — сократите его на 1 символ",
        ),
    ],
)
def test_each_system_keeps_its_own_words(question: str, value: Any, lko: str, lkp: str) -> None:
    answers = {question: value} if value is not None else {}
    with pytest.raises(AnswersInvalid) as invalid:
        validate_answers(REQUIRED, answers)
    assert invalid.value.fields[question] == lko
    assert parse_answers(REQUIRED, form_of(answers)).errors[question] == lkp


def test_lko_words_for_a_wrong_type_of_text_and_an_unknown_question() -> None:
    with pytest.raises(AnswersInvalid) as invalid:
        validate_answers(OPTIONAL, {"text": 5, "zzz": "a"})
    assert invalid.value.fields == {"text": validation.TEXT_EXPECTED, "zzz": validation.UNKNOWN_QUESTION}


# --- The page and ЛКО decide alike ---------------------------------------------------------------


def form_of(answers: dict[str, Any]) -> dict[str, list[str]]:
    """A JSON answer as the survey form says it: a number as its digits, a bool as «yes»/«no», a list
    as one value per ticked box, a string as it is, no answer as no field."""
    form: dict[str, list[str]] = {}
    for question_id, value in answers.items():
        if value is None:
            continue
        if isinstance(value, bool):
            form[field_name(question_id)] = ["yes" if value else "no"]
        elif isinstance(value, list):
            form[field_name(question_id)] = list(value)
        else:
            form[field_name(question_id)] = [str(value)]
    return form


def lko_verdict(doc: QuestionnaireDocument, answers: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """What ЛКО stores (multiple choices in the questionnaire's order, as the page sends them) and the
    questions it refuses."""
    try:
        stored = validate_answers(doc, answers)
    except AnswersInvalid as invalid:
        return {}, set(invalid.fields)
    order = [option.id for option in OPTIONS]
    if isinstance(stored.get("many"), list):
        stored["many"] = sorted(stored["many"], key=order.index)
    return stored, set()


def test_whitespace_is_no_answer_on_the_page_as_in_lko() -> None:
    """ЛКО cleaned every string answer and took a blank one as no answer; the page took «   » for a
    rating, a single choice or a yes/no as a wrong value, refusing an optional question ЛКО accepts.
    Both now follow ЛКО."""
    blank = {"rate": " ", "one": "\t", "yn": " \x00 "}
    assert validate_answers(OPTIONAL, blank) == {}
    parsed = parse_answers(OPTIONAL, form_of(blank))
    assert parsed.ok
    assert parsed.answers == {}
    assert set(parse_answers(REQUIRED, form_of(blank)).errors) >= set(blank)


def test_a_padded_option_id_is_the_option_on_the_page_as_in_lko() -> None:
    """ЛКО stored « b » for a single choice as «b»; the page refused it. Both now store «b»."""
    assert validate_answers(OPTIONAL, {"one": " b\x00"}) == {"one": "b"}
    assert parse_answers(OPTIONAL, form_of({"one": " b\x00"})).answers == {"one": "b"}


_JUNK = st.text(alphabet=" \t\r\n\x00\x1b\u202e\u00a0ab5-yesno", max_size=4)
_IDS = st.sampled_from(["a", "b", "c-1", " a", "b ", "z", "A"])
_ANSWERS = st.fixed_dictionaries(
    {},
    optional={
        "rate": st.one_of(st.none(), st.integers(-2, 10**6), st.booleans(), _JUNK, st.lists(_JUNK, max_size=2)),
        "rate5": st.one_of(st.integers(-2, 8), _JUNK),
        "one": st.one_of(st.none(), _IDS, _JUNK, st.lists(_IDS, max_size=2)),
        "many": st.one_of(st.none(), st.lists(_IDS, max_size=4)),
        "yn": st.one_of(st.none(), st.booleans(), _JUNK),
        "text": st.one_of(st.none(), st.text(alphabet="ая \r\n\t\x00\u0301e", max_size=9), st.lists(_JUNK, max_size=0)),
        "long": st.one_of(st.none(), _JUNK),
    },
)


@settings(max_examples=400, deadline=None)
@given(answers=_ANSWERS, required=st.booleans())
def test_the_page_accepts_exactly_what_lko_accepts_and_sends_what_lko_stores(
    answers: dict[str, Any], required: bool
) -> None:
    doc = REQUIRED if required else OPTIONAL
    stored, refused = lko_verdict(doc, answers)
    parsed = parse_answers(doc, form_of(answers))
    if not refused:
        # Nor refuse what ЛКО accepts: the same answers, said by the form, pass and mean the same.
        assert parsed.errors == {}
        assert parsed.answers == stored
    if parsed.ok:
        # Never accept what ЛКО refuses: what the page sends, ЛКО stores unchanged.
        assert validate_answers(doc, parsed.answers) == parsed.answers


@settings(max_examples=400, deadline=None)
@given(answers=_ANSWERS, required=st.booleans())
def test_for_answers_the_form_can_say_the_page_refuses_the_same_questions(
    answers: dict[str, Any], required: bool
) -> None:
    """A form cannot tell a number from its digits, a bool from «yes», or a one-element list from a
    string, and a blank box means nothing ticked: for the answers it says unambiguously (a rating as a
    number, a yes/no as a bool, a single choice as a string, ticked boxes as a list of non-blank ids,
    a text as a string) the page and ЛКО refuse the very same questions."""
    sayable = {
        key: value
        for key, value in answers.items()
        if value is None
        or (QUESTIONS[key].kind == "rating" and isinstance(value, int) and not isinstance(value, bool))
        or (QUESTIONS[key].kind == "yes_no" and isinstance(value, bool))
        or (QUESTIONS[key].kind in ("single_choice", "text") and isinstance(value, str))
        or (QUESTIONS[key].kind == "multiple_choice" and isinstance(value, list) and "" not in value)
    }
    doc = REQUIRED if required else OPTIONAL
    _, refused = lko_verdict(doc, sayable)
    assert set(parse_answers(doc, form_of(sayable)).errors) == refused


def test_the_survey_form_shows_the_limits_lko_checks_by() -> None:
    from posog.web.templating import make_templates

    assert (QUESTIONS["rate5"].answer_scale, QUESTIONS["rate"].answer_scale) == (DEFAULT_SCALE, 4)
    assert (QUESTIONS["long"].answer_limit, QUESTIONS["text"].answer_limit) == (DEFAULT_TEXT_LENGTH, 5)
    page = (
        make_templates()
        .get_template("survey/form.html")
        .render(questionnaire=OPTIONAL, answers={}, errors={}, preview=True)
    )
    assert f'id="answer-rate5-{DEFAULT_SCALE}"' in page
    assert f'id="answer-rate5-{DEFAULT_SCALE + 1}"' not in page
    assert 'id="answer-rate-4"' in page
    assert 'id="answer-rate-5"' not in page
    assert f'maxlength="{DEFAULT_TEXT_LENGTH}"' in page
    assert f"Не более {DEFAULT_TEXT_LENGTH} символов" in page
    assert "Не более 5 символов" in page
