"""The dashboard page (``/reports``), its exports (``/reports/export.xlsx``, ``.csv``) and plotly.js
served from the package installed with the app (``/assets/plotly.min.js``: no CDN)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from posog.analytics.client import AnalyticsClient, AnalyticsError, AnalyticsRefused
from posog.lko.org_types.io import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE
from posog.lko.pages.web import Principal, href, not_found, render
from posog.lko.reports.data import (
    BUCKETS,
    OutOfScope,
    Report,
    ReportQuery,
    criterion_name,
    fetch_report,
    parse_query,
)
from posog.lko.reports.export import report_csv, report_xlsx
from posog.lko.state import lko_state

router = APIRouter(include_in_schema=False)


def _plotly_file() -> Path | None:
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


PLOTLY_JS = _plotly_file()


@router.get("/assets/plotly.min.js", name="plotly_js")
async def plotly_js() -> Response:
    """plotly.js, from the installed plotly package; cached for a year (the URL carries no user data)."""
    if PLOTLY_JS is None:
        not_found()
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


def _client(request: Request) -> AnalyticsClient:
    client = lko_state(request).analytics
    if client is None:
        not_found()
    return client


async def _report(request: Request, principal: Principal) -> tuple[Report | None, ReportQuery, list[str]]:
    try:
        query, errors = parse_query(dict(request.query_params), principal)
        report = await fetch_report(_client(request), principal, query)
    except OutOfScope:
        not_found()
    except AnalyticsRefused as exc:
        return None, query, [*errors, exc.message]
    except AnalyticsError:
        return None, query, [*errors, "Модуль аналитики сейчас недоступен. Повторите попытку позже."]
    return report, query, errors


@router.get("/reports", name="reports")
async def reports(request: Request, principal: Principal) -> HTMLResponse:
    """The dashboard of the user's scope, or of a region or organisation drilled down to within it."""
    report, query, errors = await _report(request, principal)
    context: dict[str, Any] = {
        "section": "reports",
        "report": report,
        "query": query,
        "errors": errors,
        "buckets": BUCKETS,
        "criterion_name": criterion_name,
        "breadcrumbs": _breadcrumbs(request, principal, query, report),
        "export_query": query.params(),
        "drill": (lambda **changes: href(request, "reports", query.params(**changes))),
        "chart_data": _chart_data(report) if report else None,
    }
    return render(request, "lko/reports/dashboard.html", context, principal=principal)


@router.get("/reports/export.xlsx", name="reports_export_xlsx")
async def reports_export_xlsx(request: Request, principal: Principal) -> Response:
    report, _, errors = await _report(request, principal)
    if report is None:
        return render(request, "lko/error.html", _export_error(errors), principal=principal, status_code=400)
    return Response(
        report_xlsx(report),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="report.xlsx"'},
    )


@router.get("/reports/export.csv", name="reports_export_csv")
async def reports_export_csv(request: Request, principal: Principal) -> Response:
    report, _, errors = await _report(request, principal)
    if report is None:
        return render(request, "lko/error.html", _export_error(errors), principal=principal, status_code=400)
    return Response(
        report_csv(report),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="report.csv"'},
    )


def _export_error(errors: list[str]) -> dict[str, Any]:
    return {"title": "Отчёт не сформирован", "message": " ".join(errors), "status_code": 400}


def _breadcrumbs(
    request: Request, principal: Principal, query: ReportQuery, report: Report | None
) -> list[tuple[str, str | None]]:
    """(text, link) from the top of the user's scope down to the report shown (the last has no link)."""
    crumbs: list[tuple[str, str | None]] = []
    base = {k: v for k, v in query.params().items() if k in ("from", "to", "type_code", "bucket")}
    if principal.role == "federal":
        crumbs.append(("Российская Федерация", href(request, "reports", {**base, "level": "country"})))
    if principal.role in ("federal", "regional") and query.region_code:
        link = {**base, "level": "region", "region_code": query.region_code}
        crumbs.append((f"Регион {query.region_code}", href(request, "reports", link)))
    if query.level == "organization":
        crumbs.append((f"ИНН {query.inn}", None))
    if crumbs:
        crumbs[-1] = (report.title if report else crumbs[-1][0], None)
    return crumbs


def _chart_data(report: Report) -> dict[str, Any]:
    """What the charts draw (``lko-reports.js``), in a JSON block of the page — no inline script."""
    criteria = report.summary.criteria
    names = [criterion_name(key) for key in criteria]
    points = report.timeseries.points
    return {
        "criteria": {
            "names": names,
            "mean": [c.mean for c in criteria.values()],
            "positive": [c.positive_share for c in criteria.values()],
        },
        "distribution": {
            "names": names,
            "values": {str(v): [c.distribution.get(str(v), 0) for c in criteria.values()] for v in range(1, 6)},
        },
        "series": {
            "x": [p.start.isoformat() for p in points],
            "responses": [p.responses for p in points],
            "notified": [p.notified for p in points],
            "index": [p.satisfaction_index for p in points],
        },
    }
