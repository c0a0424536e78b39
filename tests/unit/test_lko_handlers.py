"""ЛКО's use cases on a fake unit of work: a citizen's submission stored exactly once and its link
completed (or left pending when the module is away), and a questionnaire's publication (a new
immutable version, the one it replaces withdrawn, the module told)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from posog.lko.contracts import AnswerValue
from posog.lko.org_types.model import OrgTypeEntry
from posog.lko.questionnaires.defaults import default_questionnaire_draft
from posog.lko.questionnaires.handlers import (
    CreateQuestionnaire,
    PublishQuestionnaire,
    QuestionnaireNotFound,
    QuestionnaireRefused,
    WithdrawQuestionnaire,
    create_questionnaire,
    publish_questionnaire,
    withdraw_questionnaire,
)
from posog.lko.questionnaires.validation import DraftInvalid
from posog.lko.responses.handlers import (
    ModuleUnavailable,
    SubmissionRefused,
    SubmitResponse,
    Submitted,
    submit_response,
)
from posog.lko.responses.validation import AnswersInvalid
from posog.module.client import LinkRefused, ModuleError
from posog.module.contracts import LinkData
from tests.unit.fake_uow import FakeLkoUnitOfWork, LkoData
from tests.unit.lkp_fakes import LINK_PAYLOAD, QUESTIONNAIRE

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
ANSWERS: dict[str, AnswerValue] = {"q1": 5, "q2": "portal", "q4": True, "q5": "Спасибо"}


def clock() -> datetime:
    return NOW


@dataclass
class FakeModule:
    """The module's link API as ЛКО's client sees it: tokens it resolves, completions it records."""

    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: dict[str, str] = field(default_factory=dict)  # token → response id
    down: bool = False
    completion_down: bool = False
    refusals: dict[str, str] = field(default_factory=dict)  # token → SPEC §6 code

    def add(self, token: str, card_id: str) -> None:
        self.links[token] = {**LINK_PAYLOAD, "card_id": card_id}

    async def resolve_link(self, token: str, *, client_id: str | None = None) -> LinkData:
        if self.down:
            raise ModuleError("connection refused")
        if token in self.refusals:
            raise LinkRefused(410, self.refusals[token], "Срок действия ссылки истёк.")
        if token in self.completed:
            raise LinkRefused(410, "survey_completed", "Опрос уже пройден.")
        if token not in self.links:
            raise LinkRefused(404, "link_not_found", "Ссылка не найдена.")
        return LinkData.model_validate({**self.links[token], "questionnaire": QUESTIONNAIRE.model_dump()})

    async def complete_link(self, token: str, response_id: str) -> None:
        if self.down or self.completion_down:
            raise ModuleError("connection refused")
        if self.completed.get(token, response_id) != response_id:
            raise LinkRefused(409, "survey_completed", "Опрос уже пройден.")
        self.completed[token] = response_id


async def _submit(
    uow: FakeLkoUnitOfWork, module: FakeModule, token: str, key: str, answers: dict[str, AnswerValue] = ANSWERS
) -> Submitted:
    async with uow:
        return await submit_response(SubmitResponse(token, key, answers), uow, module, clock=clock)  # type: ignore[arg-type]


async def test_a_submission_is_stored_once_and_completes_its_link() -> None:
    uow, module = FakeLkoUnitOfWork(), FakeModule()
    module.add("token-1", "card-1")
    submitted = await _submit(uow, module, "token-1", "key-1")
    assert submitted.created
    assert submitted.response.card_id == "card-1"
    assert submitted.response.answers == ANSWERS
    assert module.completed == {"token-1": submitted.response.id}
    stored = uow.committed.responses[submitted.response.id]
    assert stored.completion_token is None, "the token is forgotten once the link is completed"
    assert stored.link_completed_at == NOW
    assert uow.committed.pending_completions == {submitted.response.id: NOW}


async def test_a_retry_gets_the_stored_response_and_another_link_under_the_same_key_is_refused() -> None:
    uow, module = FakeLkoUnitOfWork(), FakeModule()
    module.add("token-1", "card-1")
    module.add("token-2", "card-2")
    first = await _submit(uow, module, "token-1", "key-1")
    again = await _submit(uow, module, "token-1", "key-1", {"q1": 1, "q2": "phone", "q4": False})
    assert (again.created, again.response) == (False, first.response), "the retry changes nothing"
    with pytest.raises(SubmissionRefused) as conflict:
        await _submit(uow, module, "token-2", "key-1")
    assert (conflict.value.status, conflict.value.code) == (409, "idempotency_conflict")
    assert "не совпадает" in conflict.value.message
    assert len(uow.committed.responses) == 1


async def test_a_second_response_for_a_card_is_refused_as_completed() -> None:
    uow, module = FakeLkoUnitOfWork(), FakeModule()
    module.add("token-1", "card-1")
    await _submit(uow, module, "token-1", "key-1")
    with pytest.raises(SubmissionRefused) as completed:  # the module refuses the completed link
        await _submit(uow, module, "token-1", "key-2")
    assert (completed.value.status, completed.value.code) == (409, "survey_completed")

    module.completed.clear()  # a racing submission that the module resolved before the first completed
    with pytest.raises(SubmissionRefused) as raced:
        await _submit(uow, module, "token-1", "key-3")
    assert (raced.value.status, raced.value.code) == (409, "survey_completed")
    assert len(uow.committed.responses) == 1, "one response per card, whatever the race"


async def test_the_links_refusal_reaches_the_citizen_and_nothing_is_stored() -> None:
    uow, module = FakeLkoUnitOfWork(), FakeModule()
    module.add("token-1", "card-1")
    module.refusals["token-1"] = "link_expired"
    with pytest.raises(SubmissionRefused) as refused:
        await _submit(uow, module, "token-1", "key-1")
    assert (refused.value.status, refused.value.code, refused.value.message) == (
        410,
        "link_expired",
        "Срок действия ссылки истёк.",
    )
    module.refusals.clear()
    with pytest.raises(AnswersInvalid):
        await _submit(uow, module, "token-1", "key-1", {"q1": 9})
    module.down = True
    with pytest.raises(ModuleUnavailable):
        await _submit(uow, module, "token-1", "key-1")
    assert not uow.committed.responses


async def test_a_completion_the_module_missed_stays_pending_and_a_retry_finishes_it() -> None:
    uow, module = FakeLkoUnitOfWork(), FakeModule()
    module.add("token-1", "card-1")
    module.completion_down = True
    submitted = await _submit(uow, module, "token-1", "key-1")
    assert submitted.created, "the answers are kept although the module did not confirm the link"
    stored = uow.committed.responses[submitted.response.id]
    assert stored.completion_token == "token-1"
    assert uow.committed.pending_completions == {submitted.response.id: None}

    module.completion_down = False
    retried = await _submit(uow, module, "token-1", "key-1")
    assert (retried.created, retried.response.id) == (False, submitted.response.id)
    assert module.completed == {"token-1": submitted.response.id}
    assert uow.committed.pending_completions == {submitted.response.id: NOW}


def _lko_with_types(*, active: bool = True) -> LkoData:
    data = LkoData()
    data.org_types["mfc"] = OrgTypeEntry(
        code="mfc", name="МФЦ", sphere=None, active=active, created_at=NOW, updated_at=NOW
    )
    return data


def _content(title: str = "Анкета МФЦ") -> dict[str, Any]:
    return {**default_questionnaire_draft().model_dump(mode="json", exclude_none=True), "title": title}


async def _create(uow: FakeLkoUnitOfWork, title: str = "Анкета МФЦ") -> str:
    async with uow:
        return await create_questionnaire(CreateQuestionnaire("mfc", "regional", _content(title)), uow, now=NOW)


async def _publish(uow: FakeLkoUnitOfWork, questionnaire_id: str) -> Any:
    async with uow:
        return await publish_questionnaire(PublishQuestionnaire(questionnaire_id), uow, now=NOW)


async def test_publishing_makes_the_draft_the_active_version_and_replaces_the_one_before() -> None:
    uow = FakeLkoUnitOfWork(_lko_with_types())
    first = await _create(uow, "Первая анкета")
    assert uow.committed.questionnaires[first].status == "draft"
    publication = await _publish(uow, first)
    assert (publication.document.id, publication.document.version, publication.withdrawn) == (first, 1, [])
    assert publication.document.title == "Первая анкета"

    second = await _create(uow, "Вторая анкета")
    replaced = await _publish(uow, second)
    assert replaced.withdrawn == [first]
    statuses = {qid: q.status for qid, q in uow.committed.questionnaires.items()}
    assert statuses == {first: "withdrawn", second: "active"}
    assert (await _publish(uow, second)).document.version == 2, "republishing makes the next version"
    assert set(uow.committed.versions) == {(first, 1), (second, 1), (second, 2)}
    announced = [(a.questionnaire_id, a.version, a.type_code, a.level) for a in uow.committed.announcements]
    assert announced == [(first, 1, "mfc", "regional"), (second, 1, "mfc", "regional"), (second, 2, "mfc", "regional")]


async def test_what_cannot_be_published_changes_nothing() -> None:
    uow = FakeLkoUnitOfWork(_lko_with_types())
    draft = await _create(uow)
    uow.committed.questionnaires[draft].draft = {"title": "", "questions": []}  # broken behind the handler's back
    with pytest.raises(DraftInvalid):
        await _publish(uow, draft)
    with pytest.raises(QuestionnaireNotFound):
        await _publish(uow, "no-such-questionnaire")
    uow.committed.questionnaires[draft].draft = _content()
    uow.committed.org_types["mfc"].active = False
    with pytest.raises(QuestionnaireRefused) as inactive:
        await _publish(uow, draft)
    assert inactive.value.code == "org_type_inactive"
    assert "отключён" in inactive.value.message
    assert uow.committed.questionnaires[draft].status == "draft"
    assert not uow.committed.versions
    assert not uow.committed.announcements


async def test_only_an_active_questionnaire_can_be_withdrawn() -> None:
    uow = FakeLkoUnitOfWork(_lko_with_types())
    draft = await _create(uow)
    with pytest.raises(QuestionnaireRefused) as refused:
        async with uow:
            await withdraw_questionnaire(WithdrawQuestionnaire(draft), uow, now=NOW)
    assert refused.value.code == "not_active"
    await _publish(uow, draft)
    async with uow:
        await withdraw_questionnaire(WithdrawQuestionnaire(draft), uow, now=NOW)
    assert uow.committed.questionnaires[draft].status == "withdrawn"
