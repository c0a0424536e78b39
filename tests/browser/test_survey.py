"""What a citizen lives through, in real Chromium (issue 4): a link in the Госуслуги inbox, the survey
with every question kind, a thank-you — or an honest page about why the link no longer works.
With the keyboard alone, without JavaScript, with a double click; axe-core on every page; screenshots
at 375 and 1280 px for docs/screenshots/."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from posog.bootstrap import System
from posog.core.clock import utcnow
from posog.lko.questionnaires.handlers import WithdrawQuestionnaire, withdraw_questionnaire
from posog.lko.responses.model import SurveyResponse
from posog.lko.uow import LkoUnitOfWork
from posog.lkp.forms import plural
from posog.module.intake.model import CARD_WAITING
from posog.module.links.model import REVOKED, SurveyLink
from tests.browser.conftest import (
    SURVEY_DRAFT,
    SURVEY_TYPE,
    WITHDRAWN_TYPE,
    Contexts,
    LiveSystem,
    audit,
    client_address,
    screenshots,
)

pytestmark = pytest.mark.browser

SUBMIT = "Отправить оценку"
THANKS = "Спасибо! Ваша оценка принята"
COMPLETED = "Вы уже оценили эту услугу"


@pytest.fixture(scope="session")
def waiting_fact(live: LiveSystem) -> dict[str, Any]:
    """A fact published before any questionnaire exists for its (type, level): its card waits. Then
    the tests' questionnaire is published in ЛКО and the waiting card released — it gets its link."""
    fact = live.publish_fact()
    live.wait_for_card(fact["card_id"], status=CARD_WAITING)
    live.publish_questionnaire(SURVEY_TYPE)
    return fact


def stored_responses(live: LiveSystem, card_id: str) -> list[dict[str, Any]]:
    async def query(system: System) -> list[dict[str, Any]]:
        async with system.db.uow() as uow:
            rows = (await uow.session.scalars(select(SurveyResponse).where(SurveyResponse.card_id == card_id))).all()
        return [dict(row.answers) for row in rows]

    return live.run(query)


def card_of(live: LiveSystem, link: str) -> str:
    async def query(system: System) -> str:
        for notification in await system.inbox.notifications():
            if notification["link"] == link:
                return str(notification["card_id"])
        raise AssertionError("no notification carries this link")

    return live.run(query)


