"""ЛКП pages (SPEC §6, §10): the survey behind a personal link, its submission to ЛКО and the pages a
citizen sees when a link cannot be used.

Submission is POST-redirect-GET with an idempotency key carried in the form (issued when the page is
rendered): a double click, a refresh after submitting or the back button sends the same key again, and
ЛКО answers a repeated key with the response it already stored — so the citizen lands on the same
"thank you" page and no second response is ever created.

Tokens never reach a log line: the logs name the route, never the path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from posog.core.appstate import need
from posog.core.clientaddr import TrustedProxies
from posog.core.clock import MOSCOW
from posog.core.russian import russian_date
from posog.lko.client import LkoClient, LkoError, ResponseRejected
from posog.lko.contracts import QuestionnaireDocument
from posog.lkp.forms import (
    FORM_MAX_BYTES,
    IDEMPOTENCY_FIELD,
    QUESTIONNAIRE_ID_FIELD,
    QUESTIONNAIRE_VERSION_FIELD,
    looks_like_token,
    new_idempotency_key,
    parse_answers,
    parse_urlencoded,
    valid_idempotency_key,
)
from posog.module.client import LinkRefused, ModuleClient, ModuleError
from posog.module.contracts import LINK_ERRORS, LinkData

log = structlog.get_logger(__name__)


def deadline_date(expires_at: datetime) -> date:
    """The last Moscow day on which the link can be used."""
    return expires_at.astimezone(MOSCOW).date()


@dataclass(frozen=True)
class Problem:
    """A page explaining in plain words why the survey cannot be shown, and what to do."""

    status: int
    title: str
    happened: tuple[str, ...]
    todo: tuple[str, ...]
    tone: str = "error"  # error | warn | ok — the icon's colour
    headers: dict[str, str] = field(default_factory=dict)


_FROM_NOTIFICATION = (
    "Откройте ссылку прямо из уведомления в личном кабинете на Госуслугах — нажмите на неё, а не "
    "набирайте адрес вручную."
)
_OTHER_WAYS = (
    "Оставить отзыв о работе организации можно и без этой ссылки — на Госуслугах через платформу обратной "
    "связи или на сайте «Ваш контроль» (vashkontrol.ru)."
)

PROBLEMS: dict[str, Problem] = {
    "link_not_found": Problem(
        LINK_ERRORS["link_not_found"],
        "Ссылка на опрос не найдена",
        ("Мы не нашли опрос по этой ссылке. Скорее всего, ссылка скопирована не полностью или в ней есть опечатка.",),
        (_FROM_NOTIFICATION, "Если ссылка не открывается и оттуда, опрос по ней недоступен.", _OTHER_WAYS),
    ),
    "link_expired": Problem(
        LINK_ERRORS["link_expired"],
        "Срок оценки истёк",
        (
            "Оценить услугу можно до даты, указанной в уведомлении. Этот срок уже прошёл, поэтому ответы "
            "по ссылке больше не принимаются.",
        ),
        ("Ничего делать не нужно: ссылка просто больше не действует.", _OTHER_WAYS),
        tone="warn",
    ),
    "survey_completed": Problem(
        LINK_ERRORS["survey_completed"],
        "Вы уже оценили эту услугу",
        (
            "Ответы по этой ссылке уже получены — спасибо! Оценить услугу можно только один раз, "
            "поэтому изменить ответы нельзя.",
        ),
        ("Ничего делать не нужно: ваша оценка учтена. Эту страницу можно закрыть.",),
        tone="ok",
    ),
    "link_revoked": Problem(
        LINK_ERRORS["link_revoked"],
        "Ссылка больше не действует",
        ("Эта ссылка отозвана — например, потому что сведения об оказанной услуге были исправлены или отменены.",),
        (
            "Если по этой услуге нужна ваша оценка, в личный кабинет на Госуслугах придёт новое уведомление "
            "с новой ссылкой.",
            _OTHER_WAYS,
        ),
        tone="warn",
    ),
    "questionnaire_unavailable": Problem(
        LINK_ERRORS["questionnaire_unavailable"],
        "Опрос временно недоступен",
        (
            "Анкета, по которой проводится этот опрос, сейчас недоступна — организация её обновляет. "
            "Ваша ссылка при этом не пропала.",
        ),
        ("Попробуйте открыть ссылку позже, до даты, указанной в уведомлении.",),
        tone="warn",
    ),
    "too_many_requests": Problem(
        LINK_ERRORS["too_many_requests"],
        "Слишком много попыток",
        (
            "С вашего устройства или из вашей сети за короткое время открывали слишком много ссылок на "
            "опросы. Это защита от подбора ссылок.",
        ),
        ("Подождите несколько минут и обновите страницу.",),
        tone="warn",
        headers={"Retry-After": "60"},
    ),
    "unavailable": Problem(
        503,
        "Сервис временно недоступен",
        (
            "Не удалось связаться с сервисом опросов. Это временная техническая неполадка, "
            "а не проблема с вашей ссылкой.",
        ),
        ("Попробуйте открыть ссылку ещё раз через несколько минут.",),
        tone="warn",
        headers={"Retry-After": "60"},
    ),
    "page_not_found": Problem(
        404,
        "Страница не найдена",
        ("Такой страницы нет.",),
        (_FROM_NOTIFICATION,),
    ),
    "method_not_allowed": Problem(
        405,
        "Страница не найдена",
        ("Такой страницы нет.",),
        (_FROM_NOTIFICATION,),
    ),
    "too_large": Problem(
        413,
        "Слишком длинные ответы",
        ("Отправленные ответы слишком большие, и мы не смогли их принять.",),
        ("Вернитесь к опросу, сократите комментарий и отправьте ответы ещё раз.",),
    ),
    "rejected": Problem(
        409,
        "Не удалось принять ответы",
        ("Сервис опросов не принял ваши ответы.",),
        ("Откройте ссылку из уведомления ещё раз. Если ошибка повторится, попробуйте позже.",),
    ),
    "internal_error": Problem(
        500,
        "Что-то пошло не так",
        ("На нашей стороне произошла ошибка. Мы уже знаем о ней.",),
        (
            "Попробуйте ещё раз через несколько минут.",
            "Если вы успели отправить ответы, откройте ссылку из уведомления ещё раз: если ответы приняты, "
            "вы увидите это.",
        ),
    ),
}


@dataclass(frozen=True)
class LkpServices:
    """What the pages need: the module (link data), ЛКО (answers), the templates and whose
    ``X-Forwarded-For`` to believe."""

    module: ModuleClient
    lko: LkoClient
    templates: Jinja2Templates
    trusted_proxies: TrustedProxies


def services(request: Request) -> LkpServices:
    return need(request, LkpServices)


def client_id(request: Request) -> str | None:
    """The citizen's address, for the module's per-client rate limiting: the peer, or behind one of
    the trusted proxies (``POSOG_TRUSTED_PROXIES``) the address it puts in ``X-Forwarded-For`` — a
    header from anyone else is ignored, so a citizen cannot pick the key its failures count under."""
    if request.client is None:
        return None
    return services(request).trusted_proxies.client_of(request.scope)


def render_problem(request: Request, code: str, *, message: str | None = None, status: int | None = None) -> Response:
    """The page for a problem ``code`` (SPEC §6 codes and our own); ``message`` replaces the
    explanation for codes we have no words of our own for."""
    problem = PROBLEMS.get(code)
    if problem is None:
        problem = PROBLEMS["rejected"]
        if message:
            problem = Problem(problem.status, problem.title, (message,), problem.todo)
    return services(request).templates.TemplateResponse(
        request,
        "problem.html",
        {"problem": problem, "code": code},
        status_code=status or problem.status,
        headers=problem.headers,
    )


def _link_view(link: LinkData) -> dict[str, Any]:
    organization = link.organization
    requisites = [("ИНН", organization.inn), ("ОГРН" if len(organization.inn) == 10 else "ОГРНИП", organization.ogrn)]
    if organization.kpp:
        requisites.append(("КПП", organization.kpp))
    return {
        "org_name": organization.name,
        "org_address": organization.address,
        "requisites": requisites,
        "service_name": link.service.name,
        "service_date": russian_date(link.service.date),
        "deadline": russian_date(deadline_date(link.expires_at)),
    }


def render_survey(
    request: Request,
    token: str,
    link: LinkData,
    *,
    idempotency_key: str,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    return services(request).templates.TemplateResponse(
        request,
        "survey.html",
        {
            "link": _link_view(link),
            "questionnaire": link.questionnaire,
            "answers": values or {},
            "errors": errors or {},
            "form_error": form_error,
            "preview": False,
            "form_action": request.url_for("survey_submit", token=token).path,
            "idempotency_key": idempotency_key,
        },
        status_code=status,
    )


def render_retry(request: Request, token: str, form: dict[str, list[str]]) -> Response:
    """The survey cannot be checked now (the module is away): the citizen's answers are kept on the
    page, as they were sent and under the same idempotency key, to be sent again with one button."""
    kept = [
        (name, value)
        for name, values in form.items()
        if name.startswith("answer_")
        or name in (IDEMPOTENCY_FIELD, QUESTIONNAIRE_ID_FIELD, QUESTIONNAIRE_VERSION_FIELD)
        for value in values
    ]
    return services(request).templates.TemplateResponse(
        request,
        "retry.html",
        {"fields": kept, "form_action": request.url_for("survey_submit", token=token).path},
        status_code=503,
        headers={"Retry-After": "60"},
    )


async def read_form(request: Request) -> dict[str, list[str]] | None:
    """The submitted form, or None if it is larger than any honest survey form can be."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > FORM_MAX_BYTES):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > FORM_MAX_BYTES:
            return None
    try:
        return parse_urlencoded(bytes(body))
    except ValueError:  # more fields than allowed
        return None


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request) -> Response:
    return services(request).templates.TemplateResponse(request, "index.html", {})


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    """Liveness: ЛКП keeps nothing, so answering is all there is to it."""
    return JSONResponse({"status": "ok"})


