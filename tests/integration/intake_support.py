"""Shared by the intake tests that feed hostile streams (in process, and through a real worker
process in ``tests/e2e``): valid facts with known ids, the personal data to look for, and draining a
queue."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from posog.bootstrap import System
from posog.core.bus import IncomingMessage
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from tests.conftest import remember_citizen


def make_facts(seed: int, n: int, prefix: str) -> list[dict[str, Any]]:
    factory = FactFactory(seed=seed, today=today(utcnow))
    facts = []
    for i in range(n):
        fact = factory.fact()
        fact["card_id"] = f"{prefix}-{i}"
        remember_citizen(fact["citizen"])
        facts.append(fact)
    return facts


def needles_in(facts: list[dict[str, Any]]) -> set[bytes]:
    found: set[bytes] = set()
    for fact in facts:
        c = fact["citizen"]
        digits = re.sub(r"\D", "", c["snils"])
        for text in (c["last_name"], c["snils"], digits, c["birth_date"]):
            found.add(text.encode())
    return found


async def drain(system: System, queue: str) -> list[IncomingMessage]:
    """Every message of ``queue`` (acknowledged: the queue is left empty)."""
    taken: list[IncomingMessage] = []
    stream = system.bus.consume(queue, prefetch=500)
    try:
        while True:
            try:
                message = await asyncio.wait_for(anext(stream), timeout=3)  # type: ignore[arg-type]
            except TimeoutError:
                return taken
            taken.append(message)
            await message.ack()
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
