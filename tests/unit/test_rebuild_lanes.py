"""The rebuild's task runner: at most ``lanes`` tasks at once, none before the tasks it comes after, the
first failure cancels the rest; and its plan covers every shadow table with its indexes and key."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest

import posog.analytics.rollups.rebuild as rebuild
from posog.analytics.rollups.repository import ROLLUP_MODELS


class FakeSteps:
    """Stands in for ``_step``: each task sleeps for the time its first statement names."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.cancelled: list[str] = []
        self.running = 0
        self.most = 0

    async def __call__(self, _engine: Any, *sql: str, parameters: Any = None) -> str:
        name, seconds = sql[0].split(":")
        loop = asyncio.get_running_loop()
        self.started[name] = loop.time()
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(float(seconds))
            if name == self.fail:
                raise RuntimeError(f"{name} failed")
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running -= 1
        self.ended[name] = loop.time()
        return f"{name} done"


def task(name: str, seconds: float, *after: str) -> rebuild._Task:
    return rebuild._Task(name, (f"{name}:{seconds}",), after=after)


async def test_tasks_run_two_at_a_time_and_after_what_they_need(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = FakeSteps()
    monkeypatch.setattr(rebuild, "_step", steps)
    tasks = [
        task("half a", 0.05),
        task("half b", 0.08),
        task("pk", 0.03, "half a", "half b"),
        task("counts", 0.02),
        task("months", 0.01, "counts", "pk"),
    ]
    results = await rebuild._run_lanes(None, tasks)  # type: ignore[arg-type]
    assert results == {t.name: f"{t.name} done" for t in tasks}
    assert steps.most == 2
    for t in tasks:
        for before in t.after:
            assert steps.started[t.name] >= steps.ended[before], (t.name, before)
    # A free lane takes the first task that can run: the counts while the second half is still going.
    assert steps.started["counts"] < steps.ended["half b"]


async def test_the_first_failure_cancels_the_other_lane_and_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = FakeSteps(fail="counts")
    monkeypatch.setattr(rebuild, "_step", steps)
    tasks = [task("half a", 5), task("counts", 0.01), task("pk", 0.01, "half a")]
    with pytest.raises(RuntimeError, match="counts failed"):
        await asyncio.wait_for(rebuild._run_lanes(None, tasks), 2)  # type: ignore[arg-type]
    assert steps.cancelled == ["half a"]
    assert "pk" not in steps.started


async def test_tasks_that_can_never_run_are_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebuild, "_step", FakeSteps())
    with pytest.raises(RuntimeError, match="never run"):
        await asyncio.wait_for(rebuild._run_lanes(None, [task("a", 0, "missing")]), 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("split", [date(2026, 6, 1), None])
def test_the_plan_fills_indexes_and_keys_every_shadow_table(split: date | None) -> None:
    plan = rebuild._plan(rebuild._tables(), split)
    names = [t.name for t in plan]
    assert len(names) == len(set(names))
    position = {name: i for i, name in enumerate(names)}
    for t in plan:  # listed after what it needs, so the runner can always make progress
        assert all(position[before] < position[t.name] for before in t.after), t.name
    statements = " ".join(sql for t in plan for sql in t.sql)
    for model in ROLLUP_MODELS:
        table = model.__table__
        shadow = rebuild.shadow(table.name)
        assert f"INSERT INTO {shadow} " in statements
        assert f"PRIMARY KEY USING INDEX {rebuild.shadow(str(table.primary_key.name))}" in statements
        assert f"ANALYZE {shadow}" in statements
        for index in table.indexes:
            assert f"INDEX {rebuild.shadow(str(index.name))} ON {shadow} " in statements
    halves = [t for t in plan if t.name.startswith("criteria")]
    assert len(halves) == (1 if split is None else 2)