@router.get("/s/{token}", name="survey", response_class=HTMLResponse)
async def survey(request: Request, token: str) -> Response:
    """The survey behind a personal link, or the page saying why it cannot be taken."""
    if not looks_like_token(token):
        return render_problem(request, "link_not_found")
    try:
        link = await services(request).module.resolve_link(token, client_id=client_id(request))
    except LinkRefused as refusal:
        log.info("lkp.link_refused", code=refusal.code)
        return render_problem(request, refusal.code, message=refusal.message)
    except ModuleError as exc:
        log.warning("lkp.module_unavailable", error=str(exc))
        return render_problem(request, "unavailable")
    return render_survey(request, token, link, idempotency_key=new_idempotency_key())


@router.post("/s/{token}", name="survey_submit", response_class=HTMLResponse)
async def submit(request: Request, token: str) -> Response:
    """Validate and send the answers to ЛКО; on success redirect (303) to the thank-you page."""
    if not looks_like_token(token):
        return render_problem(request, "link_not_found")
    form = await read_form(request)
    if form is None:
        return render_problem(request, "too_large")
    submitted_key = valid_idempotency_key(_first(form, IDEMPOTENCY_FIELD))
    key = submitted_key or new_idempotency_key()
    lkp = services(request)
    done = RedirectResponse(request.url_for("survey_done", token=token).path, status_code=303)
    try:
        link = await lkp.module.resolve_link(token, client_id=client_id(request))
    except LinkRefused as refusal:
        # The link may be completed by this very submission (a double click, a refresh of the POST, the
        # back button): the same key again gets ЛКО's stored response, and the citizen the thank-you page.
        if (
            refusal.code == "survey_completed"
            and submitted_key
            and await _resubmission(lkp, token, key, form, client_id(request))
        ):
            log.info("lkp.submission_repeated")
            return done
        log.info("lkp.link_refused", code=refusal.code, on="submit")
        return render_problem(request, refusal.code, message=refusal.message)
    except ModuleError as exc:
        log.warning("lkp.module_unavailable", error=str(exc), on="submit")
        return render_retry(request, token, form)

    parsed = parse_answers(link.questionnaire, form)
    if not parsed.ok:
        return render_survey(
            request, token, link, idempotency_key=key, values=parsed.values, errors=parsed.errors, status=422
        )
    try:
        await lkp.lko.submit_response(token, key, parsed.answers, client_id=client_id(request))
    except ResponseRejected as rejection:
        if rejection.fields or rejection.code == "validation_error":
            log.info("lkp.answers_rejected", fields=sorted(rejection.fields))
            # Nothing was stored under this key; a fresh one keeps a corrected form from ever meeting
            # a remembered refusal.
            return render_survey(
                request,
                token,
                link,
                idempotency_key=new_idempotency_key(),
                values=parsed.values,
                errors=rejection.fields,
                form_error=None if rejection.fields else rejection.message,
                status=422,
            )
        log.info("lkp.submission_refused", code=rejection.code)
        # Known codes get their own page and status (ЛКО says 409 for a completed survey, the page is
        # the same as the module's 410); anything else keeps ЛКО's status and message.
        status = None if rejection.code in PROBLEMS else rejection.status
        return render_problem(request, rejection.code, message=rejection.message, status=status)
    except LkoError as exc:
        # The answers may or may not have been stored: the same key again settles it either way.
        log.warning("lkp.lko_unavailable", error=str(exc))
        return render_survey(
            request,
            token,
            link,
            idempotency_key=key,
            values=parsed.values,
            form_error=(
                "Не удалось отправить ответы: сервис временно недоступен. Ваши ответы сохранены на этой "
                "странице — нажмите «Отправить оценку» ещё раз через минуту."
            ),
            status=503,
        )
    log.info("lkp.submitted")
    return done


