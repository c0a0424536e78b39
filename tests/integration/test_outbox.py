"""The outbox relay retries with backoff while the broker refuses, and delivers once it accepts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from posog.core.bus import InProcessBus
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.module.intake.handlers import RawFact
from posog.module.links.model import ISSUED, NOTIFIED, SurveyLink
from posog.module.notifications.model import OutboxMessage
from posog.module.notifications.relay import OutboxRelay
from tests.conftest import remember_citizen
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration


def _bodies(seed: int, n: int) -> list[RawFact]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    raws = []
    for _ in range(n):
        fact = factory.fact()
        remember_citizen(fact["citizen"])
        raws.append(RawFact(json.dumps(fact, ensure_ascii=False).encode()))
    return raws


@pytest.mark.parametrize("backend", BACKENDS)
async def test_relay_backs_off_while_the_broker_refuses_then_delivers(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system:
        await system.intake.handle(_bodies(41, 5))
        s = system.settings
        if backend == "production":
            # A relay pointed at an exchange the broker does not have: every publish is refused.
            failing = OutboxRelay(
                system.db, system.bus, system.cipher, utcnow, exchange="posog.test.no-such-exchange",
                routing_key=s.geps_routing_key, batch_size=50, idle_sleep_s=0.01, max_backoff_s=60,
            )  # fmt: skip
        else:
            assert isinstance(system.bus, InProcessBus)
            system.bus.fail_next_publishes = 1
            failing = system.relay

        assert await failing.relay_once() == 0
        async with system.db.uow() as uow:
            rows = (await uow.session.execute(select(OutboxMessage))).scalars().all()
        assert all(row.attempts == 1 and row.sent_at is None and row.last_error for row in rows)
        assert all(row.next_attempt_at > utcnow() for row in rows), "a failed message waits before its retry"
        assert await count(system, SurveyLink, SurveyLink.state == ISSUED) == 5

        assert await system.relay.relay_once() == 0, "nothing is due before the backoff ends"

        async with system.db.uow() as uow:  # time passes
            await uow.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
            await uow.commit()
        assert await system.relay.relay_once() == 5
        assert await count(system, OutboxMessage, OutboxMessage.sent_at.is_(None)) == 0
        assert await count(system, SurveyLink, SurveyLink.state == NOTIFIED) == 5
        assert await system.bus.queue_depth(s.geps_inbox_queue) == 5


def test_backoff_grows_and_is_capped() -> None:
    relay = OutboxRelay(
        None, None, None, utcnow, exchange="x", routing_key="y", batch_size=1, idle_sleep_s=1, max_backoff_s=60,  # type: ignore[arg-type]
    )  # fmt: skip
    delays = [relay.backoff(n).total_seconds() for n in range(1, 12)]
    assert delays[0] <= 0.5
    assert delays[4] > delays[0]
    assert max(delays) <= 60
    assert delays[-1] >= 48  # capped at 60 with up to 20 % jitter
