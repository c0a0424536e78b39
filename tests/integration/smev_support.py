"""Shared by the СМЭВ-adapter tests: running the adapter's emulator and the СМЭВ worker beside a stack,
and the hostile documents a provider's system (or a broken adapter) might deliver."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from posog.bootstrap import System
from posog.emulators.smev_adapter.adapter import SmevAdapterEmulator
from posog.emulators.smev_adapter.envelopes import request_document, status_document
from posog.module.intake.model import ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.smev.model import SmevAnswer
from posog.module.smev.spool import SmevSpooled
from tests.support import count

ADAPTER_NS = "urn://x-artefacts-smev-gov-ru/services/service-adapter/types"


def adapter(system: System) -> SmevAdapterEmulator:
    assert system.smev_adapter is not None
    return system.smev_adapter


async def answered(emulator: SmevAdapterEmulator, expected: int) -> bool:
    """The adapter's emulator holds answers to at least ``expected`` requests."""
    return len(emulator.answers) >= expected


async def answers_settled(system: System) -> bool:
    """Every answer written has been taken by the adapter (marked sent)."""
    return await count(system, SmevAnswer, SmevAnswer.sent_at.is_(None)) == 0


async def spool_empty(system: System) -> bool:
    return await count(system, SmevSpooled) == 0


async def assert_each_fact_carded_and_accepted_once(
    system: System, emulator: SmevAdapterEmulator, client_ids: list[str]
) -> None:
    """Each request of ``client_ids`` made one card and one link and was answered ``accepted`` exactly
    once — nothing lost, nothing doubled."""
    total = len(client_ids)
    assert await count(system, ServiceCard) == total
    assert await count(system, SurveyLink) == total
    assert await count(system, SmevAnswer) == total
    assert sorted(emulator.answers) == sorted(client_ids)
    assert all(len(answers) == 1 for answers in emulator.answers.values()), "an answer was doubled"
    assert {(a.kind, a.code) for (a,) in emulator.answers.values()} == {("status", "accepted")}


@contextlib.asynccontextmanager
async def smev_running(system: System) -> AsyncIterator[Any]:
    """The СМЭВ worker (and, on the AMQP interface, the emulator taking our out queue) while inside."""
    assert system.smev is not None
    worker = system.smev.worker()
    assert system.smev.answers is not None
    tasks = [
        asyncio.create_task(worker.run(), name="smev"),
        asyncio.create_task(system.smev.answers.run(), name="smev-answers"),
    ]
    if system.settings.smev_transport == "amqp":
        tasks.append(asyncio.create_task(adapter(system).consume_out(), name="adapter-out"))
    try:
        yield worker
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:  # a worker that died on its own is a failure, not a quiet stop
            if not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"{task.get_name()} died") from task.exception()


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<QueryResult xmlns="' + ADAPTER_NS.encode() + b'">&lol3;</QueryResult>'
)


def unknown_type(client_id: str) -> bytes:
    document = request_document(b'<OgFactRequest xmlns="urn://x-artefacts-posog/og-fact/1.0.0"/>', client_id=client_id)
    return document.replace(b"tns:RequestMessageType", b"tns:FancyMessageType")


def other_kind(client_id: str) -> bytes:
    return request_document(
        b'<PassportRequest xmlns="urn://x-other/passport/1.0"><N>1</N></PassportRequest>', client_id=client_id
    )


def hostile_documents() -> dict[str, tuple[bytes, str | None]]:
    """Name → (document, the clientId that must be answered or None)."""
    return {
        "not_xml": (b"\x00\x01 this is not XML {json: maybe}", None),
        "entities": (BOMB, None),
        "wrong_namespace": (b'<QueryResult xmlns="urn:somebody-else"><Message/></QueryResult>', None),
        "unknown_type": (unknown_type("hostile-unknown-type"), "hostile-unknown-type"),
        "too_large": (b"<a>" + b"x" * (10 * 1024 * 1024) + b"</a>", None),
        "wrong_element": (other_kind("hostile-other-kind"), "hostile-other-kind"),
        "unmatched": (status_document(client_id="adapter-1", original_client_id="nobody-sent-this"), None),
    }
