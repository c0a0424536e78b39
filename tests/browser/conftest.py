"""Browser tests: the whole embedded system (every app and worker, SQLite, in-process bus) served by
uvicorn on a free local port in a background thread, and Debian's Chromium driven by Playwright.

The server's event loop owns the system; tests run coroutines on it with :meth:`LiveSystem.run`.
Each browser context presents its own client address (``X-Forwarded-For``, trusted from localhost as
from a reverse proxy), so the module's per-client rate limiting of one test never touches another."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import select

from posog.bootstrap import System
from posog.core.bus import OutgoingMessage
from posog.core.clock import today, utcnow
from posog.emulators.datagen.facts import FactFactory
from posog.lko.contracts import Option, Question, QuestionnaireDraft
from posog.lko.questionnaires.repository import QuestionnaireRepository
from posog.module.intake.model import ServiceCard
from posog.web.app import create_web_app, system_apps
from tests.conftest import remember_citizen
from tests.support import stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOTS = Path("test-output/screenshots")
DOCS_SCREENSHOTS = Path("docs/screenshots")
WIDTHS = (375, 1280)
# How long the live system may take to start, or a fact to reach its end, on a loaded machine.
DEADLINE_S = 120.0

T = TypeVar("T")

# The questionnaire of the browser tests: every question kind, for a (type, level) of its own.
SURVEY_TYPE, SURVEY_LEVEL = "mfc", "municipal"
WITHDRAWN_TYPE = "polyclinic"
SURVEY_DRAFT = QuestionnaireDraft(
    title="Оценка качества предоставления услуги в МФЦ",
    validity_days=30,
    questions=(
        Question(
            id="q1",
            kind="rating",
            scale=5,
            criterion="service_time",
            text="Насколько вас устроило время, за которое вам предоставили услугу?",
            required=True,
            hint="1 — очень плохо, 5 — отлично",
        ),
        Question(
            id="q2",
            kind="single_choice",
            text="Как вы узнали о порядке получения услуги?",
            required=True,
            options=(
                Option(id="portal", text="На портале Госуслуг"),
                Option(id="site", text="На сайте МФЦ"),
                Option(id="staff", text="От сотрудника МФЦ"),
            ),
        ),
        Question(
            id="q3",
            kind="multiple_choice",
            text="Что было удобно в помещении?",
            options=(
                Option(id="parking", text="Парковка"),
                Option(id="signs", text="Понятные указатели"),
                Option(id="seats", text="Места для ожидания"),
            ),
        ),
        Question(id="q4", kind="yes_no", text="Вы получили услугу с первого обращения?", required=True),
        Question(
            id="q5",
            kind="text",
            text="Что стоит улучшить? Напишите ваш комментарий",
            max_length=500,
            hint="Пожалуйста, не указывайте в комментарии свои персональные данные",
        ),
    ),
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveSystem:
    """The embedded system behind a real HTTP port, in its own thread and event loop."""

    def __init__(self, var_dir: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._var_dir = var_dir
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="live-system", daemon=True)
        self.system: System | None = None
        self.factory = FactFactory(seed=4242, today=today(utcnow))
        self.questionnaire_ids: dict[str, str] = {}

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(DEADLINE_S) or self._failure is not None:
            raise RuntimeError(f"the live system did not start: {self._failure!r}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the waiting test thread
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with stack(
            "embedded",
            self._var_dir,
            lkp_base_url=f"{self.base_url}/lkp",
            questionnaire_cache_s=0.2,
        ) as system:
            self.system = system
            app = create_web_app(system, serve=list(system_apps(system)), run_workers=True)
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                access_log=False,  # request lines hold survey tokens
                proxy_headers=True,
                forwarded_allow_ips="127.0.0.1",
                lifespan="on",
            )
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve())
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.05)
            self._ready.set()
            await serving

    def run(self, work: Callable[[System], Coroutine[Any, Any, T]], timeout: float = DEADLINE_S) -> T:
        """Run ``work(system)`` on the server's event loop and wait for its result."""
        assert self._loop is not None
        assert self.system is not None
        return asyncio.run_coroutine_threadsafe(work(self.system), self._loop).result(timeout)

    # --- Data ------------------------------------------------------------------------------------

    def publish_fact(self, *, type_code: str = SURVEY_TYPE, level: str = SURVEY_LEVEL) -> dict[str, Any]:
        """A valid ОГ fact published to the facts queue, as СМЭВ delivers it; its citizen is registered
        for the suite's personal-data log check."""
        organization = next(o for o in self.factory.organizations if o.type_code == type_code)
        fact = self.factory.fact(organization=organization, level=level)
        remember_citizen(fact["citizen"])
        body = json.dumps(fact, ensure_ascii=False).encode()

        async def publish(system: System) -> None:
            await system.bus.publish("", system.settings.facts_queue, [OutgoingMessage(body, str(uuid.uuid4()))])

        self.run(publish)
        return fact

    def wait_for_card(self, card_id: str, status: str | None = None, timeout: float = DEADLINE_S) -> None:
        def card_there(system: System) -> Awaitable[bool]:
            async def check() -> bool:
                async with system.db.uow() as uow:
                    card = await uow.session.scalar(select(ServiceCard).where(ServiceCard.card_id == card_id))
                return card is not None and (status is None or card.status == status)

            return check()

        self._poll(card_there, timeout, f"card {card_id} ({status or 'any'})")

    def notification(self, card_id: str, timeout: float = DEADLINE_S) -> dict[str, Any]:
        """The citizen's notification about ``card_id``, once it reached the ЕПГУ inbox."""
        found: dict[str, Any] = {}

        def delivered(system: System) -> Awaitable[bool]:
            async def check() -> bool:
                for notification in await system.inbox.notifications():
                    if notification["card_id"] == card_id:
                        found.update(notification)
                        return True
                return False

            return check()

        self._poll(delivered, timeout, f"the notification of {card_id}")
        return found

    def survey_link(self, *, type_code: str = SURVEY_TYPE) -> str:
        """A fresh link: a fact published, its notification delivered; the link from the notification."""
        fact = self.publish_fact(type_code=type_code)
        return str(self.notification(fact["card_id"])["link"])

    def publish_questionnaire(self, type_code: str, level: str = SURVEY_LEVEL) -> str:
        """Publish the tests' questionnaire for (type, level) in ЛКО's tables (as ЛКО's publication
        does) and release the module's cards waiting for it."""
        questionnaire_id = str(uuid.uuid4())

        async def publish(system: System) -> None:
            async with system.db.uow() as uow:
                inserted = await QuestionnaireRepository(uow).add_published_if_absent(
                    questionnaire_id=questionnaire_id,
                    type_code=type_code,
                    level=level,  # type: ignore[arg-type]
                    draft=SURVEY_DRAFT,
                    now=utcnow(),
                )
                await uow.commit()
            assert inserted
            await system.releaser.release(type_code, level)  # type: ignore[arg-type]

        self.run(publish)
        self.questionnaire_ids[type_code] = questionnaire_id
        return questionnaire_id

    def _poll(self, condition: Callable[[System], Awaitable[bool]], timeout: float, what: str) -> None:
        async def wait(system: System) -> None:
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                if await condition(system):
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")

        self.run(wait, timeout=timeout + 10)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium, or `make chromium`)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI requires the browser tests")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def live(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    server = LiveSystem(tmp_path_factory.mktemp("browser"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    # Module-scoped on purpose: while open, sync Playwright marks its event loop as running in the main
    # thread, and the asynchronous tests that follow in the session could not start theirs.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


