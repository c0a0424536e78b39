"""ГЭПС through СМЭВ without a database: the business document validates against its XSD (the package's,
the same as the one published in docs/), the ClientMessage that carries it against the adapter's schema;
what cannot be valid is refused with element paths and never a value; what ЕПГУ answers becomes the right
delivery report; ЕПГУ's emulator answers known and unknown citizens and the SERVER switch; nothing of the
citizen reaches the logs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from posog.emulators.epgu.smev import EpguCitizens, EpguOverSmev
from posog.module.contracts import GepsNotification, Recipient
from posog.module.notifications.mapping import (
    GEPS_NS,
    SCHEMA_FILE,
    GepsDocumentError,
    PosogGepsMapping,
    geps_schema,
)
from posog.module.notifications.replies import masked, report_of
from posog.module.smev.envelope import (
    InboundError,
    InboundResponse,
    InboundStatus,
    OutboundRequest,
    Reject,
    SmevMetadata,
    Status,
    adapter_schema,
    client_message,
    parse_query_result,
)
from tests.reference import ADAPTER_REFERENCE, assert_valid_against_reference

REPO = Path(__file__).resolve().parents[2]
G = "{" + GEPS_NS + "}"
SNILS = "112-233-445 95"
MAPPING = PosogGepsMapping()


def notification(**changes: Any) -> GepsNotification:
    values: dict[str, Any] = {
        "notification_id": str(uuid.uuid4()),
        "card_id": "MFC-77-2026-000123",
        "recipient": Recipient(snils=SNILS, last_name="Иванова", first_name="Мария", middle_name=None),
        "title": "Оцените качество оказанной услуги",
        "text": "Здравствуйте, Мария! Пожалуйста, оцените услугу: https://lkp.example/s/abc",
        "link": "https://lkp.example/s/abc",
        "expires_at": "2026-12-20T23:59:59.999999+03:00",
    }
    values.update(changes)
    return GepsNotification(**values)


def request_of(n: GepsNotification) -> bytes:
    return client_message("POSOG", OutboundRequest(client_id=n.notification_id, content=MAPPING.document(n)))


# --- The business document ------------------------------------------------------------------------


def test_the_published_xsd_is_the_one_the_code_validates_with() -> None:
    packaged = REPO / "src/posog/module/notifications/schemas" / SCHEMA_FILE
    assert (REPO / "docs" / SCHEMA_FILE).read_bytes() == packaged.read_bytes()


def test_a_notification_is_a_valid_geps_document_with_every_field() -> None:
    n = notification(frgu_service_id="10000000001")
    document = MAPPING.document(n)
    root = etree.fromstring(document)
    published = etree.XMLSchema(etree.parse(str(REPO / "docs" / SCHEMA_FILE)))
    assert published.validate(root), published.error_log
    assert root.tag == f"{G}GepsNotification"
    assert root.findtext(f"{G}NotificationId") == n.notification_id
    assert root.findtext(f"{G}Recipient/{G}Snils") == "11223344595"  # 11 digits, no separators
    assert root.findtext(f"{G}Recipient/{G}LastName") == "Иванова"
    assert root.find(f"{G}Recipient/{G}MiddleName") is None  # optional, absent when there is none
    assert root.findtext(f"{G}Link") == n.link
    assert datetime.fromisoformat(root.findtext(f"{G}ExpiresAt") or "") == datetime.fromisoformat(n.expires_at)
    assert root.findtext(f"{G}FrguServiceId") == "10000000001"
    assert [child.tag.removeprefix(G) for child in root] == [
        "NotificationId",
        "Recipient",
        "Title",
        "Text",
        "Link",
        "ExpiresAt",
        "FrguServiceId",
    ]


def test_the_client_message_carries_it_as_a_request_named_by_the_notification_id() -> None:
    n = notification(recipient=Recipient(snils=SNILS, last_name="Петров", first_name="Пётр", middle_name="Петрович"))
    document = request_of(n)
    root = etree.fromstring(document)
    assert adapter_schema().validate(root), adapter_schema().error_log
    a = "{urn://x-artefacts-smev-gov-ru/services/service-adapter/types}"
    assert root.findtext(f"{a}RequestMessage/{a}RequestMetadata/{a}clientId") == n.notification_id
    content = root.find(f"{a}RequestMessage/{a}RequestContent/{a}content/{a}MessagePrimaryContent")
    assert content is not None
    assert geps_schema().validate(content[0])
    assert content[0].findtext(f"{G}Recipient/{G}MiddleName") == "Петрович"
    assert_valid_against_reference(document, ADAPTER_REFERENCE)


@pytest.mark.parametrize(
    ("changes", "element"),
    [
        ({"link": "ftp://lkp.example/s/abc"}, "Link"),
        ({"text": "т" * 4001}, "Text"),
        ({"recipient": Recipient(snils=SNILS, last_name="Ы" * 101, first_name="Мария")}, "LastName"),
        ({"notification_id": "not-a-uuid"}, "NotificationId"),
        ({"frgu_service_id": "ФРГУ-1"}, "FrguServiceId"),
    ],
)
def test_what_cannot_match_the_schema_is_refused_naming_the_element_never_the_value(
    changes: dict[str, Any], element: str
) -> None:
    with pytest.raises(GepsDocumentError) as refused:
        MAPPING.document(notification(**changes))
    message = str(refused.value)
    assert element in message
    for value in ("11223344595", "Иванова", "Мария", "ftp://", "ЫЫЫ", "ФРГУ-1"):
        assert value not in message


def test_a_snils_that_is_no_snils_is_refused_without_showing_it() -> None:
    with pytest.raises(GepsDocumentError, match="Recipient/Snils: bad_length") as refused:
        MAPPING.document(notification(recipient=Recipient(snils="12345", last_name="Иванова", first_name="Мария")))
    assert "12345" not in str(refused.value)


# --- What comes back --------------------------------------------------------------------------------

META = SmevMetadata(message_id="m-1")
ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (InboundStatus(META, None, ID, "OTHER", "delivered: доставлено"), "delivered"),
        (InboundStatus(META, None, ID, "OTHER", "DELIVERED"), "delivered"),
        (InboundStatus(META, None, ID, "OTHER", "accepted: принято"), "progress"),
        (InboundStatus(META, None, ID, "OTHER", None), "progress"),
        (InboundStatus(META, None, ID, "ERROR", "не доставлено"), "failed"),
        (InboundError(META, None, ID, "ERROR", None, None, "CLIENT", "RECIPIENT_NOT_FOUND", "нет"), "failed"),
        (InboundError(META, None, ID, "ERROR", None, None, "SERVER", "SERVICE_UNAVAILABLE", "позже"), "retry"),
        (InboundResponse(META, None, ID, status=Status("delivered", "доставлено")), "delivered"),
        (InboundResponse(META, None, ID, status=Status("queued", "в очереди")), "progress"),
        (InboundResponse(META, None, ID, rejects=(Reject("NO_DATA", "нет получателя"),)), "failed"),
    ],
)
def test_each_reply_says_what_the_notification_and_its_link_become(reply: Any, kind: str) -> None:
    assert report_of(reply, MAPPING).kind == kind


def test_a_reason_keeps_the_fault_and_masks_any_snils_in_it() -> None:
    error = InboundError(
        META, None, ID, "ERROR", None, None, "CLIENT", "RECIPIENT_NOT_FOUND", "Нет учётной записи для 112-233-445 95"
    )
    report = report_of(error, MAPPING)
    assert report.reason == "CLIENT: RECIPIENT_NOT_FOUND: Нет учётной записи для ***"
    assert masked("11223344595 и 112 233 445 95") == "*** и ***"


# --- ЕПГУ's emulator ----------------------------------------------------------------------------------


class FakeInbox:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def receive(self, bodies: Sequence[bytes]) -> list[bool]:
        self.received.extend(bodies)
        return [True for _ in bodies]


def epgu(citizens: EpguCitizens) -> tuple[EpguOverSmev, FakeInbox]:
    inbox = FakeInbox()
    clock = lambda: datetime(2026, 12, 1, 10, tzinfo=UTC)  # noqa: E731
    return EpguOverSmev(inbox, citizens, clock=clock), inbox  # type: ignore[arg-type]


def test_who_has_an_account() -> None:
    citizens = EpguCitizens.of(["112-233-445 95"], no_account_every=40)
    assert not citizens.has_account("11223344595")  # listed
    assert not citizens.has_account("120-000-000 00")  # 120000000 is divisible by 40
    assert citizens.has_account("120-000-001 00")
    assert not citizens.has_account("not a snils")
    everyone = EpguCitizens(no_account_every=0)
    assert everyone.has_account("120-000-000 00")


async def test_epgu_answers_a_known_citizen_with_delivered_and_fills_the_inbox(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator, inbox = epgu(EpguCitizens(no_account_every=0))
    n = notification()
    replies = [parse_query_result(body) for body in await emulator.answer(request_of(n))]
    assert [type(r).__name__ for r in replies] == ["InboundStatus", "InboundStatus"]
    assert all(isinstance(r, InboundStatus) and r.original_client_id == n.notification_id for r in replies)
    assert [report_of(r, MAPPING).kind for r in replies] == ["progress", "delivered"]  # type: ignore[arg-type]
    stored = GepsNotification.model_validate_json(inbox.received[0])
    assert (stored.notification_id, stored.link, stored.recipient.last_name) == (n.notification_id, n.link, "Иванова")
    for value in ("Иванова", "Мария", "11223344595", SNILS):
        assert value not in caplog.text


async def test_epgu_answers_an_unknown_citizen_with_a_client_error_and_stores_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator, inbox = epgu(EpguCitizens.of([SNILS], no_account_every=0))
    n = notification()
    (reply,) = [parse_query_result(body) for body in await emulator.answer(request_of(n))]
    assert isinstance(reply, InboundError)
    assert (reply.error_type, reply.fault_code, reply.original_client_id) == (
        "CLIENT",
        "RECIPIENT_NOT_FOUND",
        n.notification_id,
    )
    assert report_of(reply, MAPPING).kind == "failed"
    assert inbox.received == []
    assert "11223344595" not in caplog.text


async def test_the_server_error_switch() -> None:
    emulator, inbox = epgu(EpguCitizens(no_account_every=0))
    emulator.fail_with_server_errors(1)
    (first,) = [parse_query_result(b) for b in await emulator.answer(request_of(notification()))]
    assert isinstance(first, InboundError)
    assert (first.error_type, report_of(first, MAPPING).kind) == ("SERVER", "retry")
    assert len(await emulator.answer(request_of(notification()))) == 2  # one only: delivered again
    emulator.fail_with_server_errors()
    for _ in range(3):
        (reply,) = [parse_query_result(b) for b in await emulator.answer(request_of(notification()))]
        assert isinstance(reply, InboundError)
        assert reply.error_type == "SERVER"
    emulator.recover()
    assert len(await emulator.answer(request_of(notification()))) == 2
    assert len(inbox.received) == 2


async def test_epgu_ignores_what_is_not_a_geps_request_and_refuses_an_unreadable_one() -> None:
    emulator, _ = epgu(EpguCitizens(no_account_every=0))
    other = b'<Other xmlns="urn://x-artefacts-posog/og-fact/1.0.0"><CardId>1</CardId></Other>'
    assert await emulator.answer(client_message("POSOG", OutboundRequest(client_id="ans-1", content=other))) == []
    assert await emulator.answer(b"not xml") == []
    missing = f'<GepsNotification xmlns="{GEPS_NS}"><NotificationId>{ID}</NotificationId></GepsNotification>'
    (reply,) = [
        parse_query_result(b)
        for b in await emulator.answer(client_message("POSOG", OutboundRequest(client_id=ID, content=missing.encode())))
    ]
    assert isinstance(reply, InboundError)
    assert (reply.error_type, reply.fault_code) == ("CLIENT", "INVALID_CONTENT")


# --- docs/geps.md ---------------------------------------------------------------------------------------


def test_the_examples_of_the_docs_are_what_the_code_builds_and_reads() -> None:
    import re

    text = (REPO / "docs" / "geps.md").read_text(encoding="utf-8")
    request, delivered, client, server = re.findall(r"```xml\n(.*?)\n```", text, flags=re.DOTALL)
    root = etree.fromstring(request.encode())
    assert adapter_schema().validate(root), adapter_schema().error_log
    assert_valid_against_reference(root, ADAPTER_REFERENCE)
    a = "{urn://x-artefacts-smev-gov-ru/services/service-adapter/types}"
    business = root.find(f"{a}RequestMessage/{a}RequestContent/{a}content/{a}MessagePrimaryContent")
    assert business is not None
    assert geps_schema().validate(business[0])
    n = notification(
        notification_id=business[0].findtext(f"{G}NotificationId"),
        recipient=Recipient(snils="11223344595", last_name="Иванов", first_name="Иван", middle_name="Иванович"),
        text=business[0].findtext(f"{G}Text"),
        link=business[0].findtext(f"{G}Link"),
        expires_at=business[0].findtext(f"{G}ExpiresAt"),
        frgu_service_id="10000000001",
    )

    def fields(element: etree._Element) -> list[tuple[str, str]]:
        return [(str(e.tag), (e.text or "").strip()) for e in element.iter()]

    assert fields(etree.fromstring(MAPPING.document(n))) == fields(business[0])
    kinds = [report_of(parse_query_result(xml.encode()), MAPPING).kind for xml in (delivered, client, server)]  # type: ignore[arg-type]
    assert kinds == ["delivered", "failed", "retry"]
