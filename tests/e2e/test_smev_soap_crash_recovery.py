"""Kill -9 ``posog worker smev`` on the adapter's web service (``POSOG_SMEV_TRANSPORT=soap``) while it
holds fetched facts it has not committed, start it again, and find every fact carded once and answered
to its sender exactly once. ``Get`` takes a document off the adapter's queue for good (the WSDL has no
acknowledgement): what saves the facts is the durable spool, each document committed to it as soon as
``Get`` returned it and drained first by the next worker. Production mode: a real worker process on
PostgreSQL, the adapter's emulator served over real HTTP by this test.

The kill lands right after the adapter answered an empty ``Get`` (its queue drained): the worker is then
dispatching its last fetched batch, which only the spool holds. (A kill during a ``Get`` exchange
itself, after the adapter let the document go and before its answer was read, cannot be covered by any
client of a web service without an acknowledgement; docs/integration.md says so.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from posog.bootstrap import System
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.emulators.smev_adapter.envelopes import request_document
from posog.emulators.smev_adapter.facts import og_fact_xml
from posog.module.intake.model import ServiceCard
from posog.module.smev.spool import SmevSpooled
from posog.web.server import listening_socket
from tests.conftest import remember_citizen
from tests.e2e.processes import DEADLINE_S, kill_hard, spawn_worker, stop_cleanly, wait_while_running
from tests.integration.smev_support import (
    adapter,
    answered,
    answers_settled,
    assert_each_fact_carded_and_accepted_once,
    spool_empty,
)
from tests.support import at_least, count, stack

pytestmark = pytest.mark.integration

FIRST = 550  # not a multiple of BATCH: the last round ends on an empty Get, then dispatches
SECOND = 400
BATCH = 200


@contextlib.asynccontextmanager
async def _served(system: System) -> AsyncIterator[str]:
    """The adapter emulator's web service on a port of its own; its ``/ws`` URL."""
    assert system.smev_adapter_asgi is not None
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(system.smev_adapter_asgi.app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/ws"
    finally:
        server.should_exit = True
        await task
        sock.close()


def _env(url: str) -> dict[str, str]:
    return {
        "POSOG_SMEV_TRANSPORT": "soap",
        "POSOG_SMEV_ADAPTER_URL": url,
        "POSOG_SMEV_POLL_INTERVAL_S": "0.05",
        "POSOG_INTAKE_BATCH_SIZE": str(BATCH),
    }


async def test_soap_worker_killed_holding_fetched_facts_loses_none_and_answers_each_once(tmp_path: Path) -> None:
    total = FIRST + SECOND
    async with stack("production", tmp_path, smev_transport="soap") as system, _served(system) as url:
        emulator = adapter(system)
        factory = FactFactory(seed=37, today=today(utcnow))
        documents = []
        for i in range(total):
            fact = factory.fact()
            remember_citizen(fact["citizen"])
            documents.append(request_document(og_fact_xml(fact), client_id=f"w-{i}", message_id=fact["message_id"]))

        drained = asyncio.Event()
        take_next = emulator.take_next

        def watched() -> bytes | None:  # the adapter's Get, noting when it answered "nothing waiting"
            document = take_next()
            if document is None:
                drained.set()
            return document

        emulator.take_next = watched  # type: ignore[method-assign]
        await emulator.deliver(documents[:FIRST])
        worker = spawn_worker("smev", system, **_env(url))
        try:
            await asyncio.wait_for(drained.wait(), timeout=DEADLINE_S)
            await kill_hard(worker)  # dispatching its last batch, which only the spool holds
            assert emulator.waiting() == 0, "Get took every document of the first part off the adapter"
            spooled = await count(system, SmevSpooled)
            carded = await count(system, ServiceCard)
            assert spooled > 0, "the worker died holding fetched, uncommitted facts"
            assert carded < FIRST, "the worker must die before it committed them"

            await emulator.deliver(documents[FIRST:])
            worker = spawn_worker("smev", system, **_env(url))
            await wait_while_running(worker, lambda: at_least(system, ServiceCard, total), what="all cards")
            await wait_while_running(worker, lambda: answered(emulator, total), what="every fact answered")
            await wait_while_running(worker, lambda: spool_empty(system), what="the spool drained")
            await wait_while_running(worker, lambda: answers_settled(system), what="every answer marked sent")
            await stop_cleanly(worker)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert emulator.waiting() == 0
        await assert_each_fact_carded_and_accepted_once(system, emulator, [f"w-{i}" for i in range(total)])
