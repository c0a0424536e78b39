"""Import and export of the organisation-type directory: CSV and XLSX files, and the JSON rows of
``PUT /api/v1/org-types``. Every row is checked before anything is applied; a bad row is reported with
its number (as a spreadsheet shows it: the header is row 1) and the reason in Russian.

Files: columns ``code``, ``name``, ``sphere``, ``active`` (Russian headers «код», «наименование»,
«сфера», «активен» are accepted too); CSV separated by «;» or «,», UTF-8 (with or without BOM) or
Windows-1251, as Excel saves it. Exports are UTF-8 with BOM and «;», which Excel opens as is."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException

from posog.core.spreadsheet import as_text, guard_formula, unguard_formula
from posog.lko.contracts import OrgType
from posog.lko.org_types.defaults import SPHERES

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
COLUMNS = ("code", "name", "sphere", "active")
_HEADER_ALIASES: dict[str, str] = {
    "code": "code",
    "код": "code",
    "код типа": "code",
    "name": "name",
    "наименование": "name",
    "название": "name",
    "sphere": "sphere",
    "сфера": "sphere",
    "active": "active",
    "активен": "active",
    "активный": "active",
    "действует": "active",
}
_TRUE = frozenset({"да", "true", "1", "yes", "y", "д", "+", "истина"})
_FALSE = frozenset({"нет", "false", "0", "no", "n", "н", "-", "ложь"})
_CODE = re.compile(r"^[a-z0-9_\-]{1,40}$")
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based, as a spreadsheet numbers it (the header is row 1); for JSON, the item's position
    message: str


@dataclass(frozen=True)
class ParsedImport:
    items: list[OrgType]
    errors: list[RowError]

    @property
    def ok(self) -> bool:
        return not self.errors


def sphere_choices() -> str:
    return ", ".join(f"{code} ({name})" for code, name in SPHERES.items())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    # Undo the guard the export adds against spreadsheet formulas.
    return unguard_formula(str(value).strip())


def validate_row(values: Mapping[str, Any]) -> tuple[OrgType | None, list[str]]:
    """One row (``code``, ``name``, optional ``sphere`` and ``active``) as an :class:`OrgType`, or the
    reasons it is not one (Russian)."""
    reasons: list[str] = []
    code = _text(values.get("code"))
    name = " ".join(_text(values.get("name")).split())
    sphere_raw = _text(values.get("sphere"))
    active_raw = values.get("active")
    if not code:
        reasons.append("не указан код типа")
    elif not _CODE.match(code):
        reasons.append(
            f"код «{code[:60]}» недопустим: только строчные латинские буквы, цифры, «_» и «-», не длиннее 40 символов"
        )
    if not name:
        reasons.append("не указано наименование")
    elif len(name) > 300:
        reasons.append("наименование длиннее 300 символов")
    sphere: str | None = None
    if sphere_raw:
        by_name = {title.casefold(): key for key, title in SPHERES.items()}
        sphere = sphere_raw if sphere_raw in SPHERES else by_name.get(sphere_raw.casefold())
        if sphere is None:
            reasons.append(f"неизвестная сфера «{sphere_raw[:60]}»; допустимые: {sphere_choices()}")
    active = True
    if isinstance(active_raw, bool):
        active = active_raw
    elif _text(active_raw):
        flag = _text(active_raw).casefold()
        if flag in _TRUE:
            active = True
        elif flag in _FALSE:
            active = False
        else:
            reasons.append(f"в столбце «active» должно быть «да» или «нет», а не «{_text(active_raw)[:20]}»")
    if reasons:
        return None, reasons
    return OrgType(code=code, name=name, sphere=sphere, active=active), []


def validate_rows(rows: Iterable[tuple[int, Mapping[str, Any]]]) -> ParsedImport:
    """Check numbered rows; every bad row is reported, duplicates of a code too."""
    items: list[OrgType] = []
    errors: list[RowError] = []
    first_row_of: dict[str, int] = {}
    count = 0
    for number, values in rows:
        count += 1
        if count > MAX_ROWS:
            errors.append(RowError(number, f"в файле больше {MAX_ROWS} строк; разделите его на части"))
            break
        item, reasons = validate_row(values)
        if item is not None and item.code in first_row_of:
            reasons = [f"код «{item.code}» уже встречался в строке {first_row_of[item.code]}"]
            item = None
        if item is None:
            errors.append(RowError(number, "; ".join(reasons)))
            continue
        first_row_of[item.code] = number
        items.append(item)
    if count == 0:
        errors.append(RowError(1, "в файле нет ни одной строки с данными"))
    return ParsedImport(items, errors)


def parse_json_rows(payload: Any) -> ParsedImport:
    """The body of ``PUT /api/v1/org-types``: a list of objects (rows numbered from 1)."""
    if not isinstance(payload, list):
        return ParsedImport([], [RowError(0, "ожидается JSON-массив объектов с полями code, name, sphere, active")])
    errors: list[RowError] = []
    rows: list[tuple[int, Mapping[str, Any]]] = []
    for number, item in enumerate(payload, start=1):
        if not isinstance(item, Mapping):
            errors.append(RowError(number, "элемент должен быть объектом с полями code, name, sphere, active"))
            continue
        unknown = [str(key) for key in item if key not in COLUMNS]
        if unknown:
            errors.append(RowError(number, f"неизвестное поле «{unknown[0][:40]}»"))
            continue
        rows.append((number, item))
    if not payload:
        return ParsedImport([], [RowError(0, "список типов организаций пуст")])
    parsed = validate_rows(rows) if rows else ParsedImport([], [])
    return ParsedImport(parsed.items, sorted(errors + parsed.errors, key=lambda error: error.row))


def _header_map(header: list[str]) -> tuple[dict[int, str], list[RowError]]:
    columns: dict[int, str] = {}
    errors: list[RowError] = []
    for position, title in enumerate(header):
        key = _HEADER_ALIASES.get(title.strip().lstrip("\ufeff").casefold())
        if key is None:
            if title.strip():
                errors.append(
                    RowError(1, f"неизвестный столбец «{title.strip()[:40]}»; ожидаются: {', '.join(COLUMNS)}")
                )
            continue
        if key in columns.values():
            errors.append(RowError(1, f"столбец «{key}» указан дважды"))
            continue
        columns[position] = key
    missing = [key for key in ("code", "name") if key not in columns.values()]
    if missing:
        errors.append(RowError(1, f"в заголовке нет столбцов: {', '.join(missing)}"))
    return columns, errors


def _table_rows(table: Iterable[list[Any]]) -> ParsedImport:
    iterator = iter(table)
    header = next(iterator, None)
    if header is None:
        return ParsedImport([], [RowError(1, "файл пуст: ожидается заголовок code, name, sphere, active")])
    columns, header_errors = _header_map([_text(cell) for cell in header])
    if header_errors:
        return ParsedImport([], header_errors)

    def rows() -> Iterable[tuple[int, Mapping[str, Any]]]:
        for number, cells in enumerate(iterator, start=2):
            if all(_text(cell) == "" for cell in cells):
                continue  # blank lines, as spreadsheets leave them
            yield number, {key: cells[position] if position < len(cells) else None for position, key in columns.items()}

    return validate_rows(rows())


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1251"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", data, 0, 1, "neither UTF-8 nor Windows-1251")


def parse_csv(data: bytes) -> ParsedImport:
    """A CSV file (see the module's docstring for its shape)."""
    if len(data) > MAX_FILE_BYTES:
        return ParsedImport([], [RowError(0, f"файл больше {MAX_FILE_BYTES // (1024 * 1024)} МБ")])
    try:
        text = _decode(data)
    except UnicodeDecodeError:
        return ParsedImport([], [RowError(0, "файл не в кодировке UTF-8 или Windows-1251")])
    if "\x00" in text:
        return ParsedImport([], [RowError(0, "это не текстовый CSV-файл")])
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") and ";" in first_line else ","
    try:
        return _table_rows(list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)))
    except csv.Error as exc:
        return ParsedImport([], [RowError(0, f"файл не читается как CSV ({exc})")])


