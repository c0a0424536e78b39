"""ЛКП pages against fakes of the module and ЛКО: what the citizen sees for a link, for each way a link
can fail, and for every way a submission can go (twice, invalid, refused, with ЛКО away)."""

from __future__ import annotations

import logging
import re
import secrets
from html import unescape
from urllib.parse import urlencode

import pytest

from posog.lkp.forms import FORM_MAX_BYTES
from tests.unit.lkp_fakes import TOKEN, Backends, lkp_client

SURVEY = f"/s/{TOKEN}"
VALID = {
    "answer_q1": "4",
    "answer_q2": "phone",
    "answer_q4": "yes",
    "answer_q5": "Всё понравилось",
}


def _key(html: str) -> str:
    match = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert match, "the form carries an idempotency key"
    return match.group(1)


def _form(html: str, **answers: str | list[str]) -> str:
    """The body a browser sends for this page's form with these answers."""
    fields: list[tuple[str, str]] = [
        ("idempotency_key", _key(html)),
        ("questionnaire_id", re.search(r'name="questionnaire_id" value="([^"]+)"', html).group(1)),  # type: ignore[union-attr]
        ("questionnaire_version", re.search(r'name="questionnaire_version" value="([^"]+)"', html).group(1)),  # type: ignore[union-attr]
    ]
    for name, value in answers.items():
        for item in value if isinstance(value, list) else [value]:
            fields.append((name, item))
    return urlencode(fields)


FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


async def test_the_survey_shows_the_organisation_the_service_and_every_question_kind() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
    assert page.status_code == 200
    html, text = page.text, _text(page.text)
    for shown in (
        "ГБУ «МФЦ города Москвы»",
        "г. Москва, ул. Тверская, д. 1",
        "ИНН 7703012345",
        "ОГРН 1027700000000",
        "КПП 770301001",
        "Выдача паспорта гражданина РФ",
        "20 ноября 2026 г.",
        "до 20 декабря 2026 г. включительно",  # 20:59:59 UTC is the end of the Moscow day
        "Оценка качества предоставления услуги",
    ):
        assert shown in text, shown
    # Ratings: five big choices with words; radios, checkboxes, yes/no and a limited textarea.
    assert html.count('name="answer_q1"') == 5
    assert "1 — очень плохо" in text
    assert "3 — удовлетворительно" in text
    assert "5 — отлично" in text
    assert html.count('type="radio" id="answer-q2-') == 3
    assert html.count('type="checkbox" id="answer-q3-') == 3
    assert 'value="yes"' in html
    assert 'value="no"' in html
    assert ">Да<" in html
    assert ">Нет<" in html
    assert re.search(r'<textarea[^>]+maxlength="50"', html)
    assert 'role="radiogroup" aria-required="true"' in html
    assert html.count("(обязательный вопрос)") == 3
    assert len(_key(html)) >= 32
    # The module is told who asks, for its rate limiting.
    assert backends.module_calls[0].headers["X-Posog-Client"] == "203.0.113.7"


async def test_the_citizen_s_address_is_taken_from_x_forwarded_for_only_behind_a_trusted_proxy() -> None:
    """Issue 13: the module's per-client limit must not be escapable with a forged header."""
    forged = {"X-Forwarded-For": "6.6.6.6"}
    backends = Backends()
    async with lkp_client(backends, peer="198.51.100.9", trusted_proxies=["10.0.0.0/24"]) as direct:
        assert (await direct.get(SURVEY, headers=forged)).status_code == 200
    async with lkp_client(backends, peer="10.0.0.2", trusted_proxies=["10.0.0.0/24"]) as proxied:
        chain = {"X-Forwarded-For": "6.6.6.6, 198.51.100.44"}  # the client's forgery, then what the proxy saw
        assert (await proxied.get(SURVEY, headers=chain)).status_code == 200
    async with lkp_client(backends, peer="10.0.0.2") as untrusting:  # the default: no proxy is trusted
        assert (await untrusting.get(SURVEY, headers=forged)).status_code == 200
    assert [call.headers["X-Posog-Client"] for call in backends.module_calls] == [
        "198.51.100.9",
        "198.51.100.44",
        "10.0.0.2",
    ]


async def test_pages_carry_the_security_headers_and_are_never_cached() -> None:
    async with lkp_client(Backends()) as browser:
        for path in (SURVEY, f"/s/{TOKEN}/done", "/s/unknown-token-0123456789", "/", "/nowhere"):
            page = await browser.get(path)
            csp = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["Referrer-Policy"] == "no-referrer"
            assert page.headers["Cache-Control"] == "no-store"
            assert page.headers["Content-Type"].startswith("text/html")
            assert "<script>" not in page.text, "no inline script (CSP)"
            assert " style=" not in page.text, "no inline style (CSP)"
        css = await browser.get("/static/posog.css")
        assert css.status_code == 200
        assert "no-store" not in css.headers.get("Cache-Control", "")
        js = await browser.get("/static/survey.js")
        assert js.status_code == 200


