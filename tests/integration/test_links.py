"""Links (SPEC §5): pinned questionnaire version, expiry, cards waiting for a questionnaire and
released when ЛКО publishes one, late facts with a card but no link."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from posog.core.clock import MOSCOW, today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.lko.questionnaires.defaults import default_questionnaire_draft, default_questionnaire_id
from posog.lko.questionnaires.repository import QuestionnaireRepository
from posog.module.api import create_app
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import CARD_LATE, CARD_LINKED, CARD_WAITING, ServiceCard
from posog.module.links.model import ISSUED, SurveyLink, link_expiry, new_token
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration


def test_link_expires_at_the_end_of_the_moscow_day() -> None:
    expiry = link_expiry(date(2026, 11, 20), 30)
    assert expiry == datetime(2026, 12, 20, 23, 59, 59, tzinfo=MOSCOW)
    assert expiry.astimezone(UTC) == datetime(2026, 12, 20, 20, 59, 59, tzinfo=UTC)


def test_tokens_are_long_random_and_url_safe() -> None:
    tokens = {new_token() for _ in range(10_000)}
    assert len(tokens) == 10_000
    for token in list(tokens)[:100]:
        assert len(token) >= 32  # 192 bits
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _facts(seed: int, n: int, **kwargs: object) -> list[dict[str, object]]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    mfc = next(o for o in factory.organizations if o.type_code == "mfc")
    facts = [factory.fact(organization=mfc, **kwargs) for _ in range(n)]  # type: ignore[arg-type]
    for fact in facts:
        remember_citizen(fact["citizen"])  # type: ignore[arg-type]
    return facts


def _raw(facts: list[dict[str, object]]) -> list[RawFact]:
    return [RawFact(json.dumps(f, ensure_ascii=False).encode()) for f in facts]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_cards_wait_for_a_questionnaire_and_get_links_when_one_is_published(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        facts = _facts(31, 12, level="regional")
        outcomes = await system.intake.handle(_raw(facts))
        assert {o.kind for o in outcomes} == {"accepted"}
        assert await count(system, ServiceCard, ServiceCard.status == CARD_WAITING) == 12
        assert await count(system, SurveyLink) == 0
        assert await count(system, OutboxMessage) == 0

        # The same facts again while waiting: nothing new.
        again = await system.intake.handle(_raw(facts))
        assert {o.kind for o in again} == {"duplicate"}

        questionnaire_id = str(uuid.uuid4())
        async with system.db.uow() as uow:
            inserted = await QuestionnaireRepository(uow).add_published_if_absent(
                questionnaire_id=questionnaire_id,
                type_code="mfc",
                level="regional",
                draft=default_questionnaire_draft(),
                now=utcnow(),
            )
            await uow.commit()
        assert inserted

        # ЛКО announces the publication through the module's API, as a service with its own key.
        app = create_app(system.db, system.releaser, system.settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://module") as http:
            refused = await http.post("/api/v1/cards/release", json={"type_code": "mfc", "level": "regional"})
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            wrong_caller = await http.post(
                "/api/v1/cards/release",
                json={"type_code": "mfc", "level": "regional"},
                headers={"Authorization": "Bearer dev-lkp-key"},
            )
            assert wrong_caller.status_code == 403
            bad = await http.post(
                "/api/v1/cards/release",
                json={"type_code": "mfc", "level": "galactic"},
                headers={"Authorization": "Bearer dev-lko-key"},
            )
            assert bad.status_code == 422
            assert bad.json()["error"]["code"] == "validation_error"
            response = await http.post(
                "/api/v1/cards/release",
                json={"type_code": "mfc", "level": "regional"},
                headers={"Authorization": "Bearer dev-lko-key"},
            )
        assert response.status_code == 200, response.text
        assert response.json() == {"type_code": "mfc", "level": "regional", "issued": 12, "late": 0}

        assert await count(system, ServiceCard, ServiceCard.status == CARD_LINKED) == 12
        assert await count(system, SurveyLink, SurveyLink.state == ISSUED) == 12
        assert await count(system, OutboxMessage) == 12
        async with system.db.uow() as uow:
            pins = set(
                (await uow.session.execute(select(SurveyLink.questionnaire_id, SurveyLink.questionnaire_version))).all()
            )
        assert pins == {(questionnaire_id, 1)}, "links pin the questionnaire id and version issued with"

        # A second announcement finds nothing more to do.
        counts = await system.releaser.release("mfc", "regional")
        assert (counts.issued, counts.late) == (0, 0)
        assert await count(system, SurveyLink) == 12


async def test_a_late_fact_gets_a_card_but_no_link(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        long_ago = today(utcnow) - timedelta(days=45)  # within the horizon, beyond the 30-day survey period
        facts = _facts(32, 3, service_date=long_ago)
        outcomes = await system.intake.handle(_raw(facts))
        assert [o.card_status for o in outcomes] == [CARD_LATE] * 3
        assert await count(system, ServiceCard) == 3
        assert await count(system, SurveyLink) == 0
        assert await count(system, OutboxMessage) == 0


async def test_the_last_day_of_the_period_still_gets_a_link(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        edge = today(utcnow) - timedelta(days=30)  # expires tonight at 23:59:59 Moscow time
        outcomes = await system.intake.handle(_raw(_facts(33, 1, service_date=edge)))
        assert outcomes[0].card_status == CARD_LINKED
        async with system.db.uow() as uow:
            link = (await uow.session.execute(select(SurveyLink))).scalar_one()
        assert link.expires_at == link_expiry(edge, 30)
        assert link.questionnaire_id == default_questionnaire_id("mfc")


async def test_waiting_cards_whose_period_ended_are_released_as_late(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        facts = _facts(34, 4, level="municipal", service_date=today(utcnow) - timedelta(days=20))
        await system.intake.handle(_raw(facts))
        draft = default_questionnaire_draft().model_copy(update={"validity_days": 10})
        async with system.db.uow() as uow:
            await QuestionnaireRepository(uow).add_published_if_absent(
                questionnaire_id=str(uuid.uuid4()), type_code="mfc", level="municipal", draft=draft, now=utcnow()
            )
            await uow.commit()
        counts = await system.releaser.release("mfc", "municipal")
        assert (counts.issued, counts.late) == (0, 4)
        assert await count(system, ServiceCard, ServiceCard.status == CARD_LATE) == 4
        assert await count(system, SurveyLink) == 0
