"""The sliding-window limiters behind the module's link attempts: in memory, and Redis's fallback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
import redis.exceptions
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from posog.core.ratelimit import (
    InMemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
    retry_after_header,
)
from posog.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_refused_after_its_budget_until_the_oldest_event_leaves_the_window() -> None:
    clock = FakeClock()
    limiter: RateLimiter = InMemoryRateLimiter(3, window_s=60, monotonic=clock)
    for _ in range(3):
        assert await limiter.retry_after("guesser") is None
        await limiter.hit("guesser")
        clock.now += 10
    # Events at 1000, 1010, 1020; now 1030: the first leaves the window at 1060.
    assert await limiter.retry_after("guesser") == pytest.approx(30)
    assert await limiter.retry_after("someone else") is None
    clock.now = 1060.5
    assert await limiter.retry_after("guesser") is None
    await limiter.hit("guesser")
    assert await limiter.retry_after("guesser") == pytest.approx(9.5)  # 1010 + 60 - 1060.5


async def test_memory_stays_bounded() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(2, window_s=60, max_keys=100, monotonic=clock)
    for n in range(1000):
        for _ in range(5):
            await limiter.hit(f"client-{n}")
    assert len(limiter._events) == 100
    assert all(len(events) == 2 for events in limiter._events.values())
    assert await limiter.retry_after("client-999") is not None
    assert await limiter.retry_after("client-0") is None, "the least recently active were forgotten"


def test_retry_after_is_whole_seconds_of_at_least_one() -> None:
    assert retry_after_header(0.001) == "1"
    assert retry_after_header(29.2) == "30"
    assert retry_after_header(60) == "60"


def test_a_limit_allows_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least one"):
        InMemoryRateLimiter(0)


async def test_a_hit_over_the_budget_is_refused_and_not_counted() -> None:
    """Concurrent requests may all pass ``retry_after``; ``hit`` has the last word (issue 13)."""
    clock = FakeClock()
    limiter = InMemoryRateLimiter(2, window_s=60, monotonic=clock)
    assert await limiter.hit("guesser") is None
    clock.now += 5
    assert await limiter.hit("guesser") is None
    clock.now += 5
    assert await limiter.hit("guesser") == pytest.approx(50)  # the first event leaves at 1060
    clock.now = 1060.5
    assert await limiter.hit("guesser") is None, "the refused event was not counted"


# --- The Redis limiter's behaviour when Redis fails (the store itself is tested on a real Redis in
# tests/integration/test_shared_link_limit.py) ------------------------------------------------------


class FlakyRedis:
    """Stands in for ``redis.asyncio.Redis``: its script fails while ``down``, else counts like the
    Lua script does (the real script runs in the integration tests)."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0
        self.events: dict[str, list[int]] = {}

    def register_script(self, _script: str) -> Callable[..., Awaitable[list[Any]]]:
        async def run(keys: list[str], args: list[Any]) -> list[Any]:
            self.calls += 1
            if self.down:
                raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
            now, window, limit, _member = args
            events = [t for t in self.events.get(keys[0], []) if t > now - window]
            admitted = len(events) < limit
            if admitted:
                events.append(now)
            self.events[keys[0]] = events
            return [int(admitted), len(events), str(events[0])]

        return run

    async def aclose(self) -> None:
        return None


async def test_redis_down_falls_back_to_the_per_process_limit_with_a_warning_and_a_metric() -> None:
    clock = FakeClock()
    client = FlakyRedis()
    limiter = RedisRateLimiter(cast(Any, client), 3, window_s=60, retry_s=5, clock=clock)
    errors = REGISTRY.get_sample_value("posog_rate_limit_store_errors_total", {"store": "redis"}) or 0.0
    with capture_logs() as logs:
        answers = [await limiter.hit("guesser") for _ in range(4)]
    # Still limited (by this process alone), not open to everything.
    assert answers[:3] == [None, None, None]
    assert answers[3] == pytest.approx(60)
    assert await limiter.retry_after("guesser") == pytest.approx(60)
    assert await limiter.retry_after("someone else") is None
    warnings = [entry for entry in logs if entry["event"] == "ratelimit.store_unavailable"]
    assert len(warnings) == 1, "one warning per outage, not one per request"
    assert warnings[0]["log_level"] == "warning"
    assert "guesser" not in str(warnings[0]), "no client key (an address) in the log"
    assert client.calls == 1, "Redis is not asked again for retry_s after a failure"
    assert REGISTRY.get_sample_value("posog_rate_limit_store_errors_total", {"store": "redis"}) == errors + 1

    # Redis is back: asked again after retry_s, and the recovery is logged.
    client.down = False
    clock.now += 6
    with capture_logs() as logs:
        assert await limiter.hit("another") is None
    assert client.calls == 2
    assert [entry["event"] for entry in logs] == ["ratelimit.store_recovered"]


async def test_the_redis_limiter_remembers_a_spent_budget_without_asking_again() -> None:
    clock = FakeClock()
    client = FlakyRedis()
    client.down = False
    limiter = RedisRateLimiter(cast(Any, client), 2, window_s=60, clock=clock)
    assert await limiter.retry_after("guesser") is None
    assert await limiter.hit("guesser") is None
    clock.now += 10
    assert await limiter.hit("guesser") is None
    calls = client.calls
    # The budget is spent: known here until the first event leaves the window, with no round trip.
    assert await limiter.retry_after("guesser") == pytest.approx(50)
    clock.now += 50.5
    assert await limiter.retry_after("guesser") is None
    assert client.calls == calls


def test_without_redis_url_the_limiter_is_per_process() -> None:
    settings = Settings(env="test", _env_file=None)  # type: ignore[call-arg]
    assert isinstance(make_rate_limiter(settings, name="x", limit=3, window_s=60), InMemoryRateLimiter)
    with_redis = Settings(env="test", _env_file=None, redis_url="redis://127.0.0.1:1/0")  # type: ignore[call-arg]
    assert isinstance(make_rate_limiter(with_redis, name="x", limit=3, window_s=60), RedisRateLimiter)
