"""Responses in the cabinet: the list with filters (period of the service, ИНН, region, organisation
type) and its export as CSV or XLSX — always within the user's scope. A filter naming another ИНН (an
organisation user) or another region (a regional operator) answers 404, like a page that does not
exist; the query itself is scoped in SQL whatever is asked (:func:`list_responses`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from posog.core.regions import REGIONS, is_region_code
from posog.lko.accounts.model import CabinetPrincipal
from posog.lko.contracts import StoredResponse
from posog.lko.org_types.io import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE
from posog.lko.org_types.queries import list_org_types
from posog.lko.pages.exports import answer_text, responses_csv, responses_xlsx
from posog.lko.pages.web import Principal, database, not_found, render
from posog.lko.questionnaires.handlers import LEVEL_NAMES
from posog.lko.questionnaires.queries import version_document
from posog.lko.responses.queries import InvalidCursor, list_responses

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
EXPORT_PAGE = 500
MAX_EXPORT_ROWS = 100_000
_INN = re.compile(r"^\d{10}(\d{2})?$")


@dataclass(frozen=True)
class ResponseFilters:
    inn: str | None = None
    region_code: str | None = None
    type_code: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def query(self) -> dict[str, str]:
        values = {
            "inn": self.inn,
            "region_code": self.region_code,
            "type_code": self.type_code,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }
        return {key: value for key, value in values.items() if value}


def _date(raw: str, label: str, errors: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{label}: укажите дату в формате ГГГГ-ММ-ДД (получено «{raw[:20]}»)")
        return None


def _filters(request: Request, principal: CabinetPrincipal, type_codes: set[str]) -> tuple[ResponseFilters, list[str]]:
    """The filters of the query string, checked against the user's scope (outside it: 404)."""
    query = request.query_params
    errors: list[str] = []
    inn = (query.get("inn") or "").strip() or None
    region_code = (query.get("region_code") or "").strip() or None
    type_code = (query.get("type_code") or "").strip() or None
    scope = principal.scope
    if scope.role == "organization" and inn is not None and inn != scope.inn:
        not_found()
    if scope.role == "regional" and region_code is not None and region_code != scope.region_code:
        not_found()
    if inn is not None and not _INN.match(inn):
        errors.append(f"ИНН: 10 или 12 цифр (получено «{inn[:20]}»)")
        inn = None
    if region_code is not None and not is_region_code(region_code):
        errors.append(f"Регион: неизвестный код «{region_code[:10]}»")
        region_code = None
    if type_code is not None and type_code not in type_codes:
        errors.append(f"Тип организации «{type_code[:40]}» не найден в справочнике")
        type_code = None
    date_from = _date((query.get("from") or "").strip(), "Период с", errors)
    date_to = _date((query.get("to") or "").strip(), "Период по", errors)
    if date_from and date_to and date_from > date_to:
        errors.append("Начало периода позже его конца")
    return ResponseFilters(inn, region_code, type_code, date_from, date_to), errors


async def _labels(request: Request, items: list[StoredResponse]) -> dict[tuple[str, int], dict[str, Any]]:
    """Question texts (and option texts) of the versions the items answered, to show answers readably."""
    labels: dict[tuple[str, int], dict[str, Any]] = {}
    async with database(request).uow() as uow:
        for key in {(item.questionnaire_id, item.questionnaire_version) for item in items}:
            document = await version_document(uow.session, *key)
            if document is None:
                continue
            labels[key] = {
                question.id: {
                    "text": question.text,
                    "options": {option.id: option.text for option in question.options or ()},
                }
                for question in document.questions
            }
    return labels


def _readable(item: StoredResponse, labels: dict[tuple[str, int], dict[str, Any]]) -> list[tuple[str, str]]:
    questions = labels.get((item.questionnaire_id, item.questionnaire_version), {})
    shown = []
    for question_id, value in item.answers.items():
        label = questions.get(question_id)
        options: dict[str, str] = label["options"] if label else {}
        if isinstance(value, str) and value in options:
            text = options[value]
        elif isinstance(value, list):
            text = "; ".join(options.get(v, v) for v in value)
        else:
            text = answer_text(value)
        if text:
            shown.append((label["text"] if label else question_id, text))
    return shown


@router.get("/responses", name="responses")
async def responses_page(request: Request, principal: Principal) -> HTMLResponse:
    async with database(request).uow() as uow:
        type_names = {item.code: item.name for item in await list_org_types(uow.session)}
    filters, errors = _filters(request, principal, set(type_names))
    cursor = request.query_params.get("cursor") or None
    items: list[StoredResponse] = []
    next_cursor = None
    if not errors:
        try:
            async with database(request).uow() as uow:
                page = await list_responses(
                    uow.session,
                    principal.scope,
                    inn=filters.inn,
                    region_code=filters.region_code,
                    date_from=filters.date_from,
                    date_to=filters.date_to,
                    type_code=filters.type_code,
                    cursor=cursor,
                    limit=PAGE_SIZE,
                    newest_first=True,
                )
        except InvalidCursor:
            not_found()
        items, next_cursor = page.items, page.next_cursor
    labels = await _labels(request, items)
    return render(
        request,
        "lko/responses/list.html",
        {
            "section": "responses",
            "filters": filters,
            "filter_query": filters.query(),
            "errors": errors,
            "rows": [(item, _readable(item, labels)) for item in items],
            "next_cursor": next_cursor,
            "first_page": cursor is None,
            "type_names": type_names,
            "level_names": LEVEL_NAMES,
            "regions": REGIONS,
        },
        principal=principal,
        status_code=422 if errors else 200,
    )


async def _all_matching(request: Request, principal: CabinetPrincipal) -> list[StoredResponse]:
    async with database(request).uow() as uow:
        type_codes = {item.code for item in await list_org_types(uow.session)}
    filters, errors = _filters(request, principal, type_codes)
    if errors:
        not_found()
    items: list[StoredResponse] = []
    cursor: str | None = None
    async with database(request).uow() as uow:
        while len(items) < MAX_EXPORT_ROWS:
            page = await list_responses(
                uow.session,
                principal.scope,
                inn=filters.inn,
                region_code=filters.region_code,
                date_from=filters.date_from,
                date_to=filters.date_to,
                type_code=filters.type_code,
                cursor=cursor,
                limit=EXPORT_PAGE,
            )
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    return items[:MAX_EXPORT_ROWS]


@router.get("/responses/export.csv", name="responses_export_csv")
async def responses_export_csv(request: Request, principal: Principal) -> Response:
    items = await _all_matching(request, principal)
    return Response(
        responses_csv(items),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="responses.csv"'},
    )


@router.get("/responses/export.xlsx", name="responses_export_xlsx")
async def responses_export_xlsx(request: Request, principal: Principal) -> Response:
    items = await _all_matching(request, principal)
    return Response(
        responses_xlsx(items),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="responses.xlsx"'},
    )
