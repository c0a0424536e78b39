"""Export to ИАС МКГУ (SPEC §9): with the receiver failing the first attempts, a batch is delivered once
and logged as sent; re-sends are idempotent; a 4xx is a logged permanent failure; the individual
ratings go out in the vashkontrol "rates" XML, one ``form`` per response with its five indicators; and
nothing personal reaches the receiver or the export log.

Data: the hand-computed fixture of ``test_analytics_figures`` (November 2026, regions 77 and 16)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from posog.bootstrap import System
from posog.emulators.ias.model import IasBatch, IasStore
from posog.lko.client import LkoClient
from posog.module.ias_export.handlers import batch_id, previous_day, previous_month
from posog.module.ias_export.model import IasExport
from posog.module.ias_export.okato import okato_for_region
from posog.module.ias_export.rates import INDICATORS, NAMESPACE
from tests.integration.analytics_fixture import analytics_stack, needles, table_rows
from tests.integration.test_analytics_figures import COUNTRY, ORG_A, REGION_16, REGION_77, RESPONSES, build, figures
from tests.support import BACKENDS

pytestmark = pytest.mark.integration

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
FAST_RETRIES = {"ias_retry_base_s": 0.05, "ias_retry_max_s": 0.2, "ias_max_attempts": 5}
NS = {"r": NAMESPACE}


async def fail_next(system: System, count: int, status: int = 503) -> None:
    response = await system.ias_http.post("/api/v1/control/fail-next", json={"count": count, "status": status})
    assert response.status_code == 200, response.text


def store(system: System) -> IasStore:
    return IasStore(system.db, system.clock)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_failing_receiver_gets_the_batch_once_after_retries(backend: str, tmp_path: Path) -> None:
    # Backoffs long enough for "not yet due" to hold on a loaded machine: 0.8–1 s, then 1.6–2 s.
    retries = {"ias_retry_base_s": 1.0, "ias_retry_max_s": 4.0, "ias_max_attempts": 5}
    async with analytics_stack(backend, tmp_path, analytics_min_responses=3, **retries) as system:
        fixture = await build(system)
        exporter = system.ias_exporter()
        await fail_next(system, 2)

        first = await exporter.export("aggregates", *NOVEMBER)
        assert (first.status, first.attempts) == ("pending", 1)
        assert first.last_error is not None
        assert "503" in first.last_error
        assert first.next_attempt_at is not None
        assert await exporter.retry_due() == 0, "the first backoff has not passed yet"
        # Past the first backoff: the worker's retry picks it up.
        await asyncio.sleep((first.next_attempt_at - system.clock()).total_seconds() + 0.05)
        assert await exporter.retry_due() == 1
        second = await exporter.get(first.batch_id)
        assert second is not None
        assert (second.status, second.attempts) == ("pending", 2)
        assert await exporter.retry_due() == 0  # the second backoff (1.6–2 s) has not passed yet

        sent = await exporter.settle(first.batch_id)
        assert (sent.status, sent.attempts, sent.last_error) == ("sent", 3, None)
        assert sent.sent_at is not None
        assert sent.next_attempt_at is None
        assert sent.batch_id == batch_id("aggregates", *NOVEMBER) == "posog-aggregates-20261101-20261130"

        received = await store(system).batches()
        assert [(b.batch_id, b.kind, b.deliveries) for b in received] == [(sent.batch_id, "aggregates", 1)]
        body = received[0].body.encode()
        assert hashlib.sha256(body).hexdigest() == sent.payload_sha256
        assert len(body) == sent.payload_size
        document: dict[str, Any] = json.loads(body)
        assert document["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
        assert {k: document["country"][k] for k in COUNTRY} == figures(_novembered(COUNTRY))
        regions = {item["region_code"]: item for item in document["regions"]}
        assert {k: regions["77"][k] for k in REGION_77} == _novembered(REGION_77)
        assert {k: regions["16"][k] for k in REGION_16} == REGION_16
        organizations = {item["inn"]: item for item in document["organizations"]}
        assert len(organizations) == 4
        assert organizations[fixture.orgs["B"].inn]["rank"] == 3
        assert organizations[fixture.orgs["A"].inn]["responses"] == ORG_A["responses"]

        # Re-sending the period: the same id and bytes; the receiver says it has it and keeps one copy.
        again = await exporter.export("aggregates", *NOVEMBER)
        assert (again.status, again.attempts, again.sent_at) == ("sent", 4, sent.sent_at)
        received = await store(system).batches()
        assert [(b.batch_id, b.deliveries, b.body) for b in received] == [(sent.batch_id, 2, body.decode())]
        response = await system.ias_http.post(
            "/api/v1/batches", content=body, headers={"X-Batch-Id": sent.batch_id, "Content-Type": "application/json"}
        )
        assert (response.status_code, response.json()["status"]) == (200, "already_received")

        page = await system.ias_http.get("/")
        assert page.status_code == 200
        assert sent.batch_id in page.text
        assert "Принятые пакеты" in page.text


def _novembered(expected: dict[str, Any]) -> dict[str, Any]:
    """The hand-computed figures restricted to November: A's card of 10-01 (Москва, the country) falls out."""
    if expected is COUNTRY or expected is REGION_77:
        return {**expected, "services": expected["services"] - 1}
    return expected


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refusal_is_logged_as_failed_without_endless_retries(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, **FAST_RETRIES) as system:
        exporter = system.ias_exporter()
        await fail_next(system, 1, status=400)
        failed = await exporter.export("aggregates", *NOVEMBER)
        assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 1, None)
        assert failed.last_error is not None
        assert failed.last_error.startswith("HTTP 400")
        await asyncio.sleep(0.3)
        assert await exporter.retry_due() == 0
        assert (await exporter.settle(failed.batch_id)).attempts == 1
        assert await store(system).batches() == []

        # A receiver that never recovers: retried until the configured attempts, then failed.
        await fail_next(system, 100)
        exhausted = await exporter.settle(
            (await exporter.export("aggregates", *previous_day(date(2026, 11, 20)))).batch_id
        )
        assert (exhausted.status, exhausted.attempts) == ("failed", 5)
        await fail_next(system, 0)

        # The operator sends the refused batch again once the cause is fixed: a fresh round of attempts.
        retried = await exporter.export("aggregates", *NOVEMBER)
        assert (retried.status, retried.attempts) == ("sent", 1)
        assert [b.batch_id for b in await store(system).batches()] == [failed.batch_id]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rates_xml_has_a_form_per_response_and_no_personal_data(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, **FAST_RETRIES) as system:
        fixture = await build(system)
        exporter = system.ias_exporter()
        await fail_next(system, 1)
        row = await exporter.settle((await exporter.export("rates", *NOVEMBER)).batch_id)
        assert (row.status, row.attempts, row.items) == ("sent", 2, len(RESPONSES))
        await exporter.export("aggregates", *NOVEMBER)

        stored = await store(system).get(row.batch_id)
        assert stored is not None
        assert stored.kind == "rates"
        assert stored.deliveries == 1
        root = ET.fromstring(stored.body)
        assert root.tag == f"{{{NAMESPACE}}}forms"
        forms = root.findall("r:form", NS)
        assert len(forms) == len(RESPONSES)

        page = await LkoClient(system.lko_http_for_analytics).responses_feed(limit=100)
        responses = {r.id: r for r in page.items}
        assert len(responses) == len(RESPONSES)
        for form in forms:
            response = responses[form.findtext("r:foreign-id", namespaces=NS) or ""]
            org = fixture.orgs[fixture.card_org[response.card_id]]
            assert form.findtext("r:data/r:authority/r:name", namespaces=NS) == org.name
            assert form.findtext("r:data/r:authority/r:inn", namespaces=NS) == org.inn
            assert form.findtext("r:data/r:date", namespaces=NS) == response.service_date[:10]
            assert form.findtext("r:data/r:okato", namespaces=NS) == okato_for_region(org.region_code)
            assert form.findtext("r:data/r:service/r:name", namespaces=NS)
            rates = form.findall("r:rates/r:rate", NS)
            assert len(rates) == 5
            # The default questionnaire's q1..q5 rate service_time, queue_time, staff, comfort, information.
            expected = {str(INDICATORS[c]): str(response.answers[f"q{i}"]) for i, c in enumerate(INDICATORS, 1)}
            assert {r.get("indicator-id"): r.get("value-id") for r in rates} == expected
        assert okato_for_region("77") == "45000000000"
        assert okato_for_region("16") == "92000000000"

        # Nothing personal in what the receiver stored, nor in the export log.
        secrets = needles(fixture.citizens)
        exported = [b.body for b in await store(system).batches()]
        async with system.db.uow() as uow:
            exported += [p.decode() for p in (await uow.session.scalars(select(IasExport.payload))).all()]
        assert len(exported) == 4
        for text in exported + [repr(r) for r in await table_rows(system, "module_ias_exports")]:
            found = [needle for needle in secrets if needle and needle in text]
            assert not found, found
        assert await table_rows(system, IasBatch.__tablename__)


def test_schedule_periods() -> None:
    assert previous_day(date(2026, 3, 1)) == (date(2026, 2, 28), date(2026, 2, 28))
    assert previous_month(date(2026, 3, 15)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert previous_month(date(2026, 1, 1)) == (date(2025, 12, 1), date(2025, 12, 31))


async def test_the_worker_makes_yesterdays_and_last_months_batches_once(tmp_path: Path) -> None:
    async with analytics_stack("embedded", tmp_path, ias_export_kinds=["aggregates"], **FAST_RETRIES) as system:
        schedule = system.ias_schedule()
        await schedule.tick()
        await schedule.tick()
        ids = sorted(b.batch_id for b in await store(system).batches())
        assert ids == ["posog-aggregates-20261001-20261031", "posog-aggregates-20261119-20261119"]
        assert all(b.deliveries == 1 for b in await store(system).batches())
