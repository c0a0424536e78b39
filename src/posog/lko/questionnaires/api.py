"""ЛКО REST API: questionnaires (SPEC §7). Versions are immutable, so they are cacheable."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from posog.core.http import error_response, error_responses, printable
from posog.core.service_auth import ServiceKeyFirstRoute, require_service
from posog.lko.contracts import ActiveVersions, ApiError, QuestionnaireDocument, QuestionnaireState, SurveyLevel
from posog.lko.deps import API_ERRORS, UowDep
from posog.lko.questionnaires.contracts import (
    DraftProblems,
    ProblemOut,
    PublicationOut,
    QuestionnaireDetailOut,
    QuestionnaireList,
    QuestionnaireSummaryOut,
    ReleaseOut,
)
from posog.lko.questionnaires.handlers import (
    CreateQuestionnaire,
    EditDraft,
    PublishQuestionnaire,
    QuestionnaireNotFound,
    QuestionnaireRefused,
    WithdrawQuestionnaire,
    create_questionnaire,
    edit_draft,
    publish_questionnaire,
    withdraw_questionnaire,
)
from posog.lko.questionnaires.model import QuestionnaireStatus
from posog.lko.questionnaires.queries import (
    QuestionnaireDetail,
    active_document,
    active_versions,
    list_questionnaires,
    questionnaire_detail,
    questionnaire_state,
    version_document,
)
from posog.lko.questionnaires.validation import DraftInvalid
from posog.lko.state import lko_state

IMMUTABLE_CACHE = "public, max-age=86400, immutable"
_MAX_VERSION = 2**31 - 1  # the INTEGER column's range; beyond it nothing can exist
_TYPE_CODE_PATTERN = r"^[a-z0-9_\-]+$"
_NOT_FOUND = error_responses(described={404: "Анкета не найдена"})
# A version answered to a matching If-None-Match.
_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Не изменилась (If-None-Match)"}}
# A request body that could not be read as JSON at all.
_BODY = error_responses(400)

router = APIRouter(responses=API_ERRORS, tags=["questionnaires"], route_class=ServiceKeyFirstRoute)


@router.get(
    "/questionnaires/active",
    response_model=QuestionnaireDocument,
    responses={**_NOT_FOUND, **_NOT_MODIFIED},
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
    "/questionnaires/active-versions",
    response_model=ActiveVersions,
    dependencies=[Depends(require_service("questionnaires:read"))],
)
async def get_active_versions(uow: UowDep, response: Response) -> ActiveVersions:
    """Every active questionnaire's (organisation type, level) and the version citizens get, without
    the documents (fetch each version once: versions never change). It changes when a questionnaire
    is published or withdrawn, so it may be cached only briefly."""
    response.headers["Cache-Control"] = "no-cache"
    return await active_versions(uow.session)


@router.get(
    "/questionnaires/{questionnaire_id}/versions/{version}",
    response_model=QuestionnaireDocument,
    responses={**_NOT_FOUND, **_NOT_MODIFIED},
    dependencies=[Depends(require_service("questionnaires:read"))],
)
async def get_questionnaire_version(request: Request, uow: UowDep, questionnaire_id: str, version: int) -> Response:
    """One published version. Versions never change, so it may be cached for a day."""
    canonical_id = _canonical_uuid(questionnaire_id)
    document = None
    if canonical_id is not None and 1 <= version <= _MAX_VERSION:
        document = await version_document(uow.session, canonical_id, version)
    if document is None:
        raise _questionnaire_not_found(f"Версия {version} анкеты {printable(questionnaire_id)} не найдена")
    return _document_response(request, document, cache_control=IMMUTABLE_CACHE)


# --- Administration (``questionnaires:write``): drafts, publication, withdrawal ---------------------------

_DRAFT_INVALID = error_responses(
    models={422: DraftProblems},
    described={
        422: "Анкета не прошла проверку: каждая проблема названа (problems); или некорректный запрос (только error)"
    },
)
_REFUSED = error_responses(described={409: "Операция невозможна в текущем состоянии анкеты"})


@router.get(
    "/questionnaires",
    response_model=QuestionnaireList,
    dependencies=[Depends(require_service("questionnaires:read"))],
)
async def list_questionnaires_api(
    uow: UowDep,
    type_code: Annotated[
        str | None, Query(max_length=40, pattern=_TYPE_CODE_PATTERN, description="Код типа организации")
    ] = None,
    level: Annotated[SurveyLevel | None, Query(description="Уровень опроса")] = None,
    status: Annotated[QuestionnaireStatus | None, Query(description="draft | active | withdrawn")] = None,
) -> QuestionnaireList:
    """Every questionnaire (drafts, active, withdrawn), the active one first for each (type, level)."""
    items = await list_questionnaires(uow.session, type_code=type_code, level=level, status=status)
    return QuestionnaireList(items=[QuestionnaireSummaryOut.of(item) for item in items])


@router.get(
    "/questionnaires/{questionnaire_id}",
    response_model=QuestionnaireDetailOut,
    responses=_NOT_FOUND,
    dependencies=[Depends(require_service("questionnaires:read"))],
)
async def get_questionnaire(uow: UowDep, questionnaire_id: str) -> QuestionnaireDetailOut:
    """A questionnaire with its editable draft and its version history."""
    return QuestionnaireDetailOut.of_detail(await _detail_or_404(uow, questionnaire_id))


@router.post(
    "/questionnaires",
    status_code=201,
    response_model=QuestionnaireDetailOut,
    responses={**_DRAFT_INVALID, **_BODY},
    dependencies=[Depends(require_service("questionnaires:write"))],
)
async def create_questionnaire_api(
    request: Request,
    uow: UowDep,
    body: Annotated[
        dict[str, Any],
        Body(
            description="``type_code``, ``level`` and the content: ``title``, ``validity_days``, ``questions``",
            examples=[{"type_code": "mfc", "level": "regional", "title": "Анкета МФЦ", "questions": []}],
        ),
    ],
) -> Response:
    """A new draft for (organisation type, level). Nothing is published until ``…/publish``."""
    content = {key: value for key, value in body.items() if key not in ("type_code", "level")}
    type_code, level = body.get("type_code"), body.get("level")
    command = CreateQuestionnaire(
        type_code=type_code if isinstance(type_code, str) else "",
        level=level if isinstance(level, str) else "",
        content=content,
    )
    try:
        questionnaire_id = await create_questionnaire(command, uow, now=lko_state(request).clock())
    except DraftInvalid as invalid:
        return _problems_response(invalid)
    detail = await _detail_or_404(uow, questionnaire_id)
    return JSONResponse(QuestionnaireDetailOut.of_detail(detail).model_dump(mode="json"), status_code=201)


@router.put(
    "/questionnaires/{questionnaire_id}",
    response_model=QuestionnaireDetailOut,
    responses={**_NOT_FOUND, **_DRAFT_INVALID, **_BODY},
    dependencies=[Depends(require_service("questionnaires:write"))],
)
async def edit_questionnaire_api(
    request: Request,
    uow: UowDep,
    questionnaire_id: str,
    body: Annotated[dict[str, Any], Body(description="The content: ``title``, ``validity_days``, ``questions``")],
) -> Response:
    """Replace the draft. Published versions never change; publish the draft to make a new one."""
    canonical_id = _existing_id(questionnaire_id)
    try:
        await edit_draft(EditDraft(canonical_id, body), uow, now=lko_state(request).clock())
    except QuestionnaireNotFound:
        raise _questionnaire_not_found(f"Анкета {printable(questionnaire_id)} не найдена") from None
    except DraftInvalid as invalid:
        return _problems_response(invalid)
    detail = await _detail_or_404(uow, canonical_id)
    return JSONResponse(QuestionnaireDetailOut.of_detail(detail).model_dump(mode="json"))


@router.post(
    "/questionnaires/{questionnaire_id}/publish",
    response_model=PublicationOut,
    responses={**_NOT_FOUND, **_DRAFT_INVALID, **_REFUSED},
    dependencies=[Depends(require_service("questionnaires:write"))],
)
async def publish_questionnaire_api(request: Request, uow: UowDep, questionnaire_id: str) -> Response:
    """Publish the draft as version n+1, make it active for (type, level) — withdrawing the questionnaire
    active there before, in the same transaction — and release the module's cards waiting for it."""
    canonical_id = _existing_id(questionnaire_id)
    try:
        publication = await publish_questionnaire(
            PublishQuestionnaire(canonical_id), uow, now=lko_state(request).clock()
        )
    except QuestionnaireNotFound:
        raise _questionnaire_not_found(f"Анкета {printable(questionnaire_id)} не найдена") from None
    except DraftInvalid as invalid:
        return _problems_response(invalid)
    except QuestionnaireRefused as refused:
        return error_response(409, refused.code, refused.message)
    release = await announce(request, publication.announcement_id)
    body = PublicationOut(questionnaire=publication.document, withdrawn=publication.withdrawn, release=release)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True))


