"""Reports in the cabinet (issue 5, item 4) over HTTP like a browser: each role sees its own scope's
figures — the same as analytics' API gives for that scope — drills down within it and gets 404 outside
it; the XLSX opens with openpyxl with its sheets, figures and native charts; the CSV parses."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from posog.analytics.contracts import CallerScope, Summary
from posog.bootstrap import System
from tests.integration.analytics_fixture import Fixture, analytics_stack
from tests.integration.cabinet_support import browser, make_user, signed_in
from tests.integration.test_analytics_figures import build

pytestmark = pytest.mark.integration


def shown(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', html))


def expected(summary: Summary) -> dict[str, str]:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:.1f} %"

    return {
        "services": str(summary.services),
        "notified": str(summary.notified),
        "responses": str(summary.responses),
        "response_rate": pct(summary.response_rate),
        "satisfaction_index": pct(summary.satisfaction_index),
        "delivery_failed": str(summary.delivery_failed),
        "delivery_failure_rate": pct(summary.delivery_failure_rate),
    }


async def users(system: System, fixture: Fixture) -> None:
    await make_user(system, "fed", "federal")
    await make_user(system, "reg77", "regional", region_code="77")
    await make_user(system, "orgA", "organization", inn=fixture.orgs["A"].inn)


async def test_each_role_sees_its_scope_and_drills_down_within_it(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path, analytics_min_responses=3) as system:
        fixture = await build(system)
        await users(system, fixture)
        orgs = fixture.orgs
        api = system.analytics_for_lko
        country = await api.summary(scope=CallerScope(role="federal"))
        moscow = await api.summary(
            level="region", region_code="77", scope=CallerScope(role="regional", region_code="77")
        )
        org_a = await api.summary(
            level="organization", inn=orgs["A"].inn, scope=CallerScope(role="organization", inn=orgs["A"].inn)
        )
        assert country.services == 17
        assert moscow.services == 10
        assert org_a.services == 6

        async with browser(system) as client:
            await signed_in(system, client, "fed")
            page = await client.get("/reports")
            assert page.status_code == 200, page.text
            assert shown(page.text) == expected(country)
            assert "Время ожидания в очереди" in page.text
            assert 'id="report-data"' in page.text
            assert "<script>" not in page.text
            # Drill-down: country → region → organisation, by the links of the tables.
            region_link = re.search(r'href="(/reports\?[^"]*region_code=77[^"]*)"', page.text)
            assert region_link, page.text
            region_page = await client.get(region_link.group(1).replace("&amp;", "&"))
            assert shown(region_page.text) == expected(moscow)
            org_link = re.search(rf'href="(/reports\?[^"]*inn={orgs["A"].inn}[^"]*)"', region_page.text)
            assert org_link
            org_page = await client.get(org_link.group(1).replace("&amp;", "&"))
            assert org_page.status_code == 200
            assert shown(org_page.text) == expected(org_a)
            assert orgs["A"].name in org_page.text
            asset = await client.get("/assets/plotly.min.js")
            assert asset.status_code == 200
            assert "max-age=31536000" in asset.headers["cache-control"]
            assert len(asset.content) > 1_000_000

        async with browser(system) as client:
            await signed_in(system, client, "reg77")
            page = await client.get("/reports")
            assert page.status_code == 200
            assert shown(page.text) == expected(moscow)
            assert orgs["B"].name in page.text
            assert orgs["C"].name not in page.text
            ok = await client.get("/reports", params={"level": "organization", "inn": orgs["B"].inn})
            assert ok.status_code == 200
            for params in (
                {"level": "country"},
                {"level": "region", "region_code": "16"},
                {"level": "organization", "inn": orgs["C"].inn},
                {"level": "organization", "inn": orgs["C"].inn, "region_code": "16"},
            ):
                assert (await client.get("/reports", params=params)).status_code == 404, params
                assert (await client.get("/reports/export.xlsx", params=params)).status_code == 404, params

        async with browser(system) as client:
            await signed_in(system, client, "orgA")
            page = await client.get("/reports")
            assert page.status_code == 200
            assert shown(page.text) == expected(org_a)
            assert 'id="table-drill"' not in page.text
            for params in (
                {"level": "country"},
                {"level": "region", "region_code": "77"},
                {"level": "organization", "inn": orgs["B"].inn},
            ):
                assert (await client.get("/reports", params=params)).status_code == 404, params
            bad = await client.get("/reports", params={"from": "20-11-2026", "bucket": "year"})
            assert bad.status_code == 200
            assert "ГГГГ-ММ-ДД" in bad.text


async def test_exports_have_the_sheets_figures_and_charts(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path, analytics_min_responses=3) as system:
        fixture = await build(system)
        await users(system, fixture)
        async with browser(system) as client:
            await signed_in(system, client, "fed")
            response = await client.get("/reports/export.xlsx", params={"bucket": "week"})
            assert response.status_code == 200
            workbook = load_workbook(io.BytesIO(response.content))
            assert workbook.sheetnames == ["Сводка", "Критерии", "Распределение", "Динамика", "Регионы"]
            values = {row[0]: row[1] for row in workbook["Сводка"].iter_rows(values_only=True)}
            assert values["Услуг оказано"] == 17
            assert values["Ответов получено"] == 11
            assert values["Индекс удовлетворённости"] == 0.6182
            criteria = list(workbook["Критерии"].iter_rows(values_only=True))
            assert criteria[0][0] == "Критерий"
            assert len(criteria) == 6
            assert ("Вежливость и компетентность сотрудника", 11, 3.82, 0.7273, 0.1818) in criteria
            regions = list(workbook["Регионы"].iter_rows(values_only=True))
            assert {row[1] for row in regions[1:]} == {"77", "16"}
            for name in workbook.sheetnames:
                assert workbook[name]._charts, name

            response = await client.get("/reports/export.xlsx", params={"level": "region", "region_code": "16"})
            workbook = load_workbook(io.BytesIO(response.content))
            assert workbook.sheetnames[-1] == "Организации"
            names = {row[2] for row in workbook["Организации"].iter_rows(min_row=2, values_only=True)}
            assert names == {fixture.orgs["C"].name, fixture.orgs["D"].name}

            response = await client.get("/reports/export.csv")
            assert response.status_code == 200
            text = response.content.decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(text), delimiter=";"))
            assert ["Услуг оказано", "17"] in rows
            assert ["Индекс удовлетворённости", "0.6182"] in rows
            assert ["Регионы"] in rows
            for citizen in fixture.citizens:  # aggregates only: no personal data
                assert citizen["last_name"] not in text
                assert citizen["snils"] not in text


async def test_reports_need_a_session(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path) as system:
        transport = httpx.ASGITransport(app=system.lko_asgi.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://lko.test") as client:
            response = await client.get("/reports/export.csv")
            assert response.status_code == 303
            assert response.headers["location"].startswith("/login")
