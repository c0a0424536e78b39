"""The module as one process holds it: its use cases, its workers and its app, built by
:func:`build_module` (called by ``posog.bootstrap``). Each piece is made when first used, and its
imports with it: a ``posog worker outbox`` never loads intake, the ИАС export or FastAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from posog.core.asgi import LateBoundApp
from posog.core.wiring import CommandRuntime, Job, Shared

if TYPE_CHECKING:
    import httpx

    from posog.analytics.client import AnalyticsClient
    from posog.core.ratelimit import InMemoryRateLimiter, RedisRateLimiter
    from posog.lko.client import LkoClient
    from posog.module.ias_export.channel import IasChannel
    from posog.module.ias_export.handlers import IasExporter, IasSchedule
    from posog.module.ias_export.replies import IasReplies
    from posog.module.intake.consumer import IntakeConsumer
    from posog.module.intake.handlers import IntakeHandler
    from posog.module.links.catalog import QuestionnaireCatalog
    from posog.module.links.release import WaitingCardsReleaser
    from posog.module.notifications.relay import OutboxRelay
    from posog.module.notifications.replies import GepsReplyRoute
    from posog.module.retention import PiiPurger
    from posog.module.smev.edge import SmevEdge
    from posog.module.smev.port import AdapterOutbound


class ModuleSystem:
    """The module's part of a process. ``lko_http`` and ``analytics_http`` are how the module calls ЛКО
    (questionnaires, responses) and analytics (the ИАС figures) with its own key; ``ias_http`` reaches
    ИАС МКГУ. The module closes them (:meth:`aclose`)."""

    def __init__(
        self,
        shared: Shared,
        *,
        asgi: LateBoundApp,
        lko_http: httpx.AsyncClient,
        analytics_http: httpx.AsyncClient,
        ias_http: httpx.AsyncClient,
        smev_adapter_asgi: LateBoundApp | None = None,
    ) -> None:
        self.shared = shared
        # The in-process СМЭВ adapter (the emulator's web service) for the web-service transport without
        # POSOG_SMEV_ADAPTER_URL.
        self.smev_adapter_asgi = smev_adapter_asgi
        self.asgi = asgi
        self.lko_http = lko_http
        self.analytics_http = analytics_http
        self.ias_http = ias_http
        # The limiter of failed link look-ups, when this process serves the module (closed with it).
        self.link_attempts: InMemoryRateLimiter | RedisRateLimiter | None = None

    @cached_property
    def lko(self) -> LkoClient:
        from posog.lko.client import LkoClient

        return LkoClient(self.lko_http)

    @cached_property
    def analytics(self) -> AnalyticsClient:
        from posog.analytics.client import AnalyticsClient

        return AnalyticsClient(self.analytics_http)

    @cached_property
    def catalog(self) -> QuestionnaireCatalog:
        from posog.module.links.catalog import QuestionnaireCatalog

        return QuestionnaireCatalog(self.lko, ttl_s=self.shared.settings.questionnaire_cache_s)

    @cached_property
    def intake(self) -> IntakeHandler:
        from posog.module.intake.handlers import IntakeHandler

        s = self.shared
        return IntakeHandler(
            s.db,
            self.catalog,
            s.cipher,
            s.clock,
            horizon_days=s.settings.fact_horizon_days,
            lkp_base_url=s.settings.lkp_base_url,
            max_fact_bytes=s.settings.fact_max_bytes,
        )

    @cached_property
    def relay(self) -> OutboxRelay:
        """The ГЭПС outbox relay (``posog worker outbox``)."""
        from posog.module.notifications.relay import OutboxRelay

        s, settings = self.shared, self.shared.settings
        relay = OutboxRelay(
            s.db,
            s.bus,
            s.cipher,
            s.clock,
            exchange=settings.geps_exchange,
            routing_key=settings.geps_routing_key,
            batch_size=settings.relay_batch_size,
            idle_sleep_s=settings.relay_idle_sleep_ms / 1000,
            max_backoff_s=settings.relay_max_backoff_s,
        )
        if self.smev_enabled and self.smev.outbound is not None:  # ГЭПС through the СМЭВ adapter
            relay.use_adapter(self.smev.outbound, settings.smev_it_system)
        return relay

    def geps_replies(self) -> GepsReplyRoute:
        """The ГЭПС feature's ReplyRoute: ЕПГУ's delivery statuses, for the СМЭВ dispatcher."""
        from posog.module.notifications.deliveries import GepsDeliveries
        from posog.module.notifications.mapping import PosogGepsMapping
        from posog.module.notifications.relay import BASE_BACKOFF_S
        from posog.module.notifications.replies import GepsReplyRoute

        s, settings = self.shared, self.shared.settings
        deliveries = GepsDeliveries(
            s.db,
            s.clock,
            max_attempts=settings.geps_max_attempts,
            retry_base_s=BASE_BACKOFF_S,
            retry_cap_s=settings.relay_max_backoff_s,
        )
        return GepsReplyRoute(deliveries, PosogGepsMapping())

    @cached_property
    def releaser(self) -> WaitingCardsReleaser:
        from posog.module.links.release import WaitingCardsReleaser

        s = self.shared
        return WaitingCardsReleaser(s.db, self.catalog, s.cipher, s.clock, lkp_base_url=s.settings.lkp_base_url)

    @cached_property
    def smev(self) -> SmevEdge:
        """The СМЭВ adapter edge (POSOG_SMEV_TRANSPORT): the outbound port every outgoing exchange takes,
        the dispatcher of inbound documents and its worker (``posog worker smev``), the answers relay."""
        from posog.module.smev.edge import build_smev

        s = self.shared
        edge = build_smev(
            s.settings, s.db, s.bus, s.cipher, s.clock, self.intake, embedded_adapter=self.smev_adapter_asgi
        )
        if edge.dispatcher is not None:  # the features' replies: ГЭПС delivery statuses, ИАС packets
            edge.dispatcher.register(self.geps_replies())
            edge.dispatcher.register(self.ias_replies(edge.outbound))
        return edge

    @property
    def smev_enabled(self) -> bool:
        return self.shared.settings.smev_transport != "none"

    def intake_consumer(self) -> IntakeConsumer:
        """The facts queue's consumer (``posog worker intake``)."""
        from posog.module.intake.consumer import IntakeConsumer

        s = self.shared.settings
        return IntakeConsumer(
            self.shared.bus,
            self.intake,
            queue=s.facts_queue,
            prefetch=s.consumer_prefetch,
            batch_size=s.intake_batch_size,
            batch_wait_s=s.intake_batch_wait_ms / 1000,
            dead_letter_exchange=s.facts_dead_letter_exchange,
            delivery_limit=s.facts_delivery_limit,
            max_backoff_s=s.reconnect_max_backoff_s,
        )

    def ias_exporter(self, outbound: AdapterOutbound | None = None) -> IasExporter:
        """The module's ИАС export: analytics asked with the module's key, ЛКО's responses feed read with it;
        RatesRequest packets over HTTP (``POSOG_SMEV_TRANSPORT=none``) or through the СМЭВ adapter
        (``outbound``, else the СМЭВ edge's)."""
        from posog.module.ias_export.handlers import IasExporter, IasForms, IasSender

        s = self.shared.settings
        assert s.ias_vendor_id is not None  # a development default, required in production
        assert s.ias_user_key is not None
        return IasExporter(
            self.shared.db,
            self.shared.clock,
            self.analytics,
            self.lko,
            IasSender(self.ias_http),
            channel=self.ias_channel(outbound),
            forms=IasForms(
                self.shared.db, self.shared.clock, service_type=s.ias_form_type, forms_file=s.ias_forms_file
            ),
            vendor_id=s.ias_vendor_id,
            user_key=s.ias_user_key.get_secret_value().encode(),
            forms_per_packet=s.ias_forms_per_packet,
            status_poll_s=s.ias_status_poll_s,
            reply_timeout_s=s.ias_reply_timeout_s,
            retry_base_s=s.ias_retry_base_s,
            retry_max_s=s.ias_retry_max_s,
            max_attempts=s.ias_max_attempts,
            lease_s=s.ias_lease_s,
        )

    def ias_channel(self, outbound: AdapterOutbound | None = None) -> IasChannel:
        """How RatesRequest/PacketsRequest reach ИАС МКГУ: over HTTP, or through the СМЭВ adapter."""
        from posog.core.wiring import ConfigurationError
        from posog.module.ias_export.channel import HttpChannel, SmevChannel

        settings = self.shared.settings
        if settings.smev_transport == "none":
            return HttpChannel(self.ias_http)
        found = outbound or self.smev.outbound
        if found is None:
            raise ConfigurationError("POSOG_SMEV_TRANSPORT is set but no СМЭВ adapter outbound was built for ИАС")
        return SmevChannel(found, settings.smev_it_system)

    def ias_replies(self, outbound: AdapterOutbound | None = None) -> IasReplies:
        """The ИАС feature's ReplyRoute (RatesResponse, PacketsResponse, rejects and errors from СМЭВ)."""
        from posog.module.ias_export.replies import IasReplies

        return IasReplies(self.ias_exporter(outbound))

    def ias_schedule(self) -> IasSchedule:
        """Yesterday's and last month's batches for ИАС МКГУ, and the pending retries (``posog worker ias-export``)."""
        from posog.module.ias_export.handlers import IasSchedule

        s = self.shared.settings
        return IasSchedule(
            self.ias_exporter(),
            self.shared.clock,
            kinds=s.ias_export_kinds,
            daily=s.ias_export_daily,
            monthly=s.ias_export_monthly,
            after_hour=s.ias_export_after_hour,
            interval_s=s.ias_export_interval_s,
        )

    def pii_purger(self) -> PiiPurger:
        """Erases personal data after the link's life plus the retention (SPEC §10)."""
        from posog.module.retention import PiiPurger

        s = self.shared.settings
        return PiiPurger(
            self.shared.db,
            self.shared.clock,
            retention_days=s.pii_retention_days,
            horizon_days=s.fact_horizon_days,
            bus=self.shared.bus,
            dead_letter_queue=s.facts_dead_letter_queue,
        )

    def workers(self) -> dict[str, Job]:
        """The module's workers by their ``posog worker`` names; each is built when it starts."""
        interval_s = self.shared.settings.pii_purge_interval_s
        return {
            "intake": lambda: self.intake_consumer().run(),
            "outbox": lambda: self.relay.run(),
            "ias-export": lambda: self.ias_schedule().run(),
            "pii-purge": lambda: self.pii_purger().run(interval_s),
            # The СМЭВ adapter, inbound: QueryResult documents (the AMQP in queue, or Get) to the dispatcher.
            "smev": lambda: self.smev.run(),
        }

    async def aclose(self) -> None:
        for http in (self.lko_http, self.analytics_http, self.ias_http):
            await http.aclose()
        if self.link_attempts is not None:
            await self.link_attempts.aclose()
        if "smev" in self.__dict__:  # built (cached_property)
            await self.smev.aclose()


