"""Questionnaires (issue 3, item 2): drafts validated with precise Russian messages naming the
question; publishing freezes version n+1, immutable, and makes it the only active one for (type,
level); publishing releases the module's waiting cards through its contract — and when the module is
unreachable the announcement is kept and re-sent later, nothing lost."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.lko.client import LkoClient
from posog.lko.contracts import SurveyLevel
from posog.lko.questionnaires.announcements import Announcement, AnnouncementRelay
from posog.lko.questionnaires.defaults import default_questionnaire_draft, default_questionnaire_id
from posog.lko.questionnaires.validation import DraftInvalid, validate_content
from posog.lko.state import lko_state
from posog.module.client import ModuleClient, ModuleError
from posog.module.contracts import ReleaseResult
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import CARD_LINKED, CARD_WAITING, ServiceCard
from posog.module.links.model import SurveyLink
from tests.conftest import remember_citizen
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration


def _content(**changes: Any) -> dict[str, Any]:
    content = default_questionnaire_draft().model_dump(mode="json", exclude_none=True)
    content.update(changes)
    return content


def _question(**fields: Any) -> dict[str, Any]:
    return {"id": "q1", "kind": "rating", "scale": 5, "text": "Оцените", "required": True, **fields}


def _messages(raw: Any, **context: str) -> list[str]:
    with pytest.raises(DraftInvalid) as caught:
        validate_content(raw, **context)  # type: ignore[arg-type]
    return [problem.message for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_content(title="  "), "Укажите название анкеты"),
        (_content(validity_days=0), "Срок действия ссылки должен быть целым числом дней от 1 до 365 (указано «0»)"),
        (_content(validity_days=366), "от 1 до 365 (указано «366»)"),
        (_content(validity_days="30"), "(указано «30»)"),
        (_content(questions=[]), "В анкете должен быть хотя бы один вопрос"),
        (_content(colour="red"), "Неизвестное поле анкеты «colour»"),
        (
            _content(questions=[_question(), _question(text="Ещё раз")]),
            "Вопрос 2 («q1»): идентификатор «q1» уже есть у вопроса 1",
        ),
        (_content(questions=[_question(kind="stars")]), "Вопрос 1 («q1»): неизвестный тип «stars»; допустимые: rating"),
        (_content(questions=[_question(scale=1)]), "Вопрос 1 («q1»): шкала оценки должна быть целым числом от 2 до 10"),
        (_content(questions=[_question(scale=11)]), "(указано «11»)"),
        (_content(questions=[_question(scale=None)]), "Вопрос 1 («q1»): для оценки укажите шкалу"),
        (_content(questions=[_question(criterion="speed")]), "Вопрос 1 («q1»): неизвестный критерий «speed»"),
        (
            _content(questions=[_question(criterion="staff"), _question(id="q2", criterion="staff")]),
            "Вопрос 2 («q2»): критерий «staff» уже оценивается вопросом 1",
        ),
        (
            _content(questions=[_question(kind="text", scale=None, max_length=2000, criterion="staff")]),
            "Вопрос 1 («q1»): критерий (criterion) задаётся только для вопроса-оценки (rating)",
        ),
        (
            _content(questions=[_question(kind="single_choice", scale=None)]),
            "Вопрос 1 («q1»): для вопроса с выбором укажите варианты ответа (не меньше двух)",
        ),
        (
            _content(
                questions=[
                    _question(
                        kind="multiple_choice",
                        scale=None,
                        options=[{"id": "a", "text": "Да"}, {"id": "a", "text": "Нет"}],
                    )
                ]
            ),
            "Вопрос 1 («q1»): вариант 2: идентификатор «a» уже есть у варианта 1",
        ),
        (
            _content(
                questions=[
                    _question(
                        kind="single_choice",
                        scale=None,
                        options=[{"id": "a", "text": "Да"}, {"id": "b", "text": " да "}],
                    )
                ]
            ),
            "вариант 2: такой же текст уже у варианта 1",
        ),
        (
            _content(questions=[_question(options=[{"id": "a", "text": "Да"}, {"id": "b", "text": "Нет"}])]),
            "Вопрос 1 («q1»): варианты ответа (options) задаются только для вопросов с выбором",
        ),
        (
            _content(questions=[_question(kind="text", scale=None)]),
            "Вопрос 1 («q1»): для свободного ответа укажите максимальную длину — от 1 до 5000 символов",
        ),
        (
            _content(questions=[_question(kind="text", scale=None, max_length=5001)]),
            "максимальная длина ответа должна быть целым числом от 1 до 5000 (указано «5001»)",
        ),
        (
            _content(questions=[_question(kind="yes_no", scale=None, max_length=10)]),
            "Вопрос 1 («q1»): максимальная длина (max_length) задаётся только для свободного ответа (text)",
        ),
        (_content(questions=[_question(id="вопрос 1")]), "идентификатор «вопрос 1» недопустим"),
        (_content(questions=[_question(id="")]), "Вопрос 1: укажите идентификатор вопроса"),
        (_content(questions=[_question(text="")]), "Вопрос 1 («q1»): укажите текст вопроса"),
        (
            _content(questions=[_question(required="yes")]),
            "Вопрос 1 («q1»): поле «required» должно быть true или false",
        ),
        (_content(questions=[_question(weight=2)]), "Вопрос 1 («q1»): неизвестное поле «weight»"),
        (_content(questions=["q1"]), "Вопрос 1: должен быть объектом"),
        ([1, 2], "Анкета должна быть JSON-объектом"),
    ],
)
def test_a_draft_is_validated_with_a_precise_message(content: Any, expected: str) -> None:
    messages = _messages(content)
    assert any(expected in message for message in messages), messages


def test_every_problem_is_reported_at_once_and_type_and_level_cannot_be_changed_by_the_document() -> None:
    content = _content(
        title="",
        type_code="school",
        level="federal",
        questions=[_question(scale=0), _question(id="q2", kind="single_choice", scale=None)],
    )
    messages = _messages(content, type_code="mfc", level="regional")
    assert len(messages) == 5, messages
    assert any("тип организации анкеты — «mfc», а в документе «school»" in m for m in messages)
    assert any("уровень опроса анкеты — «regional», а в документе «federal»" in m for m in messages)
    # A whole published document pasted back is accepted (its id and version are ignored).
    document = {"id": "x", "version": 7, "type_code": "mfc", "level": "regional", **_content()}
    assert validate_content(document, type_code="mfc", level="regional") == default_questionnaire_draft()


def _admin(system: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system.lko_asgi.app),
        base_url="http://lko",
        headers={"Authorization": "Bearer dev-admin-key"},
    )


async def _create(admin: httpx.AsyncClient, type_code: str, level: str, **changes: Any) -> str:
    response = await admin.post(
        "/api/v1/questionnaires", json={"type_code": type_code, "level": level, **_content(**changes)}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["latest_version"], body["active_version"]) == ("draft", None, None)
    return str(body["id"])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_publishing_creates_immutable_versions_and_one_active_per_type_and_level(
    backend: str, tmp_path: Path
) -> None:
    async with stack(backend, tmp_path) as system, _admin(system) as admin:
        lko = LkoClient(system.lko_http)
        default_id = default_questionnaire_id("mfc")
        questionnaire_id = await _create(admin, "mfc", "federal", title="Анкета МФЦ 2027")
        assert (await lko.active_questionnaire("mfc", "federal")).id == default_id  # type: ignore[union-attr]

        first = await admin.post(f"/api/v1/questionnaires/{questionnaire_id}/publish")
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["questionnaire"]["version"] == 1
        assert body["withdrawn"] == [default_id], "the default one was active for (mfc, federal)"
        v1 = await lko.active_questionnaire("mfc", "federal")
        assert v1 is not None
        assert (v1.id, v1.version, v1.title) == (questionnaire_id, 1, "Анкета МФЦ 2027")
        old = (await admin.get(f"/api/v1/questionnaires/{default_id}")).json()
        assert old["status"] == "withdrawn"
        assert await lko.questionnaire_version(default_id, 1) is not None, "withdrawn versions stay readable"

        # Editing the draft changes nothing citizens get until it is published.
        questions = _content()["questions"][:2]
        edited = await admin.put(
            f"/api/v1/questionnaires/{questionnaire_id}",
            json={"title": "Анкета МФЦ 2027, короткая", "validity_days": 14, "questions": questions},
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["unpublished_changes"] is True
        assert await lko.active_questionnaire("mfc", "federal") == v1

        second = await admin.post(f"/api/v1/questionnaires/{questionnaire_id}/publish")
        assert second.status_code == 200
        assert second.json()["questionnaire"]["version"] == 2
        assert second.json()["withdrawn"] == []
        v2 = await lko.active_questionnaire("mfc", "federal")
        assert v2 is not None
        assert (v2.version, v2.validity_days, len(v2.questions)) == (2, 14, 2)
        listed = {(i.type_code, i.level): (i.questionnaire_id, i.version) for i in (await lko.active_versions()).items}
        assert listed[("mfc", "federal")] == (questionnaire_id, 2), "the list says what /active says"
        assert default_id not in {qid for qid, _ in listed.values()}, "a withdrawn questionnaire is not listed"
        for (type_code, level), (qid, version) in list(listed.items())[:5]:
            one = await lko.active_questionnaire(type_code, level)  # type: ignore[arg-type]
            assert one is not None
            assert (one.id, one.version) == (qid, version)
        assert await lko.questionnaire_version(questionnaire_id, 1) == v1, "version 1 never changes"

        detail = (await admin.get(f"/api/v1/questionnaires/{questionnaire_id}")).json()
        assert [v["version"] for v in detail["versions"]] == [2, 1]
        assert (detail["status"], detail["active_version"], detail["unpublished_changes"]) == ("active", 2, False)
        active = (await admin.get("/api/v1/questionnaires", params={"type_code": "mfc", "status": "active"})).json()
        assert [(i["id"], i["level"]) for i in active["items"]] == [(questionnaire_id, "federal")]

        # An invalid draft is refused with the problems, and what is stored stays as it was.
        bad = await admin.put(
            f"/api/v1/questionnaires/{questionnaire_id}", json={"title": "", "questions": [_question(scale=20)]}
        )
        assert bad.status_code == 422
        problems = bad.json()["problems"]
        assert {p["path"] for p in problems} == {"title", "questions[0].scale"}
        assert (await admin.get(f"/api/v1/questionnaires/{questionnaire_id}")).json()["draft"]["validity_days"] == 14

        withdrawn = await admin.post(f"/api/v1/questionnaires/{questionnaire_id}/withdraw")
        assert withdrawn.status_code == 200
        assert await lko.active_questionnaire("mfc", "federal") is None
        assert ("mfc", "federal") not in {(i.type_code, i.level) for i in (await lko.active_versions()).items}
        again = await admin.post(f"/api/v1/questionnaires/{questionnaire_id}/withdraw")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "not_active"


async def test_the_administration_api_refuses_what_it_should(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, _admin(system) as admin:
        module = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=system.lko_asgi.app),
            base_url="http://lko",
            headers={"Authorization": "Bearer dev-module-key"},
        )
        async with module:
            assert (await module.post("/api/v1/questionnaires", json={})).status_code == 403
            assert (await module.get("/api/v1/questionnaires")).status_code == 200
        unknown = await admin.post(
            "/api/v1/questionnaires", json={"type_code": "spaceport", "level": "orbital", **_content()}
        )
        assert unknown.status_code == 422
        messages = [p["message"] for p in unknown.json()["problems"]]
        assert "Типа организации «spaceport» нет в справочнике" in messages
        assert any(m.startswith("Уровень опроса «orbital» неизвестен") for m in messages)
        for path in (
            "/api/v1/questionnaires/not-a-uuid",
            f"/api/v1/questionnaires/{'0' * 8}-0000-4000-8000-{'0' * 12}",
        ):
            missing = await admin.get(path)
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "questionnaire_not_found"
        assert (await admin.post("/api/v1/questionnaires/not-a-uuid/publish")).status_code == 404


def _waiting_facts(seed: int, n: int, level: SurveyLevel) -> list[RawFact]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    mfc = next(o for o in factory.organizations if o.type_code == "mfc")
    facts = [factory.fact(organization=mfc, level=level) for _ in range(n)]
    for fact in facts:
        remember_citizen(fact["citizen"])
    return [RawFact(json.dumps(f, ensure_ascii=False).encode()) for f in facts]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_publishing_releases_the_cards_waiting_for_the_questionnaire(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system, _admin(system) as admin:
        await system.intake.handle(_waiting_facts(41, 5, "regional"))
        assert await count(system, ServiceCard, ServiceCard.status == CARD_WAITING) == 5

        questionnaire_id = await _create(admin, "mfc", "regional", title="Региональная анкета МФЦ")
        assert await count(system, ServiceCard, ServiceCard.status == CARD_WAITING) == 5, "a draft releases nothing"
        published = await admin.post(f"/api/v1/questionnaires/{questionnaire_id}/publish")

        assert published.status_code == 200, published.text
        assert published.json()["release"] == {"status": "sent", "issued": 5, "late": 0}
        assert await count(system, ServiceCard, ServiceCard.status == CARD_LINKED) == 5
        assert await count(system, SurveyLink, SurveyLink.questionnaire_id == questionnaire_id) == 5
        assert await count(system, Announcement, Announcement.sent_at.is_(None)) == 0


class FlakyModule:
    """The module's client that fails ``failures`` times (unreachable), then works."""

    def __init__(self, real: ModuleClient, failures: int = 1) -> None:
        self.real = real
        self.failures = failures
        self.calls = 0

    async def release_waiting_cards(self, type_code: str, level: SurveyLevel) -> ReleaseResult:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise ModuleError("module unreachable: ConnectError")
        return await self.real.release_waiting_cards(type_code, level)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_unreachable_module_gets_the_announcement_later(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system, _admin(system) as admin:
        app = system.lko_asgi.app
        flaky = FlakyModule(lko_state(app).module)
        lko_state(app).module = flaky
        relay: AnnouncementRelay = lko_state(app).announcements
        await system.intake.handle(_waiting_facts(42, 4, "municipal"))

        questionnaire_id = await _create(admin, "mfc", "municipal", title="Муниципальная анкета МФЦ")
        published = await admin.post(f"/api/v1/questionnaires/{questionnaire_id}/publish")

        assert published.status_code == 200, "the publication stands even though the module is down"
        assert published.json()["release"] == {"status": "pending"}
        assert published.json()["questionnaire"]["version"] == 1
        assert await count(system, ServiceCard, ServiceCard.status == CARD_WAITING) == 4
        assert await relay.pending_count() == 1
        async with system.db.uow() as uow:
            announcement = (await uow.session.scalars(select(Announcement))).one()
        assert announcement.attempts == 1
        assert "ModuleError" in (announcement.last_error or "")

        # Not due yet: nothing is sent before the backoff has passed.
        assert await relay.send_pending() == []
        assert flaky.calls == 1

        outcomes = await relay.send_pending(now=utcnow() + timedelta(minutes=5))

        assert [(o.sent, o.issued) for o in outcomes] == [(True, 4)]
        assert flaky.calls == 2
        assert await relay.pending_count() == 0
        assert await count(system, ServiceCard, ServiceCard.status == CARD_LINKED) == 4
        assert await relay.send_pending(now=utcnow() + timedelta(hours=1)) == [], "sent once"


async def test_pending_announcements_are_sent_at_start_up(tmp_path: Path) -> None:
    """A process that died after the commit and before the call: the relay's first round sends it."""
    async with stack("embedded", tmp_path) as system, _admin(system) as admin:
        app = system.lko_asgi.app
        real = lko_state(app).module
        lko_state(app).module = None  # the module is not connected (e.g. the process dies right after the commit)
        await system.intake.handle(_waiting_facts(43, 3, "regional"))
        questionnaire_id = await _create(admin, "mfc", "regional")
        assert (await admin.post(f"/api/v1/questionnaires/{questionnaire_id}/publish")).json()["release"] == {
            "status": "pending"
        }
        assert await count(system, ServiceCard, ServiceCard.status == CARD_WAITING) == 3

        lko_state(app).module = real
        import asyncio

        relay: AnnouncementRelay = lko_state(app).announcements
        task = asyncio.create_task(relay.run(interval_s=0.05))
        try:
            for _ in range(200):
                if await relay.pending_count() == 0:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await count(system, ServiceCard, ServiceCard.status == CARD_LINKED) == 3
