"""Questionnaire pages: the list with filters; creating one; the form builder and the JSON editor of
the draft; the preview exactly as the citizen will see it (the survey's own form partial); publishing
(which withdraws the questionnaire active before for the same type and level, as the page says);
withdrawing; the version history with every version viewable.

Federal operators manage questionnaires. Questionnaires have no region — a regional-level
questionnaire applies in every region — so regional operators read them without editing; organisation
users do not see them (404)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from posog.lko.accounts.model import CabinetPrincipal
from posog.lko.contracts import CRITERIA, QuestionnaireDocument, SurveyLevel
from posog.lko.org_types.queries import list_org_types
from posog.lko.pages.builder import BuilderState, apply_action, from_draft, parse_form, to_content
from posog.lko.pages.web import (
    Principal,
    checked_form,
    database,
    not_found,
    now,
    redirect,
    render,
    require,
    text_field,
)
from posog.lko.questionnaires.defaults import default_questionnaire_draft
from posog.lko.questionnaires.handlers import (
    LEVEL_NAMES,
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
from posog.lko.questionnaires.model import LEVELS, STATUSES, freeze
from posog.lko.questionnaires.queries import (
    QuestionnaireDetail,
    active_questionnaire_for,
    list_questionnaires,
    questionnaire_detail,
    version_document,
)
from posog.lko.questionnaires.validation import KINDS, DraftInvalid, Problem
from posog.lko.state import lko_state
from posog.lko.uow import LkoUnitOfWork

router = APIRouter(include_in_schema=False)

STATUS_NAMES: dict[str, str] = {"draft": "черновик", "active": "действует", "withdrawn": "снята с публикации"}
MAX_JSON_CHARS = 500_000


def _common(section_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "section": "questionnaires",
        "level_names": LEVEL_NAMES,
        "status_names": STATUS_NAMES,
        "kinds": KINDS,
        "criteria": CRITERIA,
        **(section_extra or {}),
    }


async def _type_names(request: Request) -> dict[str, str]:
    async with database(request).uow() as uow:
        return {item.code: item.name for item in await list_org_types(uow.session)}


def _canonical(questionnaire_id: str) -> str:
    try:
        return str(uuid.UUID(questionnaire_id))
    except ValueError:
        not_found()


async def _detail(request: Request, questionnaire_id: str) -> QuestionnaireDetail:
    canonical = _canonical(questionnaire_id)
    async with database(request).uow() as uow:
        detail = await questionnaire_detail(uow.session, canonical)
    if detail is None:
        not_found()
    return detail


@router.get("/questionnaires", name="questionnaires")
async def questionnaires_list(request: Request, principal: Principal) -> HTMLResponse:
    require(principal.can_view_questionnaires)
    query = request.query_params
    type_names = await _type_names(request)
    filters = {
        "type_code": query.get("type_code") if query.get("type_code") in type_names else "",
        "level": query.get("level") if query.get("level") in LEVELS else "",
        "status": query.get("status") if query.get("status") in STATUSES else "",
    }
    async with database(request).uow() as uow:
        items = await list_questionnaires(
            uow.session,
            type_code=filters["type_code"] or None,
            level=filters["level"] or None,
            status=filters["status"] or None,
        )
    return render(
        request,
        "lko/questionnaires/list.html",
        _common({"items": items, "filters": filters, "type_names": type_names}),
        principal=principal,
    )


def _new_page(
    request: Request,
    principal: CabinetPrincipal,
    type_names: dict[str, str],
    values: dict[str, str],
    problems: list[Problem],
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "lko/questionnaires/new.html",
        _common({"type_names": type_names, "values": values, "problems": problems}),
        principal=principal,
        status_code=status,
    )


@router.get("/questionnaires/new", name="questionnaire_new")
async def questionnaire_new(request: Request, principal: Principal) -> HTMLResponse:
    require(principal.can_manage_questionnaires)
    values = {"type_code": "", "level": "regional", "title": "", "validity_days": "30"}
    async with database(request).uow() as uow:
        type_names = {item.code: item.name for item in await list_org_types(uow.session, active_only=True)}
    return _new_page(request, principal, type_names, values, [])


@router.post("/questionnaires/new", name="questionnaire_create")
async def questionnaire_create(request: Request, principal: Principal) -> Response:
    """A new draft, starting from the questions of the default questionnaire."""
    require(principal.can_manage_questionnaires)
    form = await checked_form(request, principal)
    values = {
        "type_code": text_field(form, "type_code", limit=60).strip(),
        "level": text_field(form, "level", limit=20).strip(),
        "title": text_field(form, "title", limit=400),
        "validity_days": text_field(form, "validity_days", limit=10).strip(),
    }
    questions = default_questionnaire_draft().model_dump(mode="json", exclude_none=True)["questions"]
    validity: int | str = int(values["validity_days"]) if values["validity_days"].isdigit() else values["validity_days"]
    content = {"title": values["title"], "validity_days": validity, "questions": questions}
    try:
        async with LkoUnitOfWork(database(request)) as uow:
            questionnaire_id = await create_questionnaire(
                CreateQuestionnaire(type_code=values["type_code"], level=values["level"], content=content),
                uow,
                now=now(request),
            )
    except DraftInvalid as invalid:
        async with database(request).uow() as uow:
            type_names = {item.code: item.name for item in await list_org_types(uow.session, active_only=True)}
        return _new_page(request, principal, type_names, values, invalid.problems, status=422)
    return redirect(request, "questionnaire_edit", {"msg": "created"}, questionnaire_id=questionnaire_id)


@router.get("/questionnaires/{questionnaire_id}", name="questionnaire")
async def questionnaire_page(request: Request, principal: Principal, questionnaire_id: str) -> HTMLResponse:
    """The questionnaire: status, actions, version history."""
    require(principal.can_view_questionnaires)
    detail = await _detail(request, questionnaire_id)
    summary = detail.summary
    async with database(request).uow() as uow:
        active = await active_questionnaire_for(uow.session, summary.type_code, summary.level)
    replaced = active if active is not None and active.id != summary.id else None
    return render(
        request,
        "lko/questionnaires/show.html",
        _common({"detail": detail, "q": summary, "replaced": replaced, "type_names": await _type_names(request)}),
        principal=principal,
    )


def _json_text(content: Any) -> str:
    return json.dumps(content, ensure_ascii=False, indent=2)


async def _edit_page(
    request: Request,
    principal: CabinetPrincipal,
    detail: QuestionnaireDetail,
    state: BuilderState,
    *,
    json_text: str,
    problems: list[Problem],
    json_problems: list[Problem] | None = None,
    status: int = 200,
) -> HTMLResponse:
    by_question: dict[int, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        if problem.question is not None:
            by_question.setdefault(problem.question, []).append(problem.message)
        else:
            general.append(problem.message)
    return render(
        request,
        "lko/questionnaires/edit.html",
        _common(
            {
                "detail": detail,
                "q": detail.summary,
                "state": state,
                "problems": problems,
                "general_problems": general,
                "question_problems": by_question,
                "json_text": json_text,
                "json_problems": json_problems or [],
                "type_names": await _type_names(request),
            }
        ),
        principal=principal,
        status_code=status,
    )


@router.get("/questionnaires/{questionnaire_id}/edit", name="questionnaire_edit")
async def questionnaire_edit(request: Request, principal: Principal, questionnaire_id: str) -> HTMLResponse:
    require(principal.can_manage_questionnaires)
    detail = await _detail(request, questionnaire_id)
    content = detail.draft.model_dump(mode="json", exclude_none=True)
    return await _edit_page(
        request, principal, detail, from_draft(detail.draft), json_text=_json_text(content), problems=[]
    )


@router.post("/questionnaires/{questionnaire_id}/edit", name="questionnaire_builder")
async def questionnaire_builder(request: Request, principal: Principal, questionnaire_id: str) -> Response:
    """A builder button: change the form's state, or (``save``) validate and store the draft."""
    require(principal.can_manage_questionnaires)
    detail = await _detail(request, questionnaire_id)
    form = await checked_form(request, principal)
    state = parse_form(form)
    action = text_field(form, "action", limit=40) or "save"
    current_json = _json_text(detail.draft.model_dump(mode="json", exclude_none=True))
    if action != "save":
        return await _edit_page(
            request, principal, detail, apply_action(state, action), json_text=current_json, problems=[]
        )
    try:
        async with LkoUnitOfWork(database(request)) as uow:
            await edit_draft(EditDraft(detail.summary.id, to_content(state)), uow, now=now(request))
    except QuestionnaireNotFound:
        not_found()
    except DraftInvalid as invalid:
        return await _edit_page(
            request, principal, detail, state, json_text=current_json, problems=invalid.problems, status=422
        )
    return redirect(request, "questionnaire", {"msg": "saved"}, questionnaire_id=detail.summary.id)


