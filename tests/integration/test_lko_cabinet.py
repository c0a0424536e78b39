"""The cabinet's web pages (issue 3, item 5), driven over HTTP like a browser would: signing in and out,
sessions and their cookies, password guessing, CSRF, security headers, the roles and their scopes —
tried as a curious user would, by editing ids in URLs and query strings — and everything users typed
shown inert."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from posog.bootstrap import System
from posog.core.clock import utcnow
from posog.emulators.datagen.facts import Organization
from posog.lko.accounts.handlers import disable_user
from posog.lko.accounts.model import CabinetSession
from posog.lko.client import LkoClient
from posog.lko.questionnaires.defaults import default_questionnaire_id
from posog.lko.state import lko_state
from tests.integration.cabinet_support import (
    PASSWORD,
    browser,
    make_user,
    post_form,
    sign_in,
    signed_in,
    token_of,
)
from tests.integration.survey_support import issue_surveys, organizations
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration

SCRIPT = '<script>alert("x")</script>'


def _assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    policy = headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split("; ")}
    assert directives["script-src"] == ["'self'"], policy
    assert "'unsafe-inline'" not in policy
    assert directives["frame-ancestors"] == ["'none'"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "camera=()" in headers["permissions-policy"]
    assert headers["cache-control"] == "no-store"


async def test_signing_in_and_out(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await make_user(system, "Fed.Operator", "federal", full_name="Фёдор Операторов")

        anonymous = await client.get("/questionnaires?level=federal")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=%2Fquestionnaires%3Flevel%3Dfederal"

        wrong_password = await sign_in(client, "fed.operator", "not the password")
        unknown_login = await sign_in(client, "nobody.here", PASSWORD)
        for refused in (wrong_password, unknown_login):
            assert refused.status_code == 200
            assert "Неверный логин или пароль." in refused.text
            assert "set-cookie" not in refused.headers or "posog_lko_session" not in refused.headers["set-cookie"]
        assert await count(system, CabinetSession) == 0

        page = await client.get("/login", params={"next": "/questionnaires?level=federal"})
        response = await client.post(
            "/login",
            data={
                "login": " FED.operator ",  # logins are case-insensitive and trimmed
                "password": PASSWORD,
                "csrf_token": token_of(page.text),
                "next": "/questionnaires?level=federal",
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/questionnaires?level=federal"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("posog_lko_session="))
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite", "path"} <= attributes
        assert "samesite=lax" in cookie.lower()
        assert "max-age" not in attributes, "a browser-session cookie; the server bounds its life"
        session_id = cookie.split(";")[0].split("=", 1)[1]
        async with system.db.uow() as uow:
            stored = (await uow.session.scalars(select(CabinetSession))).one()
        assert stored.id_hash != session_id, "only the hash of the session id is stored"

        home = await client.get("/")
        assert home.status_code == 200
        assert "Фёдор Операторов" in home.text
        assert "Федеральный оператор" in home.text

        logout = await post_form(client, "/logout", {})
        assert logout.status_code == 303
        assert logout.headers["location"] == "/login?msg=signed_out"
        assert await count(system, CabinetSession) == 0
        assert (await client.get("/")).status_code == 303
        # The old cookie is worth nothing now.
        client.cookies.set("posog_lko_session", session_id, domain="lko.test")
        assert (await client.get("/")).status_code == 303


async def test_redirects_after_login_stay_in_the_cabinet(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await make_user(system, "fed", "federal")
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
            client.cookies.clear()
            page = await client.get("/login", params={"next": target})
            assert "evil" not in page.text
            response = await client.post(
                "/login", data={"login": "fed", "password": PASSWORD, "csrf_token": token_of(page.text), "next": target}
            )
            assert response.headers["location"] == "/"


async def test_the_login_form_needs_its_own_token(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await make_user(system, "fed", "federal")
        forged = await client.post("/login", data={"login": "fed", "password": PASSWORD})
        assert forged.status_code == 403
        assert "Запрос отклонён" in forged.text
        assert await count(system, CabinetSession) == 0


async def test_sessions_expire_when_idle_and_for_disabled_users(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, cabinet_idle_minutes=30) as system, browser(system) as client:
        await make_user(system, "fed", "federal")
        await signed_in(system, client, "fed")
        app = system.lko_asgi.app
        lko_state(app).clock = lambda: utcnow() + timedelta(minutes=31)

        expired = await client.get("/org-types")

        assert expired.status_code == 303
        assert expired.headers["location"] == "/login?next=%2Forg-types&msg=session_expired"
        assert await count(system, CabinetSession) == 0
        page = await client.get(expired.headers["location"])
        assert "Сеанс завершён. Войдите снова." in page.text

        # A disabled user's sessions end at once.
        lko_state(app).clock = utcnow
        await signed_in(system, client, "fed")
        assert (await client.get("/")).status_code == 200
        async with system.db.uow() as uow:
            await disable_user(uow, "fed", now=utcnow())
        assert (await client.get("/")).status_code == 303
        assert "Неверный логин или пароль." in (await sign_in(client, "fed")).text


async def test_password_guessing_is_throttled_per_login_and_client(tmp_path: Path) -> None:
    """Issue 13: failures slow down the (login, client) that made them — no hard lock of the login
    that a stranger could trigger (the old test asserted that the third failure locked the login for
    everyone, the right password included)."""
    async with stack("embedded", tmp_path, cabinet_login_max_failures=3) as system:
        await make_user(system, "fed", "federal")
        moment = utcnow()
        lko_state(system.lko_asgi.app).clock = lambda: moment
        async with browser(system, address="198.51.100.7") as client:
            for _ in range(3):
                assert "Неверный логин или пароль." in (await sign_in(client, "fed", "guess")).text
            waiting = await sign_in(client, "fed", PASSWORD)
            assert waiting.status_code == 429, "after the third failure this client's next attempt waits"
            assert waiting.headers["retry-after"] == "1"
            assert "Слишком много попыток входа, повторите через 1 с." in waiting.text
            # The same for a login that does not exist: the throttle tells nothing about accounts.
            for _ in range(3):
                assert (await sign_in(client, "ghost", "guess")).status_code == 200
            assert (await sign_in(client, "ghost", "guess")).status_code == 429
            # Other logins from the same client are not affected.
            await make_user(system, "other", "federal")
            assert (await sign_in(client, "other", PASSWORD)).status_code == 303
        async with browser(system, address="203.0.113.20") as elsewhere:
            assert (await sign_in(elsewhere, "fed", PASSWORD)).status_code == 303, "another client is not kept out"
        moment += timedelta(seconds=1)
        async with browser(system, address="198.51.100.7") as client:
            assert (await sign_in(client, "fed", PASSWORD)).status_code == 303, "after the wait, the right password"


async def test_every_page_carries_the_security_headers(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await make_user(system, "fed", "federal")
        _assert_security_headers(await client.get("/login"))
        await signed_in(system, client, "fed")
        for path in ("/", "/org-types", "/questionnaires", "/responses", f"/questionnaires/{uuid.uuid4()}", "/nowhere"):
            response = await client.get(path)
            assert response.status_code in (200, 404), path
            assert response.headers["content-type"].startswith("text/html")
            _assert_security_headers(response)
        not_found = await client.get("/nowhere")
        assert "Страница не найдена" in not_found.text
        static = await client.get("/static/lko.css")
        assert static.status_code == 200
        assert static.headers["x-content-type-options"] == "nosniff"
        # The API keeps its JSON envelope.
        api = await client.get("/api/v1/nothing-here")
        assert api.json()["error"]["code"] == "not_found"


async def test_a_forged_cross_site_form_post_is_refused(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await make_user(system, "fed", "federal")
        await signed_in(system, client, "fed")
        default_id = default_questionnaire_id("school")
        withdraw = f"/questionnaires/{default_id}/withdraw"
        token = token_of((await client.get("/")).text)

        attempts: list[tuple[dict[str, str], dict[str, str]]] = [
            ({}, {}),  # what another site's auto-submitting form would send: the cookie, no token
            ({"csrf_token": "guessed-" + token[8:]}, {}),
            ({"csrf_token": token}, {"Origin": "https://evil.example"}),
            ({"csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
            ({"csrf_token": token}, {"Sec-Fetch-Site": "same-site"}),  # another subdomain
            ({}, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}),
        ]
        for data, headers in attempts:
            response = await client.post(withdraw, data=data, headers=headers)
            assert response.status_code == 403, (data, headers)
            assert "Запрос отклонён" in response.text
            _assert_security_headers(response)
        assert (await LkoClient(system.lko_http).active_questionnaire("school", "federal")) is not None
        assert (await client.post("/logout")).status_code == 403
        assert (await client.get("/")).status_code == 200, "still signed in"

        # The same form from the cabinet itself goes through — as Chromium sends it under
        # Referrer-Policy: no-referrer (Origin: null).
        same_site = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
        ok = await client.post(withdraw, data={"csrf_token": token}, headers=same_site)
        assert ok.status_code == 303
        assert (await LkoClient(system.lko_http).active_questionnaire("school", "federal")) is None


# --- Roles and scopes --------------------------------------------------------------------------------


def _two_organisations() -> tuple[Organization, Organization]:
    orgs = organizations(51)
    first = orgs[0]
    second = next(o for o in orgs if o.region_code != first.region_code and o.inn != first.inn)
    return first, second


async def _responses(system: System, org: Organization, n: int, *, seed: int, comment: str) -> None:
    lkp = LkoClient(system.lko_http_for_lkp)
    for survey in await issue_surveys(system, n, seed=seed, organization=org):
        answers: dict[str, Any] = {f"q{i}": 4 for i in range(1, 7)} | {"q7": comment}
        await lkp.submit_response(survey.token, str(uuid.uuid4()), answers)


def _csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_organisation_user_sees_only_its_own_inn(backend: str, tmp_path: Path) -> None:
    async with stack(backend, tmp_path) as system, browser(system) as client:
        mine, theirs = _two_organisations()
        await _responses(system, mine, 2, seed=52, comment=f"Наш комментарий {SCRIPT}")
        await _responses(system, theirs, 2, seed=53, comment="Чужой комментарий")
        await make_user(system, "org.user", "organization", inn=mine.inn)
        await signed_in(system, client, "org.user")

        page = await client.get("/responses")
        assert page.status_code == 200
        assert page.text.count("Наш комментарий") == 2
        assert theirs.inn not in page.text
        assert "Чужой комментарий" not in page.text
        assert SCRIPT not in page.text, "a citizen's text is shown inert"
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
        assert 'name="inn"' not in page.text, "no ИНН filter to play with"

        # Changing ids in query strings and URLs, as a curious user would.
        for path in (
            f"/responses?inn={theirs.inn}",
            f"/responses/export.csv?inn={theirs.inn}",
            f"/responses/export.xlsx?inn={theirs.inn}",
            "/questionnaires",
            f"/questionnaires/{default_questionnaire_id('mfc')}",
            f"/questionnaires/{default_questionnaire_id('mfc')}/versions/1",
            f"/questionnaires/{default_questionnaire_id('mfc')}/preview",
            "/questionnaires/new",
            "/org-types",
            "/org-types/mfc/edit",
            "/org-types/export.csv",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "Страница не найдена" in response.text
        other_region = await client.get("/responses", params={"region_code": theirs.region_code})
        assert theirs.inn not in other_region.text
        assert (
            await post_form(client, f"/questionnaires/{default_questionnaire_id('mfc')}/withdraw", {})
        ).status_code == 404
        # A cabinet session is no key to the service API.
        assert (await client.get("/api/v1/responses", params={"inn": theirs.inn})).status_code == 401

        exported = _csv_rows(await client.get("/responses/export.csv"))
        assert {row["ИНН"] for row in exported} == {mine.inn}
        assert len(exported) == 2
        workbook = load_workbook(io.BytesIO((await client.get("/responses/export.xlsx")).content))
        sheet = workbook.active
        assert sheet is not None
        inns = {row[4] for row in sheet.iter_rows(min_row=2, values_only=True)}
        assert inns == {mine.inn}


async def test_a_regional_operator_sees_only_its_region(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        mine, theirs = _two_organisations()
        await _responses(system, mine, 1, seed=54, comment="Свой регион")
        await _responses(system, theirs, 2, seed=55, comment="Другой регион")
        await make_user(system, "region.op", "regional", region_code=mine.region_code)
        await signed_in(system, client, "region.op")

        page = await client.get("/responses")
        assert mine.inn in page.text
        assert theirs.inn not in page.text
        assert (await client.get("/responses", params={"region_code": theirs.region_code})).status_code == 404
        by_inn = await client.get("/responses", params={"inn": theirs.inn})
        assert by_inn.status_code == 200
        assert "Другой регион" not in by_inn.text
        exported = _csv_rows(await client.get("/responses/export.csv"))
        assert {row["Регион"] for row in exported} == {mine.region_code}
        assert (await client.get(f"/responses/export.csv?region_code={theirs.region_code}")).status_code == 404

        # Questionnaires and the directory: read-only.
        questionnaires = await client.get("/questionnaires")
        assert questionnaires.status_code == 200
        assert "Создать анкету" not in questionnaires.text
        questionnaire_id = default_questionnaire_id("mfc")
        assert (await client.get(f"/questionnaires/{questionnaire_id}")).status_code == 200
        assert (await client.get(f"/questionnaires/{questionnaire_id}/versions/1")).status_code == 200
        for path in (
            "/questionnaires/new",
            f"/questionnaires/{questionnaire_id}/edit",
            "/org-types/new",
            "/org-types/import",
        ):
            assert (await client.get(path)).status_code == 404, path
        assert (await post_form(client, f"/questionnaires/{questionnaire_id}/withdraw", {})).status_code == 404
        assert (await LkoClient(system.lko_http).active_questionnaire("mfc", "federal")) is not None
        assert (await client.get("/org-types")).status_code == 200
        assert (await client.get("/org-types/export.xlsx")).status_code == 200


async def test_the_federal_operator_sees_every_region_and_filters(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        mine, theirs = _two_organisations()
        await _responses(system, mine, 1, seed=56, comment="Первый")
        await _responses(system, theirs, 1, seed=57, comment="Второй")
        await make_user(system, "fed", "federal")
        await signed_in(system, client, "fed")

        everything = await client.get("/responses")
        assert mine.inn in everything.text
        assert theirs.inn in everything.text
        only_theirs = await client.get("/responses", params={"region_code": theirs.region_code})
        assert mine.inn not in only_theirs.text
        assert theirs.inn in only_theirs.text
        bad = await client.get("/responses", params={"from": "вчера", "inn": "12ab"})
        assert bad.status_code == 422
        assert "Период с: укажите дату в формате ГГГГ-ММ-ДД" in bad.text
        assert "ИНН: 10 или 12 цифр" in bad.text
        future = await client.get("/responses", params={"from": "2099-01-01"})
        assert "Ответов, подходящих под фильтр, нет." in future.text
        assert (await client.get("/responses", params={"cursor": "forged"})).status_code == 404


# --- Questionnaires in the cabinet ---------------------------------------------------------------------


def _builder_fields(html: str) -> list[tuple[str, str]]:
    """The builder form's fields as the browser would post them (text inputs, selects, checkboxes)."""
    form = html.split('action="/questionnaires/', 1)[1].split("</form>", 1)[0]
    fields: list[tuple[str, str]] = []
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or name.group(1) == "csrf_token":
            continue
        value = re.search(r'value="([^"]*)"', tag)
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                fields.append((name.group(1), "on"))
            continue
        fields.append((name.group(1), _unescape(value.group(1) if value else "")))
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        fields.append((name, _unescape(body)))
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        fields.append((name, chosen.group(1) if chosen else ""))
    return fields


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def _with(fields: list[tuple[str, str]], **changes: str) -> list[tuple[str, str]]:
    renamed = {key.replace("__", "."): value for key, value in changes.items()}
    return [(name, renamed.get(name, value)) for name, value in fields]


