"""Reading a source's feed so that every item is counted exactly once, although the feed is read with
a cursor over a change timestamp and its writers commit out of order.

**The problem.** A feed orders items by the time a writer stamped them (a card's latest change, a
response's submission). A writer stamps an item at ``t`` and commits a little later; meanwhile another
writer may stamp at ``t' > t`` and commit first. A reader that saw ``t'`` and keeps its cursor there
never sees the item stamped ``t``: it is committed *behind* the cursor.

**Overlap.** The consumer never trusts the newest positions. Each stored cursor (``base_cursor``) is
*safe*: every item up to it has been applied. A poll that starts at the consumer's time ``s`` reads
from the safe cursor to the end of the feed, page by page. Any item stamped at or before ``s − lag``
(``lag`` = ``analytics_feed_overlap_s``) had committed before ``s`` — ``lag`` is chosen longer than any
writer's transaction plus the clock skew between hosts — so every page of this poll could see it. The
position after a page therefore becomes the new safe cursor when the greatest stamp of the items up to
it (the page's ``bound``, a running maximum) is at or before ``s − lag``; otherwise the cursor stays
where it was and the next poll re-reads those recent items. In steady state each poll re-reads about
``lag`` seconds of changes: the overlap window. The scheme needs from a feed only an opaque cursor,
items in stamp order and each item's stamp — the module's cards feed (``updated_at``) and ЛКО's
responses (``submitted_at``) alike.

**Idempotence.** Re-reading is harmless because applying is idempotent: items are upserted by their id
(``card_id``, response id) and the rollup delta of an item is computed against its stored previous
state (``new − old``; nothing when unchanged), in the same transaction as the stored state and the
cursor. A replayed page, an overlap re-read or a whole replay from the beginning changes nothing; a
card that moved on (notified…) moves its counts once. A page is applied under a lock on the source's
cursor row, so concurrent workers take turns instead of computing deltas from the same old state;
an item older than the stored one (a slow worker's stale page) is ignored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.rollups.model import FeedCursor
from posog.analytics.rollups.repository import lock_cursor
from posog.core.clock import Clock
from posog.core.db import Database

log = structlog.get_logger(__name__)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@dataclass(frozen=True)
class FeedPage(Generic[T]):
    """One page of a feed. ``next_cursor``: the position after its last item (None: the source gives
    none, the page will be read again). ``has_more``: None when the source does not say (then the
    pull ends at an empty page)."""

    items: Sequence[T]
    next_cursor: str | None
    has_more: bool | None = None


class FeedSource(Protocol[T]):
    """A feed analytics reads and how its items are applied."""

    name: str

    async def fetch(self, cursor: str | None, limit: int) -> FeedPage[T]:
        """One page after ``cursor`` (None: from the beginning)."""

    def stamp(self, item: T) -> datetime:
        """The time the feed orders ``item`` by."""

    async def prepare(self, items: Sequence[T]) -> None:
        """Network work the page needs before its transaction (no connection is held meanwhile)."""

    async def apply(self, session: AsyncSession, items: Sequence[T]) -> int:
        """Apply the items idempotently in ``session``'s transaction; returns how many changed anything."""


@dataclass(frozen=True)
class PollResult:
    source: str
    pages: int
    items: int
    changed: int