def parse_xlsx(data: bytes) -> ParsedImport:
    """The first sheet of an XLSX workbook (see the module's docstring for its shape)."""
    if len(data) > MAX_FILE_BYTES:
        return ParsedImport([], [RowError(0, f"файл больше {MAX_FILE_BYTES // (1024 * 1024)} МБ")])
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError):
        return ParsedImport([], [RowError(0, "файл не является книгой Excel (XLSX)")])
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            return ParsedImport([], [RowError(0, "в книге нет листов")])
        return _table_rows([list(row) for row in sheet.iter_rows(values_only=True, max_row=MAX_ROWS + 2)])
    finally:
        workbook.close()


def parse_upload(filename: str, data: bytes) -> ParsedImport:
    """A file uploaded in the cabinet: XLSX by its signature or name, CSV otherwise."""
    if data.startswith(b"PK\x03\x04") or filename.lower().endswith((".xlsx", ".xlsm")):
        return parse_xlsx(data)
    return parse_csv(data)


def _cells(item: OrgType) -> list[str]:
    return [item.code, item.name, item.sphere or "", "да" if item.active else "нет"]


def export_csv(items: Iterable[OrgType]) -> bytes:
    """The directory as CSV: UTF-8 with BOM, «;»-separated, importable as is."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for item in items:
        writer.writerow([guard_formula(text) for text in _cells(item)])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def export_xlsx(items: Iterable[OrgType]) -> bytes:
    """The directory as an XLSX workbook, importable as is."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Типы организаций"
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row, item in enumerate(items, start=2):
        for index, text in enumerate(_cells(item), start=1):
            as_text(sheet.cell(row=row, column=index, value=text))
    for column, width in zip("ABCD", (24, 60, 24, 10), strict=True):
        sheet.column_dimensions[column].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
