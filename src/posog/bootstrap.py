"""Wiring: ``bootstrap(settings)`` builds the database, the bus, the clients and the use cases of a
process. Nothing is built at import time; tests build their own."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from posog.core.asgi import LateBoundApp
from posog.core.bus import BindingSpec, ExchangeSpec, InProcessBus, MessageBus, QueueSpec, Topology
from posog.core.clock import Clock, utcnow
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.emulators.epgu.inbox import EpguInbox
from posog.lko.client import LkoClient
from posog.module.client import ModuleClient
from posog.module.intake.consumer import IntakeConsumer
from posog.module.intake.handlers import IntakeHandler
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.release import WaitingCardsReleaser
from posog.module.notifications.relay import OutboxRelay
from posog.settings import Settings


def topology(settings: Settings) -> Topology:
    """The queues and exchanges of SPEC §3–§4 (see docs/asyncapi.yaml)."""
    return Topology(
        exchanges=(
            ExchangeSpec(settings.facts_dead_letter_exchange, "fanout"),
            ExchangeSpec(settings.geps_exchange, "direct"),
        ),
        queues=(
            QueueSpec(settings.facts_queue, dead_letter_exchange=settings.facts_dead_letter_exchange),
            QueueSpec(settings.facts_dead_letter_queue),
            QueueSpec(settings.geps_inbox_queue),
        ),
        bindings=(
            BindingSpec(settings.facts_dead_letter_queue, settings.facts_dead_letter_exchange, ""),
            BindingSpec(settings.geps_inbox_queue, settings.geps_exchange, settings.geps_routing_key),
        ),
    )


def make_bus(settings: Settings) -> MessageBus:
    if settings.amqp_url is None:
        return InProcessBus()
    from posog.core.rabbit import RabbitBus

    return RabbitBus(settings.amqp_url, max_backoff_s=settings.reconnect_max_backoff_s)


def make_cipher(settings: Settings) -> PiiCipher:
    assert settings.pii_active_key is not None
    assert settings.snils_hash_key is not None
    return PiiCipher.from_settings(
        {k: v.get_secret_value() for k, v in settings.pii_keys.items()},
        settings.pii_active_key,
        settings.snils_hash_key.get_secret_value(),
    )


def service_http(
    settings: Settings, *, caller: str, callee: str, url: str | None, app: LateBoundApp
) -> httpx.AsyncClient:
    """An HTTP client with which ``caller`` calls ``callee`` using its own service key: over the network
    when ``url`` is configured, in-process (the same code path) when embedded."""
    headers = {"Authorization": f"Bearer {settings.service_keys[caller].get_secret_value()}"}
    if url:
        return httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://{callee}.internal", headers=headers, timeout=10.0
    )


@dataclass
class System:
    """Everything one process needs, built once."""

    settings: Settings
    db: Database
    bus: MessageBus
    cipher: PiiCipher
    clock: Clock
    module_asgi: LateBoundApp
    lko_asgi: LateBoundApp
    lko_http: httpx.AsyncClient
    module_http_for_lko: httpx.AsyncClient
    catalog: QuestionnaireCatalog
    intake: IntakeHandler
    relay: OutboxRelay
    releaser: WaitingCardsReleaser
    inbox: EpguInbox
    extras: dict[str, object] = field(default_factory=dict)

    def intake_consumer(self) -> IntakeConsumer:
        s = self.settings
        return IntakeConsumer(
            self.bus,
            self.intake,
            queue=s.facts_queue,
            prefetch=s.consumer_prefetch,
            batch_size=s.intake_batch_size,
            batch_wait_s=s.intake_batch_wait_ms / 1000,
            max_backoff_s=s.reconnect_max_backoff_s,
        )

    async def start_bus(self) -> None:
        await self.bus.connect()
        await self.bus.declare(topology(self.settings))

    async def close(self) -> None:
        await self.lko_http.aclose()
        await self.module_http_for_lko.aclose()
        await self.bus.close()
        await self.db.dispose()


def bootstrap(settings: Settings, *, clock: Clock = utcnow, bus: MessageBus | None = None) -> System:
    """Build a process's object graph. Connects nothing yet: call ``start_bus()`` where a bus is used."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    cipher = make_cipher(settings)
    module_asgi, lko_asgi = LateBoundApp("module"), LateBoundApp("lko")
    lko_http = service_http(settings, caller="module", callee="lko", url=settings.lko_url, app=lko_asgi)
    module_http_for_lko = service_http(
        settings, caller="lko", callee="module", url=settings.module_url, app=module_asgi
    )
    catalog = QuestionnaireCatalog(LkoClient(lko_http), ttl_s=settings.questionnaire_cache_s)
    intake = IntakeHandler(
        db,
        catalog,
        cipher,
        clock,
        horizon_days=settings.fact_horizon_days,
        lkp_base_url=settings.lkp_base_url,
    )
    the_bus = bus if bus is not None else make_bus(settings)
    relay = OutboxRelay(
        db,
        the_bus,
        cipher,
        clock,
        exchange=settings.geps_exchange,
        routing_key=settings.geps_routing_key,
        batch_size=settings.relay_batch_size,
        idle_sleep_s=settings.relay_idle_sleep_ms / 1000,
        max_backoff_s=settings.relay_max_backoff_s,
    )
    releaser = WaitingCardsReleaser(db, catalog, cipher, clock, lkp_base_url=settings.lkp_base_url)
    inbox = EpguInbox(db, cipher, clock)
    # The systems served by this process (all of them when embedded; the network is used for the rest).
    if settings.lko_url is None:
        from posog.lko.api import create_app as create_lko_app

        lko_asgi.app = create_lko_app(db, settings, module=ModuleClient(module_http_for_lko))
    if settings.module_url is None:
        from posog.module.api import create_app as create_module_app

        module_asgi.app = create_module_app(db, releaser, settings)
    return System(
        settings=settings,
        db=db,
        bus=the_bus,
        cipher=cipher,
        clock=clock,
        module_asgi=module_asgi,
        lko_asgi=lko_asgi,
        lko_http=lko_http,
        module_http_for_lko=module_http_for_lko,
        catalog=catalog,
        intake=intake,
        relay=relay,
        releaser=releaser,
        inbox=inbox,
    )
