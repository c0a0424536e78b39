"""The module's survey-link API (SPEC §6): opening a link, every refusal with its code and Russian
message, completion exactly once, withdrawn questionnaires, ЛКО outages, rate limiting of failed
attempts, and unknown tokens that reveal nothing."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select, update

from posog.core.clock import utcnow
from posog.lko.client import LkoClient
from posog.lko.questionnaires.defaults import default_questionnaire_draft, default_questionnaire_id
from posog.module.api import create_app
from posog.module.client import LinkRefused, ModuleClient
from posog.module.contracts import LinkData
from posog.module.links.api import MESSAGES
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.model import COMPLETED, EXPIRED, OPENED, REVOKED, SurveyLink, hash_token, new_token
from tests.integration.survey_support import (
    Survey,
    client,
    issue_surveys,
    publish_version,
    set_questionnaire_status,
)
from tests.support import BACKENDS, stack

pytestmark = pytest.mark.integration

MFC_DEFAULT = default_questionnaire_id("mfc")


async def _link(system: object, survey: Survey) -> SurveyLink:
    async with system.db.uow() as uow:  # type: ignore[attr-defined]
        return (await uow.session.scalars(select(SurveyLink).where(SurveyLink.card_id == survey.card_id))).one()


async def _set_link(system: object, survey: Survey, **values: object) -> None:
    async with system.db.uow() as uow:  # type: ignore[attr-defined]
        await uow.session.execute(update(SurveyLink).where(SurveyLink.card_id == survey.card_id).values(**values))
        await uow.commit()


def assert_refusal(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"code": code, "message": MESSAGES[code]}}
    assert response.headers["cache-control"] == "no-store"


def test_every_refusal_message_is_russian_and_says_what_to_do() -> None:
    for code in ("link_not_found", "link_expired", "survey_completed", "link_revoked", "questionnaire_unavailable"):
        message = MESSAGES[code]
        assert sum("а" <= ch.lower() <= "я" for ch in message) > 30, code
        assert "error" not in message.lower()
        assert "token" not in message.lower()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_link_opens_its_pinned_survey_once_and_stays_opened(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=101)
        async with client(system.module_asgi, "lkp") as lkp:
            response = await lkp.get(f"/api/v1/survey-links/{survey.token}")
            assert response.status_code == 200, response.text
            assert response.headers["cache-control"] == "no-store"
            data = LinkData.model_validate_json(response.content)
            first = await _link(system, survey)

            again = LinkData.model_validate_json((await lkp.get(f"/api/v1/survey-links/{survey.token}")).content)
            resolved = await ModuleClient(lkp).resolve_link(survey.token, client_id="198.51.100.7")

        assert data.card_id == survey.card_id
        assert data.state == OPENED
        assert (data.organization.inn, data.organization.region_code) == (survey.inn, survey.region_code)
        assert data.organization.type_code == "mfc"
        assert (data.questionnaire.id, data.questionnaire.version) == (MFC_DEFAULT, 1)
        assert data.survey_level == "federal"
        assert data.expires_at > utcnow()
        # No personal data in what ЛКП receives.
        for value in (survey.citizen["last_name"], survey.citizen["snils"], survey.citizen["birth_date"]):
            assert value not in response.text
        assert (first.state, first.opened_at is not None) == (OPENED, True)
        # Reopening is fine and changes nothing: opened_at is the first opening.
        assert again == data
        assert resolved == data
        assert (await _link(system, survey)).opened_at == first.opened_at


async def test_only_systems_allowed_to_read_links_may(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=102)
        path = f"/api/v1/survey-links/{survey.token}"
        async with (
            client(system.module_asgi, "lko") as lko,
            client(system.module_asgi, "analytics") as analytics,
            client(system.module_asgi, None) as anonymous,
            client(system.module_asgi, "lkp") as lkp,
        ):
            assert (await lko.get(path)).status_code == 200
            assert (await analytics.get(path)).status_code == 403
            assert (await anonymous.get(path)).json()["error"]["code"] == "unauthorized"
            completion = await lkp.post(f"{path}/complete", json={"response_id": "r-1"})
            assert completion.status_code == 403
        assert (await _link(system, survey)).state == OPENED


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_refusal_has_its_code_status_and_message(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        revoked, completed, expired, opened_then_expired, gone_version = await issue_surveys(system, 5, seed=103)
        await _set_link(system, revoked, state=REVOKED)
        await _set_link(system, expired, expires_at=utcnow() - timedelta(seconds=1))
        await _set_link(system, gone_version, questionnaire_version=99)
        async with client(system.module_asgi, "lkp") as lkp, client(system.module_asgi, "lko") as lko:
            assert (await lkp.get(f"/api/v1/survey-links/{opened_then_expired.token}")).status_code == 200
            await _set_link(system, opened_then_expired, expires_at=utcnow() - timedelta(seconds=1))
            assert (
                await lko.post(f"/api/v1/survey-links/{completed.token}/complete", json={"response_id": "r1"})
            ).status_code == 200

            assert_refusal(await lkp.get(f"/api/v1/survey-links/{new_token()}"), 404, "link_not_found")
            assert_refusal(await lkp.get(f"/api/v1/survey-links/{revoked.token}"), 410, "link_revoked")
            assert_refusal(await lkp.get(f"/api/v1/survey-links/{completed.token}"), 410, "survey_completed")
            assert_refusal(await lkp.get(f"/api/v1/survey-links/{expired.token}"), 410, "link_expired")
            assert_refusal(await lkp.get(f"/api/v1/survey-links/{opened_then_expired.token}"), 410, "link_expired")
            assert_refusal(
                await lkp.get(f"/api/v1/survey-links/{gone_version.token}"), 409, "questionnaire_unavailable"
            )

            # The client other systems use turns each into LinkRefused with the same code and message.
            with pytest.raises(LinkRefused) as refused:
                await ModuleClient(lkp).resolve_link(completed.token)
            assert (refused.value.status, refused.value.code) == (410, "survey_completed")
            assert refused.value.message == MESSAGES["survey_completed"]

        assert (await _link(system, revoked)).state == REVOKED
        assert (await _link(system, completed)).state == COMPLETED, "opening never moves a link back"
        assert (await _link(system, expired)).state == EXPIRED
        assert (await _link(system, opened_then_expired)).state == EXPIRED


@pytest.mark.parametrize("backend", BACKENDS)
async def test_completion_happens_exactly_once(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        survey, raced, revoked, expired = await issue_surveys(system, 4, seed=104)
        await _set_link(system, revoked, state=REVOKED)
        await _set_link(system, expired, expires_at=utcnow() - timedelta(seconds=1))
        async with client(system.module_asgi, "lko") as http:
            lko = ModuleClient(http)
            await lko.complete_link(survey.token, "response-1")
            first = await _link(system, survey)
            await lko.complete_link(survey.token, "response-1")  # a retry: fine, changes nothing
            with pytest.raises(LinkRefused) as other:
                await lko.complete_link(survey.token, "response-2")
            assert (other.value.status, other.value.code) == (409, "survey_completed")

            for token, status, code in (
                (revoked.token, 410, "link_revoked"),
                (expired.token, 410, "link_expired"),
                (new_token(), 404, "link_not_found"),
            ):
                with pytest.raises(LinkRefused) as refused:
                    await lko.complete_link(token, "response-3")
                assert (refused.value.status, refused.value.code, refused.value.message) == (
                    status,
                    code,
                    MESSAGES[code],
                )

            # Ten different responses racing for one link: one wins, the others are told it is taken.
            results = await asyncio.gather(
                *(lko.complete_link(raced.token, f"racer-{n}") for n in range(10)), return_exceptions=True
            )
        winners = [n for n, result in enumerate(results) if result is None]
        assert len(winners) == 1, results
        assert all(isinstance(r, LinkRefused) and r.code == "survey_completed" for r in results if r is not None)
        assert (await _link(system, raced)).response_id == f"racer-{winners[0]}"

        after = await _link(system, survey)
        assert (after.state, after.response_id, after.completed_at) == (COMPLETED, "response-1", first.completed_at)
        assert (await _link(system, expired)).state == EXPIRED
        assert (await _link(system, revoked)).state == REVOKED


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_withdrawn_questionnaire_closes_its_links_but_a_new_version_does_not(
    backend: str, tmp_path: Path
) -> None:
    async with stack(backend, tmp_path, questionnaire_cache_s=0) as system:
        (survey,) = await issue_surveys(system, 1, seed=105)
        async with client(system.module_asgi, "lkp") as lkp, client(system.lko_asgi, "module") as module_to_lko:
            status = await module_to_lko.get(f"/api/v1/questionnaires/{MFC_DEFAULT}/status")
            assert status.json() == {"id": MFC_DEFAULT, "status": "active", "active_version": 1, "collecting": True}

            # Version 2 published: the link keeps its version 1 and still opens.
            await publish_version(system, MFC_DEFAULT, 2, default_questionnaire_draft())
            opened = await lkp.get(f"/api/v1/survey-links/{survey.token}")
            assert opened.status_code == 200
            assert opened.json()["questionnaire"]["version"] == 1

            await set_questionnaire_status(system, MFC_DEFAULT, "withdrawn")
            assert_refusal(await lkp.get(f"/api/v1/survey-links/{survey.token}"), 409, "questionnaire_unavailable")

            status = await module_to_lko.get(f"/api/v1/questionnaires/{MFC_DEFAULT}/status")
            assert status.json()["collecting"] is False
            assert status.json()["status"] == "withdrawn"
            # The versions stay readable: responses recorded against them must remain interpretable.
            assert await LkoClient(module_to_lko).questionnaire_version(MFC_DEFAULT, 1) is not None
            for unknown in ("not-a-uuid", "00000000-0000-4000-8000-000000000000"):
                missing = await module_to_lko.get(f"/api/v1/questionnaires/{unknown}/status")
                assert missing.status_code == 404
                assert missing.json()["error"]["code"] == "questionnaire_not_found"

            await set_questionnaire_status(system, MFC_DEFAULT, "active")
            assert (await lkp.get(f"/api/v1/survey-links/{survey.token}")).status_code == 200


async def test_lko_unreachable_is_a_503_in_the_envelope(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=106)

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url="http://lko") as dead:
            catalog = QuestionnaireCatalog(LkoClient(dead), ttl_s=0)
            app = create_app(system.db, system.releaser, system.settings, catalog=catalog)
            async with client(app, "lkp") as lkp:
                response = await lkp.get(f"/api/v1/survey-links/{survey.token}")
                assert response.status_code == 503
                assert response.json() == {
                    "error": {"code": "service_unavailable", "message": MESSAGES["service_unavailable"]}
                }
                assert response.headers["retry-after"] == "30"
        assert (await _link(system, survey)).state != OPENED


def _malformed_tokens(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = (
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
        " !\"#$%&'()*+,./:;<=>?@[\\]^`{|}~\t\n\x00\x7f"
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяЁ€😀\u202e"
    )
    tokens: list[str] = ["", "x", "a" * 2000, "../../etc/passwd", "%00", "' OR 1=1 --"]
    while len(tokens) < n:
        token = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120)))
        if token.strip(".") != "":  # "." and ".." are path segments, not tokens
            tokens.append(token)
    return tokens


@pytest.mark.parametrize("backend", BACKENDS)
async def test_malformed_tokens_are_answered_exactly_like_unknown_ones(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path, link_attempts_per_minute=1_000_000) as system:
        await issue_surveys(system, 3, seed=107)
        malformed = _malformed_tokens(500, seed=7)
        well_formed = [new_token() for _ in range(len(malformed))]
        async with client(system.module_asgi, "lkp") as lkp:

            async def timed(token: str) -> tuple[float, httpx.Response]:
                started = time.perf_counter()
                response = await lkp.get(f"/api/v1/survey-links/{quote(token, safe='')}")
                return time.perf_counter() - started, response

            for token in well_formed[:20]:  # warm up connections and caches
                await timed(token)
            reference = (await timed(new_token()))[1]
            bad_times, good_times = [], []
            # Interleaved, so drift of the machine's load affects both classes alike.
            for bad, good in zip(malformed, well_formed, strict=True):
                bad_time, bad_response = await timed(bad)
                good_time, good_response = await timed(good)
                assert (bad_response.status_code, bad_response.content) == (404, reference.content), repr(bad)
                assert (good_response.status_code, good_response.content) == (404, reference.content)
                assert bad_response.headers.get("retry-after") is None
                bad_times.append(bad_time)
                good_times.append(good_time)
        assert reference.json() == {"error": {"code": "link_not_found", "message": MESSAGES["link_not_found"]}}
        # Both classes do the same work (one hash, one indexed lookup), so their typical times are of
        # one class. A generous bound on medians: a real difference (e.g. an early format check that
        # skips the database) is an order of magnitude, while scheduling noise stays well within 3×.
        ratio = statistics.median(bad_times) / statistics.median(good_times)
        assert 1 / 3 < ratio < 3, (ratio, statistics.median(bad_times), statistics.median(good_times))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_failed_attempts_are_limited_per_client_and_valid_links_still_open(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path, link_attempts_per_minute=5) as system:
        valid, other_valid, expired = await issue_surveys(system, 3, seed=108)
        await _set_link(system, expired, expires_at=utcnow() - timedelta(seconds=1))
        async with client(system.module_asgi, "lkp") as lkp:

            def get(token: str, who: str) -> object:
                return lkp.get(f"/api/v1/survey-links/{token}", headers={"X-Posog-Client": who})

            # A citizen reopening a valid link is never counted.
            for _ in range(12):
                assert (await get(valid.token, "203.0.113.1")).status_code == 200  # type: ignore[attr-defined]

            # A guessing client: five failures, then everything it asks is refused — even a valid
            # token, or the 429s would tell which guesses were right.
            for _ in range(5):
                assert (await get(new_token(), "203.0.113.66")).status_code == 404  # type: ignore[attr-defined]
            for token in (new_token(), other_valid.token):
                limited = await get(token, "203.0.113.66")
                assert limited.status_code == 429  # type: ignore[attr-defined]
                body = limited.json()  # type: ignore[attr-defined]
                assert body["error"]["code"] == "too_many_requests"
                assert body["error"]["message"].startswith("Слишком много неудачных попыток")
                assert 1 <= int(limited.headers["retry-after"]) <= 60  # type: ignore[attr-defined]
            with pytest.raises(LinkRefused) as refused:
                await ModuleClient(lkp).resolve_link(other_valid.token, client_id="203.0.113.66")
            assert (refused.value.status, refused.value.code) == (429, "too_many_requests")

            # Another client is not affected, and the same valid link opens for it.
            assert (await get(other_valid.token, "198.51.100.20")).status_code == 200  # type: ignore[attr-defined]

            # Expired tokens count as failures too.
            for _ in range(5):
                assert (await get(expired.token, "203.0.113.99")).status_code == 410  # type: ignore[attr-defined]
            assert (await get(valid.token, "203.0.113.99")).status_code == 429  # type: ignore[attr-defined]

            # Without the header, the peer address is the client.
            for _ in range(5):
                assert (await lkp.get(f"/api/v1/survey-links/{new_token()}")).status_code == 404
            assert (await lkp.get(f"/api/v1/survey-links/{valid.token}")).status_code == 429


async def test_the_stored_hash_is_the_only_trace_of_a_token(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=109)
        link = await _link(system, survey)
        assert link.token_hash == hash_token(survey.token)
        assert survey.token not in link.token_hash
