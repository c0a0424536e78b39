"""The module's view of ЛКО's questionnaires and organisation types, through ЛКО's client, with a
short cache: intake asks for the same (type, level) thousands of times a second."""

from __future__ import annotations

import time
from collections.abc import Callable

from posog.lko.client import LkoClient
from posog.lko.contracts import QuestionnaireDocument, SurveyLevel


class QuestionnaireCatalog:
    def __init__(self, lko: LkoClient, *, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lko = lko
        self._ttl = ttl_s
        self._now = monotonic
        self._active: dict[tuple[str, str], tuple[float, QuestionnaireDocument | None]] = {}
        self._versions: dict[tuple[str, int], QuestionnaireDocument] = {}
        self._types: tuple[float, frozenset[str]] | None = None
        self._collecting: dict[str, tuple[float, bool]] = {}

    async def active(self, type_code: str, level: SurveyLevel) -> QuestionnaireDocument | None:
        """The active questionnaire for (type, level), at most ``ttl_s`` old."""
        key = (type_code, level)
        cached = self._active.get(key)
        if cached is not None and self._now() - cached[0] < self._ttl:
            return cached[1]
        document = await self._lko.active_questionnaire(type_code, level)
        self._active[key] = (self._now(), document)
        if document is not None:
            self._versions[(document.id, document.version)] = document
        return document

    async def version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
        """An immutable version: cached for good once seen."""
        key = (questionnaire_id, version)
        if key in self._versions:
            return self._versions[key]
        document = await self._lko.questionnaire_version(questionnaire_id, version)
        if document is not None:
            self._versions[key] = document
        return document

    async def collecting(self, questionnaire_id: str) -> bool:
        """Whether the questionnaire still collects answers (false once withdrawn in ЛКО, or unknown
        there), at most ``ttl_s`` old. Its versions stay readable either way."""
        cached = self._collecting.get(questionnaire_id)
        if cached is not None and self._now() - cached[0] < self._ttl:
            return cached[1]
        state = await self._lko.questionnaire_state(questionnaire_id)
        collecting = state is not None and state.collecting
        self._collecting[questionnaire_id] = (self._now(), collecting)
        return collecting

    async def known_types(self) -> frozenset[str]:
        if self._types is not None and self._now() - self._types[0] < self._ttl:
            return self._types[1]
        codes = frozenset(t.code for t in await self._lko.org_types() if t.active)
        self._types = (self._now(), codes)
        return codes

    def forget(self, type_code: str, level: str) -> None:
        """Drop the cached answer for (type, level), e.g. when ЛКО announces a publication."""
        self._active.pop((type_code, level), None)
