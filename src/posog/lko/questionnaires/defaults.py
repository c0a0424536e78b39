"""The default federal questionnaire every organisation type ships with (SPEC §7): one rating per
criterion of Постановление Правительства РФ № 1284, an overall rating and a free comment."""

from __future__ import annotations

import uuid

from posog.lko.contracts import Criterion, Question, QuestionnaireDraft

# Fixed forever: default questionnaire ids are derived from it, so every process seeds the same ids.
DEFAULT_QUESTIONNAIRE_NAMESPACE = uuid.UUID("442858b0-61dc-4d20-bea7-695b9d1b2a5e")

DEFAULT_TITLE = "Оценка качества предоставления услуги"
DEFAULT_VALIDITY_DAYS = 30
RATING_SCALE = 5
COMMENT_MAX_LENGTH = 2000
_RATING_HINT = "1 — очень плохо, 5 — отлично"


def default_questionnaire_id(type_code: str) -> str:
    """The deterministic id of the default federal questionnaire of ``type_code``."""
    return str(uuid.uuid5(DEFAULT_QUESTIONNAIRE_NAMESPACE, type_code))


def default_questionnaire_draft() -> QuestionnaireDraft:
    """The content of the default federal questionnaire (the same for every organisation type)."""

    def rating(question_id: str, text: str, criterion: Criterion | None = None) -> Question:
        return Question(
            id=question_id,
            kind="rating",
            scale=RATING_SCALE,
            criterion=criterion,
            text=text,
            required=True,
            hint=_RATING_HINT,
        )

    return QuestionnaireDraft(
        title=DEFAULT_TITLE,
        validity_days=DEFAULT_VALIDITY_DAYS,
        questions=(
            rating("q1", "Насколько вас устроило время, за которое вам предоставили услугу?", "service_time"),
            rating("q2", "Насколько вас устроило время ожидания в очереди?", "queue_time"),
            rating("q3", "Оцените вежливость и компетентность сотрудника, который вас обслуживал", "staff"),
            rating("q4", "Оцените комфортность условий в помещении, где вам предоставляли услугу", "comfort"),
            rating(
                "q5",
                "Насколько доступной и понятной была информация о порядке предоставления услуги?",
                "information",
            ),
            rating("q6", "Оцените качество предоставления услуги в целом"),
            Question(
                id="q7",
                kind="text",
                text="Что, на ваш взгляд, стоит улучшить? Напишите ваш комментарий",
                required=False,
                max_length=COMMENT_MAX_LENGTH,
                hint="Пожалуйста, не указывайте в комментарии свои персональные данные",
            ),
        ),
    )
