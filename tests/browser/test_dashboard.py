"""The cabinet's dashboard in Chromium (issue 5, item 4): for each role its charts are drawn by plotly.js
(served by the cabinet, under its CSP), axe-core finds no serious or critical violation; screenshots at
1280 px for docs/screenshots."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page

from posog.bootstrap import System
from posog.core.clock import utcnow
from posog.lko.accounts.handlers import NewUser, create_user
from posog.lko.client import LkoClient
from tests.browser.conftest import DOCS_SCREENSHOTS, SCREENSHOTS, Contexts, LiveSystem, audit

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
RATINGS = ([5, 4, 5, 5, 4], [3, 2, 4, 3, 3], [4, 4, 4, 4, 5])


@pytest.fixture(scope="module")
def reports_data(live: LiveSystem) -> dict[str, Any]:
    """A published questionnaire, three answered surveys, analytics polled; a user of each role. Its own
    organisation type, so the survey tests (mfc) still find their cards waiting for a questionnaire."""
    if "polyclinic" not in live.questionnaire_ids:
        live.publish_questionnaire("polyclinic")
    facts = []
    for ratings in RATINGS:
        fact = live.publish_fact(type_code="polyclinic")
        link = str(live.notification(fact["card_id"])["link"])
        token = link.rsplit("/s/", 1)[1]
        answers = {"q1": ratings[0], "q2": "portal", "q4": True}
        live.run(lambda system, t=token, a=answers: _submit(system, t, a))
        facts.append(fact)
    org = facts[0]["organization"]
    suffix = uuid.uuid4().hex[:6]
    logins = {
        "federal": f"fed-{suffix}",
        "regional": f"reg-{suffix}",
        "organization": f"org-{suffix}",
    }

    async def prepare(system: System) -> None:
        await system.analytics.pipeline.poll_once()
        async with system.db.uow() as uow:
            await create_user(uow, NewUser(logins["federal"], PASSWORD, "federal"), now=utcnow())
        async with system.db.uow() as uow:
            await create_user(
                uow, NewUser(logins["regional"], PASSWORD, "regional", region_code=org["region_code"]), now=utcnow()
            )
        async with system.db.uow() as uow:
            await create_user(
                uow, NewUser(logins["organization"], PASSWORD, "organization", inn=org["inn"]), now=utcnow()
            )

    live.run(prepare)
    return {"logins": logins, "org": org}


async def _submit(system: System, token: str, answers: dict[str, Any]) -> None:
    await LkoClient(system.lko_http_for_lkp).submit_response(token, str(uuid.uuid4()), answers)


def _sign_in(page: Page, live: LiveSystem, login: str) -> None:
    page.goto(f"{live.base_url}/lko/login")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Войти").click()
    page.wait_for_url(f"{live.base_url}/lko/")


@pytest.mark.parametrize("role", ["federal", "regional", "organization"])
def test_dashboard_draws_its_charts(
    role: str, live: LiveSystem, contexts: Contexts, reports_data: dict[str, Any]
) -> None:
    page = contexts.new(width=1280)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, live, reports_data["logins"][role])
    page.get_by_role("link", name="Отчёты").first.click()
    page.wait_for_url("**/lko/reports**")
    for chart in ("chart-criteria", "chart-distribution", "chart-series"):
        page.wait_for_selector(f"#{chart} .main-svg")
        assert page.locator(f"#{chart} .main-svg").count() > 0
    assert page.locator("#figures [data-figure='responses']").inner_text() != "0"
    if role == "organization":
        assert page.locator("#table-drill").count() == 0
    else:
        assert page.locator("#table-drill a").count() > 0
    assert not errors, errors
    audit(page, f"the dashboard of the {role} user")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"lko-reports-{role}-1280.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    if role == "federal":  # drill down to the region, then to an organisation
        page.locator("#table-drill a").first.click()
        page.wait_for_selector("#chart-criteria .main-svg")
        page.locator("#table-drill a").first.click()
        page.wait_for_url("**level=organization**")
        page.wait_for_selector("#chart-criteria .main-svg")
