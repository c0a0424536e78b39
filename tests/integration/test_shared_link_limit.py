"""The module's limit of failed link look-ups is one budget per client across every module process
(issue 13, B): the Redis limiter (sliding window in one Lua script), two module apps sharing it, what
happens when Redis is down, and whose address the budget belongs to (``X-Forwarded-For`` only from a
trusted proxy).

Every test uses a key prefix of its own, so tests never see each other's counts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from structlog.testing import capture_logs

from posog.core.ratelimit import RedisRateLimiter, make_rate_limiter
from posog.module.links.model import new_token
from posog.settings import Settings
from tests.integration.survey_support import issue_surveys
from tests.integration.test_link_fast_path import LINKS, Answer, call, module_app
from tests.support import stack

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_sliding_window_in_redis(redis_url: str, redis_prefix: str) -> None:
    clock = Clock()
    async with redis_client(redis_url) as client:
        limiter = RedisRateLimiter(client, 3, window_s=60, prefix=redis_prefix, name="t", clock=clock)
        for _ in range(3):
            assert await limiter.hit("guesser") is None
            clock.now += 10
        # Events at 0, 10, 20; now 30: the next is refused until the first leaves the window at 60.
        assert await limiter.hit("guesser") == pytest.approx(30)
        assert await limiter.retry_after("guesser") == pytest.approx(30)
        assert await limiter.hit("someone else") is None
        clock.now += 30.5
        assert await limiter.retry_after("guesser") is None
        assert await limiter.hit("guesser") is None, "the refused event was not counted"
        # One sorted set per key under the prefix, expiring with its newest event; nothing kept beyond it.
        key = f"{redis_prefix}t:guesser"
        assert await client.zcard(key) == 3
        assert 0 < await client.pttl(key) <= 60_000
        assert sorted(k.decode() for k in await client.keys(f"{redis_prefix}*")) == [
            f"{redis_prefix}t:guesser",
            f"{redis_prefix}t:someone else",
        ]
        await client.delete(*await client.keys(f"{redis_prefix}*"))


async def test_concurrent_hits_from_several_processes_never_exceed_the_budget(
    redis_url: str, redis_prefix: str
) -> None:
    """Two limiters (as two processes would have) and fifty hits at once: exactly the budget passes."""
    async with redis_client(redis_url) as first, redis_client(redis_url) as second:
        limiters = [RedisRateLimiter(c, 10, window_s=60, prefix=redis_prefix, name="c") for c in (first, second)]
        answers = await asyncio.gather(*(limiters[n % 2].hit("guesser") for n in range(50)))
        assert answers.count(None) == 10
        assert all(wait is not None and 0 < wait <= 60 for wait in answers if wait is not None)
        # Both now know the budget is spent without asking Redis again.
        assert all([await limiter.retry_after("guesser") is not None for limiter in limiters])
        await first.delete(*await first.keys(f"{redis_prefix}*"))


async def _attempts(app: Any, client: str, tokens: list[str]) -> list[Answer]:
    return [await call(app, LINKS + token, headers={"X-Posog-Client": client}) for token in tokens]


@pytest.mark.parametrize("fast_path", [True, False])
async def test_two_module_processes_share_one_budget(
    fast_path: bool, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    options = {"link_attempts_per_minute": 5, "redis_url": redis_url, "redis_key_prefix": redis_prefix}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    async with (
        stack("embedded", tmp_path / "a", **options) as system_a,
        stack("embedded", tmp_path / "b", **options) as system_b,
    ):
        (valid_a,) = await issue_surveys(system_a, 1, seed=1301)
        (valid_b,) = await issue_surveys(system_b, 1, seed=1302)
        one, other = module_app(system_a), module_app(system_b)
        one.link_fast_path = other.link_fast_path = fast_path
        citizen = "198.51.100.23"

        failed = await _attempts(one, citizen, [new_token() for _ in range(5)])
        assert [answer.status for answer in failed] == [404] * 5
        # The other process: the client's next failure there is over the shared budget.
        refused = (await _attempts(other, citizen, [new_token()]))[0]
        assert refused.status == 429
        assert b"too_many_requests" in refused.body
        assert 1 <= int(dict(refused.headers)[b"retry-after"]) <= 60
        # From then on both refuse even valid links to that client (or guessing would reveal them)...
        assert (await _attempts(other, citizen, [valid_b.token]))[0].status == 429
        assert (await _attempts(one, citizen, [valid_a.token]))[0].status == 429
        # ...while other clients are not affected on either.
        assert (await _attempts(other, "198.51.100.24", [valid_b.token]))[0].status == 200
        assert (await _attempts(one, "198.51.100.24", [new_token()]))[0].status == 404

    async with redis_client(redis_url) as client:
        keys = await client.keys(f"{redis_prefix}*")
        assert keys, "the budget was kept in Redis"
        await client.delete(*keys)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_with_redis_down_the_module_keeps_a_per_process_limit(tmp_path: Path) -> None:
    """Decided: fail open to the per-process limit (warned, counted), not closed — a closed limiter
    would refuse every citizen who mistypes a link while Redis is down, and the tokens (128-bit
    random) do not depend on the limit for their safety. Valid links are served throughout."""
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    errors = REGISTRY.get_sample_value("posog_rate_limit_store_errors_total", {"store": "redis"}) or 0.0
    async with stack("embedded", tmp_path, link_attempts_per_minute=3, redis_url=url) as system:
        (valid,) = await issue_surveys(system, 1, seed=1303)
        app = module_app(system)
        with capture_logs() as logs:
            answers = await _attempts(app, "203.0.113.9", [new_token() for _ in range(4)])
            fine = await _attempts(app, "203.0.113.10", [valid.token])
        assert [answer.status for answer in answers] == [404, 404, 404, 429]
        assert fine[0].status == 200
    warnings = [entry for entry in logs if entry["event"] == "ratelimit.store_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["fallback"] == "per-process"
    assert REGISTRY.get_sample_value("posog_rate_limit_store_errors_total", {"store": "redis"}) == errors + 1


@pytest.mark.parametrize("fast_path", [True, False])
async def test_the_peer_is_taken_from_x_forwarded_for_only_from_a_trusted_proxy(
    fast_path: bool, tmp_path: Path
) -> None:
    """Without ``X-Posog-Client`` the budget is the peer's; a forged ``X-Forwarded-For`` does not
    make a guesser a new client, while behind a trusted proxy each client has its own budget."""
    async with stack("embedded", tmp_path, link_attempts_per_minute=2, trusted_proxies=["10.0.0.0/24"]) as system:
        app = module_app(system)
        app.link_fast_path = fast_path

        async def attempt(peer: str, forwarded: str) -> int:
            answer = await call(app, LINKS + new_token(), headers={"X-Forwarded-For": forwarded}, peer=(peer, 1))
            return answer.status

        direct = [await attempt("198.51.100.9", f"192.0.2.{n}") for n in range(3)]
        assert direct == [404, 404, 429], "the header is ignored from an untrusted peer"
        rotating = [await attempt("10.0.0.5", f"6.6.6.6, 192.0.2.{n}") for n in range(3)]
        assert rotating == [404, 404, 404], "three clients behind the trusted proxy"
        same = [await attempt("10.0.0.5", f"7.7.7.{n}, 192.0.2.77") for n in range(3)]
        assert same == [404, 404, 429], "one client behind the proxy, whatever it prepends"


def test_the_limiter_follows_the_settings(redis_url: str) -> None:
    in_memory = make_rate_limiter(Settings(env="test", _env_file=None), name="x", limit=1, window_s=1)  # type: ignore[call-arg]
    assert not isinstance(in_memory, RedisRateLimiter)
    shared = make_rate_limiter(
        Settings(env="test", _env_file=None, redis_url=redis_url),  # type: ignore[call-arg]
        name="x",
        limit=1,
        window_s=1,
    )
    assert isinstance(shared, RedisRateLimiter)
