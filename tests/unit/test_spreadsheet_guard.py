"""The spreadsheet-formula guard (``posog.core.spreadsheet``) and every export that uses it: the
responses, the reports and the organisation-type directory, as CSV and as XLSX. Text starting with
any of ``= + - @``, a tab or a carriage return never runs as a formula."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from openpyxl import load_workbook

from posog.analytics.contracts import Period, RatingItem, Scope, Summary, Timeseries
from posog.core.spreadsheet import FORMULA_START, guard_formula, unguard_formula
from posog.lko.contracts import OrgType, StoredResponse
from posog.lko.org_types.io import export_csv, export_xlsx, parse_csv, parse_xlsx
from posog.lko.pages.exports import responses_csv, responses_xlsx
from posog.lko.reports.data import Report, ReportQuery
from posog.lko.reports.export import report_csv, report_xlsx

# A payload per character that starts a formula (OWASP, "CSV Injection").
PAYLOADS = [f'{start}HYPERLINK("http://evil")' for start in FORMULA_START]


def test_every_character_that_starts_a_formula_is_guarded() -> None:
    assert FORMULA_START == ("=", "+", "-", "@", "\t", "\r")
    for payload in PAYLOADS:
        assert guard_formula(payload) == "'" + payload
        assert unguard_formula(guard_formula(payload)) == payload


@pytest.mark.parametrize("text", ["", "МФЦ", "'quoted'", "'", " =1+1", "a=b", "1-2", "'plain"])
def test_other_text_is_left_as_it_is(text: str) -> None:
    assert guard_formula(text) == text
    assert unguard_formula(text) == text, "an apostrophe the guard did not add is kept"


def csv_cells(data: bytes) -> set[str]:
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")
    return {cell for row in csv.reader(io.StringIO(text[1:], newline=""), delimiter=";") for cell in row}


def xlsx_strings(data: bytes) -> dict[str, str]:
    """Every non-empty cell of every sheet: value → its data type (``s`` text, ``f`` formula, ``n``…)."""
    workbook = load_workbook(io.BytesIO(data))
    return {
        str(cell.value): str(cell.data_type)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.value is not None
    }


def assert_guarded(csv_data: bytes, xlsx_data: bytes, payloads: list[str]) -> None:
    cells = csv_cells(csv_data)
    strings = xlsx_strings(xlsx_data)
    for payload in payloads:
        assert "'" + payload in cells, f"CSV: {payload!r}"
        assert payload not in cells
        # The standard library's XML reads a carriage return back as a line feed; lxml (openpyxl's
        # choice when it is installed) writes it as &#13; and gives it back. The cell is text either way.
        typed = payload if payload in strings else payload.replace("\r", "\n")
        assert strings.get(typed) == "s", f"XLSX: {payload!r} is text, as typed"


# --- Responses --------------------------------------------------------------------------------------


def stored(number: int, comment: str) -> StoredResponse:
    return StoredResponse(
        id=f"00000000-0000-4000-8000-{number:012}",
        card_id=f"MFC-77-2026-{number:09}",
        questionnaire_id="00000000-0000-4000-8000-000000000000",
        questionnaire_version=1,
        type_code="mfc",
        survey_level="federal",
        inn="7703012345",
        ogrn="1027700000000",
        kpp=None,
        region_code="77",
        org_name=comment,
        service_date="2026-11-20",
        answers={"q1": 5, "q5": comment, "q3": [comment], "q4": True},
        submitted_at="2026-11-20T12:00:00+00:00",
    )


def test_the_responses_export_guards_citizens_text() -> None:
    items = [stored(n, payload) for n, payload in enumerate(PAYLOADS)]
    assert_guarded(responses_csv(items), responses_xlsx(items), PAYLOADS)
    # Ratings stay numbers in the workbook.
    assert xlsx_strings(responses_xlsx(items))["5"] == "n"


# --- Reports ----------------------------------------------------------------------------------------


def report(names: list[str]) -> Report:
    figures = {
        "services": 3,
        "notified": 2,
        "responses": 1,
        "response_rate": 0.5,
        "criteria": {},
        "satisfaction_index": None,
    }
    scope = Scope(level="region", region_code="77")
    rows = [
        RatingItem(
            **figures, rank=n + 1, small_sample=False, region_code="77", region_name=None, inn=str(n), org_name=name
        )
        for n, name in enumerate(names)
    ]
    return Report(
        query=ReportQuery(level="region", region_code="77", type_code=None),
        title=names[0],
        summary=Summary(**figures, scope=scope, period=Period()),
        timeseries=Timeseries(scope=scope, period=Period(), bucket="month", points=[]),
        table_level="organization",
        rows=rows,
    )


def test_the_report_export_guards_organisation_names() -> None:
    data = report(PAYLOADS)
    assert_guarded(report_csv(data), report_xlsx(data), PAYLOADS)
    assert "0.5" in csv_cells(report_csv(data)), "numbers are not guarded"


# --- Organisation types -------------------------------------------------------------------------


def test_the_org_type_export_guards_every_text_cell_and_imports_back() -> None:
    items = [OrgType(code=f"t{n}", name=payload, sphere=None) for n, payload in enumerate(PAYLOADS)]
    assert_guarded(export_csv(items), export_xlsx(items), PAYLOADS)
    # A code may start with «-» too (a spreadsheet reads «-a1» as minus cell A1).
    minus = [OrgType(code="-a1", name="Минус", sphere=None)]
    assert "'-a1" in csv_cells(export_csv(minus))
    assert xlsx_strings(export_xlsx(minus))["-a1"] == "s"
    assert parse_csv(export_csv(minus)).items == minus
    assert parse_xlsx(export_xlsx(minus)).items == minus
    # Names are imported with their whitespace collapsed, so those starting with a tab or CR come back
    # without it; the others come back exactly.
    for exported in (export_csv(items), export_xlsx(items)):
        parsed = parse_csv(exported) if exported.startswith(b"\xef\xbb\xbf") else parse_xlsx(exported)
        assert parsed.ok, parsed.errors
        assert [item.name for item in parsed.items] == [" ".join(payload.split()) for payload in PAYLOADS]


def test_an_import_keeps_an_apostrophe_the_export_did_not_add() -> None:
    data = "code;name\r\nq1;'Кавычка\r\nq2;'=1+1\r\n".encode()
    assert [item.name for item in parse_csv(data).items] == ["'Кавычка", "=1+1"]


def test_report_dates_are_not_guarded() -> None:
    assert guard_formula(date(2026, 1, 1).isoformat()) == "2026-01-01"
