"""Answers checked against the questionnaire version the link pinned (SPEC §7) by the shared rules of
:mod:`posog.lko.answers` — the ones ЛКП checks its form by — each problem said as a Russian message for
the citizen, keyed by question id."""

from __future__ import annotations

from collections.abc import Mapping

from posog.lko.answers import AnswerProblem, check_answers, scale_of, text_limit
from posog.lko.answers import clean_text as clean_text
from posog.lko.contracts import AnswerValue, Question, QuestionnaireDocument

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
    check = check_answers(document, answers)
    if not check.ok:
        questions = {question.id: question for question in document.questions}
        raise AnswersInvalid({key: message(questions.get(key), problem) for key, problem in check.problems.items()})
    return check.answers


def message(question: Question | None, problem: AnswerProblem) -> str:
    """ЛКО's words for ``problem`` with the answer to ``question`` (None: a question the version lacks)."""
    if question is None or problem.code == "unknown_question":
        return UNKNOWN_QUESTION
    if problem.code == "required":
        return REQUIRED
    if question.kind == "rating":
        return f"Выберите оценку от 1 до {scale_of(question)}."
    if question.kind == "single_choice":
        return CHOOSE_ONE
    if question.kind == "multiple_choice":
        return CHOOSE_SOME
    if question.kind == "yes_no":
        return YES_OR_NO
    if problem.code == "too_long":
        return (
            f"Ответ слишком длинный: не более {text_limit(question)} символов, сейчас {problem.length}. Сократите его."
        )
    return TEXT_EXPECTED