@pytest.mark.parametrize(
    ("code", "status", "title"),
    [
        ("link_not_found", 404, "Ссылка на опрос не найдена"),
        ("link_expired", 410, "Срок оценки истёк"),
        ("survey_completed", 410, "Вы уже оценили эту услугу"),
        ("link_revoked", 410, "Ссылка больше не действует"),
        ("questionnaire_unavailable", 409, "Опрос временно недоступен"),
        ("too_many_requests", 429, "Слишком много попыток"),
    ],
)
async def test_each_refusal_has_its_own_page_and_status(code: str, status: int, title: str) -> None:
    backends = Backends(links={TOKEN: code})
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
    assert page.status_code == status
    text = _text(page.text)
    assert title in text
    assert "Что произошло" in text
    assert "Что делать" in text
    assert "<form" not in page.text
    if status == 429:
        assert page.headers["Retry-After"] == "60"


async def test_an_unreachable_module_gives_the_temporarily_unavailable_page() -> None:
    async with lkp_client(Backends(module_down=True)) as browser:
        page = await browser.get(SURVEY)
    assert page.status_code == 503
    assert "Сервис временно недоступен" in page.text


async def test_random_tokens_all_get_the_same_not_found_page() -> None:
    backends = Backends()
    bodies = set()
    async with lkp_client(backends) as browser:
        for _ in range(500):
            page = await browser.get(f"/s/{secrets.token_urlsafe(24)}")
            assert page.status_code == 404
            bodies.add(page.text)
        malformed = await browser.get("/s/not a token")
    assert len(bodies) == 1, "a refused token reveals nothing about itself"
    assert malformed.status_code == 404
    assert malformed.text in bodies
    assert len(backends.module_calls) == 500, "a malformed token is refused without asking the module"


async def test_a_complete_submission_redirects_to_the_thank_you_page() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
        body = _form(page.text, **VALID, answer_q3=["signs", "parking"])
        sent = await browser.post(SURVEY, content=body, headers=FORM_HEADERS)
        assert sent.status_code == 303
        assert sent.headers["Location"] == f"/s/{TOKEN}/done"
        done = await browser.get(sent.headers["Location"])
    assert done.status_code == 200
    assert "Спасибо! Ваша оценка принята" in done.text
    [submission] = backends.submissions()
    assert submission == {
        "token": TOKEN,
        "idempotency_key": _key(page.text),
        "answers": {"q1": 4, "q2": "phone", "q3": ["parking", "signs"], "q4": True, "q5": "Всё понравилось"},
    }


async def test_a_double_click_a_refresh_and_the_back_button_store_one_response() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
        body = _form(page.text, **VALID)
        first = await browser.post(SURVEY, content=body, headers=FORM_HEADERS)
        again = await browser.post(SURVEY, content=body, headers=FORM_HEADERS)  # second click / refresh of POST
        assert first.status_code == again.status_code == 303
        assert again.headers["Location"] == first.headers["Location"]
        back = await browser.get(SURVEY)  # the back button re-opens the link
    assert len(backends.responses) == 1
    assert back.status_code == 410
    assert "Вы уже оценили эту услугу" in back.text


async def test_another_submission_for_a_completed_link_gets_the_completed_page() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        first_tab = await browser.get(SURVEY)
        second_tab = await browser.get(SURVEY)
        assert (await browser.post(SURVEY, content=_form(first_tab.text, **VALID), headers=FORM_HEADERS)).is_redirect
        late = await browser.post(SURVEY, content=_form(second_tab.text, **VALID), headers=FORM_HEADERS)
    assert late.status_code == 410
    assert "Вы уже оценили эту услугу" in late.text
    assert len(backends.responses) == 1


async def test_missing_answers_are_explained_next_to_each_question_and_the_rest_is_kept() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
        sent = await browser.post(
            SURVEY,
            content=_form(page.text, answer_q3=["wifi"], answer_q4="no", answer_q5="Долго ждал"),
            headers=FORM_HEADERS,
        )
    assert sent.status_code == 422
    html = sent.text
    assert "<title>Ошибка:" in html
    assert 'class="error-summary"' in html
    assert '<a href="#answer-q1-1">Вопрос 1: Выберите оценку от 1 до 5</a>' in html
    assert '<a href="#answer-q2-1">Вопрос 2: Выберите один из вариантов ответа</a>' in html
    assert 'id="error-q1"' in html
    assert 'aria-describedby="hint-q1 error-q1"' in html
    assert 'aria-describedby="error-q2"' in html
    # What was answered stays answered.
    assert re.search(r'id="answer-q3-3"[^>]*value="wifi"[^>]*checked', html)
    assert re.search(r'id="answer-q4-2"[^>]*value="no"[^>]*checked', html)
    assert ">Долго ждал</textarea>" in html
    assert _key(html) == _key(page.text), "nothing was sent, the same submission continues"
    assert backends.submissions() == []


async def test_lkos_own_messages_are_shown_with_the_answers_kept() -> None:
    backends = Backends(lko_fields={"q5": "Комментарий содержит недопустимые символы"})
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
        sent = await browser.post(SURVEY, content=_form(page.text, **VALID), headers=FORM_HEADERS)
    assert sent.status_code == 422
    assert "Вопрос 5: Комментарий содержит недопустимые символы" in sent.text
    assert re.search(r'id="answer-q1-4"[^>]*checked', sent.text)
    assert _key(sent.text) != _key(page.text), "a refused submission is not repeated under its key"


