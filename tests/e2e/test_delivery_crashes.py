"""Kill -9 the worker of each delivery of the one engine (``core/outbox.py``) that calls another system —
the ИАС МКГУ export, ЛКО's link completions, ЛКО's publication announcements — in the middle of its
stream, restart it, and find the exact counts: nothing lost, nothing applied twice. Real ``posog worker``
processes on PostgreSQL; the receiving system in the worker's process, as in the embedded wiring (its
writes are its own transactions, so the kill leaves them exactly as a remote receiver's would be).

Each restarted worker also serves its metrics: the delivery's gauges (``Outbox.observe``) are read
from its ``/metrics`` once the stream is done — no backlog, and as many sends counted as it made."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from posog.bootstrap import System
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.emulators.ias.model import IasBatch
from posog.lko.questionnaires.announcements import Announcement
from posog.lko.questionnaires.defaults import default_questionnaire_draft
from posog.lko.responses.model import PendingCompletion, SurveyResponse
from posog.lko.state import lko_state
from posog.module.client import ModuleError
from posog.module.ias_export.handlers import AGGREGATES_SCHEMA, batch_id
from posog.module.ias_export.model import PENDING, SENT, IasExport
from posog.module.intake.handlers import RawFact
from posog.module.intake.model import CARD_LINKED, CARD_WAITING, ServiceCard
from posog.module.links.model import COMPLETED, SurveyLink
from posog.module.notifications.model import OutboxMessage
from tests.conftest import remember_citizen
from tests.demo_support import free_port
from tests.e2e.processes import kill_hard, metric, scrape, spawn_worker, stop_cleanly, wait_while_running
from tests.integration.survey_support import client, idempotency_key, issue_surveys
from tests.support import at_least, count, stack

pytestmark = pytest.mark.integration

# A worker's claim outlives it by this much: the restarted worker takes the claimed rows after it.
LEASE_S = "3"


async def _metrics_show(port: int, delivery: str, sent: int) -> bool:
    """The worker's gauges say the delivery has nothing left, and it counted ``sent`` sends."""
    text = await scrape(port)
    return (
        metric(text, "posog_delivery_backlog", delivery=delivery) == 0
        and metric(text, "posog_delivery_oldest_due_seconds", delivery=delivery) == 0
        and metric(text, "posog_delivery_attempts_total", delivery=delivery, outcome="sent") == sent
    )


# --- ИАС МКГУ --------------------------------------------------------------------------------------


async def test_ias_export_worker_killed_mid_stream_sends_each_batch_once(tmp_path: Path) -> None:
    total = 150
    env = {
        "POSOG_IAS_EXPORT_DAILY": "false",  # only the logged batches: none made by the schedule
        "POSOG_IAS_EXPORT_MONTHLY": "false",
        "POSOG_IAS_EXPORT_INTERVAL_S": "0.2",
        "POSOG_IAS_LEASE_S": LEASE_S,
    }
    async with stack("production", tmp_path) as system:
        payloads = await _log_batches(system, total)
        worker = spawn_worker("ias-export", system, **env)
        try:
            sent = IasExport.status == SENT
            await wait_while_running(
                worker, lambda: at_least(system, IasExport, 30, sent), interval=0.02, what="first batches sent"
            )
            await kill_hard(worker)
            at_kill = await count(system, IasExport, sent)
            assert at_kill < total, "the worker must die in the middle of the stream"

            metrics_port = free_port()
            worker = spawn_worker("ias-export", system, "--metrics-port", str(metrics_port), **env)
            await wait_while_running(worker, lambda: at_least(system, IasExport, total, sent), what="all sent")
            await wait_while_running(
                worker, lambda: _metrics_show(metrics_port, "ias-export", total - at_kill), what="the gauges"
            )
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()

        async with system.db.uow() as uow:
            logged = (await uow.session.execute(select(IasExport.batch_id, IasExport.status, IasExport.dead_at))).all()
            received = (await uow.session.execute(select(IasBatch.batch_id, IasBatch.body, IasBatch.deliveries))).all()
        assert {(b, status, dead) for b, status, dead in logged} == {(b, SENT, None) for b in payloads}
        # The receiver holds every batch once, with the very bytes logged for it...
        assert sorted(b for b, _, _ in received) == sorted(payloads)
        assert all(hashlib.sha256(body.encode()).digest() == payloads[b] for b, body, _ in received)
        # ...and at most the one in flight at the kill reached it twice (at least once on the wire; the
        # receiver keeps a batch id once).
        assert sum(deliveries for _, _, deliveries in received) - total <= 1


