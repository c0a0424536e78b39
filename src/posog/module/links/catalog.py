"""The module's view of ЛКО's questionnaires and organisation types, through ЛКО's client, with a
short cache: intake asks for the same (type, level) thousands of times a second, and every opened
link needs its pinned version and whether its questionnaire still collects answers.

What changes — which version is active for each (type, level), which questionnaires collect — comes
in one small list (``GET /questionnaires/active-versions``), asked again every ``ttl_s``; the
documents themselves are versions, which never change: each is fetched once and kept. (Asked per
(type, level), the intake benchmark's profiled run sent ЛКО 901 questions for the active questionnaire
in 18 s, ≈ 50 a second, growing with the pairs intake sees; asked as one list, 40 lists and each
version once.)

Concurrent misses of one entry share one request to ЛКО (single flight): when an entry expires under
load, the 64 requests that find it stale wait for one answer instead of sending 64 questions. And an
entry in use is refreshed ahead, in the background, during the last ``REFRESH_AHEAD`` of its life, so
that under steady traffic nobody waits for ЛКО at all; every answer is still at most ``ttl_s`` old."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from posog.lko.client import LkoClient
from posog.lko.contracts import QuestionnaireDocument, SurveyLevel

T = TypeVar("T")

REFRESH_AHEAD = 0.2  # share of ttl_s before expiry when a cached entry in use is refreshed in the background


def version_key(questionnaire_id: str, version: int) -> str:
    """How :meth:`QuestionnaireCatalog.open_versions` names a version."""
    return f"{questionnaire_id}:{version}"


@dataclass(frozen=True)
class _Index:
    """ЛКО's active versions at one moment: (type, level) → (questionnaire id, version); the
    questionnaires that collect answers (the active ones)."""

    active: Mapping[tuple[str, str], tuple[str, int]]
    collecting: frozenset[str]


class QuestionnaireCatalog:
    def __init__(self, lko: LkoClient, *, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lko = lko
        self._ttl = ttl_s
        self._now = monotonic
        self._index: tuple[float, _Index] | None = None
        self._versions: dict[tuple[str, int], QuestionnaireDocument] = {}
        self._types: tuple[float, frozenset[str]] | None = None
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        # open_versions(): the answer and until when (monotonic) it holds; None: recompute.
        self._open: tuple[float, Mapping[str, QuestionnaireDocument]] | None = None
        self._json: dict[tuple[str, int], tuple[QuestionnaireDocument, bytes]] = {}

    async def _once(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()`` in a task of its own, shared by every caller asking for ``key`` while it runs: a
        caller that gives up (is cancelled) does not cancel it for the others."""
        result: T = await asyncio.shield(self._start(key, fetch))
        return result

    def _start(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        return task

    def _age(self, cached_at: float, key: Hashable, fetch: Callable[[], Awaitable[Any]]) -> bool:
        """Whether an entry cached at ``cached_at`` may still be used; near its expiry, its refresh is
        started in the background (the caller does not wait for it)."""
        age = self._now() - cached_at
        if age >= self._ttl:
            return False
        if age >= self._ttl * (1 - REFRESH_AHEAD):
            self._start(key, fetch)
        return True

    def _settled(self, key: Hashable, task: asyncio.Future[Any]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # retrieved, even if every caller gave up waiting

    async def _current(self) -> _Index:
        """ЛКО's active versions, at most ``ttl_s`` old."""
        cached = self._index
        if cached is not None and self._age(cached[0], "index", self._fetch_index):
            return cached[1]
        return await self._once("index", self._fetch_index)

    async def _fetch_index(self) -> _Index:
        listed = await self._lko.active_versions()
        index = _Index(
            active={(item.type_code, item.level): (item.questionnaire_id, item.version) for item in listed.items},
            collecting=frozenset(item.questionnaire_id for item in listed.items),
        )
        self._index = (self._now(), index)
        self._open = None
        return index

    async def active(self, type_code: str, level: SurveyLevel) -> QuestionnaireDocument | None:
        """The active questionnaire for (type, level), at most ``ttl_s`` old."""
        entry = (await self._current()).active.get((type_code, level))
        if entry is None:
            return None
        return await self.version(*entry)

    async def version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
        """An immutable version: cached for good once seen."""
        key = (questionnaire_id, version)
        if key in self._versions:
            return self._versions[key]
        return await self._once(("version", key), lambda: self._fetch_version(questionnaire_id, version))

    async def _fetch_version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
        document = await self._lko.questionnaire_version(questionnaire_id, version)
        if document is not None:
            self._versions[(questionnaire_id, version)] = document
            self._open = None
        return document

    async def collecting(self, questionnaire_id: str) -> bool:
        """Whether the questionnaire still collects answers (false once withdrawn in ЛКО, or unknown
        there), at most ``ttl_s`` old. Its versions stay readable either way."""
        return questionnaire_id in (await self._current()).collecting

    def open_versions(self) -> Mapping[str, QuestionnaireDocument]:
        """The versions known, without asking ЛКО, to be answerable right now: cached, and their
        questionnaire known to collect answers within the last ``ttl_s`` — what :meth:`version` and
        :meth:`collecting` would answer without a request. Keyed by :func:`version_key`. No I/O."""
        now = self._now()
        if self._open is not None and now < self._open[0]:
            return self._open[1]
        found: dict[str, QuestionnaireDocument] = {}
        until = now
        cached = self._index
        if cached is not None and self._age(cached[0], "index", self._fetch_index):
            collecting = cached[1].collecting
            found = {
                version_key(questionnaire_id, version): document
                for (questionnaire_id, version), document in self._versions.items()
                if questionnaire_id in collecting
            }
            # Recomputed when the list needs refreshing ahead (or expires).
            until = cached[0] + self._ttl * (1 - REFRESH_AHEAD)
        self._open = (until if found else now, found)
        return found

    def document_json(self, document: QuestionnaireDocument) -> bytes:
        """``document`` as JSON (``model_dump_json``), serialised once per version: it is most of the
        body of every opened link, and versions are immutable."""
        key = (document.id, document.version)
        cached = self._json.get(key)
        if cached is not None and cached[0] is document:
            return cached[1]
        encoded = document.model_dump_json().encode()
        self._json[key] = (document, encoded)
        return encoded

    async def known_types(self) -> frozenset[str]:
        if self._types is not None and self._now() - self._types[0] < self._ttl:
            return self._types[1]
        return await self._once("types", self._fetch_types)

    async def _fetch_types(self) -> frozenset[str]:
        codes = frozenset(t.code for t in await self._lko.org_types() if t.active)
        self._types = (self._now(), codes)
        return codes

    def forget(self, type_code: str, level: str) -> None:
        """Forget what is active, e.g. when ЛКО announces a publication for (type, level): the next
        question asks ЛКО again; one already on its way is not shared with the callers that come after."""
        self._index = None
        self._open = None
        self._in_flight.pop("index", None)
