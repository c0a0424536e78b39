"""The analytics job: poll both feeds every few seconds (``posog worker analytics``), and the two
rebuilds of ``posog analytics rebuild`` — from the stored items, or from the sources all over again.
Either gives exactly the tables the incremental path keeps (the tests hold them to it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from posog.analytics.rollups.consumer import FeedConsumer, PollResult, ensure_cursors, mark_changed
from posog.analytics.rollups.items import Deltas
from posog.analytics.rollups.model import (
    SOURCES,
    CardItem,
    FeedCursor,
    Organization,
    ResponseItem,
)
from posog.analytics.rollups.rebuild import rebuild_rollups_in_parallel
from posog.analytics.rollups.repository import ROLLUP_MODELS, lock_cursor, replace_rollups
from posog.analytics.rollups.sources import (
    CardsFeed,
    CardsSource,
    ResponsesFeed,
    ResponsesSource,
    stored_card_contribution,
    stored_response_contribution,
)
from posog.core.clock import Clock
from posog.core.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RebuildResult:
    cards: int
    responses: int
    rollups: int
    criterion_rollups: int


class AnalyticsPipeline:
    """Feeds in, rollups out."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        cards: CardsFeed,
        responses: ResponsesFeed,
        *,
        overlap_s: float,
        page_size: int,
        poll_interval_s: float,
        batch_items: int = 1,
    ) -> None:
        self._db = db
        self._clock = clock
        self._consumer = FeedConsumer(db, clock, overlap_s=overlap_s, page_size=page_size, batch_items=batch_items)
        self._cards = CardsSource(cards)
        self._responses = ResponsesSource(responses)
        # Where the rebuild sums: set-based in PostgreSQL itself (lanes of asyncpg connections), or here.
        self._rebuild = self._rebuild_in_database if db.on_asyncpg else self._rebuild_here
        self._poll_interval_s = poll_interval_s

    async def poll_once(self) -> list[PollResult]:
        """Read both feeds to their ends, once, both at the same time (each under its own cursor's lock;
        rollup rows are written in grain order by both, so they wait for each other, never deadlock).
        Raises when a source cannot be read — the first failure, after the other feed was stopped
        (nothing is lost: the next poll starts again from the safe cursors)."""
        polls = [
            asyncio.ensure_future(self._consumer.poll(self._cards)),
            asyncio.ensure_future(self._consumer.poll(self._responses)),
        ]
        try:
            await asyncio.wait(polls, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for poll in polls:
                poll.cancel()
            await asyncio.wait(polls)
        for poll in polls:
            if not poll.cancelled() and (error := poll.exception()) is not None:
                raise error
        return [poll.result() for poll in polls]

    async def run(self) -> None:
        """Poll until cancelled; a source that is down is retried at the next interval."""
        log.info("analytics.worker_started", interval_s=self._poll_interval_s)
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a source or the database away: keep going, never crash the worker
                log.warning("analytics.poll_failed", error=exc.__class__.__name__, detail=str(exc)[:200])
            await asyncio.sleep(self._poll_interval_s)

    async def rebuild(self) -> RebuildResult:
        """Recompute every rollup from the stored cards and responses; the new rollups become visible at
        once, in one commit (the feeds' appliers wait on the cursors' locks meanwhile). On PostgreSQL the
        database does it, set-based, on two more connections of their own, while readers go on reading
        the old rollups (:mod:`~posog.analytics.rollups.rebuild`); elsewhere the items are summed here
        with the incremental path's own arithmetic, in one transaction. Both write the same rows."""
        result = await self._rebuild()
        log.info("analytics.rebuilt", **result.__dict__)
        return result

    async def _rebuild_in_database(self) -> RebuildResult:
        lanes = create_async_engine(self._db.engine.url, poolclass=NullPool)
        try:
            async with self._db.uow() as uow:
                session = uow.session
                await ensure_cursors(session, SOURCES, self._clock())
                await self._lock_and_mark(session)
                counts = await rebuild_rollups_in_parallel(lanes, session)
                await uow.commit()
        finally:
            await lanes.dispose()
        return RebuildResult(**counts)

    async def _rebuild_here(self) -> RebuildResult:
        async with self._db.uow() as uow:
            session = uow.session
            await ensure_cursors(session, SOURCES, self._clock())
            await self._lock_and_mark(session)
            deltas = Deltas()
            cards = responses = 0
            async for card in await session.stream_scalars(select(CardItem).execution_options(yield_per=1000)):
                deltas.add(stored_card_contribution(card))
                cards += 1
            async for response in await session.stream_scalars(select(ResponseItem).execution_options(yield_per=1000)):
                deltas.add(stored_response_contribution(response))
                responses += 1
            await replace_rollups(session, deltas)
            await uow.commit()
        return RebuildResult(cards, responses, len(deltas.count_rows()), len(deltas.criterion_rows()))

    async def _lock_and_mark(self, session: AsyncSession) -> None:
        """Lock every cursor (the appliers wait) and record that the rollups change in this transaction."""
        for source in SOURCES:
            row = await lock_cursor(session, source)
            assert row is not None
            mark_changed(row, self._clock())

    async def repull(self) -> list[PollResult]:
        """Forget everything read (items, rollups, names, cursors) and read both feeds from the start."""
        async with self._db.uow() as uow:
            session = uow.session
            await ensure_cursors(session, SOURCES, self._clock())
            for source in SOURCES:
                await lock_cursor(session, source)
            for model in (*ROLLUP_MODELS, CardItem, ResponseItem, Organization):
                await session.execute(delete(model))
            await session.execute(delete(FeedCursor))
            await uow.commit()
        log.info("analytics.repull_started")
        return await self.poll_once()