async def _log_batches(system: System, total: int) -> dict[str, bytes]:
    """``total`` pending aggregates batches, one a day from 2025-01-01, as the export logs them;
    returns each batch's payload digest."""
    now = utcnow()
    digests: dict[str, bytes] = {}
    async with system.db.uow() as uow:
        for n in range(total):
            day = date(2025, 1, 1) + timedelta(days=n)
            batch = batch_id("aggregates", day, day)
            document = {"schema": AGGREGATES_SCHEMA, "batch_id": batch, "kind": "aggregates", "n": n}
            payload = json.dumps(document, sort_keys=True).encode()
            digests[batch] = hashlib.sha256(payload).digest()
            uow.session.add(
                IasExport(
                    batch_id=batch,
                    kind="aggregates",
                    period_from=day,
                    period_to=day,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    payload=payload,
                    payload_sha256=hashlib.sha256(payload).hexdigest(),
                    payload_size=len(payload),
                    items=1,
                    created_at=now,
                    updated_at=now,
                )
            )
        await uow.commit()
    return digests


# --- ЛКО: link completions -------------------------------------------------------------------------


class ModuleAway:
    """The module as ЛКО sees it while it cannot complete links (unreachable): every response is
    stored with its completion pending."""

    def __init__(self, real: Any) -> None:
        self._real = real

    async def resolve_link(self, token: str, *, client_id: str | None = None) -> Any:
        return await self._real.resolve_link(token, client_id=client_id)

    async def complete_link(self, token: str, response_id: str) -> None:
        raise ModuleError("module unreachable: ConnectError")


ANSWERS = {"q1": 5, "q2": 4, "q3": 5, "q4": 3, "q5": 4, "q6": 5, "q7": "Всё хорошо"}


async def test_completion_worker_killed_mid_stream_completes_each_link_once(tmp_path: Path) -> None:
    total = 100
    env = {
        "POSOG_LKO_COMPLETION_INTERVAL_S": "0.1",
        "POSOG_LKO_COMPLETION_GRACE_S": "0",
        "POSOG_LKO_COMPLETION_LEASE_S": LEASE_S,
    }
    async with stack("production", tmp_path) as system:
        surveys = await issue_surveys(system, total, seed=731)
        app = system.lko_asgi.app
        state = lko_state(app)
        real, state.module = state.module, ModuleAway(state.module)
        gate = asyncio.Semaphore(8)

        async def answer(token: str) -> None:
            async with gate, client(app, "lkp", base_url="http://lko") as lkp:
                response = await lkp.post(
                    "/api/v1/responses", json={"token": token, "idempotency_key": idempotency_key(), "answers": ANSWERS}
                )
                assert response.status_code == 201, response.text

        await asyncio.gather(*(answer(s.token) for s in surveys))
        state.module = real
        assert await count(system, PendingCompletion, PendingCompletion.sent_at.is_(None)) == total

        settled = PendingCompletion.sent_at.is_not(None)
        worker = spawn_worker("lko-completions", system, **env)
        try:
            await wait_while_running(
                worker, lambda: at_least(system, PendingCompletion, 20, settled), interval=0.02, what="completions"
            )
            await kill_hard(worker)
            at_kill = await count(system, PendingCompletion, settled)
            assert at_kill < total, "the worker must die in the middle of the stream"

            metrics_port = free_port()
            worker = spawn_worker("lko-completions", system, "--metrics-port", str(metrics_port), **env)
            await wait_while_running(
                worker, lambda: at_least(system, PendingCompletion, total, settled), what="all completions"
            )
            await wait_while_running(
                worker, lambda: _metrics_show(metrics_port, "lko-completions", total - at_kill), what="the gauges"
            )
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()

        async with system.db.uow() as uow:
            responses = (await uow.session.scalars(select(SurveyResponse))).all()
            links = {
                card: (state_, response_id)
                for card, state_, response_id in await uow.session.execute(
                    select(SurveyLink.card_id, SurveyLink.state, SurveyLink.response_id)
                )
            }
        assert len(responses) == total, "one response per card, none added"
        # Every link completed once, with its own response's id; every response settled, its token forgotten.
        assert {links[r.card_id] for r in responses} == {(COMPLETED, r.id) for r in responses}
        assert {(r.link_refusal, r.completion_token) for r in responses} == {(None, None)}
        assert all(r.link_completed_at is not None for r in responses)
        assert await count(system, PendingCompletion, PendingCompletion.dead_at.is_not(None)) == 0


