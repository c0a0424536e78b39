"""ЛКО as one process holds it: its app (when this process serves ЛКО), the clients it calls the
module and analytics with, its workers; built by :func:`build_lko` (called by ``posog.bootstrap``)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from posog.core.asgi import LateBoundApp
from posog.core.wiring import Job, Shared

if TYPE_CHECKING:
    import httpx

    from posog.analytics.client import AnalyticsClient
    from posog.lko.questionnaires.announcements import AnnouncementRelay
    from posog.lko.responses.handlers import CompletionRecovery
    from posog.module.client import ModuleClient


class LkoSystem:
    """ЛКО's part of a process. ``module_http`` and ``analytics_http`` are how ЛКО calls the module
    (announcements, completions) and analytics (the cabinet's reports) with its own key; ЛКО closes
    them (:meth:`aclose`)."""

    def __init__(
        self,
        shared: Shared,
        *,
        asgi: LateBoundApp,
        module_http: httpx.AsyncClient,
        analytics_http: httpx.AsyncClient,
    ) -> None:
        self.shared = shared
        self.asgi = asgi
        self.module_http = module_http
        self.analytics_http = analytics_http

    @cached_property
    def module(self) -> ModuleClient:
        from posog.module.client import ModuleClient

        return ModuleClient(self.module_http)

    @cached_property
    def analytics(self) -> AnalyticsClient:
        from posog.analytics.client import AnalyticsClient

        return AnalyticsClient(self.analytics_http)

    @cached_property
    def recovery(self) -> CompletionRecovery:
        """Completions the module missed (a crash, an unreachable module), re-sent: the ЛКО app's
        own when this process serves ЛКО, the worker's otherwise."""
        if self.asgi.app is not None:
            from posog.lko.state import lko_state

            served = lko_state(self.asgi.app).recovery
            if served is not None:
                return served
        from posog.lko.responses.handlers import CompletionRecovery

        return CompletionRecovery.from_settings(self.shared.db, self.module, self.shared.settings)

    @property
    def announcements(self) -> AnnouncementRelay | None:
        """The publication announcements the module missed, re-sent while this process serves ЛКО."""
        if self.asgi.app is None:
            return None
        from posog.lko.state import lko_state

        return lko_state(self.asgi.app).announcements

    def workers(self) -> dict[str, Job]:
        """ЛКО's workers by their ``posog worker`` names."""
        return {
            "lko-completions": lambda: self.recovery.run_forever(),
            # The publication announcements the module missed (ЛКО's servers re-send them as well).
            "lko-announcements": lambda: self.announcement_relay().run(self.shared.settings.announcement_retry_s),
        }

    def announcement_relay(self) -> AnnouncementRelay:
        """The relay of ``posog worker lko-announcements``, as configured (``POSOG_ANNOUNCEMENT_*``)."""
        from posog.lko.questionnaires.announcements import AnnouncementRelay

        s = self.shared
        return AnnouncementRelay.from_settings(s.db, self.module, s.settings, clock=s.clock)

    async def aclose(self) -> None:
        for http in (self.module_http, self.analytics_http):
            await http.aclose()


def build_lko(
    shared: Shared, *, asgi: LateBoundApp, module_http: httpx.AsyncClient, analytics_http: httpx.AsyncClient
) -> LkoSystem:
    """ЛКО's part; its app is bound to ``asgi`` when this process serves ЛКО (no ``POSOG_LKO_URL``),
    built now: the module calls it in-process."""
    lko = LkoSystem(shared, asgi=asgi, module_http=module_http, analytics_http=analytics_http)
    if shared.settings.lko_url is None:
        from posog.lko.api import create_app
        from posog.lko.state import lko_state

        app = create_app(shared.db, shared.settings, module=lko.module, clock=shared.clock)
        lko_state(app).analytics = lko.analytics  # the cabinet's reports ask analytics with it
        asgi.app = app
    return lko
