"""The СМЭВ emulator: publishes ОГ facts (SPEC §3) to the facts queue as a provider's system would —
realistic facts from :class:`~posog.emulators.datagen.facts.FactFactory`, at a chosen rate, with a
share of deliberately broken ones mixed in when asked.

It talks only to the bus: embedded, the in-process bus of the demo's process; in production, RabbitMQ
(``posog emulate smev``). Given the СМЭВ adapter's emulator (envelope mode), its provider systems send
each fact as ``OgFactRequest`` in a ``QueryResult`` through the adapter instead (INTEGRATION.md §2),
each organisation's system under its own name, and get their answers back from ПОС ОГ."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from posog.core.bus import MessageBus, OutgoingMessage
from posog.emulators.datagen.facts import INVALID_KINDS, FactFactory
from posog.emulators.smev_adapter.adapter import SmevAdapterEmulator
from posog.emulators.smev_adapter.envelopes import request_document
from posog.emulators.smev_adapter.facts import XML_INVALID_KINDS, og_fact_xml

log = structlog.get_logger(__name__)

# Facts are published in chunks, each confirmed before the next; the rate is kept per chunk.
CHUNK = 100


@dataclass
class Published:
    valid: int = 0
    invalid: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.valid + self.invalid


class SmevEmulator:
    def __init__(
        self,
        bus: MessageBus,
        queue: str,
        factory: FactFactory,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        adapter: SmevAdapterEmulator | None = None,
    ) -> None:
        self._adapter = adapter
        self._bus = bus
        self._queue = queue
        self._factory = factory
        self._clock = clock
        self._sleep = sleep

    async def publish(
        self,
        count: int,
        *,
        rate: float | None = None,
        invalid_share: float = 0.0,
        on_progress: Callable[[int], None] | None = None,
    ) -> Published:
        """Publish ``count`` facts, about ``invalid_share`` of them broken (of a random kind each), at
        no more than ``rate`` facts a second (None: as fast as the broker confirms)."""
        if count < 0:
            raise ValueError("count must not be negative")
        if not 0 <= invalid_share <= 1:
            raise ValueError("invalid_share must be between 0 and 1")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        rng = self._factory.rng
        kinds = sorted(XML_INVALID_KINDS if self._adapter is not None else INVALID_KINDS)
        broken = set(rng.sample(range(count), round(count * invalid_share)))
        result = Published()
        started = self._clock()
        for first in range(0, count, CHUNK):
            chunk: list[OutgoingMessage] = []
            for i in range(first, min(first + CHUNK, count)):
                if i in broken:
                    kind = rng.choice(kinds)
                    body, _ = self._factory.invalid(kind)
                    message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    result.invalid += 1
                    result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
                else:
                    fact = self._factory.fact()
                    body, message_id = json.dumps(fact, ensure_ascii=False).encode(), fact["message_id"]
                    result.valid += 1
                chunk.append(OutgoingMessage(body, message_id))
            if self._adapter is not None:
                await self._adapter.deliver([self._envelope(message) for message in chunk])
            else:
                await self._bus.publish("", self._queue, chunk)
            if on_progress is not None:
                on_progress(len(chunk))
            if rate is not None:
                ahead = started + result.total / rate - self._clock()
                if ahead > 0:
                    await self._sleep(ahead)
        log.info("emulators.smev.published", valid=result.valid, invalid=result.invalid)
        return result

    def _envelope(self, message: OutgoingMessage) -> bytes:
        """A fact (og.fact/1 JSON, as generated) as its provider system sends it through the adapter."""
        assert self._adapter is not None
        fact = json.loads(message.body)
        sender = f"ИС «{fact.get('organization', {}).get('name', 'поставщик')}»"[:100]
        client_id = f"og-{uuid.UUID(int=self._factory.rng.getrandbits(128), version=4)}"
        self._adapter.remember_sender(client_id, sender)
        return request_document(og_fact_xml(fact), client_id=client_id, message_id=message.message_id)
