"""Pages of the organisation-type directory: the list (federal and regional operators), adding and
editing types, import from CSV/XLSX with the errors of every bad row, export (federal operator edits)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from posog.lko.contracts import OrgType
from posog.lko.org_types.defaults import SPHERES
from posog.lko.org_types.handlers import (
    OrgTypeConflict,
    OrgTypeNotFound,
    add_org_type,
    import_org_types,
    update_org_type,
)
from posog.lko.org_types.io import (
    CSV_MEDIA_TYPE,
    MAX_FILE_BYTES,
    XLSX_MEDIA_TYPE,
    RowError,
    export_csv,
    export_xlsx,
    parse_upload,
    validate_row,
)
from posog.lko.org_types.model import OrgTypeEntry
from posog.lko.org_types.queries import list_org_types
from posog.lko.pages.web import Principal, checked_form, database, not_found, now, redirect, render, require, text_field

router = APIRouter(include_in_schema=False)
_CODE = re.compile(r"^[a-z0-9_\-]{1,40}$")


@router.get("/org-types", name="org_types")
async def org_types_list(request: Request, principal: Principal) -> HTMLResponse:
    require(principal.can_view_directory)
    async with database(request).uow() as uow:
        items = await list_org_types(uow.session)
    query = request.query_params
    counts = {key: query.get(key) for key in ("created", "updated", "unchanged") if (query.get(key) or "").isdigit()}
    return render(
        request,
        "lko/org_types/list.html",
        {"section": "org_types", "items": items, "spheres": SPHERES, "counts": counts},
        principal=principal,
    )


def _form_values(form: Any, code: str | None = None) -> dict[str, Any]:
    return {
        "code": code if code is not None else text_field(form, "code", limit=100).strip(),
        "name": text_field(form, "name", limit=400),
        "sphere": text_field(form, "sphere", limit=100),
        "active": form.get("active") == "on",
    }


def _form_page(
    request: Request, principal: Any, values: dict[str, Any], *, editing: bool, errors: list[str], status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "lko/org_types/form.html",
        {"section": "org_types", "values": values, "editing": editing, "errors": errors, "spheres": SPHERES},
        principal=principal,
        status_code=status,
    )


@router.get("/org-types/new", name="org_type_new")
async def org_type_new(request: Request, principal: Principal) -> HTMLResponse:
    require(principal.can_edit_directory)
    values = {"code": "", "name": "", "sphere": "", "active": True}
    return _form_page(request, principal, values, editing=False, errors=[])


@router.post("/org-types/new", name="org_type_create")
async def org_type_create(request: Request, principal: Principal) -> Response:
    require(principal.can_edit_directory)
    form = await checked_form(request, principal)
    values = _form_values(form)
    item, reasons = validate_row(values)
    if item is None:
        return _form_page(request, principal, values, editing=False, errors=reasons, status=422)
    try:
        async with database(request).uow() as uow:
            await add_org_type(uow, item, now=now(request))
    except OrgTypeConflict as conflict:
        return _form_page(request, principal, values, editing=False, errors=[conflict.message], status=409)
    return redirect(request, "org_types", {"msg": "org_type_added"})


async def _entry(request: Request, code: str) -> OrgType:
    if not _CODE.match(code):
        not_found()
    async with database(request).uow() as uow:
        entry = await uow.session.get(OrgTypeEntry, code)
        if entry is None:
            not_found()
        return entry.to_contract()


@router.get("/org-types/{code}/edit", name="org_type_edit")
async def org_type_edit(request: Request, principal: Principal, code: str) -> HTMLResponse:
    require(principal.can_edit_directory)
    item = await _entry(request, code)
    values = {"code": item.code, "name": item.name, "sphere": item.sphere or "", "active": item.active}
    return _form_page(request, principal, values, editing=True, errors=[])


@router.post("/org-types/{code}/edit", name="org_type_update")
async def org_type_update(request: Request, principal: Principal, code: str) -> Response:
    require(principal.can_edit_directory)
    await _entry(request, code)
    form = await checked_form(request, principal)
    values = _form_values(form, code=code)
    item, reasons = validate_row(values)
    if item is None:
        return _form_page(request, principal, values, editing=True, errors=reasons, status=422)
    try:
        async with database(request).uow() as uow:
            await update_org_type(uow, item, now=now(request))
    except OrgTypeNotFound:
        not_found()
    return redirect(request, "org_types", {"msg": "org_type_saved"})


def _import_page(
    request: Request, principal: Any, *, errors: list[RowError], filename: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "lko/org_types/import.html",
        {
            "section": "org_types",
            "errors": errors,
            "filename": filename,
            "max_megabytes": MAX_FILE_BYTES // (1024 * 1024),
            "spheres": SPHERES,
        },
        principal=principal,
        status_code=status,
    )


@router.get("/org-types/import", name="org_types_import")
async def org_types_import_form(request: Request, principal: Principal) -> HTMLResponse:
    require(principal.can_edit_directory)
    return _import_page(request, principal, errors=[])


@router.post("/org-types/import", name="org_types_import_submit")
async def org_types_import(request: Request, principal: Principal) -> Response:
    """Validate every row of the file; import all of them in one transaction, or none."""
    require(principal.can_edit_directory)
    form = await checked_form(request, principal)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _import_page(request, principal, errors=[RowError(0, "выберите файл CSV или XLSX")], status=422)
    filename = upload.filename[:200]
    data = await upload.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        error = RowError(0, f"файл больше {MAX_FILE_BYTES // (1024 * 1024)} МБ")
        return _import_page(request, principal, errors=[error], filename=filename, status=413)
    parsed = parse_upload(filename, data)
    if parsed.errors:
        return _import_page(request, principal, errors=parsed.errors, filename=filename, status=422)
    try:
        async with database(request).uow() as uow:
            summary = await import_org_types(uow, parsed.items, now=now(request))
    except OrgTypeConflict as conflict:
        return _import_page(request, principal, errors=[RowError(0, conflict.message)], filename=filename, status=409)
    return redirect(
        request,
        "org_types",
        {"msg": "imported", "created": summary.created, "updated": summary.updated, "unchanged": summary.unchanged},
    )


@router.get("/org-types/export.csv", name="org_types_export_csv")
async def org_types_export_csv(request: Request, principal: Principal) -> Response:
    require(principal.can_view_directory)
    async with database(request).uow() as uow:
        items = await list_org_types(uow.session)
    return Response(
        export_csv(items),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="org-types.csv"'},
    )


@router.get("/org-types/export.xlsx", name="org_types_export_xlsx")
async def org_types_export_xlsx(request: Request, principal: Principal) -> Response:
    require(principal.can_view_directory)
    async with database(request).uow() as uow:
        items = await list_org_types(uow.session)
    return Response(
        export_xlsx(items),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="org-types.xlsx"'},
    )