@router.post("/questionnaires/{questionnaire_id}/json", name="questionnaire_json")
async def questionnaire_json(request: Request, principal: Principal, questionnaire_id: str) -> Response:
    """Save the draft from its JSON text."""
    require(principal.can_manage_questionnaires)
    detail = await _detail(request, questionnaire_id)
    form = await checked_form(request, principal)
    text = text_field(form, "document", limit=MAX_JSON_CHARS + 1)
    builder = from_draft(detail.draft)
    problems: list[Problem]
    if len(text) > MAX_JSON_CHARS:
        problems = [Problem("", f"Текст анкеты длиннее {MAX_JSON_CHARS} символов")]
    else:
        try:
            content = json.loads(text)
        except json.JSONDecodeError as exc:
            problems = [Problem("", f"Некорректный JSON: строка {exc.lineno}, столбец {exc.colno} — {exc.msg}")]
        else:
            try:
                async with LkoUnitOfWork(database(request)) as uow:
                    await edit_draft(EditDraft(detail.summary.id, content), uow, now=now(request))
            except QuestionnaireNotFound:
                not_found()
            except DraftInvalid as invalid:
                problems = invalid.problems
            else:
                return redirect(request, "questionnaire", {"msg": "saved"}, questionnaire_id=detail.summary.id)
    return await _edit_page(
        request, principal, detail, builder, json_text=text, problems=[], json_problems=problems, status=422
    )