async def _resubmission(lkp: LkpServices, token: str, key: str, form: dict[str, list[str]], client: str | None) -> bool:
    """Whether the completed link was completed with ``key``: the form is parsed against the version it
    was rendered from and sent again; ЛКО answers a known key with the stored response."""
    questionnaire_id = _first(form, QUESTIONNAIRE_ID_FIELD)
    version = _first(form, QUESTIONNAIRE_VERSION_FIELD)
    if not questionnaire_id or not version or not version.isascii() or not version.isdigit() or len(version) > 9:
        return False
    try:
        questionnaire: QuestionnaireDocument | None = await lkp.lko.questionnaire_version(
            questionnaire_id, int(version)
        )
        if questionnaire is None:
            return False
        parsed = parse_answers(questionnaire, form)
        if not parsed.ok:
            return False
        await lkp.lko.submit_response(token, key, parsed.answers, client_id=client)
    except (LkoError, ResponseRejected):
        return False
    return True


@router.get("/s/{token}/done", name="survey_done", response_class=HTMLResponse)
async def survey_done(request: Request, token: str) -> Response:
    """The thank-you page after a submission. It asks nobody anything: it reveals nothing about a link,
    and a refresh of it is harmless."""
    if not looks_like_token(token):
        return render_problem(request, "link_not_found")
    return services(request).templates.TemplateResponse(request, "done.html", {})
