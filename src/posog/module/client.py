"""The HTTP client other systems use to call the module (ЛКО, ЛКП, analytics). In the embedded mode
it holds an in-process transport over the module's app, so the code path is the production one."""

from __future__ import annotations

import httpx

from posog.module.contracts import ReleaseResult, SurveyLevel


class ModuleError(Exception):
    """The module could not be reached or answered something unexpected (retry later)."""


class ModuleClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def release_waiting_cards(self, type_code: str, level: SurveyLevel) -> ReleaseResult:
        """Tell the module a questionnaire for (type, level) was published: waiting cards get links."""
        try:
            response = await self._http.post("/api/v1/cards/release", json={"type_code": type_code, "level": level})
        except httpx.HTTPError as exc:
            raise ModuleError(f"module unreachable: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise ModuleError(f"module answered {response.status_code} to a release")
        return ReleaseResult.model_validate_json(response.content)
