"""Shared by the analytics tests: a whole stack whose clock starts at a fixed moment (so service dates,
weeks and months are the same on any day the suite runs), organisations in two regions, facts through
the module's intake, notifications through the outbox relay and responses through ЛКО's API — the path
ЛКП takes."""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from posog.bootstrap import System, bootstrap
from posog.core import ids
from posog.emulators.datagen.facts import FactFactory, Organization
from posog.lko.client import LkoClient
from posog.lko.contracts import StoredResponse
from posog.module.intake.handlers import RawFact
from posog.module.notifications.model import OutboxMessage
from tests.conftest import _unavailable, remember_citizen
from tests.support import drop_pg_database, stack_database, stack_settings

# A Friday. The stack's clock starts here and then runs at the speed of the real one, so the feeds'
# timestamps keep their order.
ANCHOR = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TODAY = ANCHOR.date()


def card_item(
    card_id: str, grain: dict[str, Any], *, notified: bool = True, delivery_failed: bool = False
) -> dict[str, Any]:
    """A row of ``analytics_cards`` as the feeds leave it, at ``grain`` (service date, region, ИНН, type,
    level) — for tests that store items directly instead of reading them through the feeds."""
    return {
        **grain,
        "card_id": card_id,
        "link_state": "notified",
        "notified": notified,
        "source_updated_at": datetime.now(UTC),
        "delivery_failed": delivery_failed,
    }


def response_item(
    card_id: str, grain: dict[str, Any], ratings: list[list[Any]], *, questionnaire_id: str = "q"
) -> dict[str, Any]:
    """A row of ``analytics_responses`` answering ``card_id``, at the card's ``grain``."""
    return {
        **grain,
        "response_id": f"R-{card_id}",
        "card_id": card_id,
        "questionnaire_id": questionnaire_id,
        "questionnaire_version": 1,
        "submitted_at": datetime.now(UTC),
        "ratings": ratings,
    }


def running_clock(start: datetime = ANCHOR) -> Callable[[], datetime]:
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


@contextlib.asynccontextmanager
async def analytics_stack(backend: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[System]:
    """As ``tests.support.stack``, with the running clock from ANCHOR."""
    database_url = await stack_database(backend, tmp_path)
    settings = stack_settings(backend, tmp_path, database_url, **overrides)
    try:
        system = bootstrap(settings, clock=running_clock())
        try:
            await system.start_bus()
        except Exception as exc:
            _unavailable("RabbitMQ", exc)
        try:
            yield system
        finally:
            if backend == "production":
                bus: Any = system.bus
                for queue in (settings.facts_queue, settings.facts_dead_letter_queue, settings.geps_inbox_queue):
                    with contextlib.suppress(Exception):
                        await bus.delete_queue(queue)
            await system.close()
    finally:
        if backend == "production":
            await drop_pg_database(database_url)


def _organization(rng: random.Random, name: str, region: str, city: str, type_code: str) -> Organization:
    return Organization(
        name=name,
        address=f"{rng.randint(100000, 699999)}, {city}, ул. Ленина, д. {rng.randint(1, 99)}",
        inn=ids.make_inn_org(rng, region),
        ogrn=ids.make_ogrn(rng, region),
        kpp=ids.make_kpp(rng, region),
        type_code=type_code,
        region_code=region,
    )


def organizations(seed: int = 7) -> dict[str, Organization]:
    """A, B in Москва (77); C, D in Татарстан (16)."""
    rng = random.Random(seed)
    return {
        "A": _organization(rng, "ГАУ «МФЦ города Москвы»", "77", "г. Москва", "mfc"),
        "B": _organization(rng, "ГБУЗ «Городская поликлиника № 12»", "77", "г. Москва", "polyclinic"),
        "C": _organization(rng, "ГАУ «МФЦ Республики Татарстан»", "16", "Респ. Татарстан, г. Казань", "mfc"),
        "D": _organization(rng, "МБОУ «Средняя школа № 3»", "16", "Респ. Татарстан, г. Казань", "school"),
    }


@dataclass
class Fixture:
    """Facts made for a stack: card id → organisation key, and each citizen (for the personal-data scan)."""

    factory: FactFactory
    orgs: dict[str, Organization]
    card_org: dict[str, str]
    citizens: list[dict[str, str]]

    @classmethod
    def new(cls, seed: int = 3) -> Fixture:
        return cls(FactFactory(seed=seed, today=TODAY), organizations(), {}, [])

    def fact(self, org: str, service_date: date, level: str = "federal") -> dict[str, Any]:
        fact = self.factory.fact(organization=self.orgs[org], service_date=service_date, level=level)
        remember_citizen(fact["citizen"])
        self.citizens.append(fact["citizen"])
        self.card_org[fact["card_id"]] = org
        return fact


async def ingest(system: System, facts: list[dict[str, Any]]) -> None:
    outcomes = await system.intake.handle([RawFact(json.dumps(f, ensure_ascii=False).encode()) for f in facts])
    assert {o.kind for o in outcomes} <= {"accepted"}, outcomes


async def notify_all(system: System) -> None:
    """Publish every pending notification: their links become ``notified``."""
    while await system.relay.relay_once():
        pass


async def tokens(system: System) -> dict[str, str]:
    """card id → link token, read back from the sealed notifications (what the citizen receives)."""
    async with system.db.uow() as uow:
        rows = (await uow.session.scalars(select(OutboxMessage))).all()
    found = {}
    for row in rows:
        body = json.loads(system.cipher.open(row.pii_key_id, row.body, context=row.message_id))
        found[row.card_id] = body["link"].rsplit("/s/", 1)[1]
    return found


def answers(ratings: list[int]) -> dict[str, Any]:
    """Answers to the default questionnaire: q1..q5 rate the five criteria; q6 (overall, not a
    criterion) is always 1 so that counting it by mistake would show; q7 is a comment."""
    q = {f"q{i}": value for i, value in enumerate(ratings, start=1)}
    return {**q, "q6": 1, "q7": "Всё понятно, спасибо"}


async def respond(system: System, token: str, ratings: list[int]) -> StoredResponse:
    """Submit answers the way ЛКП does: to ЛКО's API with ЛКП's key."""
    return await LkoClient(system.lko_http_for_lkp).submit_response(token, str(uuid.uuid4()), answers(ratings))


async def table_rows(system: System, table: str) -> list[tuple[Any, ...]]:
    async with system.db.uow() as uow:
        result = await uow.session.execute(text(f"SELECT * FROM {table}"))  # our own table names
        return sorted(tuple(row) for row in result)


ROLLUP_TABLES = (
    "analytics_rollups",
    "analytics_criterion_rollups",
    "analytics_org_month_rollups",
    "analytics_org_month_criterion_rollups",
    "analytics_month_rollups",
    "analytics_month_criterion_rollups",
)
ANALYTICS_TABLES = (
    "analytics_cursors",
    "analytics_cards",
    "analytics_responses",
    "analytics_organizations",
    *ROLLUP_TABLES,
)


async def rollups(system: System) -> dict[str, list[tuple[Any, ...]]]:
    return {table: await table_rows(system, table) for table in ROLLUP_TABLES}


def needles(citizens: list[dict[str, str]]) -> set[str]:
    """The strings that would betray a citizen: СНИЛС (any spelling), birth date, names."""
    found: set[str] = set()
    for c in citizens:
        digits = "".join(ch for ch in c["snils"] if ch.isdigit())
        found |= {digits, c["snils"], c["birth_date"], c["last_name"], c["first_name"]}
        if c.get("middle_name"):
            found.add(c["middle_name"])
    return found
