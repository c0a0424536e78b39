"""Rate limiting behind a small port: how many counted events a key (a client) may cause in a sliding
window. The in-memory implementation serves one process; a shared store (e.g. Redis: one sorted set
per key — ``ZREMRANGEBYSCORE`` the expired, ``ZADD`` the event, ``ZCARD``, ``EXPIRE`` in one
``MULTI``) gives several processes one budget per client behind the same protocol."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
    """Counts events per key over a sliding window. Async, so that a networked store fits."""

    async def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` is within its budget again, or None when it is within it now."""
        ...

    async def hit(self, key: str) -> None:
        """Count one event for ``key``."""
        ...


class InMemoryRateLimiter:
    """A sliding-window log per key: at most ``limit`` events in any ``window_s`` seconds.

    Memory is bounded: a key keeps only its last ``limit`` events (enough to decide), and at most
    ``max_keys`` keys are kept — the least recently active are forgotten first."""

    def __init__(
        self,
        limit: int,
        *,
        window_s: float = 60.0,
        max_keys: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("a rate limit allows at least one event")
        self._limit = limit
        self._window = window_s
        self._max_keys = max_keys
        self._now = monotonic
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    async def retry_after(self, key: str) -> float | None:
        events = self._events.get(key)
        if events is None:
            return None
        now = self._now()
        self._forget_before(events, now - self._window)
        if not events:
            del self._events[key]
            return None
        if len(events) < self._limit:
            return None
        # The oldest of the last ``limit`` events leaving the window makes room for one more.
        return max(events[0] + self._window - now, 0.001)

    async def hit(self, key: str) -> None:
        now = self._now()
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque(maxlen=self._limit)
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)

    @staticmethod
    def _forget_before(events: deque[float], horizon: float) -> None:
        while events and events[0] <= horizon:
            events.popleft()


def retry_after_header(seconds: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait of ``seconds``."""
    return str(max(1, math.ceil(seconds)))
