"""The СМЭВ adapter edge of one process, built from the settings (``POSOG_SMEV_TRANSPORT``):

- ``none``: nothing (the JSON channel only);
- ``amqp``: :class:`~posog.module.smev.transport.AmqpOutbound` on the out queue, and the
  :class:`~posog.module.smev.worker.SmevConsumer` on the in queue;
- ``soap``: :class:`~posog.module.smev.soap.SoapOutbound` (``Send``) and the
  :class:`~posog.module.smev.worker.SoapPoller` (``Get``, each batch committed to the durable
  :class:`~posog.module.smev.spool.InboundSpool` before it is dispatched), at
  ``POSOG_SMEV_ADAPTER_URL`` — or, when it is unset (the embedded demo), at the in-process adapter
  emulator's ASGI app (the same code path).

``posog worker smev`` runs :meth:`SmevEdge.run`: the inbound side (consumer or poller → the
:class:`~posog.module.smev.dispatcher.SmevDispatcher` → intake through
:class:`~posog.module.smev.facts.SmevFactIntake`) and the answers to senders
(:class:`~posog.module.smev.answers.AnswersRelay`, on the delivery engine, through ``outbound``).
Features that send through the adapter take ``outbound``; features that take replies register a
:class:`~posog.module.smev.dispatcher.ReplyRoute` with ``dispatcher.register`` (the answers' own
:class:`~posog.module.smev.answers.AnswerReplies` is registered here)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from starlette.types import ASGIApp

from posog.core.bus import MessageBus, Topology
from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.module.intake.handlers import IntakeHandler
from posog.module.smev.answers import AnswerReplies, AnswersRelay
from posog.module.smev.dispatcher import SmevDispatcher
from posog.module.smev.facts import SmevFactIntake
from posog.module.smev.port import AdapterOutbound
from posog.module.smev.soap import SoapAdapterClient, SoapOutbound
from posog.module.smev.spool import InboundSpool
from posog.module.smev.transport import AmqpOutbound, adapter_topology
from posog.module.smev.worker import InboundProcessor, SmevConsumer, SoapPoller
from posog.settings import Settings

EMBEDDED_ADAPTER_URL = "http://smev-adapter.internal/ws"


@dataclass
class SmevEdge:
    settings: Settings
    bus: MessageBus
    outbound: AdapterOutbound | None = None
    dispatcher: SmevDispatcher | None = None
    soap: SoapAdapterClient | None = None
    http: httpx.AsyncClient | None = None
    answers: AnswersRelay | None = None
    spool: InboundSpool | None = None  # the web service's durable inbound spool (``soap``)

    @property
    def enabled(self) -> bool:
        return self.settings.smev_transport != "none"

    def topology(self) -> Topology | None:
        """The adapter's queues (AMQP interface only)."""
        s = self.settings
        if s.smev_transport != "amqp":
            return None
        return adapter_topology(
            in_queue=s.smev_in_queue,
            out_queue=s.smev_out_queue,
            dead_letter_exchange=s.smev_in_dead_letter_exchange,
            dead_letter_queue=s.smev_in_dead_letter_queue,
        )

    async def run(self) -> None:
        """``posog worker smev``: the inbound side and the answers to senders, until cancelled."""
        if self.answers is None:
            raise RuntimeError("POSOG_SMEV_TRANSPORT is none: there is no СМЭВ adapter to work with")
        async with asyncio.TaskGroup() as group:
            group.create_task(self.worker().run(), name="smev inbound")
            group.create_task(self.answers.run(), name="smev answers")

    def worker(self) -> SmevConsumer | SoapPoller:
        """The inbound side alone."""
        s = self.settings
        if self.dispatcher is None:
            raise RuntimeError("POSOG_SMEV_TRANSPORT is none: there is no СМЭВ adapter to read from")
        processor = InboundProcessor(self.dispatcher, max_backoff_s=s.reconnect_max_backoff_s)
        if self.soap is not None:
            assert self.spool is not None
            return SoapPoller(
                self.soap,
                processor,
                self.spool,
                batch_size=s.intake_batch_size,
                idle_s=s.smev_poll_interval_s,
                max_backoff_s=s.reconnect_max_backoff_s,
                delivery_limit=s.facts_delivery_limit,
            )
        return SmevConsumer(
            self.bus,
            processor,
            queue=s.smev_in_queue,
            prefetch=s.consumer_prefetch,
            batch_size=s.intake_batch_size,
            batch_wait_s=s.intake_batch_wait_ms / 1000,
            delivery_limit=s.facts_delivery_limit,
        )

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()


def build_smev(
    settings: Settings,
    db: Database,
    bus: MessageBus,
    cipher: PiiCipher,
    clock: Clock,
    intake: IntakeHandler,
    *,
    embedded_adapter: ASGIApp | None = None,
) -> SmevEdge:
    """The edge for ``settings.smev_transport`` (see the module's docstring)."""
    edge = SmevEdge(settings, bus)
    if settings.smev_transport == "none":
        return edge
    if settings.smev_transport == "amqp":
        edge.outbound = AmqpOutbound(bus, settings.smev_out_queue)
    else:
        timeout = settings.smev_http_timeout_s
        if settings.smev_adapter_url:
            edge.http = httpx.AsyncClient(timeout=timeout)
            url = settings.smev_adapter_url
        elif embedded_adapter is not None:
            edge.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=embedded_adapter), timeout=timeout)
            url = EMBEDDED_ADAPTER_URL
        else:
            raise ValueError("POSOG_SMEV_TRANSPORT=soap needs POSOG_SMEV_ADAPTER_URL")
        edge.soap = SoapAdapterClient(
            edge.http, url, it_system=settings.smev_it_system, max_bytes=settings.smev_max_bytes
        )
        edge.outbound = SoapOutbound(edge.soap)
        edge.spool = InboundSpool(db, cipher, clock)
    edge.dispatcher = SmevDispatcher(
        db,
        cipher,
        clock,
        facts=SmevFactIntake(intake, db, clock),
        routes=[AnswerReplies(db, clock)],
        max_bytes=settings.smev_max_bytes,
    )
    edge.answers = AnswersRelay(
        db,
        edge.outbound,
        clock,
        it_system=settings.smev_it_system,
        batch_size=settings.relay_batch_size,
        idle_sleep_s=settings.relay_idle_sleep_ms / 1000,
        max_backoff_s=settings.relay_max_backoff_s,
    )
    return edge
