"""Wiring: ``bootstrap(settings)`` builds the database, the bus, the clients and the use cases of a
process. Nothing is built at import time; tests build their own."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from posog.analytics.client import AnalyticsClient
from posog.analytics.rollups.pipeline import AnalyticsPipeline
from posog.core.asgi import LateBoundApp
from posog.core.bus import BindingSpec, ExchangeSpec, InProcessBus, MessageBus, QueueSpec, Topology
from posog.core.clock import Clock, utcnow
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.core.ratelimit import InMemoryRateLimiter, RedisRateLimiter
from posog.emulators.epgu.inbox import EpguInbox
from posog.emulators.ias.api import create_app as create_ias_app
from posog.emulators.ias.model import IasStore
from posog.lko.client import LkoClient
from posog.lko.state import lko_state
from posog.module.client import ModuleClient
from posog.module.ias_export.handlers import IasExporter, IasSchedule, IasSender
from posog.module.intake.consumer import IntakeConsumer, broker_delivery_limit
from posog.module.intake.handlers import IntakeHandler
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.release import WaitingCardsReleaser
from posog.module.notifications.relay import OutboxRelay
from posog.module.retention import PiiPurger
from posog.settings import Settings


def topology(settings: Settings) -> Topology:
    """The queues and exchanges of SPEC §3–§4 (see docs/asyncapi.yaml)."""
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


class ConfigurationError(Exception):
    """The configuration cannot work; the message names the setting."""


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
    lkp_asgi: LateBoundApp
    lko_http: httpx.AsyncClient
    module_http_for_lko: httpx.AsyncClient
    module_http_for_lkp: httpx.AsyncClient
    lko_http_for_lkp: httpx.AsyncClient
    catalog: QuestionnaireCatalog
    intake: IntakeHandler
    relay: OutboxRelay
    releaser: WaitingCardsReleaser
    inbox: EpguInbox
    # Analytics: its app, the clients it reads the module and ЛКО with, the job that feeds its rollups,
    # and the clients ЛКО and the module ask it with.
    analytics_asgi: LateBoundApp
    module_http_for_analytics: httpx.AsyncClient
    lko_http_for_analytics: httpx.AsyncClient
    analytics_http_for_lko: httpx.AsyncClient
    analytics_http_for_module: httpx.AsyncClient
    analytics: AnalyticsPipeline
    analytics_for_lko: AnalyticsClient
    analytics_for_module: AnalyticsClient
    # ИАС МКГУ (SPEC §9): the emulator's app (always built, served under /emulators/ias) and the client
    # the module sends batches with (over the network when POSOG_IAS_URL is set, else to the emulator).
    ias_asgi: LateBoundApp
    ias_http: httpx.AsyncClient
    extras: dict[str, object] = field(default_factory=dict)
    # The module's limiter of failed link look-ups (its Redis connections are closed with the system).
    link_attempts: InMemoryRateLimiter | RedisRateLimiter | None = None

    def intake_consumer(self) -> IntakeConsumer:
        s = self.settings
        return IntakeConsumer(
            self.bus,
            self.intake,
            queue=s.facts_queue,
            prefetch=s.consumer_prefetch,
            batch_size=s.intake_batch_size,
            batch_wait_s=s.intake_batch_wait_ms / 1000,
            dead_letter_exchange=s.facts_dead_letter_exchange,
            delivery_limit=s.facts_delivery_limit,
            max_backoff_s=s.reconnect_max_backoff_s,
        )

    def ias_exporter(self) -> IasExporter:
        """The module's ИАС export: analytics asked with the module's key, ЛКО's responses feed read with it."""
        s = self.settings
        return IasExporter(
            self.db,
            self.clock,
            self.analytics_for_module,
            LkoClient(self.lko_http),
            IasSender(self.ias_http),
            retry_base_s=s.ias_retry_base_s,
            retry_max_s=s.ias_retry_max_s,
            max_attempts=s.ias_max_attempts,
            lease_s=s.ias_lease_s,
        )

    def pii_purger(self) -> PiiPurger:
        """Erases personal data after the link's life plus the retention (SPEC §10)."""
        s = self.settings
        return PiiPurger(
            self.db,
            self.clock,
            retention_days=s.pii_retention_days,
            horizon_days=s.fact_horizon_days,
            bus=self.bus,
            dead_letter_queue=s.facts_dead_letter_queue,
        )

    def ias_schedule(self) -> IasSchedule:
        s = self.settings
        return IasSchedule(
            self.ias_exporter(),
            self.clock,
            kinds=s.ias_export_kinds,
            daily=s.ias_export_daily,
            monthly=s.ias_export_monthly,
            after_hour=s.ias_export_after_hour,
            interval_s=s.ias_export_interval_s,
        )

    async def start_bus(self) -> None:
        await self.bus.connect()
        await self.bus.declare(topology(self.settings))

    async def close(self) -> None:
        await self.lko_http.aclose()
        await self.module_http_for_lko.aclose()
        await self.module_http_for_lkp.aclose()
        await self.lko_http_for_lkp.aclose()
        for http in (
            self.module_http_for_analytics,
            self.lko_http_for_analytics,
            self.analytics_http_for_lko,
            self.analytics_http_for_module,
            self.ias_http,
        ):
            await http.aclose()
        if self.link_attempts is not None:
            await self.link_attempts.aclose()
        await self.bus.close()
        await self.db.dispose()


