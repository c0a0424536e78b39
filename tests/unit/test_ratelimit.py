"""The in-memory sliding-window limiter behind the module's link attempts."""

from __future__ import annotations

import pytest

from posog.core.ratelimit import InMemoryRateLimiter, RateLimiter, retry_after_header


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
