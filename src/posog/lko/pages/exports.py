"""Responses as CSV (UTF-8 with BOM, «;»: Excel opens it as is) and XLSX: one row per response, one
column per question id. Citizens' text is written as text, never as a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from posog.core.spreadsheet import as_text, guard_formula
from posog.lko.contracts import AnswerValue, StoredResponse

FIXED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "Идентификатор ответа"),
    ("submitted_at", "Получен"),
    ("service_date", "Дата услуги"),
    ("card_id", "Карточка услуги"),
    ("inn", "ИНН"),
    ("ogrn", "ОГРН"),
    ("kpp", "КПП"),
    ("org_name", "Организация"),
    ("region_code", "Регион"),
    ("type_code", "Тип организации"),
    ("survey_level", "Уровень"),
    ("questionnaire_id", "Анкета"),
    ("questionnaire_version", "Версия анкеты"),
)


def _natural(key: str) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def answer_columns(items: Iterable[StoredResponse]) -> list[str]:
    """Every question id answered in ``items``, in natural order (q2 before q10)."""
    return sorted({key for item in items for key in item.answers}, key=_natural)


def answer_text(value: AnswerValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _row(item: StoredResponse, questions: Sequence[str]) -> list[str]:
    return [answer_text(value) for value in _values(item, questions)]


def _values(item: StoredResponse, questions: Sequence[str]) -> list[AnswerValue]:
    fixed: list[AnswerValue] = [getattr(item, key) for key, _ in FIXED_COLUMNS]
    return fixed + [item.answers.get(question) for question in questions]


def _header(questions: Sequence[str]) -> list[str]:
    return [title for _, title in FIXED_COLUMNS] + [f"Ответ {question}" for question in questions]


def responses_csv(items: Sequence[StoredResponse]) -> bytes:
    questions = answer_columns(items)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(_header(questions))
    for item in items:
        writer.writerow([guard_formula(cell) for cell in _row(item, questions)])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def responses_xlsx(items: Sequence[StoredResponse]) -> bytes:
    questions = answer_columns(items)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Ответы")
    header = []
    for title in _header(questions):
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    for item in items:
        cells = []
        for value in _values(item, questions):
            if isinstance(value, int) and not isinstance(value, bool):
                cells.append(WriteOnlyCell(sheet, value=value))  # ratings and versions stay numbers
                continue
            cells.append(as_text(WriteOnlyCell(sheet, value=answer_text(value))))
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
