"""The demo walked as a newcomer walks it (issue 6), in Chromium against the real ``posog demo`` process:
the ЕПГУ inbox → a survey link → the survey answered → the cabinet's dashboard shows the new response
after a refresh. Screenshots of the demo's pages go to docs/screenshots (demo-*.png)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from posog.demo import DEMO_PASSWORD
from tests.browser.conftest import DOCS_SCREENSHOTS, SCREENSHOTS, Contexts
from tests.demo_support import DemoProcess, demo_citizens, demo_env

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    workdir = tmp_path_factory.mktemp("demo")
    env = demo_env(POSOG_ANALYTICS_POLL_INTERVAL_S="1")
    process = DemoProcess(workdir, "--facts", "80", "--answer-share", "0.3", env=env).start()
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output
        demo_citizens(workdir)


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-1280.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)


def _responses_on_dashboard(page: Page) -> int:
    text = page.locator("#figures [data-figure='responses']").inner_text()
    return int(re.sub(r"\D", "", text) or "0")


def _open_an_unanswered_survey(page: Page, base_url: str) -> str:
    """From the list of Госуслуги accounts, the first citizen whose survey is still open; its link."""
    page.goto(f"{base_url}/emulators/epgu/")
    accounts = page.locator("a.list__link")
    count = accounts.count()
    assert count > 0, "the ЕПГУ emulator shows no accounts"
    for index in range(count):
        page.goto(f"{base_url}/emulators/epgu/")
        page.locator("a.list__link").nth(index).click()
        expect(page.locator("[data-survey-link]").first).to_be_visible()
        if index == 0:
            _shot(page, "demo-inbox")
        link = page.locator("[data-survey-link]").first.get_attribute("href")
        assert link is not None
        page.locator("[data-survey-link]").first.click()
        page.wait_for_url(link)
        if page.locator("form[data-survey-form]").count() == 1:
            return link
    raise AssertionError("every survey of the demo was already answered")


def test_inbox_to_survey_to_the_dashboard(demo: DemoProcess, contexts: Contexts) -> None:
    # The analyst's dashboard before.
    analyst = contexts.new(width=1280)
    analyst.goto(f"{demo.base_url}/lko/login")
    analyst.fill("#login", "demo-federal")
    analyst.fill("#password", DEMO_PASSWORD)
    analyst.get_by_role("button", name="Войти").click()
    analyst.wait_for_url(f"{demo.base_url}/lko/")
    analyst.get_by_role("link", name="Отчёты").first.click()
    analyst.wait_for_url("**/lko/reports**")
    analyst.wait_for_selector("#chart-criteria .main-svg")
    before = _responses_on_dashboard(analyst)
    assert before > 0, "the demo's simulated citizens answered nothing"

    # A citizen: the inbox, the link, the survey.
    citizen = contexts.new(width=1280)
    link = _open_an_unanswered_survey(citizen, demo.base_url)
    _shot(citizen, "demo-survey")
    for question, label in (("q1", "5 — отлично"), ("q2", "4 — хорошо"), ("q3", "5 — отлично")):
        citizen.locator(f"#question-{question}").get_by_label(label).click()
    for question in ("q4", "q5", "q6"):
        citizen.locator(f"#question-{question}").get_by_label("4 — хорошо").click()
    citizen.locator("#answer-q7").fill("Всё понравилось, спасибо")
    citizen.get_by_role("button", name=re.compile("Отправить")).click()
    citizen.wait_for_url(f"{link}/done")
    expect(citizen.get_by_role("heading", level=1)).to_contain_text("Спасибо")

    # The analyst refreshes the dashboard until analytics has the new response (it polls every second here).
    deadline = time.monotonic() + 120  # generous: the demo process shares a loaded machine
    while True:
        analyst.reload()
        analyst.wait_for_selector("#chart-criteria .main-svg")
        now = _responses_on_dashboard(analyst)
        if now == before + 1:
            break
        assert now == before, f"the dashboard jumped from {before} to {now}"
        assert time.monotonic() < deadline, "the new response never reached the dashboard"
        time.sleep(1)
    _shot(analyst, "demo-dashboard")
