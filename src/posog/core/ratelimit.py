"""Rate limiting behind a small port: how many counted events a key (a client) may cause in a sliding
window. :class:`InMemoryRateLimiter` serves one process (the embedded mode); :class:`RedisRateLimiter`
gives every process one budget per key through Redis (production, ``POSOG_REDIS_URL``);
:func:`make_rate_limiter` picks one from the settings."""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from posog.core.metrics import RATE_LIMIT_STORE_ERRORS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from posog.settings import Settings

log = structlog.get_logger(__name__)


class RateLimiter(Protocol):
    """Counts events per key over a sliding window. Async, so that a networked store fits.

    ``retry_after`` is asked before the work, ``hit`` after an event that counts; ``hit`` has the last
    word — concurrent requests (in one process, or in several sharing a store) may all have passed
    ``retry_after``, and the ones over the budget are refused by ``hit``."""

    async def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` is within its budget again, or None when it is within it now. A
        shared store may answer from what this process has learnt from it, without asking it."""
        ...

    async def hit(self, key: str) -> float | None:
        """Count one event for ``key``: None when it was within the budget (and is counted), else
        the seconds until it would be (the event is refused and not counted)."""
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
        return self._wait(events, now)

    async def hit(self, key: str) -> float | None:
        now = self._now()
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque(maxlen=self._limit)
        else:
            self._forget_before(events, now - self._window)
            wait = self._wait(events, now)
            if wait is not None:
                return wait
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)
        return None

    def _wait(self, events: deque[float], now: float) -> float | None:
        if len(events) < self._limit:
            return None
        # The oldest of the last ``limit`` events leaving the window makes room for one more.
        return max(events[0] + self._window - now, 0.001)

    @staticmethod
    def _forget_before(events: deque[float], horizon: float) -> None:
        while events and events[0] <= horizon:
            events.popleft()

    async def aclose(self) -> None:
        """Nothing to release (the same interface as :class:`RedisRateLimiter`)."""


# One sorted set per key, scored by the event's time in milliseconds. Atomic (a script runs alone):
# forget what left the window, refuse when the budget is spent (nothing added: a refused event does
# not count, as in memory), else add the event; the set expires with its newest event. Answers
# {admitted 0/1, events in the window, the oldest event's time}.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  count = count + 1
  admitted = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {admitted, count, oldest[2] or tostring(now)}
"""


class RedisRateLimiter:
    """The sliding-window log of :class:`InMemoryRateLimiter` in Redis, shared by every process that
    uses the same Redis and key prefix.

    Cost: ``hit`` is one round trip (an ``EVALSHA`` of the script above). ``retry_after`` is none: it
    answers from what this process learnt in its own ``hit`` calls — a key whose budget a ``hit``
    found spent is remembered until the oldest event leaves the window. Another process's events are
    therefore seen at this process's next ``hit`` for the key, which then refuses (the event is over
    the budget) — so a client that exhausted its budget on one process is refused its next counted
    event on any other. (Until then, an event that does not count, such as a valid link opening, is
    not refused there.)

    Redis down (an error or ``timeout_s``): the event is counted by an in-process
    :class:`InMemoryRateLimiter` instead — the limit holds per process, as without Redis — with a
    warning (once per outage) and ``posog_rate_limit_store_errors_total``; Redis is asked again
    ``retry_s`` later. Failing open to the per-process limit rather than closed: the limit is a second
    line against guessing tokens (they are 128-bit random), while a closed limiter would refuse every
    citizen who mistypes a link whenever Redis is down."""

    def __init__(
        self,
        client: Redis,
        limit: int,
        *,
        window_s: float = 60.0,
        prefix: str = "posog:",
        name: str = "ratelimit",
        retry_s: float = 5.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1:
            raise ValueError("a rate limit allows at least one event")
        self._client = client
        self._script = client.register_script(_SLIDING_WINDOW)
        self._limit = limit
        self._window = window_s
        self._window_ms = max(1, round(window_s * 1000))
        self._prefix = f"{prefix}{name}:"
        self._retry_s = retry_s
        self._max_keys = max_keys
        self._clock = clock
        # Keys this process knows to be over their budget, and until when (clock time).
        self._blocked: OrderedDict[str, float] = OrderedDict()
        self._fallback = InMemoryRateLimiter(limit, window_s=window_s, max_keys=max_keys, monotonic=clock)
        self._down_until = float("-inf")  # Redis is not asked before then
        self._degraded = False

    async def retry_after(self, key: str) -> float | None:
        wait = None
        until = self._blocked.get(key)
        if until is not None:
            wait = until - self._clock()
            if wait <= 0:
                del self._blocked[key]
                wait = None
        local = await self._fallback.retry_after(key)  # events counted while Redis was down
        if local is not None:
            wait = local if wait is None else max(wait, local)
        return wait

    async def hit(self, key: str) -> float | None:
        now = self._clock()
        if now < self._down_until:
            return await self._fallback.hit(key)
        now_ms = int(now * 1000)
        member = f"{now_ms}-{secrets.token_hex(6)}"  # unique: two events in one millisecond both count
        try:
            answer: Any = await self._script(
                keys=[self._prefix + key], args=[now_ms, self._window_ms, self._limit, member]
            )
            admitted, count, oldest = int(answer[0]), int(answer[1]), float(answer[2])
        except Exception as exc:  # any failure of the store: count in this process instead
            self._store_failed(exc, now)
            return await self._fallback.hit(key)
        if self._degraded:
            self._degraded = False
            log.info("ratelimit.store_recovered", store="redis", limiter=self._prefix)
        if count < self._limit:
            return None
        # Concurrent hits stamp their own times: the oldest event may be a few ms newer than this one.
        wait = min(max((oldest + self._window_ms - now_ms) / 1000, 0.001), self._window)
        self._remember_blocked(key, now + wait)
        return None if admitted else wait

    def _remember_blocked(self, key: str, until: float) -> None:
        self._blocked[key] = until
        self._blocked.move_to_end(key)
        while len(self._blocked) > self._max_keys:
            self._blocked.popitem(last=False)

    def _store_failed(self, exc: Exception, now: float) -> None:
        RATE_LIMIT_STORE_ERRORS.labels("redis").inc()
        self._down_until = now + self._retry_s
        if not self._degraded:
            self._degraded = True
            log.warning(
                "ratelimit.store_unavailable",
                store="redis",
                limiter=self._prefix,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                fallback="per-process",
                retry_in_s=self._retry_s,
            )

    async def aclose(self) -> None:
        await self._client.aclose()


def make_rate_limiter(
    settings: Settings, *, name: str, limit: int, window_s: float
) -> InMemoryRateLimiter | RedisRateLimiter:
    """A limiter shared through Redis when ``POSOG_REDIS_URL`` is set, else one of this process."""
    if not settings.redis_url:
        return InMemoryRateLimiter(limit, window_s=window_s)
    from redis.asyncio import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),  # no retries: a failure falls back at once (see RedisRateLimiter)
        health_check_interval=30,
    )
    return RedisRateLimiter(
        client,
        limit,
        window_s=window_s,
        prefix=settings.redis_key_prefix,
        name=name,
        retry_s=settings.redis_retry_after_s,
    )


def retry_after_header(seconds: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait of ``seconds``."""
    return str(max(1, math.ceil(seconds)))