async def test_building_a_questionnaire_without_javascript(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await make_user(system, "fed", "federal")
        await signed_in(system, client, "fed")

        created = await post_form(
            client,
            "/questionnaires/new",
            {"type_code": "library", "level": "regional", "title": "Библиотеки региона", "validity_days": "21"},
        )
        assert created.status_code == 303
        edit_path = created.headers["location"].split("?")[0]
        questionnaire_id = edit_path.split("/")[2]
        edit = await client.get(created.headers["location"])
        assert "Анкета создана" in edit.text
        fields = _builder_fields(edit.text)
        assert ("q-count", "7") in fields

        added = await post_form(client, edit_path, [*fields, ("action", "add")])
        assert added.status_code == 200
        fields = _builder_fields(added.text)
        assert ("q-count", "8") in fields
        assert ("q7.id", "q8") in fields

        # The new question becomes a single choice: "Применить тип" shows its options.
        fields = _with(fields, q7__kind="single_choice", q7__text="Как вы узнали о библиотеке?")
        refreshed = _builder_fields((await post_form(client, edit_path, [*fields, ("action", "refresh")])).text)
        assert ("q7.o-count", "2") in refreshed
        refreshed = _with(refreshed, q7__o0__text="От друзей", q7__o1__text="")
        moved = _builder_fields((await post_form(client, edit_path, [*refreshed, ("action", "up:7")])).text)
        assert ("q6.id", "q8") in moved
        assert ("q7.id", "q7") in moved

        refused = await post_form(client, edit_path, [*moved, ("action", "save")])
        assert refused.status_code == 422
        assert "Черновик не сохранён" in refused.text
        assert "Вопрос 7 («q8»): вариант 2: укажите текст варианта" in refused.text

        fixed = _with(_builder_fields(refused.text), q6__o1__text="Из интернета")
        removed = _builder_fields((await post_form(client, edit_path, [*fixed, ("action", "remove:0")])).text)
        saved = await post_form(client, edit_path, [*removed, ("action", "save")])
        assert saved.status_code == 303
        assert saved.headers["location"] == f"/questionnaires/{questionnaire_id}?msg=saved"

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=system.lko_asgi.app),
            base_url="http://lko",
            headers={"Authorization": "Bearer dev-admin-key"},
        ) as admin:
            draft = (await admin.get(f"/api/v1/questionnaires/{questionnaire_id}")).json()["draft"]
        assert [q["id"] for q in draft["questions"]] == ["q2", "q3", "q4", "q5", "q6", "q8", "q7"]
        assert draft["questions"][5]["options"] == [
            {"id": "a", "text": "От друзей"},
            {"id": "b", "text": "Из интернета"},
        ]
        assert draft["validity_days"] == 21

        # The JSON editor: precise messages, then a save.
        broken = await post_form(client, f"/questionnaires/{questionnaire_id}/json", {"document": '{"title": "x",'})
        assert broken.status_code == 422
        assert "Некорректный JSON: строка 1, столбец 15" in broken.text
        invalid = dict(draft, questions=[{"id": "q1", "kind": "rating", "scale": 12, "text": "Оцените"}])
        import json

        rejected = await post_form(
            client, f"/questionnaires/{questionnaire_id}/json", {"document": json.dumps(invalid)}
        )
        assert "Вопрос 1 («q1»): шкала оценки должна быть целым числом от 2 до 10 (указано «12»)" in rejected.text
        valid = dict(
            draft, questions=[{"id": "q1", "kind": "yes_no", "text": "Вы нашли нужную книгу?", "required": True}]
        )
        assert (
            await post_form(client, f"/questionnaires/{questionnaire_id}/json", {"document": json.dumps(valid)})
        ).status_code == 303

        # Preview: the citizen's own form, disabled, without a submit button.
        preview = await client.get(f"/questionnaires/{questionnaire_id}/preview")
        assert preview.status_code == 200
        assert "Вы нашли нужную книгу?" in preview.text
        assert "survey-form--preview" in preview.text
        assert '<form class="survey-form"' not in preview.text
        assert re.search(r'<input type="radio"[^>]* disabled', preview.text)

        show = await client.get(f"/questionnaires/{questionnaire_id}")
        assert "Опубликовать версию 1" in show.text
        assert "Анкета ещё не публиковалась." in show.text
        published = await post_form(client, f"/questionnaires/{questionnaire_id}/publish", {})
        assert published.status_code == 303
        show = await client.get(published.headers["location"])
        assert "Анкета опубликована" in show.text
        assert "Версия 1" in show.text
        version = await client.get(f"/questionnaires/{questionnaire_id}/versions/1")
        assert version.status_code == 200
        assert "Вы нашли нужную книгу?" in version.text
        assert (await client.get(f"/questionnaires/{questionnaire_id}/versions/2")).status_code == 404
        assert (await client.get(f"/questionnaires/{questionnaire_id}/versions/x")).status_code == 404

        # Publishing another one for (library, regional) says it replaces this one, and does.
        other = await post_form(
            client,
            "/questionnaires/new",
            {"type_code": "library", "level": "regional", "title": "Вторая", "validity_days": "30"},
        )
        other_id = other.headers["location"].split("/")[2]
        other_page = await client.get(f"/questionnaires/{other_id}")
        assert "Сейчас для этого типа и уровня действует другая анкета — «" in other_page.text
        assert "При публикации она будет снята с публикации" in other_page.text
        await post_form(client, f"/questionnaires/{other_id}/publish", {})
        listing = await client.get("/questionnaires", params={"type_code": "library", "level": "regional"})
        assert listing.text.count("status--active") == 1
        assert listing.text.count("status--withdrawn") == 1


