"""ЕПГУ's side of ГЭПС through СМЭВ (INTEGRATION §3), for the СМЭВ-adapter emulator to call: it takes
the ``ClientMessage`` documents the module sends and answers each ГЭПС notification with the delivery
statuses ЕПГУ would send back, as ``QueryResult`` documents for the module's in queue —
:meth:`EpguOverSmev.answer`.

- A citizen with a Госуслуги account: the notification lands in the emulated inbox (the same
  :class:`~posog.emulators.epgu.inbox.EpguInbox` the JSON channel fills, so the ЕПГУ pages show it) and
  the answers are a ``StatusMessage`` ``OTHER`` "accepted: …" and then "delivered: …".
- A citizen ЕПГУ does not know: an ``ErrorMessage`` of type ``CLIENT`` (fault ``RECIPIENT_NOT_FOUND``)
  — the module does not retry it.
- A document ЕПГУ cannot read as a ГЭПС notification (a field missing): ``ErrorMessage`` ``CLIENT``
  (fault ``INVALID_CONTENT``).
- The switch for tests and demos: :meth:`EpguOverSmev.fail_with_server_errors` answers the next
  notifications (or all, until switched off) with an ``ErrorMessage`` of type ``SERVER`` (fault
  ``SERVICE_UNAVAILABLE``), storing nothing — the module sends them again after its backoff.

Every status names the notification by ``originalClientId`` = the request's ``clientId``. Documents
that are not ГЭПС requests (answers to fact senders, ИАС…) are not ЕПГУ's: no answer.

**Who has an account** (:class:`EpguCitizens`): every citizen, except the СНИЛС listed as without one
and — so that a demo shows failed deliveries without any set-up — about one citizen in
``no_account_every`` (default 40), chosen by the number itself (the first nine digits divisible by it):
every process agrees, and a citizen is known or not for good. ``no_account_every=0`` knows everyone
but the listed ones. Nothing here logs personal data."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog
from lxml import etree

from posog.core.clock import Clock, utcnow
from posog.core.ids import IdError, normalize_snils
from posog.emulators.epgu.inbox import EpguInbox
from posog.module.contracts import GepsNotification, Recipient
from posog.module.smev.envelope import (
    ADAPTER_NS,
    EnvelopeError,
    InboundError,
    InboundStatus,
    SmevMetadata,
    parse_xml,
    query_result,
)

log = structlog.get_logger(__name__)

GEPS_NS = "urn://x-artefacts-posog/geps-notification/1.0.0"
_A = "{" + ADAPTER_NS + "}"
_G = "{" + GEPS_NS + "}"

ACCEPTED = "accepted: Уведомление принято ЕПГУ"
DELIVERED = "delivered: Уведомление доставлено в личный кабинет на Госуслугах"
RECIPIENT_NOT_FOUND = ("RECIPIENT_NOT_FOUND", "Получатель не найден: нет учётной записи на Госуслугах")
INVALID_CONTENT = ("INVALID_CONTENT", "Уведомление не соответствует схеме вида сведений ГЭПС")
SERVICE_UNAVAILABLE = ("SERVICE_UNAVAILABLE", "Сервис ГЭПС временно недоступен, повторите позже")


@dataclass(frozen=True)
class EpguCitizens:
    """Who has a Госуслуги account (see the module docstring)."""

    without_account: frozenset[str] = frozenset()
    no_account_every: int = 40

    @classmethod
    def of(cls, without_account: Iterable[str] = (), *, no_account_every: int = 40) -> EpguCitizens:
        return cls(frozenset(normalize_snils(s) for s in without_account), no_account_every)

    def has_account(self, snils: str) -> bool:
        try:
            digits = normalize_snils(snils)
        except IdError:
            return False  # no account has a malformed СНИЛС
        if digits in self.without_account:
            return False
        if self.no_account_every > 0 and digits[:9].isdigit():
            return int(digits[:9]) % self.no_account_every != 0
        return True


@dataclass(frozen=True)
class _Request:
    client_id: str
    notification: GepsNotification | None  # None: not readable as a ГЭПС notification


class EpguOverSmev:
    """``EpguOverSmev(inbox, citizens=EpguCitizens(), clock=utcnow)``; ``await answer(document)`` →
    the ``QueryResult`` documents (bytes) to put in the module's in queue, in order."""

    def __init__(self, inbox: EpguInbox, citizens: EpguCitizens | None = None, *, clock: Clock = utcnow) -> None:
        self._inbox = inbox
        self.citizens = citizens or EpguCitizens()
        self._clock = clock
        self._server_errors_left = 0
        self._server_errors_always = False
        self.answered = 0

    def fail_with_server_errors(self, count: int | None = None) -> None:
        """Answer the next ``count`` notifications (None: all, until :meth:`recover`) with a SERVER error."""
        if count is None:
            self._server_errors_always = True
        else:
            self._server_errors_left = max(count, 0)

    def recover(self) -> None:
        """Stop answering with SERVER errors."""
        self._server_errors_always = False
        self._server_errors_left = 0

    async def answer(self, document: bytes) -> list[bytes]:
        """The statuses ЕПГУ sends back for one ``ClientMessage`` (none when it is not a ГЭПС request)."""
        request = _read(document)
        if request is None:
            return []
        return await self._answer(request)

    async def answer_request(self, client_id: str, business: etree._Element) -> list[bytes]:
        """The same for a request the СМЭВ adapter's emulator has already read: its clientId and its
        business element (the emulator's recipient of ГЭПС documents)."""
        if not isinstance(business.tag, str) or not business.tag.startswith(_G):
            return []
        return await self._answer(_Request(client_id.strip(), _notification(business)))

    async def _answer(self, request: _Request) -> list[bytes]:
        self.answered += 1
        if self._server_errors_always or self._server_errors_left > 0:
            self._server_errors_left = max(self._server_errors_left - 1, 0)
            log.info("epgu.smev.server_error", client_id=request.client_id)
            return [self._error(request.client_id, "SERVER", SERVICE_UNAVAILABLE)]
        notification = request.notification
        if notification is None:
            log.info("epgu.smev.invalid_content", client_id=request.client_id)
            return [self._error(request.client_id, "CLIENT", INVALID_CONTENT)]
        if not self.citizens.has_account(notification.recipient.snils):
            log.info("epgu.smev.recipient_not_found", client_id=request.client_id)
            return [self._error(request.client_id, "CLIENT", RECIPIENT_NOT_FOUND)]
        await self._inbox.receive([notification.model_dump_json(by_alias=True).encode()])
        log.info("epgu.smev.delivered", client_id=request.client_id)
        return [self._status(request.client_id, ACCEPTED), self._status(request.client_id, DELIVERED)]

    def _meta(self) -> SmevMetadata:
        return SmevMetadata(message_id=str(uuid.uuid4()))

    def _status(self, client_id: str, details: str) -> bytes:
        return query_result(
            InboundStatus(
                meta=self._meta(),
                client_id=client_id,
                original_client_id=client_id,
                status="OTHER",
                details=details,
                timestamp=self._now(),
            )
        )

    def _error(self, client_id: str, error_type: str, fault: tuple[str, str]) -> bytes:
        code, description = fault
        return query_result(
            InboundError(
                meta=self._meta(),
                client_id=client_id,
                original_client_id=client_id,
                status="ERROR",
                details=description,
                timestamp=self._now(),
                error_type=error_type,
                fault_code=code,
                fault_description=description,
            )
        )

    def _now(self) -> datetime:
        return self._clock()