async def test_with_lko_unreachable_the_answers_stay_on_the_page_to_send_again() -> None:
    backends = Backends(lko_down=True)
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
        body = _form(page.text, **VALID)
        sent = await browser.post(SURVEY, content=body, headers=FORM_HEADERS)
        assert sent.status_code == 503
        assert "Ответы не отправлены" in sent.text
        assert "сервис временно недоступен" in sent.text
        assert re.search(r'id="answer-q1-4"[^>]*checked', sent.text)
        assert _key(sent.text) == _key(page.text), "the retry must be the same submission"
        backends.lko_down = False
        retried = await browser.post(SURVEY, content=_form(sent.text, **VALID), headers=FORM_HEADERS)
    assert retried.status_code == 303
    assert len(backends.responses) == 1


async def test_with_the_module_unreachable_at_submission_the_answers_wait_on_a_retry_page() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
        backends.module_down = True
        sent = await browser.post(
            SURVEY, content=_form(page.text, **VALID, answer_q3=["wifi", "signs"]), headers=FORM_HEADERS
        )
        assert sent.status_code == 503
        assert "Ответы не отправлены" in sent.text
        assert "Отправить ещё раз" in sent.text
        kept = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', sent.text)
        assert ("idempotency_key", _key(page.text)) in kept
        assert ("answer_q3", "wifi") in kept
        assert ("answer_q3", "signs") in kept
        assert ("answer_q5", "Всё понравилось") in kept
        backends.module_down = False
        retried = await browser.post(SURVEY, content=urlencode(kept), headers=FORM_HEADERS)
    assert retried.status_code == 303
    [submission] = backends.submissions()
    assert submission["answers"]["q3"] == ["signs", "wifi"]


async def test_a_refused_link_at_submission_shows_its_page() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        page = await browser.get(SURVEY)
        backends.links[TOKEN] = "link_expired"
        sent = await browser.post(SURVEY, content=_form(page.text, **VALID), headers=FORM_HEADERS)
    assert sent.status_code == 410
    assert "Срок оценки истёк" in sent.text
    assert backends.submissions() == []


async def test_an_oversized_form_is_refused() -> None:
    async with lkp_client(Backends()) as browser:
        page = await browser.get(SURVEY)
        body = _form(page.text, **{**VALID, "answer_q5": "я" * FORM_MAX_BYTES})
        sent = await browser.post(SURVEY, content=body, headers=FORM_HEADERS)
    assert sent.status_code == 413
    assert "Слишком длинные ответы" in sent.text


async def test_unknown_pages_and_unexpected_failures_get_pages_not_traces() -> None:
    async with lkp_client(Backends(module_broken=True)) as browser:
        missing = await browser.get("/s/")
        broken = await browser.get(SURVEY)
        wrong_method = await browser.delete(SURVEY)
    assert missing.status_code == 404
    assert "Страница не найдена" in missing.text
    assert broken.status_code == 500
    assert "Что-то пошло не так" in broken.text
    assert "Traceback" not in broken.text
    assert wrong_method.status_code == 405


async def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backends = Backends(module_broken=True)
    async with lkp_client(backends) as browser:
        await browser.get(SURVEY)
        backends.module_broken, backends.module_down = False, True
        await browser.get(SURVEY)
        backends.module_down = False
        page = await browser.get(SURVEY)
        await browser.post(SURVEY, content=_form(page.text, **VALID), headers=FORM_HEADERS)
    assert "lkp.unexpected_error" in caplog.text
    assert "lkp.submitted" in caplog.text
    assert TOKEN not in caplog.text


async def test_the_thank_you_page_asks_nobody() -> None:
    backends = Backends()
    async with lkp_client(backends) as browser:
        page = await browser.get(f"/s/{TOKEN}/done")
    assert page.status_code == 200
    assert backends.module_calls == []
    assert backends.lko_calls == []


def test_the_preview_shows_the_same_questions_disabled_and_without_a_form() -> None:
    from posog.lkp.app import TEMPLATES_DIR
    from posog.web.templating import make_templates
    from tests.unit.lkp_fakes import QUESTIONNAIRE

    template = make_templates(TEMPLATES_DIR).get_template("survey/form.html")
    preview = template.render(questionnaire=QUESTIONNAIRE, answers={"q1": 5, "q4": False}, errors={}, preview=True)
    assert "<form" not in preview
    assert "<button" not in preview
    assert "idempotency_key" not in preview
    inputs = re.findall(r"<(?:input|textarea)\b[^>]*>", preview)
    assert len(inputs) == 5 + 3 + 3 + 2 + 1
    assert all(" disabled" in tag for tag in inputs)
    assert re.search(r'id="answer-q1-5"[^>]*checked', preview)
    assert re.search(r'id="answer-q4-2"[^>]*checked', preview)
    assert "1 — очень плохо" in _text(preview)
    assert "Не более 50 символов" in preview