_addresses = itertools.count(1)


def client_address() -> str:
    """A documentation-range address of its own for each browser context (RFC 5737)."""
    n = next(_addresses)
    return f"198.51.{100 + n // 250}.{n % 250 + 1}"


@dataclass
class Contexts:
    """Opens browser contexts for a test — each a citizen at an address of its own — and closes them."""

    browser: Browser
    opened: list[BrowserContext]

    def new(self, *, javascript: bool = True, address: str | None = None, width: int = 1280) -> Page:
        context = self.browser.new_context(
            java_script_enabled=javascript,
            viewport={"width": width, "height": 900},
            locale="ru-RU",
            extra_http_headers={"X-Forwarded-For": address or client_address()},
        )
        context.set_default_timeout(15_000)
        self.opened.append(context)
        return context.new_page()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Contexts]:
    made = Contexts(browser, [])
    try:
        yield made
    finally:
        for context in made.opened:
            context.close()


# --- Checks every page goes through -------------------------------------------------------------------------

_axe = Axe()


def audit(page: Page, what: str) -> None:
    """axe-core on the page as it is now (at both widths): no serious or critical violation."""
    original = page.viewport_size
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        results = _axe.run(page)
        for violation in results.response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:5]
                problems.append(f"{width}px {violation['id']} ({violation['impact']}): {violation['help']} {targets}")
    if original is not None:
        page.set_viewport_size(original)
    assert not problems, f"accessibility violations on {what}:\n" + "\n".join(problems)


def screenshots(page: Page, name: str) -> None:
    """Full-page screenshots at 375 and 1280 px under test-output/screenshots/, copied to docs/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        path = SCREENSHOTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    if original is not None:
        page.set_viewport_size(original)
