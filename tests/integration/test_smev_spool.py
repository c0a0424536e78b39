"""The web service's durable inbound spool (``POSOG_SMEV_TRANSPORT=soap``): ``Get`` takes a document
off the adapter's queue for good, so a poller that fetched a batch and died before the dispatcher
committed it must not lose it. The fetched batch is sealed in ``module_smev_spool`` and committed
first; the next poller drains it — each fact carded once and answered to its sender once, the spool
empty afterwards, and no ФИО or СНИЛС in clear in the spool's bytes. A batch spooled again after it
was committed (a death between the dispatcher's commit and the spool's delete) changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from posog.bootstrap import System
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.emulators.smev_adapter.envelopes import request_document
from posog.emulators.smev_adapter.facts import og_fact_xml
from posog.module.intake.model import ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.retention import PiiPurger
from posog.module.smev.model import SmevAnswer
from posog.module.smev.spool import SmevSpooled
from posog.module.smev.unmatched import SmevUnmatched
from posog.module.smev.worker import SoapPoller
from tests.conftest import remember_citizen
from tests.integration.smev_support import adapter, answered, smev_running, spool_empty
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration

TOTAL = 40


def _facts(seed: int) -> list[dict[str, Any]]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    facts = [factory.fact() for _ in range(TOTAL)]
    for fact in facts:
        remember_citizen(fact["citizen"])
    return facts


async def _spool_bytes(system: System) -> list[bytes]:
    async with system.db.uow() as uow:
        return list((await uow.session.scalars(select(SmevSpooled.payload))).all())


async def _dies_after_spooling(system: System) -> None:
    """A poller fetches a batch, commits it to the spool and is killed before it dispatches it."""
    poller = system.smev.worker() if system.smev is not None else None
    assert isinstance(poller, SoapPoller)
    spooled = asyncio.Event()

    async def hang(_ids: list[int]) -> None:
        spooled.set()
        await asyncio.Event().wait()  # dies here: between the spool's commit and the dispatch

    poller.after_spooled = hang
    task = asyncio.create_task(poller.poll_once())
    await asyncio.wait_for(spooled.wait(), timeout=30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("backend", ["embedded", "production"])
async def test_a_poller_that_died_after_get_loses_nothing_and_the_next_one_handles_each_fact_once(
    backend: str, tmp_path: Path
) -> None:
    async with stack(
        backend, tmp_path, smev_transport="soap", smev_poll_interval_s=0.05, intake_batch_size=TOTAL
    ) as system:
        emulator = adapter(system)
        facts = _facts(seed=41)
        documents = [
            request_document(og_fact_xml(fact), client_id=f"s-{i}", message_id=fact["message_id"])
            for i, fact in enumerate(facts)
        ]
        await emulator.deliver(documents)

        await _dies_after_spooling(system)
        assert emulator.waiting() == 0, "Get took every document off the adapter's queue"
        assert await count(system, ServiceCard) == 0, "the dead poller dispatched nothing"
        assert await count(system, SmevSpooled) == TOTAL, "the fetched batch is in the spool"
        stored = b"".join(await _spool_bytes(system))
        for fact in facts:  # sealed: the document's ФИО and СНИЛС are not in the spool in clear
            citizen = fact["citizen"]
            snils = [citizen["snils"].encode(), "".join(c for c in citizen["snils"] if c.isdigit()).encode()]
            names = [citizen["last_name"].encode(), citizen["first_name"].encode()]
            assert any(form in documents[0] or form in b"".join(documents) for form in snils)
            assert all(name in b"".join(documents) for name in names)
            assert not any(form in stored for form in snils + names)

        # A new poller (the restarted worker) drains the spool first.
        async with smev_running(system):
            await wait_for(lambda: answered(emulator, TOTAL), timeout=60, what="every fact answered")
            await wait_for(lambda: spool_empty(system), timeout=30, what="the spool drained")
            await wait_for(lambda: _settled(system), timeout=30, what="every answer marked sent")
        assert await count(system, ServiceCard) == TOTAL
        assert await count(system, SurveyLink) == TOTAL
        assert await count(system, SmevAnswer) == TOTAL
        assert sorted(emulator.answers) == sorted(f"s-{i}" for i in range(TOTAL))
        assert all(len(answers) == 1 for answers in emulator.answers.values()), "an answer was doubled"
        assert {(a.kind, a.code) for (a,) in emulator.answers.values()} == {("status", "accepted")}

        # A death after the dispatcher's commit and before the spool's delete: the batch is drained
        # again — at-least-once — and the dedupe makes it exactly-once in effect.
        assert system.smev is not None
        assert system.smev.spool is not None
        await system.smev.spool.put(documents)
        async with smev_running(system):
            await wait_for(lambda: spool_empty(system), timeout=60, what="the spool drained again")
            await asyncio.sleep(0.3)  # room for an answer that should not come
            await wait_for(lambda: _settled(system), timeout=30, what="every answer marked sent")
        assert await count(system, ServiceCard) == TOTAL
        assert await count(system, SurveyLink) == TOTAL
        assert await count(system, SmevAnswer) == TOTAL
        assert all(len(answers) == 1 for answers in emulator.answers.values()), "an answer was doubled"
        assert emulator.repeated == 0


async def test_a_document_that_can_be_neither_handled_nor_kept_waits_and_is_not_retried_hot(
    tmp_path: Path,
) -> None:
    async with stack("embedded", tmp_path, smev_transport="soap", smev_poll_interval_s=0.05) as system:
        assert system.smev is not None
        assert system.smev.spool is not None
        assert system.smev.dispatcher is not None
        dispatcher = system.smev.dispatcher
        calls = {"handle": 0, "keep": 0}

        async def broken_handle(_documents: object) -> None:
            calls["handle"] += 1
            raise ValueError("a bug, not an outage")

        async def broken_keep(_document: bytes, _reason: str) -> None:
            calls["keep"] += 1
            raise ValueError("cannot keep either")

        dispatcher.handle = broken_handle  # type: ignore[method-assign]
        dispatcher.keep_unhandled = broken_keep  # type: ignore[method-assign]
        await system.smev.spool.put([b"<not-a-fact/>"])
        poller = system.smev.worker()
        assert isinstance(poller, SoapPoller)
        await poller.poll_once()
        tried = dict(calls)
        assert tried["handle"] >= 1, "handed to the dispatcher"
        assert tried["keep"] == 1, "then kept: both failed"
        for _ in range(20):
            await poller.poll_once()
        assert calls == tried, "postponed: not tried again at once (no hot loop)"
        assert await count(system, SmevSpooled) == 1, "never dropped: it stays in the spool for later"
        assert await count(system, SmevSpooled, SmevSpooled.next_attempt_at.is_not(None)) == 1


async def test_the_purge_erases_a_spool_row_older_than_the_retention(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, smev_transport="soap") as system:
        assert system.smev is not None
        assert system.smev.spool is not None
        await system.smev.spool.put([b"<old/>", b"<older/>"])
        s = system.settings
        now = utcnow()
        fresh = PiiPurger(system.db, lambda: now, retention_days=s.pii_retention_days, horizon_days=30)
        assert (await fresh.purge_once()).spooled == 0
        assert await count(system, SmevSpooled) == 2
        later = now + timedelta(days=s.pii_retention_days + 1)
        purger = PiiPurger(system.db, lambda: later, retention_days=s.pii_retention_days, horizon_days=30)
        assert (await purger.purge_once()).spooled == 2
        assert await count(system, SmevSpooled) == 0


async def test_a_spooled_document_handed_over_too_often_is_kept_unhandled_sealed(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, smev_transport="soap", facts_delivery_limit=3) as system:
        assert system.smev is not None
        assert system.smev.spool is not None
        document = request_document(og_fact_xml(_facts(seed=43)[0]), client_id="poison-1")
        await system.smev.spool.put([document])
        async with system.db.uow() as uow:  # its worker died holding it, time after time
            await uow.session.execute(update(SmevSpooled).values(attempts=3))
            await uow.commit()
        poller = system.smev.worker()
        assert isinstance(poller, SoapPoller)
        await poller.poll_once()
        assert await count(system, SmevSpooled) == 0
        assert await count(system, ServiceCard) == 0, "not handled again"
        async with system.db.uow() as uow:
            (kept,) = (await uow.session.scalars(select(SmevUnmatched))).all()
        assert kept.reason == "delivery_limit"
        assert kept.client_id == "poison-1"
        assert kept.payload is not None
        assert document not in kept.payload


async def _settled(system: System) -> bool:
    return await count(system, SmevAnswer, SmevAnswer.sent_at.is_(None)) == 0


async def test_a_spool_row_that_cannot_be_opened_is_put_off_and_does_not_block_get(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, smev_transport="soap", smev_poll_interval_s=0.05) as system:
        assert system.smev is not None
        assert system.smev.spool is not None
        await system.smev.spool.put([b"<sealed-under-a-retired-key/>"])
        async with system.db.uow() as uow:
            await uow.session.execute(update(SmevSpooled).values(pii_key_id="retired"))
            await uow.commit()
        emulator = adapter(system)
        fact = _facts(seed=47)[0]
        await emulator.deliver([request_document(og_fact_xml(fact), client_id="after-1")])
        poller = system.smev.worker()
        assert isinstance(poller, SoapPoller)
        for _ in range(3):
            await poller.poll_once()
        assert await count(system, ServiceCard) == 1, "Get went on past the unreadable row"
        assert await count(system, SmevSpooled) == 1, "the unreadable row is not dropped"
        assert await count(system, SmevSpooled, SmevSpooled.next_attempt_at.is_not(None)) == 1