@router.post(
    "/questionnaires/{questionnaire_id}/withdraw",
    response_model=QuestionnaireDetailOut,
    responses={**_NOT_FOUND, **_REFUSED},
    dependencies=[Depends(require_service("questionnaires:write"))],
)
async def withdraw_questionnaire_api(request: Request, uow: UowDep, questionnaire_id: str) -> Response:
    """Stop giving the questionnaire to citizens; its versions stay readable."""
    canonical_id = _existing_id(questionnaire_id)
    try:
        await withdraw_questionnaire(WithdrawQuestionnaire(canonical_id), uow, now=lko_state(request).clock())
    except QuestionnaireNotFound:
        raise _questionnaire_not_found(f"Анкета {printable(questionnaire_id)} не найдена") from None
    except QuestionnaireRefused as refused:
        return error_response(409, refused.code, refused.message)
    detail = await _detail_or_404(uow, canonical_id)
    return JSONResponse(QuestionnaireDetailOut.of_detail(detail).model_dump(mode="json"))


async def announce(request: Request, announcement_id: str) -> ReleaseOut:
    """Send the announcement of a committed publication; what the module did not take now is re-sent
    later by the relay."""
    relay = lko_state(request).announcements
    outcome = await relay.send_after_publication(announcement_id)
    if outcome is None:
        return ReleaseOut(status="pending")
    return ReleaseOut(status="sent", issued=outcome.issued, late=outcome.late)


