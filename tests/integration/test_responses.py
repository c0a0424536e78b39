"""ЛКО responses (SPEC §5, §7): validation against the pinned version, exactly-once storage under
concurrency, retries with the same idempotency key, recovery after a crash between storing and
completing the link, old versions after new ones, and scopes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from posog.bootstrap import System
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import Organization
from posog.lko.api import create_app as create_lko_app
from posog.lko.client import LkoClient, ResponseRejected
from posog.lko.contracts import Option, Question, QuestionnaireDraft, StoredResponse
from posog.lko.questionnaires.defaults import default_questionnaire_draft, default_questionnaire_id
from posog.lko.responses.handlers import SURVEY_COMPLETED, complete_pending
from posog.lko.responses.model import SurveyResponse
from posog.lko.responses.queries import InvalidCursor, get_response, list_responses
from posog.lko.responses.validation import REQUIRED, UNKNOWN_QUESTION
from posog.lko.scope import Scope
from posog.lko.state import lko_state
from posog.module.client import ModuleClient, ModuleError
from posog.module.links.model import COMPLETED, OPENED, SurveyLink
from tests.integration.survey_support import (
    Survey,
    client,
    idempotency_key,
    issue_surveys,
    organizations,
    publish_version,
)
from tests.support import BACKENDS, stack

pytestmark = pytest.mark.integration

MFC_DEFAULT = default_questionnaire_id("mfc")
GOOD = {"q1": 5, "q2": 4, "q3": 5, "q4": 3, "q5": 4, "q6": 5, "q7": "Всё хорошо"}


def lko_for(system: System, caller: str = "lkp") -> httpx.AsyncClient:
    return client(system.lko_asgi, caller, base_url="http://lko")


async def submit(
    http: httpx.AsyncClient, token: str, answers: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await http.post(
        "/api/v1/responses", json={"token": token, "idempotency_key": key or idempotency_key(), "answers": answers}
    )


async def link_of(system: System, survey: Survey) -> SurveyLink:
    async with system.db.uow() as uow:
        return (await uow.session.scalars(select(SurveyLink).where(SurveyLink.card_id == survey.card_id))).one()


async def stored_rows(system: System, *where: Any) -> list[SurveyResponse]:
    async with system.db.uow() as uow:
        return list(await uow.session.scalars(select(SurveyResponse).where(*where)))


async def response_count(system: System) -> int:
    async with system.db.uow() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(SurveyResponse)) or 0)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_submission_is_stored_once_and_completes_its_link(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=201)
        async with lko_for(system) as lkp:
            response = await submit(lkp, survey.token, {**GOOD, "q7": "  Спасибо!\x00\x07\u202e \r\nВсё быстро.  "})
        assert response.status_code == 201, response.text
        stored = StoredResponse.model_validate_json(response.content)
        assert stored.card_id == survey.card_id
        assert (stored.questionnaire_id, stored.questionnaire_version) == (MFC_DEFAULT, 1)
        assert (stored.inn, stored.region_code, stored.type_code, stored.survey_level) == (
            survey.inn,
            survey.region_code,
            "mfc",
            "federal",
        )
        assert all((stored.ogrn, stored.kpp, stored.org_name, stored.service_date))
        assert stored.answers == {**GOOD, "q7": "Спасибо! \nВсё быстро."}, "control characters are stripped"
        for value in (survey.citizen["last_name"], survey.citizen["snils"], survey.citizen["birth_date"]):
            assert value not in response.text

        link = await link_of(system, survey)
        assert (link.state, link.response_id) == (COMPLETED, stored.id)
        (row,) = await stored_rows(system)
        assert row.link_completed_at is not None
        assert row.completion_token is None, "the token is forgotten once the link is completed"
        assert survey.token not in str([getattr(row, c.key) for c in SurveyResponse.__table__.columns])


async def test_invalid_answers_get_a_russian_message_per_question_and_nothing_is_stored(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=202)
        async with lko_for(system) as lkp:
            response = await submit(
                lkp,
                survey.token,
                {"q1": 6, "q2": True, "q3": "5", "q4": 0, "q6": 4, "q7": "я" * 2001, "q99": 1},
            )
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["error"]["code"] == "validation_error"
            assert body["error"]["message"] == "Проверьте ответы: в некоторых вопросах есть ошибки."
            assert body["fields"] == {
                "q1": "Выберите оценку от 1 до 5.",
                "q2": "Выберите оценку от 1 до 5.",
                "q3": "Выберите оценку от 1 до 5.",
                "q4": "Выберите оценку от 1 до 5.",
                "q5": REQUIRED,
                "q7": "Ответ слишком длинный: не более 2000 символов, сейчас 2001. Сократите его.",
                "q99": UNKNOWN_QUESTION,
            }
            with pytest.raises(ResponseRejected) as rejected:
                await LkoClient(lkp).submit_response(survey.token, idempotency_key(), {})
            assert rejected.value.code == "validation_error"
            assert set(rejected.value.fields) == {"q1", "q2", "q3", "q4", "q5", "q6"}

            assert await response_count(system) == 0
            assert (await link_of(system, survey)).state == OPENED, "a refused submission does not use the link"
            # Corrected, the same citizen's answers are accepted.
            assert (await submit(lkp, survey.token, GOOD)).status_code == 201


async def test_every_question_kind_is_checked_against_the_pinned_version(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, questionnaire_cache_s=0) as system:
        draft = QuestionnaireDraft(
            title="Анкета со всеми видами вопросов",
            questions=(
                Question(id="r", kind="rating", scale=10, text="Оценка", required=True),
                Question(
                    id="one",
                    kind="single_choice",
                    text="Один вариант",
                    options=(Option(id="a", text="А"), Option(id="b", text="Б")),
                ),
                Question(
                    id="many",
                    kind="multiple_choice",
                    text="Несколько вариантов",
                    options=(Option(id="x", text="Икс"), Option(id="y", text="Игрек")),
                ),
                Question(id="yn", kind="yes_no", text="Да или нет", required=True),
                Question(id="t", kind="text", text="Комментарий", max_length=10),
            ),
        )
        await publish_version(system, MFC_DEFAULT, 2, draft)
        bad_survey, good_survey = await issue_surveys(system, 2, seed=203)
        async with lko_for(system) as lkp:
            bad = await submit(lkp, bad_survey.token, {"r": 11, "one": "c", "many": ["x", "z"], "yn": "да", "t": 5})
            assert bad.status_code == 422
            assert bad.json()["fields"] == {
                "r": "Выберите оценку от 1 до 10.",
                "one": "Выберите один из предложенных вариантов ответа.",
                "many": "Выберите один или несколько из предложенных вариантов ответа.",
                "yn": "Ответьте «Да» или «Нет».",
                "t": "Ответ должен быть текстом.",
            }
            missing = await submit(lkp, bad_survey.token, {"r": 10, "many": [], "t": "   "})
            assert missing.json()["fields"] == {"yn": REQUIRED}

            good = await submit(lkp, good_survey.token, {"r": 10, "one": "b", "many": ["y", "x", "y"], "yn": False})
            assert good.status_code == 201, good.text
            assert good.json()["answers"] == {"r": 10, "one": "b", "many": ["y", "x"], "yn": False}
            assert good.json()["questionnaire_version"] == 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_twenty_concurrent_submissions_store_exactly_one(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=204)
        async with lko_for(system) as lkp:
            responses = await asyncio.gather(*(submit(lkp, survey.token, {**GOOD, "q6": 1 + n % 5}) for n in range(20)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 19, [r.text for r in responses]
        refusals = [r.json() for r in responses if r.status_code == 409]
        assert all(body == {"error": {"code": "survey_completed", "message": SURVEY_COMPLETED}} for body in refusals)

        (winner,) = [StoredResponse.model_validate_json(r.content) for r in responses if r.status_code == 201]
        assert await response_count(system) == 1
        link = await link_of(system, survey)
        assert (link.state, link.response_id) == (COMPLETED, winner.id)

        # Afterwards, another submission is refused the same way (the module now says so first).
        async with lko_for(system) as lkp:
            late = await submit(lkp, survey.token, GOOD)
        assert (late.status_code, late.json()["error"]["code"]) == (409, "survey_completed")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_retry_with_the_same_key_gets_the_same_response(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        survey, other, concurrent = await issue_surveys(system, 3, seed=205)
        key = idempotency_key()
        async with lko_for(system) as lkp:
            first = await submit(lkp, survey.token, GOOD, key)
            retry = await submit(lkp, survey.token, GOOD, key)
            changed_mind = await submit(lkp, survey.token, {**GOOD, "q1": 1}, key)
            via_client = await LkoClient(lkp).submit_response(survey.token, key, GOOD)
            reused = await submit(lkp, other.token, GOOD, key)

            same_key = idempotency_key()
            together = await asyncio.gather(*(submit(lkp, concurrent.token, GOOD, same_key) for _ in range(5)))

        assert first.status_code == 201
        assert (retry.status_code, retry.json()) == (200, first.json())
        assert (changed_mind.status_code, changed_mind.json()) == (200, first.json()), "the first accepted answer stays"
        assert via_client == StoredResponse.model_validate_json(first.content)
        assert reused.status_code == 409
        assert reused.json()["error"]["code"] == "idempotency_conflict"
        assert (await link_of(system, other)).state != COMPLETED

        assert sorted(r.status_code for r in together) == [200] * 4 + [201]
        assert len({r.json()["id"] for r in together}) == 1
        assert await response_count(system) == 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_retry_racing_its_original_gets_the_same_response(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry looked its key up before the original was stored, and asked the module after the
    original completed the link: the module says survey_completed, the retry still gets the response."""
    from posog.lko.responses import handlers

    async with stack(backend, tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=206)
        key = idempotency_key()
        async with lko_for(system) as lkp:
            first = await submit(lkp, survey.token, GOOD, key)
            real_lookup = handlers._by_idempotency_key
            misses = [True]  # the retry's first look-up happens "before" the original was stored

            async def racing_lookup(db: Any, idempotency_key: str) -> Any:
                if misses and misses.pop():
                    return None
                return await real_lookup(db, idempotency_key)

            monkeypatch.setattr(handlers, "_by_idempotency_key", racing_lookup)
            retry = await submit(lkp, survey.token, GOOD, key)
            other = await submit(lkp, survey.token, GOOD, idempotency_key())

        assert first.status_code == 201
        assert (retry.status_code, retry.json()) == (200, first.json())
        assert (other.status_code, other.json()["error"]["code"]) == (409, "survey_completed")
        assert await response_count(system) == 1


