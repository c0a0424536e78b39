"""Helpers for the link and response tests: real links issued by intake (their tokens read back from
the sealed notifications, the only place a token exists) and HTTP clients of the module and ЛКО as
each calling system."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy import select, update

from posog.bootstrap import System
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory, Organization
from posog.lko.contracts import QuestionnaireDocument, QuestionnaireDraft
from posog.lko.questionnaires.model import Questionnaire, QuestionnaireVersion, freeze
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import CARD_LINKED
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen

KEYS = {"lkp": "dev-lkp-key", "lko": "dev-lko-key", "analytics": "dev-analytics-key", "module": "dev-module-key"}


@dataclass(frozen=True)
class Survey:
    """A link issued for a card: what the citizen received (the token) and whose card it is."""

    card_id: str
    token: str
    inn: str
    region_code: str
    citizen: dict[str, str]


def organizations(seed: int) -> list[Organization]:
    return FactFactory(seed=seed, today=today(utcnow)).organizations


async def issue_surveys(
    system: System,
    n: int,
    *,
    seed: int,
    organization: Organization | None = None,
    level: str = "federal",
    service_date: date | None = None,
) -> list[Survey]:
    """``n`` facts through intake; every one must get a link. Their citizens are registered for the
    suite's personal-data log check."""
    factory = FactFactory(seed=seed, today=today(utcnow))
    org = organization or next(o for o in factory.organizations if o.type_code == "mfc")
    facts = [factory.fact(organization=org, level=level, service_date=service_date) for _ in range(n)]
    for fact in facts:
        remember_citizen(fact["citizen"])
    outcomes = await system.intake.handle([RawFact(json.dumps(f, ensure_ascii=False).encode()) for f in facts])
    assert [o.card_status for o in outcomes] == [CARD_LINKED] * n, outcomes
    by_card = {f["card_id"]: f for f in facts}
    async with system.db.uow() as uow:
        rows = (await uow.session.scalars(select(OutboxMessage).where(OutboxMessage.card_id.in_(by_card)))).all()
    tokens = {}
    for row in rows:
        notification = system.cipher.open_json(row.pii_key_id, row.body, context=row.message_id)
        tokens[row.card_id] = notification["link"].rsplit("/", 1)[1]
    return [
        Survey(card_id, tokens[card_id], org.inn, org.region_code, by_card[card_id]["citizen"])
        for card_id in (f["card_id"] for f in facts)
    ]


def client(app: Any, caller: str | None, *, base_url: str = "http://test") -> httpx.AsyncClient:
    """An in-process client of ``app`` authenticated as ``caller`` (None: no key)."""
    headers = {} if caller is None else {"Authorization": f"Bearer {KEYS[caller]}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url, headers=headers)


async def publish_version(
    system: System, questionnaire_id: str, version: int, draft: QuestionnaireDraft
) -> QuestionnaireDocument:
    """Publish ``draft`` as ``version`` of an existing questionnaire and make it the active one
    (as ЛКО's publish will: a new immutable version row, the questionnaire pointing at it)."""
    now = datetime.now(UTC)
    async with system.db.uow() as uow:
        questionnaire = await uow.session.get(Questionnaire, questionnaire_id)
        assert questionnaire is not None
        document = freeze(questionnaire_id, version, questionnaire.type_code, questionnaire.level, draft)  # type: ignore[arg-type]
        uow.session.add(
            QuestionnaireVersion(
                questionnaire_id=questionnaire_id,
                version=version,
                document=document.model_dump(mode="json", exclude_none=True),
                published_at=now,
            )
        )
        await uow.session.flush()
        await uow.session.execute(
            update(Questionnaire)
            .where(Questionnaire.id == questionnaire_id)
            .values(active_version=version, status="active", updated_at=now)
        )
        await uow.commit()
    return document


async def set_questionnaire_status(system: System, questionnaire_id: str, status: str) -> None:
    async with system.db.uow() as uow:
        await uow.session.execute(
            update(Questionnaire).where(Questionnaire.id == questionnaire_id).values(status=status)
        )
        await uow.commit()


def idempotency_key() -> str:
    return str(uuid.uuid4())
