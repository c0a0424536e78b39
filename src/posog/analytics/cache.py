"""Answers of the analytics API kept per rollup version.

The rollups change only when the analytics worker applies a page that changes something, or a rebuild
runs; each records it on its source's cursor (``analytics_cursors.changed_at``, strictly increasing per
source) in the same transaction as the rollup rows. The cursors' ``changed_at`` together are the
rollups' *version*: an answer computed after reading version ``v`` is at least as new as ``v``, so it
may be given again for the same question for as long as the version is ``v`` — never stale. One small
query per request reads the version; a country-wide answer costs tens of milliseconds of aggregation.

Concurrent requests for the same question and version wait for one computation (single flight); an
error is not kept. The entries are bounded (least recently used first out)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.rollups.model import FeedCursor

T = TypeVar("T")


async def rollups_version(session: AsyncSession) -> tuple[Any, ...]:
    """The rollups' current version (see the module docstring)."""
    rows = await session.execute(select(FeedCursor.source, FeedCursor.changed_at).order_by(FeedCursor.source))
    return tuple((source, None if changed is None else changed.isoformat()) for source, changed in rows)


class AnswerCache:
    """At most ``entries`` answers, each kept with the version it was computed at."""

    def __init__(self, entries: int) -> None:
        self._capacity = entries
        self._answers: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._computing: dict[tuple[Hashable, Hashable], asyncio.Future[Any]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._capacity > 0

    async def get(self, key: Hashable, version: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """The answer to ``key`` at ``version``: kept, being computed by another request, or computed now."""
        if not self.enabled:
            return await compute()
        kept = self._answers.get(key)
        if kept is not None and kept[0] == version:
            self._answers.move_to_end(key)
            self.hits += 1
            answer: T = kept[1]
            return answer
        flight = (key, version)
        running = self._computing.get(flight)
        if running is not None:
            try:
                shared: T = await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if running.cancelled() and task is not None and not task.cancelling():
                    return await compute()  # the request computing it went away: not this one
                raise
            self.hits += 1
            return shared
        self.misses += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._computing[flight] = future
        try:
            answer = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: nobody else may be waiting
            raise
        finally:
            del self._computing[flight]
        future.set_result(answer)
        self._answers[key] = (version, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
        return answer