# --- ЛКО: publication announcements ----------------------------------------------------------------

KEYS = [
    (t, level) for t in ("mfc", "polyclinic", "school", "kindergarten", "sport") for level in ("regional", "municipal")
]


async def test_announcement_worker_killed_mid_stream_releases_each_card_once(tmp_path: Path) -> None:
    per_key = 60
    total = per_key * len(KEYS)
    env = {"POSOG_ANNOUNCEMENT_RETRY_S": "0.2", "POSOG_ANNOUNCEMENT_LEASE_S": LEASE_S}
    async with stack("production", tmp_path) as system:
        await _waiting_cards(system, per_key)
        assert await count(system, ServiceCard, ServiceCard.status == CARD_WAITING) == total
        await _publish_unannounced(system)
        assert await count(system, Announcement, Announcement.sent_at.is_(None)) == len(KEYS)

        linked = ServiceCard.status == CARD_LINKED
        worker = spawn_worker("lko-announcements", system, **env)
        try:
            await wait_while_running(
                worker, lambda: at_least(system, ServiceCard, per_key, linked), interval=0.02, what="first release"
            )
            await kill_hard(worker)
            assert await count(system, ServiceCard, linked) < total, "the worker must die in the middle of the stream"
            sent = Announcement.sent_at.is_not(None)
            at_kill = await count(system, Announcement, sent)

            metrics_port = free_port()
            worker = spawn_worker("lko-announcements", system, "--metrics-port", str(metrics_port), **env)
            await wait_while_running(worker, lambda: at_least(system, Announcement, len(KEYS), sent), what="all sent")
            await wait_while_running(
                worker, lambda: _metrics_show(metrics_port, "lko-announcements", len(KEYS) - at_kill), what="the gauges"
            )
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()

        # Every waiting card released once: one link and one notification each, none left waiting.
        assert await count(system, ServiceCard, linked) == total
        async with system.db.uow() as uow:
            links = await uow.session.scalar(select(func.count(func.distinct(SurveyLink.card_id))))
            notifications = await uow.session.scalar(select(func.count(func.distinct(OutboxMessage.card_id))))
            announcements = (await uow.session.scalars(select(Announcement))).all()
        assert (links, notifications) == (total, total)
        assert await count(system, SurveyLink) == await count(system, OutboxMessage) == total
        assert {(a.attempts, a.dead_at is None) for a in announcements} == {(1, True)}


async def _waiting_cards(system: System, per_key: int) -> None:
    """``per_key`` cards of an organisation of each type in ``KEYS``, at each level: no questionnaire
    is published for these levels, so every card waits for one."""
    factory = FactFactory(seed=732, today=today(utcnow))
    facts = []
    for type_code, level in KEYS:
        organization = next(o for o in factory.organizations if o.type_code == type_code)
        facts += [factory.fact(organization=organization, level=level) for _ in range(per_key)]
    for fact in facts:
        remember_citizen(fact["citizen"])
    for start in range(0, len(facts), 200):
        await system.intake.handle(
            [RawFact(json.dumps(f, ensure_ascii=False).encode()) for f in facts[start : start + 200]]
        )


async def _publish_unannounced(system: System) -> None:
    """A questionnaire published for each key while ЛКО cannot reach the module: each publication
    leaves its announcement pending, for the worker."""
    app = system.lko_asgi.app
    state = lko_state(app)
    real, state.module = state.module, None
    content = default_questionnaire_draft().model_dump(mode="json", exclude_none=True)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://lko",
            headers={"Authorization": "Bearer dev-admin-key"},
        ) as admin:
            for type_code, level in KEYS:
                created = await admin.post(
                    "/api/v1/questionnaires", json={"type_code": type_code, "level": level, **content}
                )
                assert created.status_code == 201, created.text
                published = await admin.post(f"/api/v1/questionnaires/{created.json()['id']}/publish")
                assert published.json()["release"] == {"status": "pending"}, published.text
    finally:
        state.module = real