def _existing_id(questionnaire_id: str) -> str:
    canonical_id = _canonical_uuid(questionnaire_id)
    if canonical_id is None:
        raise _questionnaire_not_found(f"Анкета {printable(questionnaire_id)} не найдена")
    return canonical_id


async def _detail_or_404(uow: UowDep, questionnaire_id: str) -> QuestionnaireDetail:
    canonical_id = _existing_id(questionnaire_id)
    detail = await questionnaire_detail(uow.session, canonical_id)
    if detail is None:
        raise _questionnaire_not_found(f"Анкета {printable(questionnaire_id)} не найдена")
    return detail


def _problems_response(invalid: DraftInvalid) -> JSONResponse:
    body = DraftProblems(
        error=ApiError(code="validation_error", message=f"Анкета не прошла проверку: {invalid}"),
        problems=[ProblemOut(path=problem.path, message=problem.message) for problem in invalid.problems],
    )
    return JSONResponse(body.model_dump(), status_code=422)


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


@router.get(
    "/questionnaires/{questionnaire_id}/status",
    response_model=QuestionnaireState,
    responses=_NOT_FOUND,
    dependencies=[Depends(require_service("questionnaires:read"))],
)
async def get_questionnaire_status(uow: UowDep, questionnaire_id: str, response: Response) -> QuestionnaireState:
    """Whether the questionnaire still collects answers (``collecting``), or 404 ``questionnaire_not_found``.

    Versions stay readable after a withdrawal, so this is how the module learns that a link pinned to
    a withdrawn questionnaire may no longer be answered. It changes on publish and withdraw: callers
    may cache it only briefly (the module does for ``questionnaire_cache_s``)."""
    canonical_id = _canonical_uuid(questionnaire_id)
    state = None if canonical_id is None else await questionnaire_state(uow.session, canonical_id)
    if state is None:
        raise _questionnaire_not_found(f"Анкета {printable(questionnaire_id)} не найдена")
    response.headers["Cache-Control"] = "no-cache"
    return state
