"""ЛКО REST API: citizens' responses (SPEC §7).

``POST /api/v1/responses`` (ЛКП, ``responses:write``) ``{"token", "idempotency_key", "answers"}`` →
201 the stored response; 200 the same stored response for a retry with the same idempotency key;
422 ``validation_error`` with a Russian message per question id in ``fields``; 409
``survey_completed`` when the card already has its response; the link's refusals as the module gives
them (404 ``link_not_found``, 410 ``link_expired`` / ``link_revoked``, 409
``questionnaire_unavailable``, 429); 409 ``idempotency_conflict`` for a key reused with another
link; 503 ``module_unavailable``. The ``X-Posog-Client`` header (the citizen's address, forwarded by
ЛКП) is passed on to the module's rate limiting of link attempts.

``GET /api/v1/responses`` and ``GET /api/v1/responses/{id}`` (``responses:read``): systems granted
this operation (analytics) read every response; cabinet users read through
:mod:`posog.lko.responses.queries` with their own scope."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from posog.core.http import error_response, error_responses
from posog.core.service_auth import ServiceCaller, ServiceKeyFirstRoute, require_service
from posog.lko.contracts import ApiError, FieldErrors, ResponsePage, ResponseSubmission, StoredResponse
from posog.lko.deps import API_ERRORS, UowDep
from posog.lko.responses.handlers import (
    MODULE_UNAVAILABLE,
    ModuleUnavailable,
    SubmissionRefused,
    SubmitResponse,
    submit_response,
)
from posog.lko.responses.queries import DEFAULT_PAGE, MAX_PAGE, InvalidCursor, get_response, list_responses
from posog.lko.responses.validation import AnswersInvalid
from posog.lko.scope import Scope
from posog.lko.state import lko_state
from posog.lko.uow import LkoUnitOfWork

CLIENT_HEADER = "X-Posog-Client"
VALIDATION_MESSAGE = "Проверьте ответы: в некоторых вопросах есть ошибки."

_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"model": StoredResponse, "description": "Повтор с тем же ключом идемпотентности: сохранённый ответ"},
    **error_responses(
        400,
        models={422: FieldErrors},
        described={
            404: "link_not_found",
            409: "survey_completed / questionnaire_unavailable / idempotency_conflict",
            410: "link_expired / link_revoked",
            422: "Ответы не соответствуют анкете: сообщение по каждому вопросу (fields); "
            "или некорректный запрос (только error)",
            429: "too_many_requests",
            503: "module_unavailable",
        },
    ),
}

router = APIRouter(responses=API_ERRORS, tags=["responses"], route_class=ServiceKeyFirstRoute)


def _scope_of(caller: ServiceCaller) -> Scope:
    # A system granted responses:read (analytics) works for the whole country; people's scopes come
    # from their cabinet accounts, not from this API.
    return Scope.federal()


@router.post("/responses", status_code=201, response_model=StoredResponse, responses=_SUBMIT_ERRORS)
async def post_response(
    body: ResponseSubmission,
    request: Request,
    background: BackgroundTasks,
    _caller: Annotated[ServiceCaller, Depends(require_service("responses:write"))],
) -> Response:
    """Store a citizen's answers to the survey of ``token``, exactly once per card."""
    module = lko_state(request).module
    if module is None:
        return error_response(503, "module_unavailable", MODULE_UNAVAILABLE, headers={"Retry-After": "60"})
    client_id = request.headers.get(CLIENT_HEADER, "").strip()[:100] or (
        request.client.host if request.client is not None else None
    )
    command = SubmitResponse(
        token=body.token, idempotency_key=body.idempotency_key, answers=body.answers, client_id=client_id
    )
    try:
        async with LkoUnitOfWork(lko_state(request).db) as uow:
            submitted = await submit_response(command, uow, module)
    except AnswersInvalid as invalid:
        errors = FieldErrors(error=ApiError(code="validation_error", message=VALIDATION_MESSAGE), fields=invalid.fields)
        return JSONResponse(errors.model_dump(), status_code=422)
    except SubmissionRefused as refused:
        return error_response(refused.status, refused.code, refused.message)
    except ModuleUnavailable:
        return error_response(503, "module_unavailable", MODULE_UNAVAILABLE, headers={"Retry-After": "60"})
    # Completions a crash left pending elsewhere are finished on the side, at most once a minute.
    recovery = lko_state(request).recovery
    if recovery is not None:
        background.add_task(recovery.nudge)
    return JSONResponse(submitted.response.model_dump(mode="json"), status_code=201 if submitted.created else 200)


@router.get("/responses", response_model=ResponsePage)
async def get_responses(
    uow: UowDep,
    caller: Annotated[ServiceCaller, Depends(require_service("responses:read"))],
    inn: Annotated[str | None, Query(pattern=r"^(\d{10}|\d{12})$", description="ИНН организации")] = None,
    region_code: Annotated[str | None, Query(pattern=r"^\d{2}$", description="Код субъекта РФ")] = None,
    date_from: Annotated[date | None, Query(alias="from", description="Дата услуги, с (включительно)")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Дата услуги, по (включительно)")] = None,
    type_code: Annotated[str | None, Query(pattern=r"^[a-z0-9_\-]{1,40}$", description="Тип организации")] = None,
    cursor: Annotated[str | None, Query(max_length=400, description="next_cursor предыдущей страницы")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Response:
    """Responses, oldest first, in pages: follow ``next_cursor`` until it is null. ``from``/``to``
    bound the date of the rated service."""
    try:
        page = await list_responses(
            uow.session,
            _scope_of(caller),
            inn=inn,
            region_code=region_code,
            date_from=date_from,
            date_to=date_to,
            type_code=type_code,
            cursor=cursor,
            limit=limit,
        )
    except InvalidCursor:
        raise HTTPException(
            422,
            detail={"code": "invalid_cursor", "message": "Некорректный курсор: начните просмотр с первой страницы"},
        ) from None
    # The page as pydantic serialises it, directly: FastAPI would validate all its items again first
    # (this is analytics' feed — 500 responses a page).
    return Response(page.model_dump_json(), media_type="application/json")


@router.get(
    "/responses/{response_id}",
    response_model=StoredResponse,
    responses=error_responses(described={404: "response_not_found"}),
)
async def get_one_response(
    uow: UowDep,
    response_id: str,
    caller: Annotated[ServiceCaller, Depends(require_service("responses:read"))],
) -> StoredResponse:
    """One stored response, or 404 ``response_not_found``."""
    found = await get_response(uow.session, _scope_of(caller), response_id)
    if found is None:
        raise HTTPException(404, detail={"code": "response_not_found", "message": "Ответ не найден"})
    return found
