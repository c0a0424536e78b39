"""Analytics as one process holds it: the pipeline that feeds its rollups from the module's cards and
ЛКО's responses (no personal data), the clients it reads them with, and its app (when this process
serves analytics); built by :func:`build_analytics` (called by ``posog.bootstrap``)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from posog.core.asgi import LateBoundApp
from posog.core.wiring import CommandRuntime, Job, Shared

if TYPE_CHECKING:
    import httpx

    from posog.analytics.rollups.pipeline import AnalyticsPipeline


class AnalyticsSystem:
    """Analytics' part of a process. ``module_http`` and ``lko_http`` read the module's and ЛКО's feeds
    with analytics' own key; analytics closes them (:meth:`aclose`)."""

    def __init__(
        self, shared: Shared, *, asgi: LateBoundApp, module_http: httpx.AsyncClient, lko_http: httpx.AsyncClient
    ) -> None:
        self.shared = shared
        self.asgi = asgi
        self.module_http = module_http
        self.lko_http = lko_http

    @cached_property
    def pipeline(self) -> AnalyticsPipeline:
        """The feed of the rollups (``posog worker analytics``, ``posog analytics …``)."""
        from posog.analytics.rollups.pipeline import AnalyticsPipeline
        from posog.lko.client import LkoClient
        from posog.module.client import ModuleClient

        s = self.shared.settings
        return AnalyticsPipeline(
            self.shared.db,
            self.shared.clock,
            ModuleClient(self.module_http),
            LkoClient(self.lko_http),
            overlap_s=s.analytics_feed_overlap_s,
            page_size=s.analytics_page_size,
            batch_items=s.analytics_batch_items,
            poll_interval_s=s.analytics_poll_interval_s,
        )

    def workers(self) -> dict[str, Job]:
        """Analytics' workers by their ``posog worker`` names."""
        return {"analytics": lambda: self.pipeline.run()}

    async def aclose(self) -> None:
        for http in (self.module_http, self.lko_http):
            await http.aclose()


def build_analytics(
    shared: Shared, *, asgi: LateBoundApp, module_http: httpx.AsyncClient, lko_http: httpx.AsyncClient
) -> AnalyticsSystem:
    """Analytics' part; its app is bound to ``asgi`` when this process serves analytics (no
    ``POSOG_ANALYTICS_URL``), built now: ЛКО and the module call it in-process."""
    if shared.settings.analytics_url is None:
        from posog.analytics.api import create_app

        asgi.app = create_app(shared.db, shared.settings)
    return AnalyticsSystem(shared, asgi=asgi, module_http=module_http, lko_http=lko_http)


COMMANDS: CommandRuntime[AnalyticsSystem] = CommandRuntime("analytics")
"""What ``posog analytics …`` works with (provided by ``posog.cli``)."""