def heading(page: Page, text: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(text)


def fill_required(page: Page) -> None:
    page.locator("#question-q1").get_by_label("5 — отлично").click()
    page.get_by_label("На портале Госуслуг").check()
    page.locator("#question-q4").get_by_label("Да", exact=True).check()


def test_from_a_fact_to_the_thank_you_page_through_the_epgu_inbox(
    live: LiveSystem, contexts: Contexts, waiting_fact: dict[str, Any]
) -> None:
    card_id = waiting_fact["card_id"]
    link = live.notification(card_id)["link"]
    citizen = waiting_fact["citizen"]
    full_name = " ".join(citizen[part] for part in ("last_name", "first_name", "middle_name"))
    page = contexts.new()

    # The citizen's Госуслуги account (the ЕПГУ emulator).
    page.goto(f"{live.base_url}/emulators/")
    heading(page, "Личные кабинеты граждан")
    audit(page, "ЕПГУ: личные кабинеты")
    screenshots(page, "epgu-accounts")
    page.get_by_label("Поиск по ФИО").fill(full_name)
    page.get_by_role("button", name="Найти").click()
    page.get_by_role("link", name=re.compile(re.escape(full_name))).first.click()
    heading(page, "Уведомления")
    message = page.locator("article", has=page.locator(f'a[href="{link}"]'))
    expect(message.get_by_role("heading")).to_have_text("Оцените качество оказанной услуги")
    expect(message).to_contain_text(waiting_fact["organization"]["name"])
    audit(page, "ЕПГУ: уведомления")
    screenshots(page, "epgu-inbox")
    message.get_by_role("link", name="Перейти к опросу").click()

    # The survey: the organisation and the service at the top, every question kind.
    page.wait_for_url(link)
    heading(page, SURVEY_DRAFT.title)
    organization = waiting_fact["organization"]
    org_card = page.locator("section.org")
    for shown in (organization["name"], organization["address"], organization["inn"], organization["ogrn"]):
        expect(org_card).to_contain_text(shown)
    expect(org_card).to_contain_text(f"КПП {organization['kpp']}")
    expect(org_card).to_contain_text(waiting_fact["service"]["name"])
    expect(org_card).to_contain_text("включительно")
    expect(page.get_by_role("radiogroup")).to_have_count(3)
    expect(page.get_by_label("3 — удовлетворительно")).to_have_count(1)
    audit(page, "опрос")
    screenshots(page, "lkp-survey")

    # Sending nothing: every required question says what is missing, the summary links to them.
    page.get_by_role("button", name=SUBMIT).click()
    expect(page.get_by_role("heading", name="Проверьте ответы")).to_be_visible()
    assert page.title().startswith("Ошибка:")
    expect(page.locator(".field-error")).to_have_count(3)
    expect(page.locator("#error-summary")).to_be_focused()
    audit(page, "опрос с ошибками")
    screenshots(page, "lkp-survey-errors")
    page.get_by_role("link", name="Вопрос 2: Выберите один из вариантов ответа").click()
    expect(page.locator("#answer-q2-1")).to_be_focused()

    # Every kind, with the pointer.
    page.locator("#question-q1").get_by_label("4 — хорошо").click()
    page.get_by_label("На сайте МФЦ").check()
    page.get_by_label("Парковка").check()
    page.get_by_label("Места для ожидания").check()
    page.locator("#question-q4").get_by_label("Нет", exact=True).check()
    comment = "Больше окон приёма в часы пик"
    page.get_by_label(re.compile("Что стоит улучшить")).fill(comment)
    left = 500 - len(comment)
    expect(page.locator("#counter-q5")).to_have_text(
        f"Осталось {left} {plural(left, 'символ', 'символа', 'символов')} из 500"
    )
    page.get_by_role("button", name=SUBMIT).click()
    page.wait_for_url(f"{link}/done")
    heading(page, THANKS)
    audit(page, "спасибо")
    screenshots(page, "lkp-done")
    assert stored_responses(live, card_id) == [
        {"q1": 4, "q2": "site", "q3": ["parking", "seats"], "q4": False, "q5": comment}
    ]

    # The link again: already completed, said kindly.
    again = page.goto(link)
    assert again is not None
    assert again.status == 410
    heading(page, COMPLETED)
    audit(page, "опрос уже пройден")
    screenshots(page, "lkp-survey-completed")


def test_expired_unknown_withdrawn_and_revoked_links_each_show_their_page(
    live: LiveSystem, contexts: Contexts, waiting_fact: dict[str, Any]
) -> None:
    page = contexts.new()

    unknown = page.goto(f"{live.base_url}/lkp/s/{secrets.token_urlsafe(24)}")
    assert unknown is not None
    assert unknown.status == 404
    heading(page, "Ссылка на опрос не найдена")
    audit(page, "ссылка не найдена")
    screenshots(page, "lkp-link-not-found")

    expired_link = live.survey_link()
    expired_card = card_of(live, expired_link)
    live.run(lambda system: _set_link(system, expired_card, expires_at=utcnow().replace(year=2000)))
    expired = page.goto(expired_link)
    assert expired is not None
    assert expired.status == 410
    heading(page, "Срок оценки истёк")
    audit(page, "срок истёк")
    screenshots(page, "lkp-link-expired")

    revoked_link = live.survey_link()
    live.run(lambda system: _set_link(system, card_of(live, revoked_link), state=REVOKED))
    revoked = page.goto(revoked_link)
    assert revoked is not None
    assert revoked.status == 410
    heading(page, "Ссылка больше не действует")
    audit(page, "ссылка отозвана")
    screenshots(page, "lkp-link-revoked")

    questionnaire_id = live.questionnaire_ids.get(WITHDRAWN_TYPE) or live.publish_questionnaire(WITHDRAWN_TYPE)
    withdrawn_link = live.survey_link(type_code=WITHDRAWN_TYPE)
    opened = page.goto(withdrawn_link)
    assert opened is not None
    assert opened.status == 200, "the link works until the questionnaire is withdrawn"

    async def withdraw(system: System) -> None:
        async with LkoUnitOfWork(system.db) as uow:
            await withdraw_questionnaire(WithdrawQuestionnaire(questionnaire_id), uow, now=utcnow())

    live.run(withdraw)
    time.sleep(0.5)  # the module's view of ЛКО is cached for 0.2 s here
    unavailable = page.goto(withdrawn_link)
    assert unavailable is not None
    assert unavailable.status == 409
    heading(page, "Опрос временно недоступен")
    audit(page, "анкета недоступна")
    screenshots(page, "lkp-questionnaire-unavailable")


async def _set_link(system: System, card_id: str, **values: Any) -> None:
    async with system.db.uow() as uow:
        await uow.session.execute(update(SurveyLink).where(SurveyLink.card_id == card_id).values(**values))
        await uow.commit()


def _tab(page: Page, expected_id: str) -> None:
    page.keyboard.press("Tab")
    focused = page.evaluate("() => [document.activeElement.id, document.activeElement.matches(':focus-visible')]")
    assert focused == [expected_id, True], f"Tab should reach #{expected_id} with a visible focus, got {focused}"


def test_the_whole_survey_can_be_completed_with_the_keyboard_alone(
    live: LiveSystem, contexts: Contexts, waiting_fact: dict[str, Any]
) -> None:
    link = live.survey_link()
    page = contexts.new(width=375)
    page.goto(link)

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Перейти к содержанию")).to_be_focused()
    _tab(page, "answer-q1-1")  # the rating: arrows choose
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#answer-q1-4")).to_be_checked()
    tile_focus = page.evaluate("() => getComputedStyle(document.querySelector('label[for=answer-q1-4]')).boxShadow")
    assert tile_focus != "none", "the focused rating shows a focus ring"
    _tab(page, "answer-q2-1")  # single choice
    page.keyboard.press("ArrowDown")
    expect(page.locator("#answer-q2-2")).to_be_checked()
    _tab(page, "answer-q3-1")  # multiple choice: Space ticks
    page.keyboard.press("Space")
    _tab(page, "answer-q3-2")
    _tab(page, "answer-q3-3")
    page.keyboard.press("Space")
    _tab(page, "answer-q4-1")  # yes/no
    page.keyboard.press("Space")
    _tab(page, "answer-q5")  # text
    page.keyboard.type("Всё удобно")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=SUBMIT)).to_be_focused()
    page.keyboard.press("Enter")

    page.wait_for_url(f"{link}/done")
    heading(page, THANKS)
    assert stored_responses(live, card_of(live, link)) == [
        {"q1": 4, "q2": "site", "q3": ["parking", "seats"], "q4": True, "q5": "Всё удобно"}
    ]


