"""The link use cases (open, complete, revoke, expire; releasing waiting cards) on a fake unit of work:
what a citizen, ЛКО and an operator notice, with either store of links (the plain one, and the
PostgreSQL one whose look-up opens the link and whose completion commits on its own)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta

import pytest

from posog.core.pii import PiiCipher
from posog.core.ratelimit import InMemoryRateLimiter
from posog.module.links.handlers import (
    CompleteSurveyLink,
    LinkRefusal,
    ResolveLink,
    RevokeLink,
    RevokeRefused,
    complete_link,
    resolve_link,
    revoke_link,
)
from posog.module.links.model import hash_token
from posog.module.links.release import ReleaseWaitingCards, release_waiting_cards
from tests.unit.fake_uow import FakeCard, FakeCatalog, FakeLink, FakeModuleUnitOfWork, ModuleData
from tests.unit.lkp_fakes import QUESTIONNAIRE

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
STORES = [pytest.param(False, id="plain"), pytest.param(True, id="postgresql-shaped")]


def clock() -> datetime:
    return NOW


def _data(*states: str, expires_at: datetime = NOW + timedelta(days=10)) -> ModuleData:
    """A card and a link per state: tokens ``t0``, ``t1``…, cards ``card-0``…"""
    data = ModuleData()
    for n, state in enumerate(states):
        card_id = f"card-{n}"
        data.cards[card_id] = FakeCard(
            card_id=card_id,
            type_code=QUESTIONNAIRE.type_code,
            survey_level=QUESTIONNAIRE.level,
            service_date=date(2026, 11, 30),
            status="linked",
            created_at=NOW,
            updated_at=NOW,
        )
        data.links[f"link-{n}"] = FakeLink(
            id=f"link-{n}",
            card_id=card_id,
            token_hash=hash_token(f"t{n}"),
            questionnaire_id=QUESTIONNAIRE.id,
            questionnaire_version=QUESTIONNAIRE.version,
            state=state,
            expires_at=expires_at,
            issued_at=NOW - timedelta(days=1),
        )
    return data


async def _open(uow: FakeModuleUnitOfWork, token: str, catalog: FakeCatalog, limiter: InMemoryRateLimiter) -> str:
    """What the citizen sees on opening ``token``: the survey's state, or the refusal's code."""
    try:
        async with uow:
            data = await resolve_link(
                ResolveLink(token=token, client="lkp:198.51.100.7"), uow, catalog=catalog, limiter=limiter, clock=clock
            )
    except LinkRefusal as refusal:
        return refusal.code
    assert data.questionnaire == QUESTIONNAIRE
    assert data.card_id.startswith("card-")
    return data.state


async def _complete(uow: FakeModuleUnitOfWork, token: str, response_id: str) -> str:
    try:
        async with uow:
            await complete_link(CompleteSurveyLink(token=token, response_id=response_id), uow, clock=clock)
    except LinkRefusal as refusal:
        return f"{refusal.code} {refusal.status}"
    return "completed"


def _limiter() -> InMemoryRateLimiter:
    return InMemoryRateLimiter(3, window_s=600)


@pytest.mark.parametrize("fast", STORES)
async def test_opening_a_link_shows_the_survey_and_sets_opened_at_once(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("issued", "notified"), fast=fast)
    catalog = FakeCatalog(QUESTIONNAIRE)
    assert await _open(uow, "t0", catalog, _limiter()) == "opened"
    assert await _open(uow, "t1", catalog, _limiter()) == "opened"
    first = uow.committed.links["link-0"]
    assert first.state == "opened"
    assert first.opened_at == NOW

    later = FakeModuleUnitOfWork(uow.committed, fast=fast)
    reopened_at = NOW + timedelta(hours=1)
    async with later:
        await resolve_link(
            ResolveLink(token="t0", client="c"),
            later,
            catalog=catalog,
            limiter=_limiter(),
            clock=lambda: reopened_at,
        )
    assert later.committed.links["link-0"].opened_at == NOW, "reopening keeps the first opening"


@pytest.mark.parametrize("fast", STORES)
async def test_a_link_opens_when_the_catalog_must_ask_lko_first(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("issued"), fast=fast)
    catalog = FakeCatalog(QUESTIONNAIRE)
    catalog.cached = False
    assert await _open(uow, "t0", catalog, _limiter()) == "opened"
    assert uow.committed.links["link-0"].state == "opened"


@pytest.mark.parametrize("fast", STORES)
async def test_a_withdrawn_questionnaire_makes_the_link_unavailable_and_leaves_it_unopened(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("notified"), fast=fast)
    catalog = FakeCatalog(QUESTIONNAIRE)
    catalog.withdrawn.add(QUESTIONNAIRE.id)
    assert await _open(uow, "t0", catalog, _limiter()) == "questionnaire_unavailable"
    assert uow.committed.links["link-0"].state == "notified"


@pytest.mark.parametrize("fast", STORES)
async def test_final_links_refuse_opening_each_with_its_own_reason(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("revoked", "completed", "expired"), fast=fast)
    catalog = FakeCatalog(QUESTIONNAIRE)
    assert await _open(uow, "t0", catalog, _limiter()) == "link_revoked"
    assert await _open(uow, "t1", catalog, _limiter()) == "survey_completed"
    assert await _open(uow, "t2", catalog, _limiter()) == "link_expired"
    assert await _open(uow, "no-such-token", catalog, _limiter()) == "link_not_found"
    assert [link.state for link in uow.committed.links.values()] == ["revoked", "completed", "expired"]


@pytest.mark.parametrize("fast", STORES)
async def test_a_link_past_its_expiry_is_refused_and_marked_expired(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("notified", expires_at=NOW), fast=fast)
    catalog = FakeCatalog(QUESTIONNAIRE)
    assert await _open(uow, "t0", catalog, _limiter()) == "link_expired"
    assert uow.committed.links["link-0"].state == "expired"
    assert await _complete(uow, "t0", "r-1") == "link_expired 410"


@pytest.mark.parametrize("fast", STORES)
async def test_guessing_tokens_is_limited_even_for_a_valid_one_but_reopening_never_is(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("issued"), fast=fast)
    catalog = FakeCatalog(QUESTIONNAIRE)
    limiter = _limiter()
    for _ in range(5):
        assert await _open(uow, "t0", catalog, limiter) == "opened"  # a valid link never counts
    assert [await _open(uow, f"guess-{n}", catalog, limiter) for n in range(4)] == [
        "link_not_found",
        "link_not_found",
        "link_not_found",
        "too_many_requests",
    ]
    assert await _open(uow, "t0", catalog, limiter) == "too_many_requests"


@pytest.mark.parametrize("fast", STORES)
async def test_a_link_is_completed_once_and_a_retry_of_the_same_response_changes_nothing(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("opened", "issued"), fast=fast)
    assert await _complete(uow, "t0", "response-1") == "completed"
    link = uow.committed.links["link-0"]
    assert (link.state, link.response_id, link.completed_at) == ("completed", "response-1", NOW)
    assert await _complete(uow, "t0", "response-1") == "completed"  # ЛКО's retry
    assert await _complete(uow, "t0", "response-2") == "survey_completed 409"
    assert uow.committed.links["link-0"].response_id == "response-1"
    assert await _complete(uow, "t1", "response-3") == "completed", "an unopened link can be answered too"
    assert await _complete(uow, "unknown", "response-4") == "link_not_found 404"


@pytest.mark.parametrize("fast", STORES)
async def test_a_revoked_link_refuses_opening_and_completion_and_keeps_its_reason(fast: bool) -> None:
    uow = FakeModuleUnitOfWork(_data("opened"), fast=fast)
    async with uow:
        revoked = await revoke_link(RevokeLink("card-0", "  ошибочно   отправлена "), uow, clock=clock)
    assert (revoked.previous_state, revoked.revoked_at) == ("opened", NOW)
    link = uow.committed.links["link-0"]
    assert (link.state, link.revoke_reason, link.revoked_at) == ("revoked", "ошибочно отправлена", NOW)
    assert await _open(uow, "t0", FakeCatalog(QUESTIONNAIRE), _limiter()) == "link_revoked"
    assert await _complete(uow, "t0", "response-1") == "link_revoked 410"
    assert uow.committed.links["link-0"].response_id is None


async def test_revoking_is_refused_with_a_reason_the_operator_can_act_on() -> None:
    uow = FakeModuleUnitOfWork(_data("issued", "completed"))

    async def revoke(card_id: str, reason: str) -> str:
        try:
            async with uow:
                await revoke_link(RevokeLink(card_id, reason), uow, clock=clock)
        except RevokeRefused as refused:
            return str(refused)
        return "revoked"

    assert "Укажите причину" in await revoke("card-0", "   ")
    assert "не длиннее 500" in await revoke("card-0", "я" * 501)
    assert "нет ссылки" in await revoke("no-such-card", "жалоба")
    assert "«completed»" in await revoke("card-1", "поздно")
    assert uow.committed.links["link-0"].state == "issued", "a refusal changes nothing"
    assert await revoke("card-0", "жалоба") == "revoked"
    assert "«revoked»" in await revoke("card-0", "ещё раз")


def _cipher() -> PiiCipher:
    return PiiCipher({"k1": base64.b64decode(base64.b64encode(b"k" * 32))}, "k1", b"hash-key")


def _waiting(data: ModuleData, cipher: PiiCipher, card_id: str, service_date: date, *, type_code: str) -> None:
    key_id, sealed = cipher.seal_json(
        {"snils": "11223344595", "last_name": "Иванова", "first_name": "Анна", "middle_name": None}, context=card_id
    )
    data.cards[card_id] = FakeCard(
        card_id=card_id,
        type_code=type_code,
        survey_level=QUESTIONNAIRE.level,
        service_date=service_date,
        status="waiting",
        created_at=NOW - timedelta(minutes=len(data.cards)),
        updated_at=NOW,
        pii_key_id=key_id,
        pii=sealed,
    )


async def test_publishing_releases_the_waiting_cards_with_links_and_notifications() -> None:
    cipher = _cipher()
    data = ModuleData()
    _waiting(data, cipher, "recent-1", date(2026, 11, 30), type_code=QUESTIONNAIRE.type_code)
    _waiting(data, cipher, "recent-2", date(2026, 11, 29), type_code=QUESTIONNAIRE.type_code)
    _waiting(data, cipher, "long-ago", date(2025, 1, 10), type_code=QUESTIONNAIRE.type_code)
    _waiting(data, cipher, "other-type", date(2026, 11, 30), type_code="polyclinic")
    uow = FakeModuleUnitOfWork(data)
    catalog = FakeCatalog(QUESTIONNAIRE)
    async with uow:
        counts = await release_waiting_cards(
            ReleaseWaitingCards(QUESTIONNAIRE.type_code, "federal"),
            uow,
            catalog=catalog,
            cipher=cipher,
            clock=clock,
            lkp_base_url="https://lkp.example/",
            batch_size=2,  # two transactions' worth
        )
    assert (counts.issued, counts.late) == (2, 1)
    assert catalog.forgotten == [(QUESTIONNAIRE.type_code, "federal")], "ЛКО asked afresh, not the cache"
    cards = uow.committed.cards
    assert {card_id: cards[card_id].status for card_id in cards} == {
        "recent-1": "linked",
        "recent-2": "linked",
        "long-ago": "late",  # its survey period ended: a card, no link
        "other-type": "waiting",
    }
    links = {link.card_id: link for link in uow.committed.links.values()}
    assert set(links) == {"recent-1", "recent-2"}
    assert all(
        link.state == "issued" and link.questionnaire_version == QUESTIONNAIRE.version for link in links.values()
    )
    notifications = uow.committed.outbox
    assert sorted(row["card_id"] for row in notifications) == ["recent-1", "recent-2"]
    for row in notifications:  # sealed: the citizen's name is not readable in the outbox
        assert "Иванова".encode() not in row["body"]
        assert "Иванова" in cipher.open(row["pii_key_id"], row["body"], context=row["message_id"]).decode()


async def test_nothing_is_released_without_an_active_questionnaire() -> None:
    cipher = _cipher()
    data = ModuleData()
    _waiting(data, cipher, "waiting-1", date(2026, 11, 30), type_code="polyclinic")
    uow = FakeModuleUnitOfWork(data)
    async with uow:
        counts = await release_waiting_cards(
            ReleaseWaitingCards("polyclinic", "federal"),
            uow,
            catalog=FakeCatalog(QUESTIONNAIRE),
            cipher=cipher,
            clock=clock,
            lkp_base_url="https://lkp.example",
        )
    assert (counts.issued, counts.late) == (0, 0)
    assert uow.committed.cards["waiting-1"].status == "waiting"
    assert not uow.committed.links
    assert not uow.committed.outbox
