"""Wiring: ``bootstrap(settings)`` builds the database, the bus, the clients and the use cases of a
process. Nothing is built at import time; tests build their own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar, overload

import httpx

from posog.analytics.wiring import AnalyticsSystem, build_analytics
from posog.core.asgi import LateBoundApp
from posog.core.bus import BindingSpec, ExchangeSpec, InProcessBus, MessageBus, QueueSpec, Topology
from posog.core.clock import Clock, utcnow
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.core.wiring import ConfigurationError as ConfigurationError
from posog.core.wiring import Job, Shared
from posog.emulators.wiring import EmulatorsSystem, build_emulators
from posog.lko.wiring import LkoSystem, build_lko
from posog.lkp.wiring import LkpSystem, build_lkp
from posog.module.wiring import ModuleSystem, build_module
from posog.settings import Settings

if TYPE_CHECKING:
    from posog.module.notifications.replies import GepsReplyRoute

T = TypeVar("T")


def topology(settings: Settings) -> Topology:
    """The queues and exchanges of SPEC §3–§4 (see docs/asyncapi.yaml)."""
    from posog.module.intake.consumer import broker_delivery_limit

    return Topology(
        exchanges=(
            ExchangeSpec(settings.facts_dead_letter_exchange, "fanout"),
            ExchangeSpec(settings.geps_exchange, "direct"),
        ),
        queues=(
            QueueSpec(
                settings.facts_queue,
                dead_letter_exchange=settings.facts_dead_letter_exchange,
                delivery_limit=broker_delivery_limit(settings.facts_delivery_limit),
            ),
            QueueSpec(
                settings.facts_dead_letter_queue,
                message_ttl_ms=dead_letter_ttl_ms(settings),
                max_length_bytes=settings.facts_dead_letter_max_bytes,
            ),
            QueueSpec(settings.geps_inbox_queue),
        ),
        bindings=(
            BindingSpec(settings.facts_dead_letter_queue, settings.facts_dead_letter_exchange, ""),
            BindingSpec(settings.geps_inbox_queue, settings.geps_exchange, settings.geps_routing_key),
        ),
    )


def dead_letter_ttl_ms(settings: Settings) -> int:
    """Dead letters live as long as the rejected facts' payloads in the database: the retention (SPEC
    §10), but at least a day, so that an operator sees them even with a retention of 0."""
    return max(settings.pii_retention_days, 1) * 86_400_000


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
    key = settings.service_keys.get(caller)
    if key is None:
        raise ConfigurationError(f"POSOG_SERVICE_KEYS has no key for {caller!r}, which it needs to call {callee}")
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"}
    if url:
        return httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://{callee}.internal", headers=headers, timeout=10.0
    )


class _Via(Generic[T]):
    """A read-only shortcut from :class:`System` into one of its parts (``system.intake`` is
    ``system.module.intake``), for the tests and tools that reach into a process."""

    def __init__(self, get: Callable[[System], T]) -> None:
        self._get = get

    @overload
    def __get__(self, system: None, owner: type[System]) -> _Via[T]: ...

    @overload
    def __get__(self, system: System, owner: type[System]) -> T: ...

    def __get__(self, system: System | None, owner: type[System]) -> T | _Via[T]:
        return self if system is None else self._get(system)


@dataclass
class System:
    """Everything one process needs, built once: what the systems share, and each system's part —
    its use cases, workers, app and the clients it calls the others with (see each
    ``posog.<system>.wiring``)."""

    shared: Shared
    module: ModuleSystem
    lko: LkoSystem
    lkp: LkpSystem
    analytics: AnalyticsSystem
    emulators: EmulatorsSystem

    @property
    def settings(self) -> Settings:
        return self.shared.settings

    @property
    def db(self) -> Database:
        return self.shared.db

    @property
    def bus(self) -> MessageBus:
        return self.shared.bus

    @property
    def cipher(self) -> PiiCipher:
        return self.shared.cipher

    @property
    def clock(self) -> Clock:
        return self.shared.clock

    def workers(self) -> dict[str, Job]:
        """Every worker this process can run, by its ``posog worker`` name."""
        return {
            **self.module.workers(),
            **self.emulators.workers(),
            **self.analytics.workers(),
            **self.lko.workers(),
        }

    async def deliver_embedded(self) -> None:
        """In production the outbox worker delivers what a command committed. Embedded, nobody else
        will: relay the outbox now into the ЕПГУ inbox through the in-process bus, until it is empty
        and the inbox has committed what was sent (10 s at most)."""
        if not self.settings.embedded:
            return
        from posog.module.notifications.queries import sent_notifications

        await self.start_bus()
        inbox = self.emulators.inbox
        consuming = asyncio.create_task(self.emulators.workers()["epgu-inbox"]())
        try:
            while await self.module.relay.relay_once():
                pass
            async with self.db.uow() as uow:
                sent = await sent_notifications(uow.session)
            for _ in range(200):
                if await inbox.received() >= sent:
                    break
                await asyncio.sleep(0.05)
        finally:
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)

    async def start_bus(self) -> None:
        await self.bus.connect()
        await self.bus.declare(topology(self.settings))
        if self.module.smev_enabled:  # the СМЭВ adapter's queues (AMQP interface)
            smev_topology = self.module.smev.topology()
            if smev_topology is not None:
                await self.bus.declare(smev_topology)

    async def close(self) -> None:
        for part in (self.module, self.lko, self.lkp, self.analytics, self.emulators):
            await part.aclose()
        await self.bus.close()
        await self.db.dispose()

    # The apps (bound when this process serves the system, or made when first served).
    module_asgi = _Via(lambda s: s.module.asgi)
    lko_asgi = _Via(lambda s: s.lko.asgi)
    lkp_asgi = _Via(lambda s: s.lkp.asgi)
    analytics_asgi = _Via(lambda s: s.analytics.asgi)
    ias_asgi = _Via(lambda s: s.emulators.ias_asgi)
    # The clients each system calls the others with (named caller-less for the module's own).
    lko_http = _Via(lambda s: s.module.lko_http)
    analytics_http_for_module = _Via(lambda s: s.module.analytics_http)
    ias_http = _Via(lambda s: s.module.ias_http)
    module_http_for_lko = _Via(lambda s: s.lko.module_http)
    analytics_http_for_lko = _Via(lambda s: s.lko.analytics_http)
    module_http_for_lkp = _Via(lambda s: s.lkp.module_http)
    lko_http_for_lkp = _Via(lambda s: s.lkp.lko_http)
    module_http_for_analytics = _Via(lambda s: s.analytics.module_http)
    lko_http_for_analytics = _Via(lambda s: s.analytics.lko_http)
    analytics_for_module = _Via(lambda s: s.module.analytics)
    analytics_for_lko = _Via(lambda s: s.lko.analytics)
    # The module's use cases and workers, the ЕПГУ inbox.
    catalog = _Via(lambda s: s.module.catalog)
    intake = _Via(lambda s: s.module.intake)
    relay = _Via(lambda s: s.module.relay)
    releaser = _Via(lambda s: s.module.releaser)
    link_attempts = _Via(lambda s: s.module.link_attempts)
    intake_consumer = _Via(lambda s: s.module.intake_consumer)
    ias_exporter = _Via(lambda s: s.module.ias_exporter)
    ias_schedule = _Via(lambda s: s.module.ias_schedule)
    pii_purger = _Via(lambda s: s.module.pii_purger)
    inbox = _Via(lambda s: s.emulators.inbox)
    smev = _Via(lambda s: s.module.smev)
    smev_adapter = _Via(lambda s: s.emulators.smev_adapter)
    smev_adapter_asgi = _Via(lambda s: s.emulators.smev_adapter_asgi)
    epgu_smev = _Via(lambda s: s.emulators.epgu_smev)
    ias_channel = _Via(lambda s: s.module.ias_channel)
    ias_replies = _Via(lambda s: s.module.ias_replies)

    def geps_replies(self) -> GepsReplyRoute:
        """The ГЭПС feature's ReplyRoute (delivery statuses), for the СМЭВ dispatcher."""
        return self.module.geps_replies()


