"""The module's survey-link API (SPEC §6 v1), for ЛКП (opening a survey) and ЛКО (opening it to check
a submission, then completing the link with the stored response).

``GET /api/v1/survey-links/{token}`` → 200 :class:`LinkData`, or ``{"error": {"code", "message"}}``
with a message for the citizen: 404 ``link_not_found``, 410 ``link_revoked`` / ``survey_completed`` /
``link_expired``, 409 ``questionnaire_unavailable``, 429 ``too_many_requests`` (with ``Retry-After``),
503 ``service_unavailable`` when ЛКО cannot be asked about the questionnaire.

Attempts are limited per client: the ``X-Posog-Client`` header (ЛКП forwards the citizen's address;
only authenticated systems can set it) or else the caller's peer address (``X-Forwarded-For`` only
from a trusted proxy), under the caller's name. Only failures (unknown or expired tokens) count; the
budget is shared by every module process through Redis when ``POSOG_REDIS_URL`` is set.

``POST /api/v1/survey-links/{token}/complete`` ``{"response_id"}`` → 200; the same response id again
→ 200; another → 409 ``survey_completed``; 404/410 as above."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor

from posog.core.http import error_response, error_responses
from posog.core.metrics import LINK_OUTCOMES
from posog.core.ratelimit import retry_after_header
from posog.core.service_auth import (
    SERVICE_KEY_SECURITY,
    ServiceCaller,
    ServiceKeyFirstRoute,
    authenticate,
    presented_key,
    require_service,
)
from posog.lko.client import LkoError
from posog.module.contracts import CompleteLink, LinkData
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.handlers import (
    CompleteSurveyLink,
    LinkRefusal,
    ResolveLink,
    complete_link,
    resolve_link,
)
from posog.module.state import module_state
from posog.module.uow import ModuleUnitOfWork


class _AnyToken(Convertor[str]):
    """Any path remainder, line breaks included (Starlette's ``path`` stops at a ``\\n``): every
    string a client sends as a token reaches the same lookup and gets the same answer."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("posog_any_token", _AnyToken())

log = structlog.get_logger(__name__)

CLIENT_HEADER = "X-Posog-Client"
_NO_STORE = {"Cache-Control": "no-store"}

# What the citizen reads (ЛКП shows these messages as they are): what happened and what to do.
MESSAGES: dict[str, str] = {
    "link_not_found": (
        "Ссылка на опрос не найдена. Проверьте, что она скопирована полностью, "
        "или откройте её из уведомления в личном кабинете на Госуслугах."
    ),
    "link_revoked": (
        "Эта ссылка на опрос отменена и больше не действует. "
        "Если вы считаете, что это ошибка, обратитесь в организацию, которая оказала вам услугу."
    ),
    "survey_completed": "Вы уже оценили эту услугу — ваши ответы сохранены. Повторно заполнить анкету нельзя.",
    "link_expired": (
        "Срок, в течение которого можно было оценить услугу по этой ссылке, истёк. "
        "Когда вы получите следующую услугу, вам придёт новое приглашение к опросу."
    ),
    "questionnaire_unavailable": (
        "Анкета для оценки этой услуги сейчас недоступна: организация приостановила опрос. "
        "Приносим извинения — от вас ничего не требуется."
    ),
    "too_many_requests": "Слишком много неудачных попыток открыть ссылку. Подождите {minutes} и попробуйте снова.",
    "service_unavailable": "Анкета временно недоступна. Попробуйте открыть ссылку через несколько минут.",
}

_ERRORS: dict[int | str, dict[str, Any]] = error_responses(
    described={
        401: "Нет действительного сервисного ключа",
        403: "Вызывающей системе операция не разрешена",
        404: "link_not_found",
        409: "questionnaire_unavailable / survey_completed (завершение другим ответом)",
        410: "link_revoked / survey_completed / link_expired",
    }
)

# Only the checks of ЛКО's questionnaires and the attempt limiter are the look-up's.
_LOOKUP_ERRORS = error_responses(
    described={429: "too_many_requests, см. Retry-After", 503: "service_unavailable: ЛКО недоступен"}
)

router = APIRouter(tags=["survey-links"], responses=_ERRORS, route_class=ServiceKeyFirstRoute)


class LinkCompleted(BaseModel):
    """Answer of a completion: the link is completed by ``response_id``."""

    state: Literal["completed"] = "completed"
    response_id: str


def client_key(request: Request, caller: ServiceCaller) -> str:
    """Whose attempts these are: the forwarded client (header) or the peer, per calling system. The
    peer is the address a trusted proxy vouches for in ``X-Forwarded-For`` when it is one
    (``POSOG_TRUSTED_PROXIES``), else the connection's own."""
    forwarded = request.headers.get(CLIENT_HEADER, "").strip()[:100]
    if forwarded:
        return f"{caller.name}:{forwarded}"
    proxies = module_state(request).trusted_proxies
    return f"{caller.name}:peer:{proxies.client_of(request.scope)}"


def _minutes(seconds: float) -> str:
    minutes = max(1, int(-(-seconds // 60)))
    if minutes == 1:
        return "минуту"
    return f"{minutes} мин."


def refusal_response(refusal: LinkRefusal) -> JSONResponse:
    headers = dict(_NO_STORE)
    message = MESSAGES[refusal.code]
    if refusal.retry_after is not None:
        headers["Retry-After"] = retry_after_header(refusal.retry_after)
        message = message.format(minutes=_minutes(refusal.retry_after))
    return error_response(refusal.status, refusal.code, message, headers=headers)


def unavailable() -> JSONResponse:
    LINK_OUTCOMES.labels("service_unavailable").inc()
    return error_response(
        503, "service_unavailable", MESSAGES["service_unavailable"], headers={**_NO_STORE, "Retry-After": "30"}
    )


LINKS_READ = frozenset({"links:read"})


@router.get(
    "/survey-links/{token:posog_any_token}",
    response_model=LinkData,
    responses=_LOOKUP_ERRORS,
    openapi_extra=SERVICE_KEY_SECURITY,
)
async def get_survey_link(token: str, request: Request) -> Response:
    """The survey behind a link (SPEC §6): the pinned questionnaire version with the card and the
    organisation it rates; the link becomes ``opened``. Any string is accepted as a token: malformed
    and unknown tokens get the same answer at the same cost."""
    # The module app answers most of these requests before they reach this route, with the same
    # code and answers (posog.module.links.fastpath); this route answers the rest (401/403, no
    # catalog, an app with added middleware) and documents the operation in the OpenAPI document.
    # The module's hottest route authenticates here rather than through a dependency (as
    # require_service("links:read") would, with the same answers): one dependency less per request.
    caller = authenticate(request, LINKS_READ, presented_key(request))
    state = module_state(request)
    catalog = state.catalog
    if catalog is None:
        return unavailable()
    try:
        async with ModuleUnitOfWork(state.db) as uow:
            data = await resolve_link(
                ResolveLink(token=token, client=client_key(request, caller)),
                uow,
                catalog=catalog,
                limiter=state.link_attempts,
                clock=state.clock,
            )
    except LinkRefusal as refusal:
        return refusal_response(refusal)
    except LkoError as exc:
        log.warning("links.lko_unavailable", error=str(exc))
        return unavailable()
    return Response(link_json(data, catalog), media_type="application/json", headers=_NO_STORE)


def link_json(data: LinkData, catalog: QuestionnaireCatalog) -> bytes:
    """``data`` as JSON — what ``JSONResponse(data.model_dump(mode="json"))`` would send, without the
    intermediate dicts, and with the questionnaire (the last field, most of the body) serialised once
    per version by the catalog."""
    head = data.model_dump_json(exclude={"questionnaire"}).encode()
    return head[:-1] + b',"questionnaire":' + catalog.document_json(data.questionnaire) + b"}"


@router.post(
    "/survey-links/{token}/complete",
    response_model=LinkCompleted,
    responses=error_responses(400, 422),
    dependencies=[Depends(require_service("links:complete"))],
)
async def post_survey_link_completion(token: str, body: CompleteLink, request: Request) -> Response:
    """ЛКО stored ``response_id`` for this link: the link becomes ``completed`` (exactly once)."""
    state = module_state(request)
    try:
        async with ModuleUnitOfWork(state.db) as uow:
            await complete_link(CompleteSurveyLink(token=token, response_id=body.response_id), uow, clock=state.clock)
    except LinkRefusal as refusal:
        return refusal_response(refusal)
    return JSONResponse(LinkCompleted(response_id=body.response_id).model_dump(), headers=_NO_STORE)
