"""ЛКО REST API: questionnaires (SPEC §7). Versions are immutable, so they are cacheable."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from posog.core.service_auth import require_service
from posog.lko.contracts import ErrorEnvelope, QuestionnaireDocument, SurveyLevel
from posog.lko.deps import API_ERRORS, UowDep
from posog.lko.questionnaires.queries import active_document, version_document

IMMUTABLE_CACHE = "public, max-age=86400, immutable"
_MAX_VERSION = 2**31 - 1  # the INTEGER column's range; beyond it nothing can exist
_TYPE_CODE_PATTERN = r"^[a-z0-9_\-]+$"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorEnvelope, "description": "Анкета не найдена"}}

router = APIRouter(responses=API_ERRORS, tags=["questionnaires"])


@router.get(
    "/questionnaires/active",
    response_model=QuestionnaireDocument,
    responses=_NOT_FOUND,
    dependencies=[Depends(require_service("questionnaires:read"))],
)
async def get_active_questionnaire(
    request: Request,
    uow: UowDep,
    type_code: Annotated[
        str,
        Query(min_length=1, max_length=40, pattern=_TYPE_CODE_PATTERN, description="Код типа организации"),
    ],
    level: Annotated[SurveyLevel, Query(description="Уровень опроса")],
) -> Response:
    """The active version of the questionnaire for (organisation type, level), or 404
    ``questionnaire_not_found``. It changes when a new version is published, so it may be cached
    only with revalidation."""
    document = await active_document(uow.session, type_code, level)
    if document is None:
        raise _questionnaire_not_found(f"Нет действующей анкеты для типа организации «{type_code}» и уровня «{level}»")
    return _document_response(request, document, cache_control="no-cache")


@router.get(
    "/questionnaires/{questionnaire_id}/versions/{version}",
    response_model=QuestionnaireDocument,
    responses=_NOT_FOUND,
    dependencies=[Depends(require_service("questionnaires:read"))],
)
async def get_questionnaire_version(request: Request, uow: UowDep, questionnaire_id: str, version: int) -> Response:
    """One published version. Versions never change, so it may be cached for a day."""
    canonical_id = _canonical_uuid(questionnaire_id)
    document = None
    if canonical_id is not None and 1 <= version <= _MAX_VERSION:
        document = await version_document(uow.session, canonical_id, version)
    if document is None:
        raise _questionnaire_not_found(f"Версия {version} анкеты {questionnaire_id[:64]} не найдена")
    return _document_response(request, document, cache_control=IMMUTABLE_CACHE)


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _questionnaire_not_found(message: str) -> HTTPException:
    return HTTPException(404, detail={"code": "questionnaire_not_found", "message": message})


def _document_response(request: Request, document: QuestionnaireDocument, *, cache_control: str) -> Response:
    body = document.model_dump_json(exclude_none=True).encode("utf-8")
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