def ias_http(settings: Settings, emulator: LateBoundApp) -> httpx.AsyncClient:
    """How the module reaches ИАС МКГУ: over the network when ``POSOG_IAS_URL`` is set, else the
    built-in emulator in-process."""
    if settings.ias_url:
        return httpx.AsyncClient(base_url=settings.ias_url, timeout=30.0)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://ias.internal", timeout=30.0)


def bootstrap(settings: Settings, *, clock: Clock = utcnow, bus: MessageBus | None = None) -> System:
    """Build a process's object graph: each system's part by its builder, over the HTTP clients
    between them (in-process transports for the systems this process serves). Connects nothing yet:
    call ``start_bus()`` where a bus is used."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    cipher = make_cipher(settings)
    shared = Shared(
        settings=settings, db=db, bus=bus if bus is not None else make_bus(settings), cipher=cipher, clock=clock
    )
    apps = {name: LateBoundApp(name) for name in ("module", "lko", "analytics")}
    urls = {"module": settings.module_url, "lko": settings.lko_url, "analytics": settings.analytics_url}

    def http(caller: str, callee: str) -> httpx.AsyncClient:
        return service_http(settings, caller=caller, callee=callee, url=urls[callee], app=apps[callee])

    emulators = build_emulators(shared)
    lko = build_lko(
        shared, asgi=apps["lko"], module_http=http("lko", "module"), analytics_http=http("lko", "analytics")
    )
    module = build_module(
        shared,
        asgi=apps["module"],
        lko_http=http("module", "lko"),
        analytics_http=http("module", "analytics"),
        ias_http=ias_http(settings, emulators.ias_asgi),
        smev_adapter_asgi=emulators.smev_adapter_asgi,
    )
    lkp = build_lkp(shared, module_http=http("lkp", "module"), lko_http=http("lkp", "lko"))
    analytics = build_analytics(
        shared, asgi=apps["analytics"], module_http=http("analytics", "module"), lko_http=http("analytics", "lko")
    )
    return System(shared=shared, module=module, lko=lko, lkp=lkp, analytics=analytics, emulators=emulators)