def build_module(
    shared: Shared,
    *,
    asgi: LateBoundApp,
    lko_http: httpx.AsyncClient,
    analytics_http: httpx.AsyncClient,
    ias_http: httpx.AsyncClient,
    smev_adapter_asgi: LateBoundApp | None = None,
) -> ModuleSystem:
    """The module's part; its app is bound to ``asgi`` when this process serves the module (no
    ``POSOG_MODULE_URL``), built now: ЛКО and ЛКП call it in-process."""
    module = ModuleSystem(
        shared,
        asgi=asgi,
        lko_http=lko_http,
        analytics_http=analytics_http,
        ias_http=ias_http,
        smev_adapter_asgi=smev_adapter_asgi,
    )
    if shared.settings.module_url is None:
        from posog.module.api import create_app, make_link_attempts

        module.link_attempts = make_link_attempts(shared.settings)  # shared through Redis with POSOG_REDIS_URL
        asgi.app = create_app(
            shared.db,
            module.releaser,
            shared.settings,
            catalog=module.catalog,
            clock=shared.clock,
            link_attempts=module.link_attempts,
        )
    return module


@dataclass(frozen=True)
class ModuleCommands:
    """What the module's operator commands (``posog ingest``, ``posog facts``, ``posog export``,
    ``posog pii``) work with: the module's part, and ``deliver``, which in the embedded mode relays
    what a command committed to the ЕПГУ inbox (nobody else will) and in production does nothing (the
    outbox worker does it)."""

    module: ModuleSystem
    deliver: Callable[[], Awaitable[None]]


COMMANDS: CommandRuntime[ModuleCommands] = CommandRuntime("module")