async def test_what_users_typed_is_shown_inert(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system, browser(system) as client:
        await make_user(system, "fed", "federal", full_name=f"Оператор {SCRIPT}")
        await signed_in(system, client, "fed")
        title = f"Анкета {SCRIPT}"
        created = await post_form(
            client,
            "/questionnaires/new",
            {"type_code": "museum", "level": "municipal", "title": title, "validity_days": "30"},
        )
        questionnaire_id = created.headers["location"].split("/")[2]
        edit = await client.get(f"/questionnaires/{questionnaire_id}/edit")
        fields = _with(
            _builder_fields(edit.text),
            q0__text='Вопрос <img src=x onerror="alert(1)">',
            q0__hint=SCRIPT,
        )
        assert (
            await post_form(client, f"/questionnaires/{questionnaire_id}/edit", [*fields, ("action", "save")])
        ).status_code == 303
        await post_form(client, "/org-types/new", {"code": "xss", "name": SCRIPT, "active": "on"})

        for path in (
            "/",
            "/questionnaires",
            f"/questionnaires/{questionnaire_id}",
            f"/questionnaires/{questionnaire_id}/edit",
            f"/questionnaires/{questionnaire_id}/preview",
            "/org-types",
        ):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert "<script>" not in page.text.lower(), path
            assert "<img src=x" not in page.text, path
            _assert_security_headers(page)
        preview = (await client.get(f"/questionnaires/{questionnaire_id}/preview")).text
        assert "Вопрос &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in preview
        assert "&lt;script&gt;" in preview


def test_accounts_are_managed_from_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from posog.lko.accounts.cli import users_app
    from tests.databases import create_sqlite_database

    runner = CliRunner()
    # A migrated database, as `posog db upgrade` leaves it: the users commands never migrate.
    database_url = asyncio.run(create_sqlite_database(tmp_path / "posog.sqlite3"))
    env = {"POSOG_ENV": "test", "POSOG_VAR_DIR": str(tmp_path / "var"), "POSOG_DATABASE_URL": database_url}

    def run(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(users_app, list(args), input=stdin, env=env)

    created = run(
        "create", "Region.Op", "--role", "regional", "--region", "77", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert created.exit_code == 0, created.output
    assert "создан" in created.output
    assert (
        run(
            "create", "org", "--role", "organization", "--inn", "7707083893", "--password-stdin", stdin=PASSWORD + "\n"
        ).exit_code
        == 0
    )

    for args, message in (
        (("create", "region.op", "--role", "federal"), "уже существует"),
        (("create", "x1y", "--role", "regional"), "нужен код региона"),
        (("create", "org2", "--role", "organization", "--inn", "7707083894"), "корректный ИНН"),
        (("create", "admin1", "--role", "root"), "Роль «root» неизвестна"),
        (("create", "short", "--role", "federal"), "не короче 10 символов"),
    ):
        password = "short" if args[1] == "short" else PASSWORD
        refused = run(*args, "--password-stdin", stdin=password + "\n")
        assert refused.exit_code == 2, refused.output
        assert message in " ".join(refused.output.split())

    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    import json

    users = {u["login"]: u for u in json.loads(listed.output)}
    assert set(users) == {"region.op", "org"}
    assert (users["region.op"]["role"], users["region.op"]["region_code"], users["region.op"]["active"]) == (
        "regional",
        "77",
        True,
    )
    assert "password" not in listed.output.lower()

    assert run("disable", "REGION.OP").exit_code == 0
    assert json.loads(run("list", "--json").output)[1]["active"] is False
    assert run("disable", "nobody").exit_code == 2
