"""The HTTP client other systems use to talk to ЛКО. In the embedded mode it is given an
``httpx.ASGITransport`` over the ЛКО app, so the code path is the production one."""

from __future__ import annotations

import httpx

from posog.lko.contracts import (
    ActiveVersions,
    AnswerValue,
    OrgType,
    QuestionnaireDocument,
    QuestionnaireState,
    ResponsePage,
    StoredResponse,
    SurveyLevel,
)


class LkoError(Exception):
    """ЛКО could not be reached or answered something unexpected (retry later)."""


class ResponseRejected(Exception):
    """ЛКО refused a submission: ``code`` (e.g. ``validation_error``, ``survey_completed``), a Russian
    ``message`` for the citizen and, for invalid answers, a message per question id."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


class LkoClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _fetch(self, path: str, what: str, params: dict[str, str | int] | None, *, found: bool) -> httpx.Response:
        """``GET path``, translated: :class:`LkoError` when ЛКО cannot be reached or answers other than
        200 (or 404, when ``found`` is False: the caller reads that as "no such thing"). ``what`` names
        the request in the error."""
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise LkoError(f"ЛКО unreachable: {exc.__class__.__name__}") from exc
        if response.status_code != 200 and (found or response.status_code != 404):
            raise LkoError(f"ЛКО answered {response.status_code} for {what}")
        return response

    async def _get(self, path: str, what: str, *, params: dict[str, str | int] | None = None) -> httpx.Response:
        """``GET path``: its 200 answer (:class:`LkoError` otherwise)."""
        return await self._fetch(path, what, params, found=True)

    async def _find(self, path: str, what: str, *, params: dict[str, str | int] | None = None) -> httpx.Response | None:
        """``GET path``: its 200 answer, or None for a 404 (:class:`LkoError` otherwise)."""
        response = await self._fetch(path, what, params, found=False)
        return None if response.status_code == 404 else response

    async def active_questionnaire(self, type_code: str, level: SurveyLevel) -> QuestionnaireDocument | None:
        """The questionnaire currently active for (organisation type, survey level), or None."""
        response = await self._find(
            "/api/v1/questionnaires/active", "the active questionnaire", params={"type_code": type_code, "level": level}
        )
        return None if response is None else QuestionnaireDocument.model_validate_json(response.content)

    async def active_versions(self) -> ActiveVersions:
        """Every active questionnaire's (type, level) and version, without the documents."""
        response = await self._get("/api/v1/questionnaires/active-versions", "the active versions")
        return ActiveVersions.model_validate_json(response.content)

    async def questionnaire_version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
        """One immutable questionnaire version, or None if it does not exist."""
        response = await self._find(
            f"/api/v1/questionnaires/{questionnaire_id}/versions/{version}", "a questionnaire version"
        )
        return None if response is None else QuestionnaireDocument.model_validate_json(response.content)

    async def questionnaire_state(self, questionnaire_id: str) -> QuestionnaireState | None:
        """Whether a questionnaire still collects answers (withdrawn ones do not), or None if unknown."""
        response = await self._find(f"/api/v1/questionnaires/{questionnaire_id}/status", "a questionnaire status")
        return None if response is None else QuestionnaireState.model_validate_json(response.content)

    async def responses_feed(self, cursor: str | None = None, limit: int = 500) -> ResponsePage:
        """One page of stored responses (analytics' feed): those after the opaque ``cursor`` (none: from
        the first), with ``next_cursor`` for the next page. Raises :class:`LkoError` when ЛКО cannot answer."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._get("/api/v1/responses", "the responses feed", params=params)
        return ResponsePage.model_validate_json(response.content)

    async def org_types(self) -> list[OrgType]:
        """The organisation-type directory."""
        response = await self._get("/api/v1/org-types", "the organisation types")
        return [OrgType.model_validate(item) for item in response.json()["items"]]

    async def submit_response(
        self, token: str, idempotency_key: str, answers: dict[str, AnswerValue], *, client_id: str | None = None
    ) -> StoredResponse:
        """Store a citizen's answers (SPEC §7). The same idempotency key again returns the same stored
        response; raises :class:`ResponseRejected` when ЛКО refuses, :class:`LkoError` when unreachable."""
        try:
            response = await self._http.post(
                "/api/v1/responses",
                json={"token": token, "idempotency_key": idempotency_key, "answers": answers},
                # The citizen's address, so the module's per-client limits see the citizen, not ЛКП.
                headers={"X-Posog-Client": client_id} if client_id else {},
            )
        except httpx.HTTPError as exc:
            raise LkoError(f"ЛКО unreachable: {exc.__class__.__name__}") from exc
        if response.status_code in (200, 201):
            return StoredResponse.model_validate_json(response.content)
        try:
            body = response.json()
            error = body["error"]
            refusal = ResponseRejected(
                response.status_code, str(error["code"]), str(error["message"]), body.get("fields") or {}
            )
        except (ValueError, KeyError, TypeError):
            refusal = None
        if refusal is None or response.status_code >= 500:
            raise LkoError(f"ЛКО answered {response.status_code} to a submission")
        raise refusal
