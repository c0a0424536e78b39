"""The module's cards feed for analytics: every card once per change, in the order of its latest change
(of the card or of its link), with the link's progress; only analytics may read it; bad cursors are
refused in the envelope."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from posog.module.client import ModuleClient, ModuleError
from posog.module.contracts import CardFeedItem
from tests.integration.analytics_fixture import TODAY, Fixture, analytics_stack, ingest, notify_all, respond, tokens
from tests.support import BACKENDS, wait_for

pytestmark = pytest.mark.integration


async def read_all(feed: ModuleClient, since: str | None, limit: int) -> tuple[list[CardFeedItem], str | None]:
    items: list[CardFeedItem] = []
    while True:
        page = await feed.cards_feed(since, limit)
        items += page.items
        since = page.next_cursor
        if not page.has_more:
            return items, since


@pytest.mark.parametrize("backend", BACKENDS)
async def test_cards_reappear_in_the_feed_whenever_their_link_moves(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        feed = ModuleClient(system.module_http_for_analytics)
        fixture = Fixture.new(41)
        facts = [fixture.fact(org, TODAY - timedelta(days=day)) for org in "ABCD" for day in (0, 3, 8)]
        late = fixture.fact("A", TODAY - timedelta(days=40))
        waiting = fixture.fact("B", TODAY, level="regional")
        await ingest(system, [*facts, late, waiting])

        items, cursor = await read_all(feed, None, 5)
        assert len(items) == 14
        assert len({i.card_id for i in items}) == 14
        assert [i.updated_at for i in items] == sorted(i.updated_at for i in items)
        states = {i.card_id: i.link_state for i in items}
        assert states[late["card_id"]] == "late"
        assert states[waiting["card_id"]] == "waiting"  # no regional questionnaire for polyclinics
        assert {states[f["card_id"]] for f in facts} == {"issued"}
        assert not any(i.notified for i in items)
        assert (await feed.cards_feed(cursor, 5)).items == []

        # Notified: every linked card comes again, once, after the cursor.
        await notify_all(system)
        items, cursor = await read_all(feed, cursor, 4)
        assert sorted(i.card_id for i in items) == sorted(f["card_id"] for f in facts)
        assert all(i.notified and i.link_state == "notified" for i in items)

        # Opened (ЛКП resolves the link), then completed (a response through ЛКО).
        links = await tokens(system)
        first, second = facts[0]["card_id"], facts[1]["card_id"]
        await ModuleClient(system.module_http_for_lkp).resolve_link(links[first])
        items, cursor = await read_all(feed, cursor, 4)
        assert [(i.card_id, i.link_state, i.notified) for i in items] == [(first, "opened", True)]
        await respond(system, links[second], [5, 5, 5, 5, 5])
        items, cursor = await read_all(feed, cursor, 4)
        assert [(i.card_id, i.link_state, i.notified) for i in items] == [(second, "completed", True)]

        # From the beginning, every card is there once, with its latest state.
        everything, _ = await read_all(feed, None, 3)
        assert len(everything) == len({i.card_id for i in everything}) == 14
        assert {i.card_id: i.link_state for i in everything}[first] == "opened"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_feed_is_for_analytics_only_and_refuses_bad_cursors(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        http = system.module_http_for_analytics
        response = await http.get("/api/v1/cards/feed", params={"since": "not-a-cursor"})
        assert (response.status_code, response.json()["error"]["code"]) == (422, "bad_cursor")
        response = await http.get("/api/v1/cards/feed", params={"limit": 0})
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
        response = await system.module_http_for_lkp.get("/api/v1/cards/feed")
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=system.module_asgi), base_url="http://module"
        ) as anonymous:
            assert (await anonymous.get("/api/v1/cards/feed")).status_code == 401
        with pytest.raises(ModuleError):
            await ModuleClient(system.module_http_for_lkp).cards_feed()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_worker_polls_both_feeds_until_cancelled(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, analytics_poll_interval_s=0.05) as system:
        worker = asyncio.create_task(system.analytics.pipeline.run())
        try:
            fixture = Fixture.new(43)
            await ingest(system, [fixture.fact("C", TODAY - timedelta(days=2)) for _ in range(5)])
            await notify_all(system)
            links = await tokens(system)
            await respond(system, links[sorted(links)[0]], [4, 4, 4, 4, 4])

            async def counted() -> bool:
                summary = await system.analytics_for_module.summary()
                return (summary.services, summary.notified, summary.responses) == (5, 5, 1)

            await wait_for(counted, timeout=30, what="the analytics worker to count the new items")
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        assert worker.cancelled()