class FlakyModule:
    """The module as ЛКО sees it, except that completing a link fails ``failures`` times: with a
    network error (the module unreachable) or with an exception that kills the request (a crash)."""

    def __init__(self, real: ModuleClient, *, failures: int, crash: bool) -> None:
        self._real = real
        self.failures = failures
        self._crash = crash

    async def resolve_link(self, token: str, *, client_id: str | None = None) -> Any:
        return await self._real.resolve_link(token, client_id=client_id)

    async def complete_link(self, token: str, response_id: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            if self._crash:
                raise RuntimeError("process killed between storing the response and completing the link")
            raise ModuleError("module unreachable: ConnectError")
        await self._real.complete_link(token, response_id)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_failure_between_storing_and_completing_is_recovered(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        unreachable, crashed = await issue_surveys(system, 2, seed=206)
        lko_app = system.lko_asgi.app
        real = lko_state(lko_app).module

        # 1. The module is unreachable when ЛКО completes the link: the answers are accepted and kept.
        lko_state(lko_app).module = FlakyModule(real, failures=1, crash=False)
        async with lko_for(system) as lkp:
            accepted = await submit(lkp, unreachable.token, GOOD)
            assert accepted.status_code == 201, accepted.text
            (pending,) = await stored_rows(system)
            assert (pending.link_completed_at, pending.completion_token) == (None, unreachable.token)
            assert (await link_of(system, unreachable)).state == OPENED
            # Meanwhile the card's survey is taken: nobody else can answer it.
            again = await submit(lkp, unreachable.token, GOOD)
            assert again.json()["error"]["code"] == "survey_completed"

        assert await complete_pending(system.db, real) == 1
        link = await link_of(system, unreachable)
        assert (link.state, link.response_id) == (COMPLETED, accepted.json()["id"])
        (settled,) = await stored_rows(system)
        assert settled.link_completed_at is not None
        assert settled.completion_token is None
        assert await complete_pending(system.db, real) == 0, "nothing left to do"

        # 2. The process dies right after the commit: the request fails, the row is there, pending.
        lko_state(lko_app).module = FlakyModule(real, failures=1, crash=True)
        key = idempotency_key()
        async with lko_for(system) as lkp:
            with pytest.raises(RuntimeError, match="process killed"):
                await submit(lkp, crashed.token, GOOD, key)
            (orphan,) = await stored_rows(system, SurveyResponse.card_id == crashed.card_id)
            assert orphan.completion_token is not None
            assert (await link_of(system, crashed)).state == OPENED
            # ЛКП retries the same submission: the same response, and the link gets completed.
            lko_state(lko_app).module = real
            retried = await submit(lkp, crashed.token, GOOD, key)
        assert retried.status_code == 200
        assert retried.json()["id"] == orphan.id
        link = await link_of(system, crashed)
        assert (link.state, link.response_id) == (COMPLETED, orphan.id)
        assert await response_count(system) == 2
        assert await complete_pending(system.db, real) == 0


async def test_recovery_keeps_answers_whose_link_expired_meanwhile(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=207)
        lko_app = system.lko_asgi.app
        real = lko_state(lko_app).module
        lko_state(lko_app).module = FlakyModule(real, failures=1, crash=False)
        async with lko_for(system) as lkp:
            assert (await submit(lkp, survey.token, GOOD)).status_code == 201
        async with system.db.uow() as uow:
            await uow.session.execute(
                update(SurveyLink)
                .where(SurveyLink.card_id == survey.card_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await uow.commit()

        assert await complete_pending(system.db, real) == 1
        (row,) = await stored_rows(system)
        assert (row.link_refusal, row.completion_token, row.link_completed_at) == ("link_expired", None, None)
        assert await complete_pending(system.db, real) == 0


async def test_link_refusals_reach_the_citizen_and_lko_without_the_module_is_503(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=208)
        async with system.db.uow() as uow:
            await uow.session.execute(
                update(SurveyLink)
                .where(SurveyLink.card_id == survey.card_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await uow.commit()
        async with lko_for(system) as lkp, lko_for(system, "analytics") as analytics:
            unknown = await submit(lkp, "A" * 32, GOOD)
            assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "link_not_found")
            assert "Ссылка на опрос не найдена" in unknown.json()["error"]["message"]
            expired = await submit(lkp, survey.token, GOOD)
            assert (expired.status_code, expired.json()["error"]["code"]) == (410, "link_expired")
            assert (await submit(analytics, survey.token, GOOD)).status_code == 403
        assert await response_count(system) == 0

        alone = create_lko_app(system.db, system.settings, module=None)
        async with client(alone, "lkp") as lkp:
            response = await submit(lkp, survey.token, GOOD)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "module_unavailable"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_response_to_version_2_reads_correctly_after_version_3(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path, questionnaire_cache_s=0) as system:
        v2_questions = (
            *default_questionnaire_draft().questions,
            Question(id="q8", kind="yes_no", text="Вы получили услугу с первого раза?", required=True),
        )
        await publish_version(
            system, MFC_DEFAULT, 2, default_questionnaire_draft().model_copy(update={"questions": v2_questions})
        )
        answered_on_v2, still_open_on_v2 = await issue_surveys(system, 2, seed=209)
        async with lko_for(system) as lkp:
            first = await submit(lkp, answered_on_v2.token, {**GOOD, "q8": True})
            assert first.status_code == 201, first.text

            v3_questions = tuple(q for q in v2_questions if q.id not in {"q7", "q8"})
            await publish_version(
                system, MFC_DEFAULT, 3, default_questionnaire_draft().model_copy(update={"questions": v3_questions})
            )
            (on_v3,) = await issue_surveys(system, 1, seed=210)

            # A link pinned to version 2 is still answered against version 2, q8 included…
            late_v2 = await submit(lkp, still_open_on_v2.token, {**GOOD, "q8": False})
            assert late_v2.status_code == 201, late_v2.text
            assert late_v2.json()["questionnaire_version"] == 2
            # …and a link issued after version 3 against version 3, where q8 does not exist.
            v3 = await submit(lkp, on_v3.token, {**GOOD, "q8": True})
            assert v3.json()["fields"] == {"q7": UNKNOWN_QUESTION, "q8": UNKNOWN_QUESTION}

        async with system.db.uow() as uow:
            read_back = await get_response(uow.session, Scope.federal(), first.json()["id"])
        assert read_back is not None
        assert (read_back.questionnaire_version, read_back.answers) == (2, {**GOOD, "q8": True})
        async with client(system.lko_asgi, "module") as module_to_lko:
            version_2 = await LkoClient(module_to_lko).questionnaire_version(MFC_DEFAULT, 2)
        assert version_2 is not None
        questions = {q.id: q for q in version_2.questions}
        assert set(read_back.answers) <= set(questions), "every stored answer has its question in version 2"
        assert questions["q8"].kind == "yes_no"


async def _answered(system: System, org: Organization, *, seed: int, days_ago: int) -> StoredResponse:
    (survey,) = await issue_surveys(
        system, 1, seed=seed, organization=org, service_date=today(utcnow) - timedelta(days=days_ago)
    )
    async with lko_for(system) as lkp:
        response = await submit(lkp, survey.token, GOOD)
    assert response.status_code == 201, response.text
    return StoredResponse.model_validate_json(response.content)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_reader_sees_only_its_scope(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        orgs = organizations(211)
        # Two organisations of one region and one of another.
        a = 0
        b = next(i for i, o in enumerate(orgs) if i != a and o.region_code == orgs[a].region_code)
        c = next(i for i, o in enumerate(orgs) if o.region_code != orgs[a].region_code)
        assert orgs[a].inn != orgs[b].inn
        responses = {
            "a1": await _answered(system, orgs[a], seed=212, days_ago=10),
            "a2": await _answered(system, orgs[a], seed=213, days_ago=2),
            "b": await _answered(system, orgs[b], seed=214, days_ago=5),
            "c": await _answered(system, orgs[c], seed=215, days_ago=3),
        }
        ids = {name: r.id for name, r in responses.items()}
        region, other_region = orgs[a].region_code, orgs[c].region_code
        org_scope = Scope("organization", inn=orgs[a].inn)
        regional = Scope("regional", region_code=region)

        async with system.db.uow() as uow:
            session = uow.session

            async def listed(scope: Scope, **filters: Any) -> set[str]:
                page = await list_responses(session, scope, limit=500, **filters)
                return {item.id for item in page.items}

            assert await listed(Scope.federal()) == set(ids.values())
            assert await listed(org_scope) == {ids["a1"], ids["a2"]}
            assert await listed(org_scope, inn=orgs[b].inn) == set(), "another ИНН stays invisible"
            assert await listed(org_scope, region_code=other_region) == set()
            assert await listed(regional) == {ids["a1"], ids["a2"], ids["b"]}
            assert await listed(regional, region_code=other_region) == set(), "another region stays invisible"
            assert await listed(regional, inn=orgs[c].inn) == set()
            assert await listed(regional, inn=orgs[b].inn) == {ids["b"]}
            assert await listed(Scope.federal(), region_code=other_region) == {ids["c"]}
            assert await listed(Scope.federal(), type_code=orgs[c].type_code) >= {ids["c"]}
            # from/to bound the service date.
            assert await listed(org_scope, date_from=today(utcnow) - timedelta(days=4)) == {ids["a2"]}
            assert await listed(org_scope, date_to=today(utcnow) - timedelta(days=4)) == {ids["a1"]}

            assert await get_response(session, org_scope, ids["a1"]) == responses["a1"]
            assert await get_response(session, org_scope, ids["b"]) is None
            assert await get_response(session, regional, ids["b"]) == responses["b"]
            assert await get_response(session, regional, ids["c"]) is None
            assert await get_response(session, Scope.federal(), "not-a-uuid") is None

            # Keyset pages, both orders, cover everything once.
            for newest_first in (False, True):
                seen: list[str] = []
                cursor = None
                while True:
                    page = await list_responses(
                        session, Scope.federal(), cursor=cursor, limit=1, newest_first=newest_first
                    )
                    seen += [item.id for item in page.items]
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                assert len(seen) == len(set(seen)) == 4
                in_time = [r.id for r in sorted(responses.values(), key=lambda r: (r.submitted_at, r.id))]
                assert seen == (in_time[::-1] if newest_first else in_time)
            ascending_cursor = (await list_responses(session, Scope.federal(), limit=1)).next_cursor
            assert ascending_cursor is not None
            for bad in ("garbage", "e30", ascending_cursor[:-3]):
                with pytest.raises(InvalidCursor):
                    await list_responses(session, Scope.federal(), cursor=bad)
            with pytest.raises(InvalidCursor):
                await list_responses(session, Scope.federal(), cursor=ascending_cursor, newest_first=True)

        # Over HTTP, systems are scoped by what they are granted.
        async with (
            lko_for(system, "analytics") as analytics,
            lko_for(system, "lkp") as lkp,
            lko_for(system, "module") as module,
            client(system.lko_asgi, None) as anonymous,
        ):
            everything = await analytics.get("/api/v1/responses")
            assert everything.status_code == 200
            assert {item["id"] for item in everything.json()["items"]} == set(ids.values())
            by_inn = await analytics.get("/api/v1/responses", params={"inn": orgs[a].inn})
            assert {item["id"] for item in by_inn.json()["items"]} == {ids["a1"], ids["a2"]}
            period = await analytics.get(
                "/api/v1/responses",
                params={
                    "from": str(today(utcnow) - timedelta(days=4)),
                    "to": str(today(utcnow)),
                    "region_code": region,
                },
            )
            assert {item["id"] for item in period.json()["items"]} == {ids["a2"]}

            pages, cursor = [], None
            while True:
                params: dict[str, Any] = {"limit": 3}
                if cursor:
                    params["cursor"] = cursor
                page = (await analytics.get("/api/v1/responses", params=params)).json()
                pages.append(page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert [len(p) for p in pages] == [3, 1]

            one = await analytics.get(f"/api/v1/responses/{ids['c']}")
            assert StoredResponse.model_validate_json(one.content) == responses["c"]
            missing = await analytics.get(f"/api/v1/responses/{uuid.uuid4()}")
            assert (missing.status_code, missing.json()["error"]["code"]) == (404, "response_not_found")
            bad_cursor = await analytics.get("/api/v1/responses", params={"cursor": "garbage"})
            assert (bad_cursor.status_code, bad_cursor.json()["error"]["code"]) == (422, "invalid_cursor")
            bad_inn = await analytics.get("/api/v1/responses", params={"inn": "12; drop"})
            assert bad_inn.status_code == 422

            assert (await lkp.get("/api/v1/responses")).status_code == 403
            assert (await lkp.get(f"/api/v1/responses/{ids['a1']}")).status_code == 403
            # The module reads every response (no personal data) for the ИАС МКГУ ratings export.
            assert (await module.get("/api/v1/responses")).status_code == 200
            assert (await anonymous.get("/api/v1/responses")).status_code == 401
