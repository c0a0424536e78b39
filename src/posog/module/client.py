"""The HTTP client other systems use to call the module (ЛКО, ЛКП, analytics). In the embedded mode
it holds an in-process transport over the module's app, so the code path is the production one."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from posog.module.contracts import CardFeedPage, CompleteLink, LinkData, ReleaseResult, SurveyLevel


class ModuleError(Exception):
    """The module could not be reached or answered something unexpected (retry later)."""


class LinkRefused(Exception):
    """The module refused a link with one of the SPEC §6 codes; ``message`` is for the citizen."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


def _token_path(token: str) -> str:
    """``token`` as one path segment: whatever a citizen put in it (``/``, ``?``, ``#``, control or
    unpaired surrogate characters) reaches the module's look-up as a token, never as another URL."""
    return quote(token, safe="", errors="replace")


def _refusal(response: httpx.Response) -> LinkRefused | None:
    try:
        error = response.json()["error"]
        return LinkRefused(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return None


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

    async def resolve_link(self, token: str, *, client_id: str | None = None) -> LinkData:
        """The survey behind a link (SPEC §6); raises :class:`LinkRefused` with the SPEC code.
        ``client_id`` identifies the citizen's client for the module's rate limiting."""
        headers = {"X-Posog-Client": client_id} if client_id else {}
        try:
            response = await self._http.get(f"/api/v1/survey-links/{_token_path(token)}", headers=headers)
        except httpx.HTTPError as exc:
            raise ModuleError(f"module unreachable: {exc.__class__.__name__}") from exc
        if response.status_code == 200:
            return LinkData.model_validate_json(response.content)
        refusal = _refusal(response)
        if refusal is None or response.status_code >= 500:
            raise ModuleError(f"module answered {response.status_code} for a link")
        raise refusal

    async def complete_link(self, token: str, response_id: str) -> None:
        """Mark the link completed by ``response_id`` (idempotent); raises :class:`LinkRefused`."""
        try:
            response = await self._http.post(
                f"/api/v1/survey-links/{_token_path(token)}/complete",
                json=CompleteLink(response_id=response_id).model_dump(),
            )
        except httpx.HTTPError as exc:
            raise ModuleError(f"module unreachable: {exc.__class__.__name__}") from exc
        if response.status_code in (200, 204):
            return
        refusal = _refusal(response)
        if refusal is None or response.status_code >= 500:
            raise ModuleError(f"module answered {response.status_code} to a completion")
        raise refusal

    async def cards_feed(self, since: str | None = None, limit: int = 500) -> CardFeedPage:
        """One page of the cards feed (analytics): cards changed after the cursor ``since``, no personal
        data. Raises :class:`ModuleError` when the module cannot answer."""
        params: dict[str, str | int] = {"limit": limit}
        if since is not None:
            params["since"] = since
        try:
            response = await self._http.get("/api/v1/cards/feed", params=params)
        except httpx.HTTPError as exc:
            raise ModuleError(f"module unreachable: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise ModuleError(f"module answered {response.status_code} for the cards feed")
        return CardFeedPage.model_validate_json(response.content)