def test_without_javascript_the_survey_still_submits(
    live: LiveSystem, contexts: Contexts, waiting_fact: dict[str, Any]
) -> None:
    link = live.survey_link()
    page = contexts.new(javascript=False, width=375)
    page.goto(link)
    expect(page.locator("#counter-q5")).to_have_text("Не более 500 символов")

    # The server checks what the browser does not, and keeps what was answered.
    page.get_by_label("Понятные указатели").check()
    page.get_by_role("button", name=SUBMIT).click()
    expect(page.get_by_role("heading", name="Проверьте ответы")).to_be_visible()
    expect(page.get_by_label("Понятные указатели")).to_be_checked()

    fill_required(page)
    page.get_by_role("button", name=SUBMIT).click()
    page.wait_for_url(f"{link}/done")
    heading(page, THANKS)
    assert stored_responses(live, card_of(live, link)) == [{"q1": 5, "q2": "portal", "q3": ["signs"], "q4": True}]


@pytest.mark.parametrize("javascript", [True, False], ids=["with-js", "without-js"])
def test_a_double_click_a_refresh_and_the_back_button_never_make_a_second_response(
    live: LiveSystem, contexts: Contexts, waiting_fact: dict[str, Any], javascript: bool
) -> None:
    link = live.survey_link()
    page = contexts.new(javascript=javascript)
    page.goto(link)
    fill_required(page)
    page.get_by_role("button", name=SUBMIT).dblclick()
    page.wait_for_url(f"{link}/done")
    heading(page, THANKS)

    page.reload()
    heading(page, THANKS)
    page.go_back()
    heading(page, COMPLETED)
    page.go_forward()
    heading(page, THANKS)
    assert len(stored_responses(live, card_of(live, link))) == 1


