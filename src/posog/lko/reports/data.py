"""What a report shows, fetched from analytics with the cabinet user's scope passed along (analytics
enforces it too). The filters come from the query string; a drill-down outside the user's scope answers
404 like the rest of the cabinet."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from posog.analytics.client import AnalyticsClient, AnalyticsRefused
from posog.analytics.contracts import Bucket, CallerScope, Level, RatingItem, Summary, Timeseries
from posog.core.regions import get_region, is_region_code
from posog.lko.accounts.model import CabinetPrincipal
from posog.lko.contracts import CRITERIA

BUCKETS: dict[str, str] = {"day": "по дням", "week": "по неделям", "month": "по месяцам"}
LEVEL_NAMES: dict[str, str] = {"country": "Российская Федерация", "region": "Регион", "organization": "Организация"}
_INN = re.compile(r"^\d{10}(\d{2})?$")
_TYPE_CODE = re.compile(r"^[a-z0-9_\-]{1,40}$")


class OutOfScope(Exception):
    """The report asked for lies outside the user's scope (answered 404, as something absent)."""


@dataclass(frozen=True)
class ReportQuery:
    """The report's filters, checked: what to show (level, region, ИНН) and how (period, type, bucket)."""

    level: Level
    region_code: str | None = None
    inn: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    type_code: str | None = None
    bucket: Bucket = "month"

    def params(self, **changes: str | None) -> dict[str, str]:
        """The query string of this report (with ``changes``): for drill-down links and exports."""
        values: dict[str, str | None] = {
            "level": self.level,
            "region_code": self.region_code,
            "inn": self.inn,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "type_code": self.type_code,
            "bucket": self.bucket,
            **changes,
        }
        return {key: value for key, value in values.items() if value}


@dataclass
class Report:
    query: ReportQuery
    title: str
    summary: Summary
    timeseries: Timeseries
    table_level: Literal["region", "organization"] | None = None
    rows: list[RatingItem] = field(default_factory=list)
    min_responses: int = 0


def caller_scope(principal: CabinetPrincipal) -> CallerScope:
    return CallerScope(role=principal.role, region_code=principal.region_code, inn=principal.inn)


def parse_query(raw: dict[str, str], principal: CabinetPrincipal) -> tuple[ReportQuery, list[str]]:
    """The filters of ``raw`` (a query string) for ``principal``; a region or ИНН outside the user's scope
    raises :class:`OutOfScope`; malformed values are dropped and reported in Russian."""
    errors: list[str] = []
    region_code = (raw.get("region_code") or "").strip() or None
    inn = (raw.get("inn") or "").strip() or None
    level_raw = (raw.get("level") or "").strip()
    if principal.role == "organization":
        if inn is not None and inn != principal.inn:
            raise OutOfScope()
        if level_raw not in ("", "organization"):
            raise OutOfScope()
        level: Level = "organization"
        inn, region_code = principal.inn, None
    elif principal.role == "regional":
        if level_raw == "country" or (region_code is not None and region_code != principal.region_code):
            raise OutOfScope()
        region_code = principal.region_code
        level = "organization" if level_raw == "organization" or inn else "region"
    else:
        if level_raw in ("country", "region", "organization"):
            level = level_raw  # type: ignore[assignment]
        else:
            level = "organization" if inn else "region" if region_code else "country"
    if region_code is not None and not is_region_code(region_code):
        raise OutOfScope()
    if inn is not None and not _INN.match(inn):
        raise OutOfScope()
    if level == "region" and region_code is None:
        raise OutOfScope()
    if level == "organization" and inn is None:
        raise OutOfScope()
    if level == "country":
        region_code = inn = None
    if level == "region":
        inn = None
    date_from = _date(raw.get("from", ""), "Период с", errors)
    date_to = _date(raw.get("to", ""), "Период по", errors)
    if date_from and date_to and date_from > date_to:
        errors.append("Период: дата начала позже даты окончания")
        date_from = date_to = None
    type_code = (raw.get("type_code") or "").strip() or None
    if type_code is not None and not _TYPE_CODE.match(type_code):
        errors.append(f"Тип организации: неизвестный код «{type_code[:40]}»")
        type_code = None
    bucket_raw = (raw.get("bucket") or "month").strip()
    bucket: Bucket = "month"
    if bucket_raw in BUCKETS:
        bucket = bucket_raw  # type: ignore[assignment]
    else:
        errors.append("Шаг динамики: выберите «по дням», «по неделям» или «по месяцам»")
    query = ReportQuery(level, region_code, inn, date_from, date_to, type_code, bucket)
    return query, errors


def _date(raw: str, label: str, errors: list[str]) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{label}: укажите дату в формате ГГГГ-ММ-ДД (получено «{raw[:20]}»)")
        return None


async def fetch_report(client: AnalyticsClient, principal: CabinetPrincipal, query: ReportQuery) -> Report:
    """Every figure of the report, asked with the user's scope. An organisation a regional operator has
    no rating row for (another region's) is out of scope."""
    scope = caller_scope(principal)
    common: dict[str, Any] = {
        "date_from": query.date_from,
        "date_to": query.date_to,
        "type_code": query.type_code,
        "scope": scope,
    }
    try:
        table_level: Literal["region", "organization"] | None = None
        rows: list[RatingItem] = []
        min_responses = 0
        if query.level == "country":
            table_level = "region"
        elif query.level == "region":
            table_level = "organization"
        if principal.role == "regional" and query.level == "organization":
            # Only the region's own organisations may be opened by its operator.
            ratings = await client.ratings(level="organization", region_code=principal.region_code, **common)
            if query.inn not in {item.inn for item in ratings.items}:
                raise OutOfScope()
        if table_level is not None:
            ratings = await client.ratings(level=table_level, region_code=query.region_code, **common)
            rows, min_responses = ratings.items, ratings.min_responses
        summary = await client.summary(level=query.level, region_code=query.region_code, inn=query.inn, **common)
        series = await client.timeseries(
            bucket=query.bucket, level=query.level, region_code=query.region_code, inn=query.inn, **common
        )
    except AnalyticsRefused as exc:
        if exc.code == "scope_violation":
            raise OutOfScope() from exc
        raise
    return Report(query, _title(query, summary), summary, series, table_level, rows, min_responses)


def _title(query: ReportQuery, summary: Summary) -> str:
    if query.level == "country":
        return "Российская Федерация"
    if query.level == "region":
        region = get_region(query.region_code or "")
        return f"{query.region_code} — {region.name}" if region else str(query.region_code)
    name = summary.scope.org_name
    return f"{name} (ИНН {query.inn})" if name else f"Организация с ИНН {query.inn}"


def criterion_name(key: str) -> str:
    return CRITERIA.get(key, key)