def _preview_context(document: QuestionnaireDocument) -> dict[str, Any]:
    # The contract of the citizen's form partial (survey/form.html): inputs disabled, no submit.
    return {"questionnaire": document, "answers": {}, "errors": {}, "preview": True}


@router.get("/questionnaires/{questionnaire_id}/preview", name="questionnaire_preview")
async def questionnaire_preview(request: Request, principal: Principal, questionnaire_id: str) -> HTMLResponse:
    """The draft as the citizen will see it once published."""
    require(principal.can_view_questionnaires)
    detail = await _detail(request, questionnaire_id)
    summary = detail.summary
    level: SurveyLevel = summary.level
    document = freeze(summary.id, (summary.latest_version or 0) + 1, summary.type_code, level, detail.draft)
    return render(
        request,
        "lko/questionnaires/preview.html",
        _common({"q": summary, "document": document, "version": None, **_preview_context(document)}),
        principal=principal,
    )


@router.get("/questionnaires/{questionnaire_id}/versions/{version}", name="questionnaire_version")
async def questionnaire_version_page(
    request: Request, principal: Principal, questionnaire_id: str, version: str
) -> HTMLResponse:
    """A published version: as the citizen sees it, and its JSON."""
    require(principal.can_view_questionnaires)
    detail = await _detail(request, questionnaire_id)
    if not version.isdigit() or not 1 <= int(version) <= 2**31 - 1:
        not_found()
    async with database(request).uow() as uow:
        document = await version_document(uow.session, detail.summary.id, int(version))
    if document is None:
        not_found()
    published = next((v for v in detail.versions if v.version == document.version), None)
    return render(
        request,
        "lko/questionnaires/preview.html",
        _common(
            {
                "q": detail.summary,
                "document": document,
                "version": published,
                "document_json": _json_text(document.model_dump(mode="json", exclude_none=True)),
                **_preview_context(document),
            }
        ),
        principal=principal,
    )


@router.post("/questionnaires/{questionnaire_id}/publish", name="questionnaire_publish")
async def questionnaire_publish(request: Request, principal: Principal, questionnaire_id: str) -> Response:
    """Publish the draft as a new version (withdrawing the one active before for the type and level)
    and release the cards that were waiting for it."""
    require(principal.can_manage_questionnaires)
    detail = await _detail(request, questionnaire_id)
    await checked_form(request, principal)
    try:
        async with LkoUnitOfWork(database(request)) as uow:
            publication = await publish_questionnaire(PublishQuestionnaire(detail.summary.id), uow, now=now(request))
    except QuestionnaireNotFound:
        not_found()
    except (DraftInvalid, QuestionnaireRefused) as refusal:
        messages = (
            [problem.message for problem in refusal.problems]
            if isinstance(refusal, DraftInvalid)
            else [refusal.message]
        )
        return await _show_with_errors(request, principal, detail, messages)
    relay = lko_state(request).announcements
    outcome = await relay.send_after_publication(publication.announcement_id)
    notice = "published" if outcome is not None else "published_pending"
    return redirect(request, "questionnaire", {"msg": notice}, questionnaire_id=detail.summary.id)


@router.post("/questionnaires/{questionnaire_id}/withdraw", name="questionnaire_withdraw")
async def questionnaire_withdraw(request: Request, principal: Principal, questionnaire_id: str) -> Response:
    require(principal.can_manage_questionnaires)
    detail = await _detail(request, questionnaire_id)
    await checked_form(request, principal)
    try:
        async with LkoUnitOfWork(database(request)) as uow:
            await withdraw_questionnaire(WithdrawQuestionnaire(detail.summary.id), uow, now=now(request))
    except QuestionnaireNotFound:
        not_found()
    except QuestionnaireRefused as refused:
        return await _show_with_errors(request, principal, detail, [refused.message])
    return redirect(request, "questionnaire", {"msg": "withdrawn"}, questionnaire_id=detail.summary.id)


async def _show_with_errors(
    request: Request, principal: CabinetPrincipal, detail: QuestionnaireDetail, messages: list[str]
) -> HTMLResponse:
    summary = detail.summary
    async with database(request).uow() as uow:
        active = await active_questionnaire_for(uow.session, summary.type_code, summary.level)
    replaced = active if active is not None and active.id != summary.id else None
    return render(
        request,
        "lko/questionnaires/show.html",
        _common(
            {
                "detail": detail,
                "q": summary,
                "replaced": replaced,
                "action_errors": messages,
                "type_names": await _type_names(request),
            }
        ),
        principal=principal,
        status_code=409,
    )