class FeedConsumer:
    """Polls sources with the overlap scheme of this module; one stored cursor per source."""

    def __init__(self, db: Database, clock: Clock, *, overlap_s: float, page_size: int, batch_items: int = 1) -> None:
        self._db = db
        self._clock = clock
        self._lag = timedelta(seconds=overlap_s)
        self._page_size = page_size
        self._batch_items = batch_items

    async def _start(self, source: str, now: datetime) -> FeedCursor:
        async with self._db.uow() as uow:
            row = await lock_cursor(uow.session, source)
            if row is None:
                row = _new_cursor(source, now)
                uow.session.add(row)
                await _commit_ignoring_race(uow.session)
                row = await lock_cursor(uow.session, source)
                assert row is not None
            return row

    async def _fetch(self, source: FeedSource[Any], cursor: str | None) -> FeedPage[Any]:
        page = await source.fetch(cursor, self._page_size)
        await source.prepare(page.items)
        return page

    async def poll(self, source: FeedSource[Any]) -> PollResult:
        """Read ``source`` from its safe cursor to the end of its feed, applying consecutive pages together
        up to ``batch_items`` items a transaction (a batch is one bigger page: its items deduplicated,
        their deltas summed before they are written — a month's rollup row is written once per batch
        rather than once per page). The next page is asked for while a batch is applied (the source
        answers meanwhile): reading it a moment earlier changes nothing the overlap does not already
        cover."""
        started = self._clock()
        state = await self._start(source.name, started)
        cursor, bound = state.base_cursor, state.base_bound
        horizon = started - self._lag
        pages = items = changed = 0
        pending: asyncio.Future[FeedPage[Any]] | None = asyncio.ensure_future(self._fetch(source, cursor))
        try:
            while pending is not None:
                batch: list[Any] = []
                safe: tuple[str, datetime] | None = None  # the last position of the batch that became safe
                while pending is not None and (not batch or len(batch) < self._batch_items):
                    page = await pending
                    pending = None
                    pages += 1
                    if page.items:
                        newest = max(source.stamp(item) for item in page.items)
                        bound = newest if bound is None else max(bound, newest)
                    batch.extend(page.items)
                    moved = page.next_cursor is not None and page.next_cursor != cursor
                    if moved and bound is not None and bound <= horizon:
                        assert page.next_cursor is not None
                        safe = (page.next_cursor, bound)
                    if page.items and moved and page.has_more is not False:
                        pending = asyncio.ensure_future(self._fetch(source, page.next_cursor))
                    cursor = page.next_cursor
                    if not page.items:
                        break
                async with self._db.uow() as uow:
                    row = await lock_cursor(uow.session, source.name)
                    assert row is not None
                    batch_changed = await source.apply(uow.session, batch)
                    changed += batch_changed
                    row.items_read += len(batch)
                    now = self._clock()
                    row.updated_at = now
                    if batch_changed:
                        mark_changed(row, now)
                    if safe is not None and (row.base_bound is None or row.base_bound <= safe[1]):
                        row.base_cursor, row.base_bound = safe
                    await uow.commit()
                items += len(batch)
        finally:
            if pending is not None:  # applying failed: the page read ahead is not wanted
                pending.cancel()
                pending.add_done_callback(_retrieve)
        async with self._db.uow() as uow:
            row = await lock_cursor(uow.session, source.name)
            assert row is not None
            row.last_poll_started_at = started
            row.last_poll_finished_at = self._clock()
            await uow.commit()
        if changed:
            log.info("analytics.feed_applied", source=source.name, pages=pages, items=items, changed=changed)
        return PollResult(source.name, pages, items, changed)


def mark_changed(row: FeedCursor, now: datetime) -> None:
    """Record on the (locked) cursor row that the rollups changed: ``changed_at`` moves forward even if
    this host's clock is behind the last writer's."""
    previous = row.changed_at
    row.changed_at = now if previous is None or now > previous else previous + timedelta(microseconds=1)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a failure of a page nobody wants any more: not "never retrieved"


def _new_cursor(source: str, now: datetime) -> FeedCursor:
    return FeedCursor(
        source=source,
        base_cursor=None,
        base_bound=None,
        last_poll_started_at=None,
        last_poll_finished_at=None,
        items_read=0,
        updated_at=now,
        changed_at=None,
    )


async def _commit_ignoring_race(session: AsyncSession) -> None:
    from sqlalchemy.exc import IntegrityError

    try:
        await session.commit()
    except IntegrityError:  # another worker created it first
        await session.rollback()


async def ensure_cursors(session: AsyncSession, sources: Sequence[str], now: datetime) -> None:
    """Create the missing cursor rows (at the beginning of their feeds)."""
    for source in sources:
        if await session.get(FeedCursor, source) is None:
            session.add(_new_cursor(source, now))
    await session.flush()