def test_random_tokens_get_the_not_found_page_and_a_guesser_the_too_many_attempts_page(
    live: LiveSystem, contexts: Contexts
) -> None:
    assert live.system is not None
    limit = live.system.settings.link_attempts_per_minute
    bodies: set[str] = set()
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        address = client_address()
        for attempt in range(500):
            if attempt % (limit // 2) == 0:  # many citizens, none over the limit
                address = client_address()
            page = http.get(f"/lkp/s/{secrets.token_urlsafe(24)}", headers={"X-Forwarded-For": address})
            assert page.status_code == 404
            bodies.add(page.text)
        assert len(bodies) == 1, "every unknown token gets the very same page"

        guesser = client_address()
        statuses = [
            http.get(f"/lkp/s/{secrets.token_urlsafe(24)}", headers={"X-Forwarded-For": guesser}).status_code
            for _ in range(limit + 1)
        ]
    assert statuses == [404] * limit + [429]

    page = contexts.new(address=guesser)
    refused = page.goto(f"{live.base_url}/lkp/s/{secrets.token_urlsafe(24)}")
    assert refused is not None
    assert refused.status == 429
    assert refused.headers["retry-after"] == "60"
    heading(page, "Слишком много попыток")
    audit(page, "слишком много попыток")
    screenshots(page, "lkp-too-many-requests")


class _Unavailable:
    """An app answering 503 to everything: a system that is down."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"error": {"code": "service_unavailable", "message": "Сервис недоступен"}}, status_code=503
        )
        await response(scope, receive, send)


@pytest.fixture
def outage(live: LiveSystem) -> Iterator[dict[str, Any]]:
    """Take the module or ЛКО down for a while (their apps answer 503), and bring them back."""
    assert live.system is not None
    saved = {"module": live.system.module_asgi.app, "lko": live.system.lko_asgi.app}
    yield saved
    live.system.module_asgi.app = saved["module"]
    live.system.lko_asgi.app = saved["lko"]


def test_when_the_module_or_lko_is_down_the_citizen_is_told_and_loses_nothing(
    live: LiveSystem, contexts: Contexts, waiting_fact: dict[str, Any], outage: dict[str, Any]
) -> None:
    assert live.system is not None
    link = live.survey_link()
    page = contexts.new()

    live.system.module_asgi.app = _Unavailable()
    down = page.goto(link)
    assert down is not None
    assert down.status == 503
    heading(page, "Сервис временно недоступен")
    audit(page, "сервис недоступен")
    screenshots(page, "lkp-unavailable")
    live.system.module_asgi.app = outage["module"]

    page.goto(link)
    fill_required(page)
    page.get_by_label(re.compile("Что стоит улучшить")).fill("Всё хорошо")
    live.system.lko_asgi.app = _Unavailable()  # the module cannot check the link without ЛКО either
    page.get_by_role("button", name=SUBMIT).click()
    heading(page, "Ответы не отправлены")
    expect(page.locator('input[type=hidden][name="answer_q5"]')).to_have_value("Всё хорошо")
    audit(page, "ответы не отправлены")
    screenshots(page, "lkp-submit-retry")

    live.system.lko_asgi.app = outage["lko"]
    page.get_by_role("button", name="Отправить ещё раз").click()
    page.wait_for_url(f"{link}/done")
    heading(page, THANKS)
    assert stored_responses(live, card_of(live, link)) == [{"q1": 5, "q2": "portal", "q4": True, "q5": "Всё хорошо"}]
