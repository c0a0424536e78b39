"""ГЭПС through СМЭВ with delivery statuses (INTEGRATION §3), on SQLite and on PostgreSQL: the relay sends
each notification as a RequestMessage through the adapter port, ЕПГУ's emulator answers with statuses as
QueryResult documents, and the ГЭПС ReplyRoute moves the notification and its link — delivered, or
delivery_failed with the reason; a SERVER error is sent again after the backoff, a CLIENT error never; a
status nobody sent is not claimed (the dispatcher keeps it); failed deliveries show in analytics per
organisation and region."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from posog.bootstrap import System
from posog.emulators.epgu.smev import EpguCitizens, EpguOverSmev
from posog.module.client import ModuleClient
from posog.module.contracts import GepsNotification
from posog.module.links.model import SurveyLink
from posog.module.notifications.mapping import GepsDocumentError, PosogGepsMapping
from posog.module.notifications.model import OutboxMessage
from posog.module.notifications.replies import GepsReplyRoute
from posog.module.retention import PiiPurger
from posog.module.smev.envelope import (
    ADAPTER_NS,
    InboundError,
    InboundResponse,
    InboundStatus,
    SmevMetadata,
    parse_query_result,
)
from tests.integration.analytics_fixture import TODAY, Fixture, analytics_stack, ingest, notify_all, respond, tokens
from tests.integration.cabinet_support import browser, make_user, signed_in
from tests.integration.survey_support import client
from tests.support import BACKENDS

pytestmark = pytest.mark.integration

A = "{" + ADAPTER_NS + "}"
G = "{urn://x-artefacts-posog/geps-notification/1.0.0}"


class AdapterLoop:
    """The adapter port of the test: every ClientMessage the module sends goes to ЕПГУ's emulator, and
    what ЕПГУ answers waits, as QueryResult documents, until :meth:`deliver` hands it to the route (what
    the СМЭВ dispatcher does with the adapter's in queue)."""

    def __init__(self, epgu: EpguOverSmev) -> None:
        self.epgu = epgu
        self.sent: list[bytes] = []
        self.waiting: list[bytes] = []

    down = False  # the adapter cannot be reached: send raises, the engine retries

    async def send(self, documents: Sequence[bytes]) -> None:
        if self.down:
            raise ConnectionError("adapter unreachable")
        for document in documents:
            self.sent.append(document)
            self.waiting.extend(await self.epgu.answer(document))

    async def deliver(self, route: GepsReplyRoute) -> list[bool]:
        claimed = []
        waiting, self.waiting = self.waiting, []
        for body in waiting:
            reply = parse_query_result(body)
            assert isinstance(reply, InboundStatus | InboundError | InboundResponse)
            claimed.append(await route.on_reply(reply))
        return claimed

    def client_ids(self) -> list[str]:
        ids = []
        for document in self.sent:
            client_id = etree.fromstring(document).findtext(f"{A}RequestMessage/{A}RequestMetadata/{A}clientId")
            assert client_id is not None
            ids.append(client_id)
        return ids


def through_smev(system: System, citizens: EpguCitizens) -> tuple[AdapterLoop, GepsReplyRoute]:
    loop = AdapterLoop(EpguOverSmev(system.inbox, citizens, clock=system.clock))
    system.relay.use_adapter(loop, system.settings.smev_it_system)
    return loop, system.geps_replies()


async def link_of(system: System, card_id: str) -> SurveyLink:
    async with system.db.uow() as uow:
        link = await uow.session.scalar(select(SurveyLink).where(SurveyLink.card_id == card_id))
    assert link is not None
    return link


async def notification_of(system: System, card_id: str) -> OutboxMessage:
    async with system.db.uow() as uow:
        row = await uow.session.scalar(select(OutboxMessage).where(OutboxMessage.card_id == card_id))
    assert row is not None
    return row


def snils(fact: dict[str, Any]) -> str:
    return str(fact["citizen"]["snils"])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_statuses_and_errors_coming_back_move_the_notification_and_its_link(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        fixture = Fixture.new(51)
        known, unknown = fixture.fact("A", TODAY - timedelta(days=1)), fixture.fact("B", TODAY - timedelta(days=1))
        known["service"]["frgu_service_id"] = "10000000001"  # the fact's ФРГУ service id reaches ЕПГУ
        await ingest(system, [known, unknown])
        loop, route = through_smev(system, EpguCitizens.of([snils(unknown)], no_account_every=0))

        await notify_all(system)
        # One RequestMessage per notification, its clientId the notification's id; the broker (here the
        # port) having it is only "notified".
        ids = {
            card: (await notification_of(system, card)).message_id for card in (known["card_id"], unknown["card_id"])
        }
        assert sorted(loop.client_ids()) == sorted(ids.values())
        assert [(await link_of(system, card)).state for card in ids] == ["notified", "notified"]
        documents = {}
        for sent in loop.sent:
            content = etree.fromstring(sent).find(f"{A}RequestMessage/{A}RequestContent/{A}content")
            assert content is not None
            assert content[0][0].tag == f"{G}GepsNotification"
            documents[content[0][0].findtext(f"{G}NotificationId")] = content[0][0]
        assert documents[ids[known["card_id"]]].findtext(f"{G}FrguServiceId") == "10000000001"
        assert documents[ids[unknown["card_id"]]].find(f"{G}FrguServiceId") is None

        replies = list(loop.waiting)
        assert await loop.deliver(route) == [True, True, True]  # accepted + delivered, and one error

        delivered = await link_of(system, known["card_id"])
        assert delivered.state == "delivered"
        assert delivered.delivered_at is not None
        assert (await notification_of(system, known["card_id"])).delivery_status == "delivered"
        failed = await link_of(system, unknown["card_id"])
        assert failed.state == "delivery_failed"
        assert failed.delivery_failure_reason is not None
        assert failed.delivery_failure_reason.startswith("CLIENT: RECIPIENT_NOT_FOUND")
        row = await notification_of(system, unknown["card_id"])
        assert (row.delivery_status, row.dead_at is not None) == ("failed", True)
        # The known citizen has it in the ЕПГУ inbox; the unknown one has no account to hold it.
        inbox = await system.inbox.notifications()
        assert [n["notification_id"] for n in inbox] == [ids[known["card_id"]]]

        links = await tokens(system)  # what each citizen was sent (read before the purge below)

        # A CLIENT error is not retried: nothing is sent again, however long one waits.
        await asyncio.sleep(1.2)
        await notify_all(system)
        assert len(loop.sent) == 2

        # The same statuses delivered again by the adapter (at least once) change nothing.
        loop.waiting = replies
        assert await loop.deliver(route) == [True, True, True]
        assert (await link_of(system, known["card_id"])).state == "delivered"
        assert (await link_of(system, unknown["card_id"])).state == "delivery_failed"
        assert len(loop.sent) == 2

        # The failed notification's sealed personal data goes with the retention, as a sent one's does.
        later = system.clock() + timedelta(days=system.settings.pii_retention_days + 1)
        purger = PiiPurger(system.db, lambda: later, retention_days=system.settings.pii_retention_days, horizon_days=30)
        assert (await purger.purge_once()).notifications == 2
        async with system.db.uow() as uow:
            assert (await uow.session.scalars(select(OutboxMessage))).all() == []
        assert (await link_of(system, unknown["card_id"])).state == "delivery_failed"

        # The citizen can still open and answer a delivered link (and a failed one, should it reach them):
        # ЛКП's page opens it (the link moves on to opened), the answers complete it.
        async with client(system.lkp_asgi, None) as citizen:
            page = await citizen.get(f"/s/{links[unknown['card_id']]}")
        assert page.status_code == 200
        assert "data-survey-form" in page.text
        assert (await link_of(system, unknown["card_id"])).state == "opened"
        opened = await ModuleClient(system.module_http_for_lkp).resolve_link(links[known["card_id"]])
        assert (opened.card_id, opened.state) == (known["card_id"], "opened")
        assert (await link_of(system, known["card_id"])).state == "opened"
        await respond(system, links[known["card_id"]], [5, 4, 5, 4, 5])
        await respond(system, links[unknown["card_id"]], [3, 3, 3, 3, 3])
        assert (await link_of(system, known["card_id"])).state == "completed"
        assert (await link_of(system, unknown["card_id"])).state == "completed"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_server_error_is_sent_again_until_it_gets_through_or_the_attempts_run_out(
    backend: str, tmp_path: Path
) -> None:
    async with analytics_stack(backend, tmp_path, geps_max_attempts=2) as system:
        fixture = Fixture.new(52)
        first, second = fixture.fact("A", TODAY - timedelta(days=2)), fixture.fact("C", TODAY - timedelta(days=2))
        await ingest(system, [first])
        loop, route = through_smev(system, EpguCitizens(no_account_every=0))

        # ЕПГУ is down once: the notification is due again after the backoff, the link stays notified.
        loop.epgu.fail_with_server_errors(1)
        await notify_all(system)
        assert await loop.deliver(route) == [True]
        row = await notification_of(system, first["card_id"])
        assert (row.delivery_status, row.sent_at, row.dead_at) == ("retrying", None, None)
        assert row.last_error is not None
        assert row.last_error.startswith("SERVER: SERVICE_UNAVAILABLE")
        assert (await link_of(system, first["card_id"])).state == "notified"
        await asyncio.sleep(1.0)  # the first backoff is at most half a second
        await notify_all(system)
        assert loop.client_ids() == [row.message_id, row.message_id]  # the same id: ЕПГУ drops repeats
        assert await loop.deliver(route) == [True, True]
        assert (await link_of(system, first["card_id"])).state == "delivered"

        # ЕПГУ stays down: after POSOG_GEPS_MAX_ATTEMPTS sends the SERVER error is final.
        await ingest(system, [second])
        loop.epgu.fail_with_server_errors()
        await notify_all(system)
        assert await loop.deliver(route) == [True]
        assert (await notification_of(system, second["card_id"])).delivery_status == "retrying"
        await asyncio.sleep(1.5)
        await notify_all(system)
        assert await loop.deliver(route) == [True]
        link = await link_of(system, second["card_id"])
        assert link.state == "delivery_failed"
        assert link.delivery_failure_reason is not None
        assert "SERVER: SERVICE_UNAVAILABLE" in link.delivery_failure_reason
        row = await notification_of(system, second["card_id"])
        assert (row.delivery_status, row.attempts, row.server_errors, row.dead_at is not None) == ("failed", 2, 2, True)
        await asyncio.sleep(1.5)
        await notify_all(system)
        assert len(loop.sent) == 4  # dead: never sent again unless an operator re-drives it

        # An operator re-drives it once ЕПГУ is back: sent again, delivered, the link moves on.
        loop.epgu.recover()
        assert await system.relay.outbox.redrive([row.id]) == [row.id]
        await notify_all(system)
        assert await loop.deliver(route) == [True, True]
        assert (await link_of(system, second["card_id"])).state == "delivered"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_status_about_no_notification_of_ours_is_not_claimed(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        fixture = Fixture.new(53)
        fact = fixture.fact("D", TODAY - timedelta(days=1))
        await ingest(system, [fact])
        _, route = through_smev(system, EpguCitizens(no_account_every=0))
        await notify_all(system)
        meta = SmevMetadata(message_id=str(uuid.uuid4()))
        strangers = [
            InboundStatus(meta, None, str(uuid.uuid4()), "OTHER", "delivered: чужое"),
            InboundError(meta, None, str(uuid.uuid4()), "ERROR", "нет", None, "CLIENT", "X", "нет"),
            InboundStatus(meta, None, "ias-42", "OTHER", "delivered"),
            InboundStatus(meta, None, None, "OTHER", "delivered"),
            InboundResponse(meta, None, str(uuid.uuid4())),
        ]
        # Not ours: the dispatcher keeps them (module_smev_unmatched); nothing of ours moves.
        assert [await route.on_reply(reply) for reply in strangers] == [False] * len(strangers)
        assert (await link_of(system, fact["card_id"])).state == "notified"
        assert (await notification_of(system, fact["card_id"])).delivery_status is None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_failed_deliveries_are_counted_per_organisation_and_region(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        fixture = Fixture.new(54)
        day = TODAY - timedelta(days=3)
        # A, B in Москва (77); C, D in Татарстан (16). Without an account: one of A's three, both of C's.
        facts = {org: [fixture.fact(org, day) for _ in range(n)] for org, n in (("A", 3), ("B", 1), ("C", 2), ("D", 2))}
        await ingest(system, [fact for batch in facts.values() for fact in batch])
        unknown = [snils(facts["A"][0]), snils(facts["C"][0]), snils(facts["C"][1])]
        loop, route = through_smev(system, EpguCitizens.of(unknown, no_account_every=0))
        await notify_all(system)
        assert all(await loop.deliver(route))
        await system.analytics.pipeline.poll_once()

        analytics = system.analytics_for_module
        orgs = fixture.orgs
        a = await analytics.summary(level="organization", inn=orgs["A"].inn)
        assert (a.notified, a.delivery_failed, a.delivery_failure_rate) == (3, 1, 0.3333)
        c = await analytics.summary(level="organization", inn=orgs["C"].inn)
        assert (c.notified, c.delivery_failed, c.delivery_failure_rate) == (2, 2, 1.0)
        d = await analytics.summary(level="organization", inn=orgs["D"].inn)
        assert (d.delivery_failed, d.delivery_failure_rate) == (0, 0.0)
        moscow = await analytics.summary(level="region", region_code="77")
        assert (moscow.notified, moscow.delivery_failed, moscow.delivery_failure_rate) == (4, 1, 0.25)
        country = await analytics.summary()
        assert (country.delivery_failed, country.notified) == (3, 8)

        regions = {item.region_code: item for item in (await analytics.ratings(level="region")).items}
        assert (regions["77"].delivery_failed, regions["16"].delivery_failed) == (1, 2)
        assert regions["16"].delivery_failure_rate == 0.5
        by_org = {item.inn: item for item in (await analytics.ratings(level="organization")).items}
        assert {org: by_org[orgs[org].inn].delivery_failed for org in "ABCD"} == {"A": 1, "B": 0, "C": 2, "D": 0}

        # The ЛКО dashboard shows them: the country's figure, and per region in the drill-down table.
        await make_user(system, "fed", "federal")
        async with browser(system) as client:
            await signed_in(system, client, "fed")
            page = await client.get("/reports")
            assert page.status_code == 200, page.text
            figures = dict(re.findall(r'data-figure="(\w+)">([^<]*)<', page.text))
            assert (figures["delivery_failed"], figures["delivery_failure_rate"]) == ("3", "37.5 %")
            assert "Не доставлено" in page.text
            cells = re.findall(r"<td data-delivery-failed>(\d+)", page.text)
            assert sorted(cells) == ["1", "2"]  # Москва 1 of 4, Татарстан 2 of 4
            export = await client.get("/reports/export.csv")
            assert ["Уведомлений не доставлено", "3"] in list(csv.reader(io.StringIO(export.text), delimiter=";"))

        # A failure stays counted when the link later expires or is answered; a rebuild counts the same.
        links = await tokens(system)
        await respond(system, links[facts["C"][0]["card_id"]], [2, 2, 2, 2, 2])
        await system.analytics.pipeline.poll_once()
        assert (await analytics.summary(level="region", region_code="16")).delivery_failed == 2
        await system.analytics.pipeline.rebuild()
        assert (await analytics.summary(level="region", region_code="16")).delivery_failed == 2


class RefusingMapping(PosogGepsMapping):
    """Another ГЭПС schema plugged in through the mapping — one whose ``Text`` may hold 20 characters."""

    def document(self, notification: GepsNotification) -> bytes:
        if len(notification.text) > 20:
            raise GepsDocumentError(["GepsNotification/Text: facet_maxlength"])
        return super().document(notification)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_notification_the_schema_refuses_is_never_sent_and_its_link_fails(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        fixture = Fixture.new(55)
        fact = fixture.fact("B", TODAY - timedelta(days=1))
        await ingest(system, [fact])
        loop, _ = through_smev(system, EpguCitizens(no_account_every=0))
        system.relay.mapping = RefusingMapping()
        await notify_all(system)
        assert loop.sent == []  # СМЭВ would refuse it: it never leaves
        link = await link_of(system, fact["card_id"])
        assert (link.state, link.delivery_failure_reason) == (
            "delivery_failed",
            "invalid_document: GepsNotification/Text: facet_maxlength",
        )
        row = await notification_of(system, fact["card_id"])
        assert (row.delivery_status, row.dead_at is not None, row.sent_at) == ("failed", True, None)
        assert link.notified_at is not None  # counted among the notified: the failure rate is a share of them
        assert [dead.key for dead in await system.relay.outbox.dead()] == [row.id]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sends_that_never_reached_the_adapter_do_not_count_as_server_errors(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, geps_max_attempts=2) as system:
        fixture = Fixture.new(56)
        fact = fixture.fact("C", TODAY - timedelta(days=1))
        await ingest(system, [fact])
        loop, route = through_smev(system, EpguCitizens(no_account_every=0))
        loop.down = True
        for _ in range(3):  # the engine's own retries, with its backoff
            await notify_all(system)
            await asyncio.sleep(1.1)
        row = await notification_of(system, fact["card_id"])
        assert (row.attempts, row.sent_at, row.dead_at) == (3, None, None)
        assert (await link_of(system, fact["card_id"])).state == "issued"  # nothing reached the broker
        loop.down = False
        loop.epgu.fail_with_server_errors(1)
        await asyncio.sleep(2.5)
        await notify_all(system)
        assert await loop.deliver(route) == [True]
        row = await notification_of(system, fact["card_id"])
        assert (row.delivery_status, row.server_errors) == ("retrying", 1)  # one SERVER error of two allowed
        await asyncio.sleep(2.5)
        await notify_all(system)
        assert await loop.deliver(route) == [True, True]
        assert (await link_of(system, fact["card_id"])).state == "delivered"