def _read(document: bytes) -> _Request | None:
    """The ГЭПС request in a ``ClientMessage``: its clientId and the notification (None when a field is
    missing); None when the document is no ГЭПС request."""
    try:
        root = parse_xml(document)
    except EnvelopeError:
        return None
    client_id = root.findtext(f"{_A}RequestMessage/{_A}RequestMetadata/{_A}clientId")
    content = root.find(f"{_A}RequestMessage/{_A}RequestContent/{_A}content/{_A}MessagePrimaryContent")
    if root.tag != f"{_A}ClientMessage" or not client_id or content is None or len(content) == 0:
        return None
    business = content[0]
    if not isinstance(business.tag, str) or not business.tag.startswith(_G):
        return None
    return _Request(client_id.strip(), _notification(business))


def _notification(element: etree._Element) -> GepsNotification | None:
    def text(path: str) -> str | None:
        value = element.findtext(path)
        return value.strip() if value and value.strip() else None

    fields = {
        "notification_id": text(f"{_G}NotificationId"),
        "snils": text(f"{_G}Recipient/{_G}Snils"),
        "last_name": text(f"{_G}Recipient/{_G}LastName"),
        "first_name": text(f"{_G}Recipient/{_G}FirstName"),
        "title": text(f"{_G}Title"),
        "text": text(f"{_G}Text"),
        "link": text(f"{_G}Link"),
        "expires_at": text(f"{_G}ExpiresAt"),
    }
    if element.tag != f"{_G}GepsNotification" or any(value is None for value in fields.values()):
        return None
    snils = fields["snils"] or ""
    try:
        normalize_snils(snils)
    except IdError:
        return None
    return GepsNotification(
        notification_id=fields["notification_id"] or "",
        # ЕПГУ gets no card id through СМЭВ (the document has none); the inbox shows the notification id.
        card_id="",
        recipient=Recipient(
            snils=snils,
            last_name=fields["last_name"] or "",
            first_name=fields["first_name"] or "",
            middle_name=text(f"{_G}Recipient/{_G}MiddleName"),
        ),
        title=fields["title"] or "",
        text=fields["text"] or "",
        link=fields["link"] or "",
        expires_at=fields["expires_at"] or "",
        frgu_service_id=text(f"{_G}FrguServiceId"),
    )
