"""Personal data is erased after the link's life plus the retention (SPEC §10), leaving the anonymous
card; sealed copies elsewhere (sent notifications, rejected facts, conflicts) go too."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from posog.bootstrap import System
from posog.cli import app
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import CARD_LATE, CARD_LINKED, CARD_WAITING, FactConflict, RejectedFact, ServiceCard
from posog.module.notifications.model import OutboxMessage
from posog.module.retention import PURGED, PiiPurger
from tests.conftest import remember_citizen
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration

RETENTION = 90
HORIZON = 365


def _raw(facts: list[dict[str, object]]) -> list[RawFact]:
    return [RawFact(json.dumps(f, ensure_ascii=False).encode()) for f in facts]


async def _seed(system: System) -> dict[str, list[str]]:
    """Linked, late and waiting cards; a rejected fact; a conflict; the notifications sent."""
    factory = FactFactory(seed=91, today=today(utcnow))
    mfc = next(o for o in factory.organizations if o.type_code == "mfc")
    linked = [factory.fact(organization=mfc, service_date=today(utcnow)) for _ in range(3)]
    late = [factory.fact(organization=mfc, service_date=today(utcnow) - timedelta(days=45)) for _ in range(2)]
    # No municipal questionnaire exists: these wait.
    waiting = [factory.fact(organization=mfc, level="municipal", service_date=today(utcnow)) for _ in range(2)]
    for fact in linked + late + waiting:
        remember_citizen(fact["citizen"])
    broken, _ = factory.invalid("snils_checksum")
    changed = copy.deepcopy(linked[0])
    changed["service"]["name"] = "Другая услуга"
    outcomes = await system.intake.handle([*_raw(linked + late + waiting), RawFact(broken), *_raw([changed])])
    assert [o.kind for o in outcomes] == ["accepted"] * 7 + ["rejected", "conflict"]
    while await system.relay.relay_once():
        pass
    return {
        "linked": [str(f["card_id"]) for f in linked],
        "late": [str(f["card_id"]) for f in late],
        "waiting": [str(f["card_id"]) for f in waiting],
    }


def _purger(system: System, days_later: int) -> PiiPurger:
    moment = utcnow() + timedelta(days=days_later)
    return PiiPurger(system.db, lambda: moment, retention_days=RETENTION, horizon_days=HORIZON, batch_size=2)


async def _with_pii(system: System) -> set[str]:
    async with system.db.uow() as uow:
        rows = (await uow.session.execute(select(ServiceCard))).scalars().all()
    for row in rows:
        if row.pii_purged_at is None:
            assert row.pii is not None
            assert row.snils_hash is not None
        else:
            assert (row.pii, row.pii_key_id, row.snils_hash) == (None, None, None)
    return {row.card_id for row in rows if row.pii_purged_at is None}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_personal_data_is_erased_after_the_links_life_and_the_retention(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path, pii_retention_days=RETENTION, fact_horizon_days=HORIZON) as system:
        cards = await _seed(system)
        everything = {card for group in cards.values() for card in group}
        async with system.db.uow() as uow:
            statuses = dict((await uow.session.execute(select(ServiceCard.card_id, ServiceCard.status))).all())
        assert {statuses[c] for c in cards["linked"]} == {CARD_LINKED}
        assert {statuses[c] for c in cards["late"]} == {CARD_LATE}
        assert {statuses[c] for c in cards["waiting"]} == {CARD_WAITING}
        assert await count(system, OutboxMessage, OutboxMessage.sent_at.is_not(None)) == 3

        # Today, and a day before the links' life plus the retention ends: nothing is due.
        assert (await _purger(system, 0).purge_once()).total == 0
        # Past the retention: the late cards (their survey period ended before a link), the sent
        # notifications, the rejected fact's payload and the conflict; not yet the linked cards.
        result = await _purger(system, 30 + RETENTION - 1).purge_once()
        assert (result.cards, result.notifications, result.rejected, result.conflicts) == (2, 3, 1, 1)
        assert await _with_pii(system) == set(cards["linked"]) | set(cards["waiting"])

        # After the links' expiry (service date + 30 days) plus the retention: the linked cards too.
        assert (await _purger(system, 30 + RETENTION + 2).purge_once()).cards == 3
        assert await _with_pii(system) == set(cards["waiting"])
        assert await count(system, OutboxMessage) == 0
        assert await count(system, FactConflict) == 0
        async with system.db.uow() as uow:
            rejected = (await uow.session.execute(select(RejectedFact))).scalars().one()
        assert (rejected.status, rejected.payload) == (PURGED, b"")
        assert rejected.reasons, "the reasons stay"

        # A card still waiting keeps its data while a link could still come: the horizon plus the retention.
        assert (await _purger(system, HORIZON).purge_once()).cards == 0
        assert (await _purger(system, HORIZON + RETENTION + 1).purge_once()).cards == 2
        assert await _with_pii(system) == set()

        # The anonymous cards stay, whole but for the citizen; purging again finds nothing.
        async with system.db.uow() as uow:
            kept = (await uow.session.execute(select(ServiceCard))).scalars().all()
        assert {card.card_id for card in kept} == everything
        assert all(card.inn and card.org_name and card.service_date for card in kept)
        assert (await _purger(system, HORIZON + RETENTION + 1).purge_once()).total == 0


def test_operators_see_a_purged_rejected_fact_and_cannot_redrive_it(tmp_path: Path) -> None:
    async def prepare() -> str:
        async with stack("embedded", tmp_path, pii_retention_days=RETENTION) as system:
            await _seed(system)
            await _purger(system, RETENTION + 1).purge_once()
            async with system.db.uow() as uow:
                return str((await uow.session.execute(select(RejectedFact.id))).scalar_one())

    rejected_id = asyncio.run(prepare())
    env = {"POSOG_VAR_DIR": str(tmp_path), "POSOG_ENV": "development"}
    runner = CliRunner()
    shown = runner.invoke(app, ["facts", "show", rejected_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "citizen.snils: bad_checksum" in shown.output
    assert "erased after the retention period" in shown.output
    again = runner.invoke(app, ["facts", "redrive", rejected_id], env=env)
    assert again.exit_code == 2, again.output
    assert "Cannot re-drive" in again.output
    listed = runner.invoke(app, ["facts", "rejected", "--json", "--status", "all"], env=env)
    assert json.loads(listed.stdout)["items"][0]["status"] == PURGED
