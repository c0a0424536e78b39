"""The module's questionnaire catalog asks ЛКО little: one small list of active versions per
``ttl_s`` whatever the number of (type, level) pairs intake sees, and each immutable version once —
while a publication or a withdrawal is still seen within ``ttl_s`` (at once after ЛКО's announcement)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from posog.lko.client import LkoError
from posog.lko.contracts import ActiveVersion, ActiveVersions, QuestionnaireDocument
from posog.lko.questionnaires.defaults import default_questionnaire_draft
from posog.module.links.catalog import QuestionnaireCatalog, version_key

TYPES = [f"type{n:03d}" for n in range(60)]
LEVELS = ("federal", "regional", "municipal")


def _document(questionnaire_id: str, version: int, type_code: str, level: str) -> QuestionnaireDocument:
    draft = default_questionnaire_draft()
    return QuestionnaireDocument(
        id=questionnaire_id,
        version=version,
        type_code=type_code,
        level=level,  # type: ignore[arg-type]
        title=draft.title,
        questions=draft.questions,
    )


class FakeLko:
    """ЛКО's questionnaires as the client sees them, counting each kind of request."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.active: dict[tuple[str, str], tuple[str, int]] = {
            (t, level): (f"q-{t}-{level}", 1) for t in TYPES for level in LEVELS
        }
        self.down = False

    async def active_versions(self) -> ActiveVersions:
        self.calls["active_versions"] += 1
        await asyncio.sleep(0)
        if self.down:
            raise LkoError("ЛКО unreachable: ConnectError")
        return ActiveVersions(
            items=[
                ActiveVersion(type_code=t, level=level, questionnaire_id=qid, version=v)  # type: ignore[arg-type]
                for (t, level), (qid, v) in self.active.items()
            ]
        )

    async def questionnaire_version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
        self.calls["questionnaire_version"] += 1
        await asyncio.sleep(0)
        for (t, level), (qid, _) in self.active.items():
            if qid == questionnaire_id:
                return _document(qid, version, t, level)
        return None

    def __getattr__(self, name: str) -> Any:  # anything else the catalog asked would be a new request kind
        raise AssertionError(f"the catalog asked ЛКО for {name}")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_intake_over_every_type_and_level_asks_one_list_per_ttl_and_each_version_once() -> None:
    lko, clock = FakeLko(), Clock()
    catalog = QuestionnaireCatalog(lko, ttl_s=5.0, monotonic=clock)  # type: ignore[arg-type]
    for _second in range(20):  # twenty seconds of intake: every pair, many times a second
        for _ in range(3):
            found = await asyncio.gather(*(catalog.active(t, level) for t in TYPES for level in LEVELS))  # type: ignore[arg-type]
            assert all(d is not None for d in found)
        clock.now += 1.0
        await asyncio.sleep(0)  # let a refresh started ahead finish
    assert lko.calls["questionnaire_version"] == len(TYPES) * len(LEVELS)  # each version once, ever
    assert lko.calls["active_versions"] <= 20 / (5.0 * 0.8) + 2  # once per (refreshed-ahead) ttl
    document = await catalog.active("type007", "regional")
    assert document is not None
    assert (document.id, document.version, document.type_code, document.level) == (
        "q-type007-regional",
        1,
        "type007",
        "regional",
    )
    assert await catalog.active("no-such-type", "federal") is None


async def test_a_publication_is_seen_within_the_ttl_and_at_once_after_the_announcement() -> None:
    lko, clock = FakeLko(), Clock()
    catalog = QuestionnaireCatalog(lko, ttl_s=5.0, monotonic=clock)  # type: ignore[arg-type]
    assert (await catalog.active("type001", "federal")).version == 1  # type: ignore[union-attr]
    lko.active[("type001", "federal")] = ("q-type001-federal", 2)
    clock.now += 1.0
    assert (await catalog.active("type001", "federal")).version == 1  # type: ignore[union-attr]  # cached
    clock.now += 5.0
    assert (await catalog.active("type001", "federal")).version == 2  # type: ignore[union-attr]

    lko.active[("type002", "federal")] = ("q-type002-federal", 2)
    catalog.forget("type002", "federal")  # ЛКО announced the publication
    assert (await catalog.active("type002", "federal")).version == 2  # type: ignore[union-attr]


async def test_a_withdrawal_stops_collection_and_the_open_versions_within_the_ttl() -> None:
    lko, clock = FakeLko(), Clock()
    catalog = QuestionnaireCatalog(lko, ttl_s=5.0, monotonic=clock)  # type: ignore[arg-type]
    assert catalog.open_versions() == {}  # nothing known without asking
    document = await catalog.active("type003", "municipal")
    assert document is not None
    assert await catalog.collecting(document.id)
    assert version_key(document.id, 1) in catalog.open_versions()

    del lko.active[("type003", "municipal")]  # withdrawn: no longer active, its versions stay readable
    clock.now += 5.0
    assert not await catalog.collecting(document.id)
    assert version_key(document.id, 1) not in catalog.open_versions()
    assert await catalog.active("type003", "municipal") is None
    assert await catalog.version(document.id, 1) == document  # still readable, from the cache
    assert not await catalog.collecting("never-published")


async def test_concurrent_misses_share_one_request_and_a_failure_reaches_every_caller() -> None:
    lko, clock = FakeLko(), Clock()
    catalog = QuestionnaireCatalog(lko, ttl_s=5.0, monotonic=clock)  # type: ignore[arg-type]
    await asyncio.gather(*(catalog.collecting("q-type000-federal") for _ in range(64)))
    assert lko.calls["active_versions"] == 1

    lko.down = True
    clock.now += 10.0
    results = await asyncio.gather(*(catalog.active("type000", "federal") for _ in range(8)), return_exceptions=True)
    assert all(isinstance(r, LkoError) for r in results)
    assert lko.calls["active_versions"] == 2
    assert catalog.open_versions() == {}  # an expired list opens nothing

    lko.down = False
    with pytest.raises(AssertionError, match="asked ЛКО for questionnaire_state"):
        await lko.questionnaire_state("q")  # the fake refuses what the catalog should not ask
    assert (await catalog.active("type000", "federal")) is not None
