"""Analytics on a hand-computed fixture (SPEC §8): every figure of the API — organisation, region,
country; summary, ratings, time series — equals the computation written out below; role scopes hold;
small groups are flagged and not ranked; no personal data reaches analytics' tables or answers.

The fixture (service dates of November 2026 unless said; ratings q1..q5 = service_time, queue_time,
staff, comfort, information):

    A  ГАУ «МФЦ города Москвы»  77 mfc         cards 11-02 11-02 11-05 11-16 11-19, and 10-01 (late: no link)
                                                responses 5,4,5,5,4 · 4,3,5,4,4 · 2,1,3,4,3 · 5,5,5,5,5
    B  поликлиника № 12         77 polyclinic  cards 11-05 11-05 11-19 11-19
                                                responses 3,2,4,3,3 (11-05) · 4,4,4,4,5 · 1,2,2,3,1 (11-19)
    C  МФЦ Татарстана           16 mfc         cards 11-02 11-16 11-16 11-19 11-19 (the last not notified)
                                                responses 5,5,4,5,5 · 4,4,4,3,4 · 5,3,5,4,4
    D  школа № 3                16 school      cards 11-16 11-16; response 2,3,1,2,2

Satisfaction index = ratings of 4–5 / all criterion ratings: A 15/20, B 6/15, C 13/15, D 0/5;
77: 21/35 = 0.6, 16: 13/20 = 0.65, country 34/55 = 0.6182 (a mean of the regions' would be 0.625).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from posog.analytics.client import AnalyticsClient, AnalyticsRefused
from posog.analytics.contracts import CallerScope
from posog.bootstrap import System
from tests.integration.analytics_fixture import (
    ANALYTICS_TABLES,
    Fixture,
    analytics_stack,
    ingest,
    needles,
    notify_all,
    respond,
    table_rows,
    tokens,
)
from tests.support import BACKENDS

pytestmark = pytest.mark.integration

CARDS: dict[str, list[str]] = {
    "A": ["2026-11-02", "2026-11-02", "2026-11-05", "2026-11-16", "2026-11-19", "2026-10-01"],
    "B": ["2026-11-05", "2026-11-05", "2026-11-19", "2026-11-19"],
    "C": ["2026-11-02", "2026-11-16", "2026-11-16", "2026-11-19", "2026-11-19"],
    "D": ["2026-11-16", "2026-11-16"],
}
RESPONSES: list[tuple[str, int, list[int]]] = [
    ("A", 0, [5, 4, 5, 5, 4]),
    ("A", 1, [4, 3, 5, 4, 4]),
    ("A", 2, [2, 1, 3, 4, 3]),
    ("A", 3, [5, 5, 5, 5, 5]),
    ("B", 0, [3, 2, 4, 3, 3]),
    ("B", 2, [4, 4, 4, 4, 5]),
    ("B", 3, [1, 2, 2, 3, 1]),
    ("C", 0, [5, 5, 4, 5, 5]),
    ("C", 1, [4, 4, 4, 3, 4]),
    ("C", 2, [5, 3, 5, 4, 4]),
    ("D", 0, [2, 3, 1, 2, 2]),
]


def crit(
    count: int, mean: float | None, positive: float | None, negative: float | None, dist: list[int]
) -> dict[str, Any]:
    return {
        "count": count,
        "mean": mean,
        "positive_share": positive,
        "negative_share": negative,
        "distribution": {str(value): n for value, n in enumerate(dist, start=1)},
    }


EMPTY = crit(0, None, None, None, [0, 0, 0, 0, 0])
NO_RATINGS = dict.fromkeys(("service_time", "queue_time", "staff", "comfort", "information"), EMPTY)

# --- The hand computation ---------------------------------------------------------------------
ORG_A = {
    "services": 6, "notified": 5, "responses": 4, "response_rate": 0.8, "satisfaction_index": 0.75,
    "criteria": {
        "service_time": crit(4, 4.0, 0.75, 0.25, [0, 1, 0, 1, 2]),
        "queue_time": crit(4, 3.25, 0.5, 0.25, [1, 0, 1, 1, 1]),
        "staff": crit(4, 4.5, 0.75, 0.0, [0, 0, 1, 0, 3]),
        "comfort": crit(4, 4.5, 1.0, 0.0, [0, 0, 0, 2, 2]),
        "information": crit(4, 4.0, 0.75, 0.0, [0, 0, 1, 2, 1]),
    },
}  # fmt: skip
ORG_B = {
    "services": 4, "notified": 4, "responses": 3, "response_rate": 0.75, "satisfaction_index": 0.4,
    "criteria": {
        "service_time": crit(3, 2.67, 0.3333, 0.3333, [1, 0, 1, 1, 0]),
        "queue_time": crit(3, 2.67, 0.3333, 0.6667, [0, 2, 0, 1, 0]),
        "staff": crit(3, 3.33, 0.6667, 0.3333, [0, 1, 0, 2, 0]),
        "comfort": crit(3, 3.33, 0.3333, 0.0, [0, 0, 2, 1, 0]),
        "information": crit(3, 3.0, 0.3333, 0.3333, [1, 0, 1, 0, 1]),
    },
}  # fmt: skip
ORG_C = {
    "services": 5, "notified": 4, "responses": 3, "response_rate": 0.75, "satisfaction_index": 0.8667,
    "criteria": {
        "service_time": crit(3, 4.67, 1.0, 0.0, [0, 0, 0, 1, 2]),
        "queue_time": crit(3, 4.0, 0.6667, 0.0, [0, 0, 1, 1, 1]),
        "staff": crit(3, 4.33, 1.0, 0.0, [0, 0, 0, 2, 1]),
        "comfort": crit(3, 4.0, 0.6667, 0.0, [0, 0, 1, 1, 1]),
        "information": crit(3, 4.33, 1.0, 0.0, [0, 0, 0, 2, 1]),
    },
}  # fmt: skip
ORG_D = {
    "services": 2, "notified": 2, "responses": 1, "response_rate": 0.5, "satisfaction_index": 0.0,
    "criteria": {
        "service_time": crit(1, 2.0, 0.0, 1.0, [0, 1, 0, 0, 0]),
        "queue_time": crit(1, 3.0, 0.0, 0.0, [0, 0, 1, 0, 0]),
        "staff": crit(1, 1.0, 0.0, 1.0, [1, 0, 0, 0, 0]),
        "comfort": crit(1, 2.0, 0.0, 1.0, [0, 1, 0, 0, 0]),
        "information": crit(1, 2.0, 0.0, 1.0, [0, 1, 0, 0, 0]),
    },
}  # fmt: skip
REGION_77 = {
    "services": 10, "notified": 9, "responses": 7, "response_rate": 0.7778, "satisfaction_index": 0.6,
    "criteria": {
        "service_time": crit(7, 3.43, 0.5714, 0.2857, [1, 1, 1, 2, 2]),
        "queue_time": crit(7, 3.0, 0.4286, 0.4286, [1, 2, 1, 2, 1]),
        "staff": crit(7, 4.0, 0.7143, 0.1429, [0, 1, 1, 2, 3]),
        "comfort": crit(7, 4.0, 0.7143, 0.0, [0, 0, 2, 3, 2]),
        "information": crit(7, 3.57, 0.5714, 0.1429, [1, 0, 2, 2, 2]),
    },
}  # fmt: skip
REGION_16 = {
    "services": 7, "notified": 6, "responses": 4, "response_rate": 0.6667, "satisfaction_index": 0.65,
    "criteria": {
        "service_time": crit(4, 4.0, 0.75, 0.25, [0, 1, 0, 1, 2]),
        "queue_time": crit(4, 3.75, 0.5, 0.0, [0, 0, 2, 1, 1]),
        "staff": crit(4, 3.5, 0.75, 0.25, [1, 0, 0, 2, 1]),
        "comfort": crit(4, 3.5, 0.5, 0.25, [0, 1, 1, 1, 1]),
        "information": crit(4, 3.75, 0.75, 0.25, [0, 1, 0, 2, 1]),
    },
}  # fmt: skip
COUNTRY = {
    "services": 17, "notified": 15, "responses": 11, "response_rate": 0.7333, "satisfaction_index": 0.6182,
    "criteria": {
        "service_time": crit(11, 3.64, 0.6364, 0.2727, [1, 2, 1, 3, 4]),
        "queue_time": crit(11, 3.27, 0.4545, 0.2727, [1, 2, 3, 3, 2]),
        "staff": crit(11, 3.82, 0.7273, 0.1818, [1, 1, 1, 4, 4]),
        "comfort": crit(11, 3.82, 0.6364, 0.0909, [0, 1, 3, 4, 3]),
        "information": crit(11, 3.64, 0.6364, 0.1818, [1, 1, 2, 4, 3]),
    },
}  # fmt: skip
FIGURES = ("services", "notified", "responses", "response_rate", "satisfaction_index", "criteria")


def figures(answer: Any) -> dict[str, Any]:
    dumped = answer if isinstance(answer, dict) else answer.model_dump(mode="json", by_alias=True)
    return {key: dumped[key] for key in FIGURES}


async def build(system: System) -> Fixture:
    """Cards through intake, notifications through the relay (all but C's last card), responses through
    ЛКО's API, then one analytics poll."""
    fixture = Fixture.new()
    facts = {org: [fixture.fact(org, date.fromisoformat(day)) for day in days] for org, days in CARDS.items()}
    late_notified = facts["C"][-1]
    await ingest(system, [f for fs in facts.values() for f in fs if f is not late_notified])
    await notify_all(system)
    await ingest(system, [late_notified])  # its link stays issued: a service, not a notified one
    links = await tokens(system)
    assert facts["A"][5]["card_id"] not in links  # 10-01 + 30 days ended before 11-20: late, no link
    for org, index, ratings in RESPONSES:
        await respond(system, links[facts[org][index]["card_id"]], ratings)
    await system.analytics.pipeline.poll_once()
    return fixture


def client(system: System) -> AnalyticsClient:
    return system.analytics_for_lko


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_figure_equals_the_hand_computation(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, analytics_min_responses=3) as system:
        fixture = await build(system)
        orgs = fixture.orgs
        api = client(system)

        country = await api.summary()
        assert figures(country) == COUNTRY
        assert country.scope.level == "country"
        assert country.period.from_ is None
        assert country.period.to is None

        moscow = await api.summary(level="region", region_code="77")
        assert figures(moscow) == REGION_77
        assert moscow.scope.region_name == "г. Москва"
        tatarstan = await api.summary(level="region", region_code="16")
        assert figures(tatarstan) == REGION_16
        assert tatarstan.scope.region_name == "Республика Татарстан (Татарстан)"

        for key, expected in (("A", ORG_A), ("B", ORG_B), ("C", ORG_C), ("D", ORG_D)):
            answer = await api.summary(level="organization", inn=orgs[key].inn)
            assert figures(answer) == expected, key
            assert answer.scope.org_name == orgs[key].name
            assert answer.scope.inn == orgs[key].inn

        # Filters: a type across regions, a period.
        mfc = await api.summary(type_code="mfc")
        assert (mfc.services, mfc.notified, mfc.responses) == (11, 9, 7)
        assert mfc.satisfaction_index == 0.8  # (15 + 13) / (20 + 15)
        october = await api.summary(level="organization", inn=orgs["A"].inn, date_to=date(2026, 10, 31))
        assert figures(october) == {
            "services": 1, "notified": 0, "responses": 0, "response_rate": None, "satisfaction_index": None,
            "criteria": NO_RATINGS,
        }  # fmt: skip
        assert october.period.to == date(2026, 10, 31)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ratings_rank_pooled_indices_and_flag_small_groups(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, analytics_min_responses=3) as system:
        fixture = await build(system)
        orgs = fixture.orgs
        api = client(system)

        regions = await api.ratings(level="region")
        assert regions.min_responses == 3
        assert [(i.region_code, i.rank, i.small_sample) for i in regions.items] == [("16", 1, False), ("77", 2, False)]
        assert figures(regions.items[0]) == REGION_16
        assert figures(regions.items[1]) == REGION_77
        assert regions.items[1].region_name == "г. Москва"

        organizations = await api.ratings(level="organization")
        assert [(i.inn, i.rank, i.small_sample) for i in organizations.items] == [
            (orgs["C"].inn, 1, False),  # 13/15
            (orgs["A"].inn, 2, False),  # 15/20
            (orgs["B"].inn, 3, False),  # 6/15
            (orgs["D"].inn, None, True),  # one response: shown, flagged, not ranked
        ]
        assert [figures(i) for i in organizations.items] == [ORG_C, ORG_A, ORG_B, ORG_D]
        assert organizations.items[0].org_name == orgs["C"].name
        assert organizations.items[0].region_code == "16"

        in_tatarstan = await api.ratings(level="organization", region_code="16")
        assert [(i.inn, i.rank) for i in in_tatarstan.items] == [(orgs["C"].inn, 1), (orgs["D"].inn, None)]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_timeseries_by_day_week_and_month(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        fixture = await build(system)
        api = client(system)

        months = await api.timeseries(bucket="month", level="region", region_code="77")
        assert [(p.start, p.end) for p in months.points] == [
            (date(2026, 10, 1), date(2026, 10, 31)),
            (date(2026, 11, 1), date(2026, 11, 19)),  # open period: up to the last day with data
        ]
        assert [
            (p.services, p.notified, p.responses, p.response_rate, p.satisfaction_index) for p in months.points
        ] == [
            (1, 0, 0, None, None),
            (9, 9, 7, 0.7778, 0.6),
        ]

        weeks = await api.timeseries(bucket="week", date_from=date(2026, 11, 1), date_to=date(2026, 11, 22))
        assert [(p.start, p.end) for p in weeks.points] == [
            (date(2026, 11, 1), date(2026, 11, 1)),  # the ISO week of Oct 26, clipped to the period
            (date(2026, 11, 2), date(2026, 11, 8)),
            (date(2026, 11, 9), date(2026, 11, 15)),
            (date(2026, 11, 16), date(2026, 11, 22)),
        ]
        assert [(p.services, p.notified, p.responses, p.response_rate, p.satisfaction_index) for p in weeks.points] == [
            (0, 0, 0, None, None),
            (6, 6, 5, 0.8333, 0.64),  # 16 of 25 ratings are 4–5
            (0, 0, 0, None, None),
            (10, 9, 6, 0.6667, 0.6),  # 18 of 30
        ]
        assert weeks.points[1].criteria["staff"].distribution == {"1": 0, "2": 0, "3": 1, "4": 2, "5": 2}

        days = await api.timeseries(
            bucket="day",
            level="organization",
            inn=fixture.orgs["C"].inn,
            date_from=date(2026, 11, 16),
            date_to=date(2026, 11, 19),
        )
        assert [(p.start, p.services, p.notified, p.responses) for p in days.points] == [
            (date(2026, 11, 16), 2, 2, 2),
            (date(2026, 11, 17), 0, 0, 0),
            (date(2026, 11, 18), 0, 0, 0),
            (date(2026, 11, 19), 2, 1, 0),
        ]
        assert days.points[0].satisfaction_index == 0.8  # 8 of 10


@pytest.mark.parametrize("backend", BACKENDS)
async def test_scopes_are_enforced_by_analytics(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, analytics_min_responses=3) as system:
        fixture = await build(system)
        orgs = fixture.orgs
        api = client(system)
        moscow = CallerScope(role="regional", region_code="77")
        school = CallerScope(role="organization", inn=orgs["D"].inn)

        # A regional operator: its region, by default and when named; organisations within it.
        assert figures(await api.summary(level="region", scope=moscow)) == REGION_77
        assert figures(await api.summary(level="region", region_code="77", scope=moscow)) == REGION_77
        assert figures(await api.summary(level="organization", inn=orgs["A"].inn, scope=moscow)) == ORG_A
        ranked = await api.ratings(level="organization", scope=moscow)
        assert [i.inn for i in ranked.items] == [orgs["A"].inn, orgs["B"].inn]
        assert ranked.scope.region_code == "77"
        # …another region's organisation is refused, naming nothing of it — the same answer as for an
        # ИНН known nowhere (its figures cut to the region used to come back as zeros with its name).
        refusals = []
        for inn in (orgs["C"].inn, "7700000000"):
            for call in (
                api.summary(level="organization", inn=inn, scope=moscow),
                api.timeseries(level="organization", inn=inn, scope=moscow),
            ):
                with pytest.raises(AnalyticsRefused) as refused:
                    await call
                refusals.append((refused.value.status, refused.value.code, refused.value.message))
        assert set(refusals) == {
            (403, "scope_violation", "Региональному оператору доступны только организации своего региона")
        }
        assert orgs["C"].name not in str(refusals)
        for call in (
            api.summary(level="region", region_code="16", scope=moscow),
            api.summary(level="country", scope=moscow),
            api.ratings(level="region", scope=moscow),
            api.ratings(level="organization", region_code="16", scope=moscow),
            api.timeseries(level="region", region_code="16", scope=moscow),
        ):
            with pytest.raises(AnalyticsRefused) as refused:
                await call
            assert (refused.value.status, refused.value.code) == (403, "scope_violation")

        # An organisation user: its ИНН only, no ratings.
        assert figures(await api.summary(level="organization", scope=school)) == ORG_D
        for call in (
            api.summary(level="organization", inn=orgs["C"].inn, scope=school),
            api.summary(level="region", region_code="16", scope=school),
            api.summary(scope=school),
            api.ratings(level="organization", region_code="16", scope=school),
        ):
            with pytest.raises(AnalyticsRefused) as refused:
                await call
            assert (refused.value.status, refused.value.code) == (403, "scope_violation")

        # A federal operator sees everything.
        assert figures(await api.summary(scope=CallerScope(role="federal"))) == COUNTRY


@pytest.mark.parametrize("backend", BACKENDS)
async def test_errors_and_authentication(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        http = system.analytics_http_for_lko
        for params, code in (
            ({"level": "region"}, "region_code_required"),
            ({"level": "organization"}, "inn_required"),
            ({"level": "country", "region_code": "77"}, "bad_request"),
            ({"from": "2026-11-10", "to": "2026-11-01"}, "bad_period"),
            ({"scope_role": "regional"}, "bad_scope"),
            ({"scope_region": "77"}, "bad_scope"),
            ({"level": "planet"}, "validation_error"),
            ({"region_code": "7"}, "validation_error"),
        ):
            response = await http.get("/api/v1/analytics/summary", params=params)
            assert response.status_code == 422, params
            assert response.json()["error"]["code"] == code, params
        response = await http.get(
            "/api/v1/analytics/timeseries", params={"bucket": "day", "from": "2000-01-01", "to": "2026-01-01"}
        )
        assert (response.status_code, response.json()["error"]["code"]) == (422, "period_too_long")

        transport = httpx.ASGITransport(app=system.analytics_asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://analytics") as anonymous:
            response = await anonymous.get("/api/v1/analytics/summary")
            assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
            lkp = {"Authorization": "Bearer dev-lkp-key"}
            response = await anonymous.get("/api/v1/analytics/summary", headers=lkp)
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
            module = {"Authorization": "Bearer dev-module-key"}
            response = await anonymous.get("/api/v1/analytics/ratings", headers=module)
            assert response.status_code == 200
            assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
            assert (await anonymous.get("/readyz")).json() == {"status": "ok"}
        assert (await system.analytics_for_module.summary()).services == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_no_personal_data_reaches_analytics(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, analytics_min_responses=3) as system:
        fixture = await build(system)
        secrets = needles(fixture.citizens)
        assert len(fixture.citizens) == 17

        stored = {table: await table_rows(system, table) for table in ANALYTICS_TABLES}
        assert len(stored["analytics_cards"]) == 17
        assert len(stored["analytics_responses"]) == 11
        dump = json.dumps(
            {t: [[str(v) for v in row] for row in rows] for t, rows in stored.items()}, ensure_ascii=False
        )
        assert not [s for s in secrets if s in dump]

        api = client(system)
        answers = [
            await api.summary(),
            await api.summary(level="organization", inn=fixture.orgs["A"].inn),
            await api.ratings(level="organization"),
            await api.timeseries(bucket="week"),
        ]
        text = " ".join(a.model_dump_json() for a in answers)
        assert not [s for s in secrets if s in text]

        # The module's feed itself carries no personal data.
        from posog.module.client import ModuleClient

        page = await ModuleClient(system.module_http_for_analytics).cards_feed(None, 100)
        assert len(page.items) == 17
        assert not [s for s in secrets if s in page.model_dump_json()]