def bootstrap(settings: Settings, *, clock: Clock = utcnow, bus: MessageBus | None = None) -> System:
    """Build a process's object graph. Connects nothing yet: call ``start_bus()`` where a bus is used."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    cipher = make_cipher(settings)
    module_asgi, lko_asgi, lkp_asgi = LateBoundApp("module"), LateBoundApp("lko"), LateBoundApp("lkp")
    lko_http = service_http(settings, caller="module", callee="lko", url=settings.lko_url, app=lko_asgi)
    module_http_for_lko = service_http(
        settings, caller="lko", callee="module", url=settings.module_url, app=module_asgi
    )
    # ЛКП calls the module (link data) and ЛКО (answers) with its own key.
    module_http_for_lkp = service_http(
        settings, caller="lkp", callee="module", url=settings.module_url, app=module_asgi
    )
    lko_http_for_lkp = service_http(settings, caller="lkp", callee="lko", url=settings.lko_url, app=lko_asgi)
    catalog = QuestionnaireCatalog(LkoClient(lko_http), ttl_s=settings.questionnaire_cache_s)
    intake = IntakeHandler(
        db,
        catalog,
        cipher,
        clock,
        horizon_days=settings.fact_horizon_days,
        lkp_base_url=settings.lkp_base_url,
        max_fact_bytes=settings.fact_max_bytes,
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

        lko_asgi.app = create_lko_app(db, settings, module=ModuleClient(module_http_for_lko), clock=clock)
    link_attempts = None
    if settings.module_url is None:
        from posog.module.api import create_app as create_module_app
        from posog.module.api import make_link_attempts

        link_attempts = make_link_attempts(settings)  # shared through Redis when POSOG_REDIS_URL is set
        module_asgi.app = create_module_app(
            db, releaser, settings, catalog=catalog, clock=clock, link_attempts=link_attempts
        )
    # ЛКП keeps nothing durable: any process can serve it.
    from posog.lkp.app import create_app as create_lkp_app

    lkp_asgi.app = create_lkp_app(ModuleClient(module_http_for_lkp), LkoClient(lko_http_for_lkp), settings)
    # Analytics reads the module's cards and ЛКО's responses (no personal data); ЛКО and the module ask it.
    analytics_asgi = LateBoundApp("analytics")
    module_http_for_analytics = service_http(
        settings, caller="analytics", callee="module", url=settings.module_url, app=module_asgi
    )
    lko_http_for_analytics = service_http(
        settings, caller="analytics", callee="lko", url=settings.lko_url, app=lko_asgi
    )
    analytics_http_for_lko = service_http(
        settings, caller="lko", callee="analytics", url=settings.analytics_url, app=analytics_asgi
    )
    analytics_http_for_module = service_http(
        settings, caller="module", callee="analytics", url=settings.analytics_url, app=analytics_asgi
    )
    analytics = AnalyticsPipeline(
        db,
        clock,
        ModuleClient(module_http_for_analytics),
        LkoClient(lko_http_for_analytics),
        overlap_s=settings.analytics_feed_overlap_s,
        page_size=settings.analytics_page_size,
        batch_items=settings.analytics_batch_items,
        poll_interval_s=settings.analytics_poll_interval_s,
    )
    if settings.analytics_url is None:
        from posog.analytics.api import create_app as create_analytics_app

        analytics_asgi.app = create_analytics_app(db, settings)
    ias_asgi = LateBoundApp("ias")
    ias_asgi.app = create_ias_app(IasStore(db, clock))
    if settings.ias_url:
        ias_http = httpx.AsyncClient(base_url=settings.ias_url, timeout=30.0)
    else:
        ias_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=ias_asgi), base_url="http://ias.internal", timeout=30.0
        )
    analytics_for_lko = AnalyticsClient(analytics_http_for_lko)
    if lko_asgi.app is not None:
        lko_state(lko_asgi.app).analytics = analytics_for_lko  # the cabinet's reports ask analytics with it
    return System(
        settings=settings,
        db=db,
        bus=the_bus,
        cipher=cipher,
        clock=clock,
        module_asgi=module_asgi,
        lko_asgi=lko_asgi,
        lkp_asgi=lkp_asgi,
        lko_http=lko_http,
        module_http_for_lko=module_http_for_lko,
        module_http_for_lkp=module_http_for_lkp,
        lko_http_for_lkp=lko_http_for_lkp,
        catalog=catalog,
        intake=intake,
        relay=relay,
        releaser=releaser,
        inbox=inbox,
        analytics_asgi=analytics_asgi,
        module_http_for_analytics=module_http_for_analytics,
        lko_http_for_analytics=lko_http_for_analytics,
        analytics_http_for_lko=analytics_http_for_lko,
        analytics_http_for_module=analytics_http_for_module,
        analytics=analytics,
        analytics_for_lko=analytics_for_lko,
        analytics_for_module=AnalyticsClient(analytics_http_for_module),
        ias_asgi=ias_asgi,
        ias_http=ias_http,
        link_attempts=link_attempts,
    )
