"""The analytics API keeps its answers per rollup version (``posog.analytics.cache``): asked again with
nothing changed, it answers without summing the rollups again; after the worker applies a change, or a
rebuild, the very next answer has it — an answer is never stale. Concurrent identical questions are
computed once; a failed or cancelled computation is not kept and does not fail the others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update

from posog.analytics.cache import AnswerCache
from posog.analytics.rollups.model import CardItem
from posog.bootstrap import System
from posog.core.appstate import need
from posog.module.links.model import SurveyLink
from tests.integration.analytics_fixture import analytics_stack, respond, tokens
from tests.integration.test_analytics_figures import build
from tests.support import BACKENDS

pytestmark = pytest.mark.integration


@contextmanager
def statements(system: System) -> Iterator[list[str]]:
    """The SQL statements the process sends to the database meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = system.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def sums_rollups(seen: list[str]) -> bool:
    return any("rollups" in statement and "sum(" in statement.lower() for statement in seen)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_answer_is_kept_until_the_rollups_change(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, analytics_min_responses=3) as system:
        await build(system)
        api = system.analytics_for_lko
        answers = need(system.analytics_asgi.app, AnswerCache)

        first = await api.summary()
        with statements(system) as seen:
            again = await api.summary()
            by_region = await api.ratings(level="region")
            by_region_again = await api.ratings(level="region")
        assert again == first
        assert by_region_again == by_region
        assert answers.hits == 2
        assert sum(sums_rollups([s]) for s in seen) == 1  # the first ratings only (one statement)

        # Another scope, period or grouping is another question.
        moscow = await api.summary(level="region", region_code="77")
        assert moscow.responses < first.responses

        # A poll that changes nothing keeps the answers; a poll that counts a new response does not.
        await system.analytics.pipeline.poll_once()
        with statements(system) as seen:
            assert await api.summary() == first
        assert not sums_rollups(seen)
        links = await tokens(system)
        async with system.db.uow() as uow:
            open_cards = set(
                await uow.session.scalars(select(SurveyLink.card_id).where(SurveyLink.state == "notified"))
            )
        await respond(system, next(links[card_id] for card_id in sorted(open_cards)), [5, 5, 5, 5, 5])
        await system.analytics.pipeline.poll_once()
        after = await api.summary()
        assert after.responses == first.responses + 1

        # A rebuild is a change too: the stored cards say 77's services are not notified any more.
        async with system.db.uow() as uow:
            await uow.session.execute(update(CardItem).where(CardItem.region_code == "77").values(notified=False))
            await uow.commit()
        assert (await api.summary()).notified == after.notified  # the rollups have not changed yet
        await system.analytics.pipeline.rebuild()
        assert (await api.summary()).notified == after.notified - moscow.notified


async def test_concurrent_questions_are_computed_once() -> None:
    cache = AnswerCache(entries=2)
    calls = 0
    release = asyncio.Event()

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return f"answer {calls}"

    waiting = [asyncio.create_task(cache.get("country", ("v1",), compute)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["answer 1"] * 5
    assert calls == 1
    assert await cache.get("country", ("v1",), compute) == "answer 1"
    assert await cache.get("country", ("v2",), compute) == "answer 2"  # a new version: computed again
    # Bounded: the least recently used question goes first.
    await cache.get("region 77", ("v2",), compute)
    await cache.get("region 16", ("v2",), compute)
    assert await cache.get("country", ("v2",), compute) == "answer 5"
    assert calls == 5


async def test_a_failed_or_cancelled_computation_is_not_kept() -> None:
    cache = AnswerCache(entries=8)
    started = asyncio.Event()

    async def fails() -> str:
        await started.wait()
        raise RuntimeError("database away")

    async def works() -> str:
        return "answer"

    failing = [asyncio.create_task(cache.get("country", 1, fails)) for _ in range(3)]
    await asyncio.sleep(0)
    started.set()
    for outcome in await asyncio.gather(*failing, return_exceptions=True):
        assert isinstance(outcome, RuntimeError)
    assert await cache.get("country", 1, works) == "answer"

    hang = asyncio.Event()

    async def slow() -> str:
        await hang.wait()
        return "slow answer"

    leader = asyncio.create_task(cache.get("region", 1, slow))
    await asyncio.sleep(0)
    follower = asyncio.create_task(cache.get("region", 1, works))
    await asyncio.sleep(0)
    leader.cancel()  # the request computing it went away
    assert await follower == "answer"  # the one waiting computes it itself
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_no_cache_when_switched_off() -> None:
    cache = AnswerCache(entries=0)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert [await cache.get("country", 1, compute) for _ in range(3)] == [1, 2, 3]
