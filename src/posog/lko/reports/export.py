"""A report as XLSX — a sheet per part, each with a native Excel chart over its cells — and as CSV
(UTF-8 with BOM, «;», the parts one after another, separated by an empty line). Only aggregates: no
personal data. Names are written as text, never as formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from posog.core.spreadsheet import as_text, guard_formula
from posog.lko.reports.data import BUCKETS, Report, criterion_name

Cell = str | int | float | None


def summary_rows(report: Report) -> list[list[Cell]]:
    s = report.summary
    q = report.query
    period = f"{q.date_from.isoformat() if q.date_from else '…'} — {q.date_to.isoformat() if q.date_to else '…'}"
    return [
        ["Показатель", "Значение"],
        ["Отчёт", report.title],
        ["Период (даты услуг)", period],
        ["Тип организации", q.type_code or "все"],
        ["Услуг оказано", s.services],
        ["Граждан уведомлено", s.notified],
        ["Ответов получено", s.responses],
        ["Доля ответивших", s.response_rate],
        ["Индекс удовлетворённости", s.satisfaction_index],
        ["Уведомлений не доставлено", s.delivery_failed],
        ["Доля недоставленных уведомлений", s.delivery_failure_rate],
    ]


def criteria_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = [["Критерий", "Оценок", "Средняя оценка", "Доля 4–5", "Доля 1–2"]]
    for key, figures in report.summary.criteria.items():
        rows.append([criterion_name(key), figures.count, figures.mean, figures.positive_share, figures.negative_share])
    return rows


def distribution_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = [["Критерий", "1", "2", "3", "4", "5"]]
    for key, figures in report.summary.criteria.items():
        rows.append([criterion_name(key), *(figures.distribution.get(str(v), 0) for v in range(1, 6))])
    return rows


def series_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = [
        ["Начало", "Конец", "Услуг", "Уведомлено", "Ответов", "Доля ответивших", "Индекс удовлетворённости"]
    ]
    for p in report.timeseries.points:
        rows.append(
            [
                p.start.isoformat(),
                p.end.isoformat(),
                p.services,
                p.notified,
                p.responses,
                p.response_rate,
                p.satisfaction_index,
            ]
        )
    return rows


def table_title(report: Report) -> str | None:
    if report.table_level == "region":
        return "Регионы"
    if report.table_level == "organization":
        return "Организации"
    return None


def table_rows(report: Report) -> list[list[Cell]]:
    if report.table_level == "region":
        rows: list[list[Cell]] = [["Место", "Код региона", "Регион"]]
    else:
        rows = [["Место", "ИНН", "Организация"]]
    rows[0] += ["Услуг", "Уведомлено", "Ответов", "Доля ответивших", "Индекс удовлетворённости", "Мало ответов"]
    rows[0] += ["Не доставлено", "Доля недоставленных"]
    for item in report.rows:
        code, name = (
            (item.region_code, item.region_name) if report.table_level == "region" else (item.inn, item.org_name)
        )
        rows.append(
            [
                item.rank,
                code,
                name,
                item.services,
                item.notified,
                item.responses,
                item.response_rate,
                item.satisfaction_index,
                "да" if item.small_sample else "нет",
                item.delivery_failed,
                item.delivery_failure_rate,
            ]
        )
    return rows


def report_csv(report: Report) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    parts: list[tuple[str, list[list[Cell]]]] = [
        ("Сводка", summary_rows(report)),
        ("Критерии", criteria_rows(report)),
        ("Распределение оценок", distribution_rows(report)),
        (f"Динамика ({BUCKETS[report.query.bucket]})", series_rows(report)),
    ]
    title = table_title(report)
    if title:
        parts.append((title, table_rows(report)))
    for index, (name, rows) in enumerate(parts):
        if index:
            writer.writerow([])
        writer.writerow([name])
        for row in rows:
            writer.writerow([_csv_cell(cell) for cell in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _csv_cell(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:.4f}".rstrip("0").rstrip(".") if cell != int(cell) else str(int(cell))
    return guard_formula(cell) if isinstance(cell, str) else str(cell)


def report_xlsx(report: Report) -> bytes:
    workbook = Workbook()
    summary = workbook.worksheets[0]
    summary.title = "Сводка"
    _fill(summary, summary_rows(report), widths=(32, 60))
    counts = BarChart()
    counts.title = "Услуги, уведомления, ответы"
    counts.add_data(Reference(summary, min_col=2, min_row=5, max_row=7), titles_from_data=False)
    counts.set_categories(Reference(summary, min_col=1, min_row=5, max_row=7))
    counts.legend = None
    summary.add_chart(counts, "D2")

    criteria = workbook.create_sheet("Критерии")
    rows = criteria_rows(report)
    _fill(criteria, rows, widths=(58, 10, 16, 12, 12))
    bars = BarChart()
    bars.type = "bar"
    bars.title = "Средняя оценка по критериям"
    bars.y_axis.scaling.min = 0
    bars.y_axis.scaling.max = 5
    bars.add_data(Reference(criteria, min_col=3, min_row=1, max_row=len(rows)), titles_from_data=True)
    bars.set_categories(Reference(criteria, min_col=1, min_row=2, max_row=len(rows)))
    criteria.add_chart(bars, "G2")
    shares = BarChart()
    shares.title = "Доли оценок 4–5 и 1–2"
    shares.add_data(Reference(criteria, min_col=4, max_col=5, min_row=1, max_row=len(rows)), titles_from_data=True)
    shares.set_categories(Reference(criteria, min_col=1, min_row=2, max_row=len(rows)))
    criteria.add_chart(shares, "G20")

    distribution = workbook.create_sheet("Распределение")
    rows = distribution_rows(report)
    _fill(distribution, rows, widths=(58, 8, 8, 8, 8, 8))
    stacked = BarChart()
    stacked.type = "bar"
    stacked.grouping = "stacked"
    stacked.overlap = 100
    stacked.title = "Распределение оценок 1–5"
    stacked.add_data(Reference(distribution, min_col=2, max_col=6, min_row=1, max_row=len(rows)), titles_from_data=True)
    stacked.set_categories(Reference(distribution, min_col=1, min_row=2, max_row=len(rows)))
    distribution.add_chart(stacked, "H2")

    series = workbook.create_sheet("Динамика")
    rows = series_rows(report)
    _fill(series, rows, widths=(12, 12, 10, 12, 10, 16, 16))
    if len(rows) > 1:
        line = LineChart()
        line.title = f"Динамика {BUCKETS[report.query.bucket]}"
        line.add_data(Reference(series, min_col=3, max_col=5, min_row=1, max_row=len(rows)), titles_from_data=True)
        line.set_categories(Reference(series, min_col=1, min_row=2, max_row=len(rows)))
        series.add_chart(line, "I2")
        index = LineChart()
        index.title = "Индекс удовлетворённости"
        index.add_data(Reference(series, min_col=7, min_row=1, max_row=len(rows)), titles_from_data=True)
        index.set_categories(Reference(series, min_col=1, min_row=2, max_row=len(rows)))
        series.add_chart(index, "I20")

    title = table_title(report)
    if title:
        table = workbook.create_sheet(title)
        rows = table_rows(report)
        _fill(table, rows, widths=(8, 14, 50, 10, 12, 10, 16, 16, 12, 14, 14))
        if len(rows) > 1:
            ranking = BarChart()
            ranking.type = "bar"
            ranking.title = "Индекс удовлетворённости"
            ranking.add_data(Reference(table, min_col=8, min_row=1, max_row=len(rows)), titles_from_data=True)
            ranking.set_categories(Reference(table, min_col=3, min_row=2, max_row=len(rows)))
            table.add_chart(ranking, "M2")
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _fill(sheet: Worksheet, rows: Sequence[Sequence[Cell]], *, widths: Sequence[int]) -> None:
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c, value=value)
            if isinstance(value, str):
                as_text(cell)
            if r == 1:
                cell.font = Font(bold=True)
    for c, width in enumerate(widths, start=1):
        sheet.column_dimensions[chr(ord("A") + c - 1)].width = width
