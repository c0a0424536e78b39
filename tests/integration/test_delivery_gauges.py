"""The gauges of the one delivery engine (``Outbox.observe``), as the workers of the ИАС export, ЛКО's
link completions and ЛКО's announcements publish them each round — like the ГЭПС relay — read from
the Prometheus exposition after a known backlog: how many rows wait, how long the most overdue one
has been due, how many are dead, and the attempts counted by outcome."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from posog.bootstrap import System
from posog.core import metrics
from posog.core.clock import utcnow
from posog.core.db import new_uuid
from posog.lko.questionnaires.announcements import AnnouncementRelay, new_announcement
from posog.lko.responses.handlers import CompletionRecovery
from posog.lko.responses.model import PendingCompletion
from posog.module.client import ModuleClient
from posog.module.ias_export.handlers import AGGREGATES_SCHEMA, IasSchedule, batch_id
from posog.module.ias_export.model import FAILED, PENDING, IasExport
from tests.e2e.processes import metric
from tests.support import stack, wait_for

pytestmark = pytest.mark.integration


def gauges(delivery: str) -> tuple[float | None, float | None, float | None]:
    """(backlog, oldest due in seconds, dead) of ``delivery`` as ``/metrics`` shows them."""
    text = generate_latest().decode()
    return (
        metric(text, "posog_delivery_backlog", delivery=delivery),
        metric(text, "posog_delivery_oldest_due_seconds", delivery=delivery),
        metric(text, "posog_delivery_dead", delivery=delivery),
    )


def attempts(delivery: str, outcome: str) -> float:
    return metric(generate_latest().decode(), "posog_delivery_attempts_total", delivery=delivery, outcome=outcome) or 0


def forget(delivery: str) -> None:
    """Gauges no round can have set: a value read later was set by the round under test."""
    for gauge in (metrics.DELIVERY_BACKLOG, metrics.DELIVERY_OLDEST_DUE, metrics.DELIVERY_DEAD):
        gauge.labels(delivery).set(-1)


@contextlib.asynccontextmanager
async def running(loop: Awaitable[None]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(loop)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def observed(delivery: str, backlog: int) -> bool:
    return gauges(delivery)[0] == backlog


async def test_the_ias_export_worker_publishes_its_backlog(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, ias_retry_base_s=600, ias_retry_max_s=600) as system:
        now = utcnow()
        # Three batches due now, which the receiver refuses for a while (503: retried later); one that
        # has been due for an hour and is being sent by another worker (leased); one failed for good.
        await _batch(system, 1, due=now)
        await _batch(system, 2, due=now)
        await _batch(system, 3, due=now)
        await _batch(system, 4, due=now - timedelta(hours=1), lease_until=now + timedelta(minutes=10))
        await _batch(system, 5, due=now, failed=True)
        response = await system.ias_http.post("/api/v1/control/fail-next", json={"count": 100, "status": 503})
        assert response.status_code == 200
        retries_before = attempts("ias-export", "retry")
        forget("ias-export")

        schedule = IasSchedule(system.ias_exporter(), system.clock, daily=False, monthly=False, interval_s=0.05)
        async with running(schedule.run()):
            await wait_for(lambda: observed("ias-export", 4), timeout=60, what="the ИАС export's gauges")

        backlog, oldest_due, dead = gauges("ias-export")
        assert (backlog, dead) == (4, 1)
        assert oldest_due is not None
        assert 3600 <= oldest_due < 3600 + 120, "the leased batch, due an hour ago"
        assert attempts("ias-export", "retry") - retries_before == 3, "one failed attempt of each due batch"


async def _batch(
    system: System, n: int, *, due: datetime, lease_until: datetime | None = None, failed: bool = False
) -> None:
    day = date(2026, 1, n)
    batch = batch_id("aggregates", day, day)
    payload = json.dumps({"schema": AGGREGATES_SCHEMA, "batch_id": batch, "kind": "aggregates"}).encode()
    async with system.db.uow() as uow:
        uow.session.add(
            IasExport(
                batch_id=batch,
                kind="aggregates",
                period_from=day,
                period_to=day,
                status=FAILED if failed else PENDING,
                attempts=1 if failed else 0,
                next_attempt_at=None if failed else due,
                lease_until=lease_until,
                dead_at=due if failed else None,
                payload=payload,
                payload_sha256=hashlib.sha256(payload).hexdigest(),
                payload_size=len(payload),
                items=1,
                created_at=due,
                updated_at=due,
            )
        )
        await uow.commit()


async def test_the_completion_worker_publishes_its_backlog(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        now = utcnow()
        # Two completions due for five minutes, still within the recovery's grace (their requests may be
        # completing them), so left alone by this round; one settled long ago.
        rows = [
            PendingCompletion(
                response_id=new_uuid(), created_at=now, attempts=0, next_attempt_at=now - timedelta(minutes=5)
            ),
            PendingCompletion(response_id=new_uuid(), created_at=now, attempts=0, next_attempt_at=now),
            PendingCompletion(
                response_id=new_uuid(),
                created_at=now,
                attempts=1,
                next_attempt_at=None,
                sent_at=now - timedelta(days=1),
            ),
        ]
        async with system.db.uow() as uow:
            uow.session.add_all(rows)
            await uow.commit()
        forget("lko-completions")

        recovery = CompletionRecovery(
            system.db, ModuleClient(system.module_http_for_lko), interval_s=0.05, grace=timedelta(hours=1)
        )
        async with running(recovery.run_forever()):
            await wait_for(lambda: observed("lko-completions", 2), timeout=60, what="the completions' gauges")

        backlog, oldest_due, dead = gauges("lko-completions")
        assert (backlog, dead) == (2, 0)
        assert oldest_due is not None
        assert 300 <= oldest_due < 300 + 120


async def test_the_announcement_worker_publishes_its_backlog(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        now = utcnow()
        due = [
            new_announcement(new_uuid(), 1, "mfc", level, now=now - timedelta(minutes=10))
            for level in ("regional", "municipal")
        ]
        dead = new_announcement(new_uuid(), 1, "school", "regional", now=now)
        dead.dead_at, dead.attempts = now, 5
        async with system.db.uow() as uow:
            uow.session.add_all([*due, dead])
            await uow.commit()
        forget("lko-announcements")

        unreachable: Any = None  # the module not connected: the round sends nothing
        relay = AnnouncementRelay(system.db, lambda: unreachable)
        async with running(relay.run(0.05)):
            await wait_for(lambda: observed("lko-announcements", 2), timeout=60, what="the announcements' gauges")

        backlog, oldest_due, dead_count = gauges("lko-announcements")
        assert (backlog, dead_count) == (2, 1)
        assert oldest_due is not None
        assert 600 <= oldest_due < 600 + 120
