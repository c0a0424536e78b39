"""ЛКО REST API: the organisation-type directory (SPEC §7)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from posog.core.http import error_response, error_responses
from posog.core.service_auth import ServiceKeyFirstRoute, require_service
from posog.lko.contracts import ApiError, OrgTypeList
from posog.lko.deps import API_ERRORS, UowDep
from posog.lko.org_types.contracts import ImportRejected, ImportResult, RowProblem
from posog.lko.org_types.handlers import OrgTypeConflict, import_org_types
from posog.lko.org_types.io import parse_json_rows
from posog.lko.org_types.queries import list_org_types
from posog.lko.state import lko_state

router = APIRouter(responses=API_ERRORS, tags=["org-types"], route_class=ServiceKeyFirstRoute)


@router.get("/org-types", response_model=OrgTypeList, dependencies=[Depends(require_service("org-types:read"))])
async def get_org_types(uow: UowDep) -> OrgTypeList:
    """The organisation-type directory, inactive types included (see ``active``)."""
    return OrgTypeList(items=await list_org_types(uow.session))


@router.put(
    "/org-types",
    response_model=ImportResult,
    responses=error_responses(
        400,
        models={422: ImportRejected},
        described={
            422: "Ничего не импортировано: названа каждая ошибочная строка (rows); "
            "или некорректный запрос (только error)",
            409: "Справочник одновременно изменили",
        },
    ),
    dependencies=[Depends(require_service("org-types:write"))],
)
async def put_org_types(
    request: Request,
    uow: UowDep,
    body: Annotated[
        Any,
        Body(
            description='A list of ``{code, name, sphere?, active?}`` (or ``{"items": [...]}`` as GET answers). '
            "New codes are added, known ones updated; types not listed stay as they are.",
            examples=[[{"code": "mfc", "name": "МФЦ", "sphere": "public_administration", "active": True}]],
        ),
    ],
) -> Response:
    """Bulk import: every row is checked first; if any is wrong nothing is imported and every bad row
    is named (422), otherwise all are applied in one transaction."""
    if isinstance(body, dict) and set(body) == {"items"}:
        body = body["items"]
    parsed = parse_json_rows(body)
    if parsed.errors:
        rejected = ImportRejected(
            error=ApiError(
                code="validation_error",
                message=f"Ничего не импортировано: ошибок в строках — {len(parsed.errors)}",
            ),
            rows=[RowProblem(row=error.row, message=error.message) for error in parsed.errors],
        )
        return JSONResponse(rejected.model_dump(), status_code=422)
    try:
        summary = await import_org_types(uow, parsed.items, now=lko_state(request).clock())
    except OrgTypeConflict as conflict:
        return error_response(409, "conflict", conflict.message)
    return JSONResponse(ImportResult(**summary.__dict__).model_dump())
