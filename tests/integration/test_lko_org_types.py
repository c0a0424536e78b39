"""The organisation-type directory (issue 3, item 1): edited in the cabinet, imported and exported as
CSV and XLSX, imported in bulk through ``PUT /api/v1/org-types``. A file with bad rows imports nothing
and names every bad row with its reason; an export imports back unchanged."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from openpyxl import Workbook, load_workbook

from posog.bootstrap import System
from posog.lko.client import LkoClient
from posog.lko.contracts import OrgType
from posog.lko.org_types.io import parse_csv, parse_xlsx
from posog.lko.org_types.queries import list_org_types
from tests.integration.cabinet_support import browser, make_user, post_form, signed_in
from tests.support import BACKENDS, stack

pytestmark = pytest.mark.integration

BAD_CSV = (
    "code;name;sphere;active\r\n"
    "new_centre;Новый центр;social;да\r\n"  # row 2: fine
    "Bad Code;Плохой код;;\r\n"  # row 3: code
    "mfc;;public_administration;да\r\n"  # row 4: no name
    "clinic2;Клиника;медицина;да\r\n"  # row 5: unknown sphere
    "new_centre;Дубликат;social;нет\r\n"  # row 6: duplicate of row 2
    "hospice;Хоспис;health;может быть\r\n"  # row 7: active
    "\r\n"  # blank lines are skipped
    "school;Школа (переименована);education;нет\r\n"  # row 9: fine
)


def _xlsx(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


BAD_XLSX_ROWS: list[list[object]] = [
    ["код", "наименование", "сфера", "активен"],  # Russian headers are accepted
    ["new_centre", "Новый центр", "Социальная защита и социальное обслуживание", True],  # row 2: fine
    ["", "Без кода", "", ""],  # row 3
    ["x" * 41, "Длинный код", "", ""],  # row 4
    ["museum", "Музей", "", 2],  # row 5: active
]


async def _directory(system: System) -> list[OrgType]:
    async with system.db.uow() as uow:
        return await list_org_types(uow.session)


async def _federal_browser(system: System, client: httpx.AsyncClient) -> None:
    await make_user(system, "federal.op", "federal", full_name="Фёдор Операторов")
    await signed_in(system, client, "federal.op")


def _error_rows(html: str) -> dict[str, str]:
    """Row number → message from the import page's error table."""
    cells = re.findall(r'<td class="num">([^<]+)</td><td class="wrap">([^<]+)</td>', html)
    return {row: message for row, message in cells}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_csv_with_bad_rows_imports_nothing_and_names_every_bad_row(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system, browser(system) as client:
        await _federal_browser(system, client)
        before = await _directory(system)

        response = await post_form(
            client, "/org-types/import", {}, files={"file": ("types.csv", BAD_CSV.encode("utf-8"), "text/csv")}
        )

        assert response.status_code == 422
        assert "Ничего не импортировано" in response.text
        errors = _error_rows(response.text)
        assert set(errors) == {"3", "4", "5", "6", "7"}
        assert "код «Bad Code» недопустим" in errors["3"]
        assert "не указано наименование" in errors["4"]
        assert "неизвестная сфера «медицина»" in errors["5"]
        assert "код «new_centre» уже встречался в строке 2" in errors["6"]
        assert "«да» или «нет», а не «может быть»" in errors["7"]
        assert await _directory(system) == before, "nothing half-imported"


async def test_an_xlsx_with_bad_rows_imports_nothing_and_names_every_bad_row(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await _federal_browser(system, client)
        before = await _directory(system)
        data = _xlsx(BAD_XLSX_ROWS)

        response = await post_form(client, "/org-types/import", {}, files={"file": ("types.xlsx", data, "x/y")})

        assert response.status_code == 422
        errors = _error_rows(response.text)
        assert set(errors) == {"3", "4", "5"}
        assert "не указан код" in errors["3"]
        assert "не длиннее 40 символов" in errors["4"]
        assert "а не «2»" in errors["5"]
        assert await _directory(system) == before


def test_file_level_problems_are_reported_not_raised() -> None:
    assert parse_xlsx(b"PK\x03\x04 not really a zip").errors[0].message == "файл не является книгой Excel (XLSX)"
    assert "нет столбцов: code" in parse_csv("name;sphere\r\nМФЦ;\r\n".encode()).errors[0].message
    assert "нет ни одной строки" in parse_csv(b"code;name\r\n").errors[0].message
    assert parse_csv("code,name\nmfc,МФЦ\n".encode("cp1251")).items == [OrgType(code="mfc", name="МФЦ")]
    header_only = parse_xlsx(_xlsx([["code", "name", "colour"]]))
    assert "неизвестный столбец «colour»" in header_only.errors[0].message


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_good_import_applies_every_row_and_exports_round_trip(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system, browser(system) as client:
        await _federal_browser(system, client)
        csv_text = "code,name,sphere,active\nnew_centre,Новый центр,social,да\nschool,Школа №1,education,нет\n"

        response = await post_form(client, "/org-types/import", {}, files={"file": ("t.csv", csv_text.encode())})

        assert response.status_code == 303
        listing = await client.get(response.headers["location"])
        assert "Добавлено: 1, изменено: 1" in listing.text
        directory = {t.code: t for t in await _directory(system)}
        assert directory["new_centre"] == OrgType(code="new_centre", name="Новый центр", sphere="social")
        assert directory["school"].name == "Школа №1"
        assert not directory["school"].active

        # A name that a spreadsheet would run as a formula stays text both ways.
        async with system.db.uow() as uow:
            from posog.lko.org_types.handlers import update_org_type

            formula = OrgType(code="tax", name='=HYPERLINK("http://evil")', sphere="public_administration")
            await update_org_type(uow, formula, now=system.clock())
        exported = await _directory(system)

        csv_export = await client.get("/org-types/export.csv")
        assert csv_export.status_code == 200
        assert csv_export.headers["content-type"].startswith("text/csv")
        assert csv_export.content.startswith("\ufeffcode;name;sphere;active".encode())
        assert "'=HYPERLINK" in csv_export.content.decode("utf-8-sig")
        assert parse_csv(csv_export.content).items == exported

        xlsx_export = await client.get("/org-types/export.xlsx")
        assert xlsx_export.status_code == 200
        sheet = load_workbook(io.BytesIO(xlsx_export.content)).active
        assert sheet is not None
        formula_cell = next(row[1] for row in sheet.iter_rows(min_row=2) if row[0].value == "tax")
        assert formula_cell.data_type == "s"
        assert parse_xlsx(xlsx_export.content).items == exported

        # Importing an export changes nothing.
        again = await post_form(
            client, "/org-types/import", {}, files={"file": ("org-types.xlsx", xlsx_export.content)}
        )
        assert again.status_code == 303
        assert f"unchanged={len(exported)}" in again.headers["location"]
        assert await _directory(system) == exported


async def test_the_directory_is_edited_in_the_cabinet(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await _federal_browser(system, client)
        lko = LkoClient(system.lko_http)

        created = await post_form(
            client, "/org-types/new", {"code": "hospice", "name": "Хоспис", "sphere": "health", "active": "on"}
        )
        assert created.status_code == 303
        duplicate = await post_form(client, "/org-types/new", {"code": "hospice", "name": "Ещё раз", "active": "on"})
        assert duplicate.status_code == 409
        assert "уже есть в справочнике" in duplicate.text
        invalid = await post_form(client, "/org-types/new", {"code": "Хоспис", "name": ""})
        assert invalid.status_code == 422
        assert "недопустим" in invalid.text
        assert "не указано наименование" in invalid.text

        renamed = await post_form(client, "/org-types/hospice/edit", {"name": "Хоспис (паллиативная помощь)"})
        assert renamed.status_code == 303
        types = {t.code: t for t in await lko.org_types()}
        assert types["hospice"] == OrgType(code="hospice", name="Хоспис (паллиативная помощь)", active=False)
        assert "Хоспис (паллиативная помощь)" in (await client.get("/org-types")).text

        assert (await client.get("/org-types/no_such_type/edit")).status_code == 404
        assert (await client.get("/org-types/%3Cscript%3E/edit")).status_code == 404


async def test_bulk_import_over_the_api_names_every_bad_row(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        app = system.lko_asgi.app
        transport = httpx.ASGITransport(app=app)
        admin = httpx.AsyncClient(
            transport=transport, base_url="http://lko", headers={"Authorization": "Bearer dev-admin-key"}
        )
        module = httpx.AsyncClient(
            transport=transport, base_url="http://lko", headers={"Authorization": "Bearer dev-module-key"}
        )
        async with admin, module:
            before = await _directory(system)
            bad = await admin.put(
                "/api/v1/org-types",
                json=[
                    {"code": "ok_type", "name": "Годный"},
                    {"code": "ok_type", "name": "Дубль"},
                    {"code": "x", "name": "Лишнее", "colour": "red"},
                    "строка",
                ],
            )
            assert bad.status_code == 422
            body = bad.json()
            assert body["error"]["code"] == "validation_error"
            assert [(r["row"], r["message"]) for r in body["rows"]] == [
                (2, "код «ok_type» уже встречался в строке 1"),
                (3, "неизвестное поле «colour»"),
                (4, "элемент должен быть объектом с полями code, name, sphere, active"),
            ]
            assert await _directory(system) == before

            refused = await module.put("/api/v1/org-types", json=[{"code": "ok_type", "name": "Годный"}])
            assert refused.status_code == 403

            good = await admin.put(
                "/api/v1/org-types",
                json={
                    "items": [{"code": "ok_type", "name": "Годный"}, {"code": "mfc", "name": "МФЦ", "active": False}]
                },
            )
            assert good.status_code == 200, good.text
            assert good.json() == {"created": 1, "updated": 1, "unchanged": 0}
            listed = {t["code"]: t for t in (await admin.get("/api/v1/org-types")).json()["items"]}
            assert listed["ok_type"]["name"] == "Годный"
            assert listed["mfc"]["active"] is False
