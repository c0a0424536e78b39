"""The СМЭВ adapter as ПОС ОГ meets it, in memory: provider systems hand it their requests (ОГ facts
as ``OgFactRequest``), it delivers them to ПОС ОГ as ``QueryResult`` documents — on the AMQP interface
(our in queue) or in the web service's queue that ``Get`` empties — and it takes ПОС ОГ's
``ClientMessage`` documents (from the out queue, or through ``Send``): answers go to the sender of the
request they reply to (listed per sender on the emulator's page), requests go to the recipient
registered for their namespace (the ЕПГУ emulator for ГЭПС, ИАС for ratings), whose replies it
delivers back the same way.

It keeps nothing durable: the demo's and the tests' adapter."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import structlog
from lxml import etree

from posog.core.bus import MessageBus, OutgoingMessage
from posog.core.clock import Clock, utcnow
from posog.emulators.smev_adapter.envelopes import (
    ClientMessage,
    NotAClientMessage,
    parse,
    read_client_message,
    request_document,
)
from posog.module.smev.envelope import (
    EnvelopeError,
    InboundError,
    InboundResponse,
    InboundStatus,
    parse_query_result,
)

log = structlog.get_logger(__name__)

Mode = Literal["amqp", "soap"]
# A recipient of the ИС's requests: (the request's clientId, its business element) → QueryResult
# documents to deliver back to the ИС (statuses, errors, responses; may be none).
Recipient = Callable[[str, etree._Element], Awaitable[Sequence[bytes]]]
CHUNK = 100


@dataclass
class Outgoing:
    """One request of ПОС ОГ's own (a ГЭПС notification, a request to ИАС МКГУ) and what its recipient
    answered through the adapter, as the emulator's page shows them."""

    client_id: str
    kind: str  # the вид сведений, in words
    sent_at: datetime
    replies: list[str] = field(default_factory=list)  # each reply in words, in order


KINDS = {
    "urn://x-artefacts-posog/geps-notification/1.0.0": "Уведомление ГЭПС",
    "http://vashkontrol.ru/service/rates/1.2.0": "ИАС МКГУ",
}
OUTGOING_SHOWN = 2000


def describe_reply(document: bytes) -> str:
    """A recipient's reply (a ``QueryResult``) in words: a status with its details, an error with its
    type and fault, a response with its content's name or its rejects."""
    try:
        reply = parse_query_result(document)
    except EnvelopeError as error:
        return f"нечитаемый ответ ({error.reason})"
    if isinstance(reply, InboundError):
        kind = "ошибка сервера" if reply.error_type == "SERVER" else "ошибка клиента"
        return f"{kind}: {reply.fault_code or ''} {reply.fault_description or reply.details or ''}".strip()
    if isinstance(reply, InboundStatus):
        return f"статус: {reply.details or reply.status}"
    if isinstance(reply, InboundResponse):
        if reply.rejects:
            return "отказ: " + "; ".join(f"{r.code} {r.description}" for r in reply.rejects)
        if reply.content is not None:
            return f"ответ: {etree.QName(reply.content).localname}"
    return "ответ без содержания"


@dataclass(frozen=True)
class Answer:
    """One answer the ИС gave to a provider's request."""

    sender: str
    request_client_id: str
    client_id: str
    kind: str  # status | rejects | content
    code: str  # the status code, or the reject codes joined
    description: str
    parameters: tuple[tuple[str, str], ...]
    received_at: datetime


class SmevAdapterEmulator:
    """``mode`` chooses how documents reach ПОС ОГ: ``amqp`` (published to ``in_queue`` on ``bus``) or
    ``soap`` (kept for the web service's ``Get``)."""

    def __init__(
        self,
        bus: MessageBus | None,
        *,
        mode: Mode,
        in_queue: str,
        out_queue: str,
        it_system: str,
        clock: Clock = utcnow,
    ) -> None:
        if mode == "amqp" and bus is None:
            raise ValueError("the AMQP interface needs a bus")
        self.mode = mode
        self._bus = bus
        self.in_queue = in_queue
        self.out_queue = out_queue
        self.it_system = it_system
        self._clock = clock
        self._waiting: deque[bytes] = deque()  # the web service's queue for our ИС
        self._senders: dict[str, str] = {}  # a request's clientId → its sender
        self.answers: dict[str, list[Answer]] = {}  # by the request's clientId
        self.requests: list[ClientMessage] = []  # the ИС's own requests (ГЭПС, ИАС)
        self.outgoing: deque[Outgoing] = deque(maxlen=OUTGOING_SHOWN)  # the same, with their replies, newest last
        self.refused = 0  # ClientMessages the adapter would refuse
        # The adapter takes a clientId once: a ClientMessage sent again under it (the ИС retried after a
        # crash between the adapter taking it and the ИС noting so) is not delivered twice.
        self._taken: set[str] = set()
        self.repeated = 0
        self._recipients: dict[str, Recipient] = {}
        self.changed = asyncio.Event()

    # --- provider systems → ПОС ОГ ----------------------------------------------------------------

    async def submit(
        self,
        sender: str,
        businesses: Sequence[bytes | etree._Element],
        *,
        client_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """``sender``'s requests (one business element each) delivered to ПОС ОГ; their clientIds."""
        ids = list(client_ids) if client_ids is not None else [f"{sender[:12]}-{uuid.uuid4()}" for _ in businesses]
        documents = []
        for client_id, business in zip(ids, businesses, strict=True):
            self._senders[client_id] = sender
            documents.append(request_document(business, client_id=client_id))
        await self.deliver(documents)
        return ids

    def remember_sender(self, client_id: str, sender: str) -> None:
        """For documents built elsewhere (tests): whose request ``client_id`` is."""
        self._senders[client_id] = sender

    async def deliver(self, documents: Sequence[bytes]) -> None:
        """``QueryResult`` documents (any bytes, for the hostile tests) to ПОС ОГ as they are."""
        if self.mode == "soap":
            self._waiting.extend(documents)
            return
        assert self._bus is not None
        for start in range(0, len(documents), CHUNK):
            chunk = documents[start : start + CHUNK]
            messages = [OutgoingMessage(d, str(uuid.uuid4()), content_type="application/xml") for d in chunk]
            await self._bus.publish("", self.in_queue, messages)

    def waiting(self) -> int:
        """Documents the web service holds for ``Get``."""
        return len(self._waiting)

    def take_next(self) -> bytes | None:
        """``Get``: the next document of our ИС's queue (removed from it), or None."""
        return self._waiting.popleft() if self._waiting else None

    # --- ПОС ОГ → the adapter ---------------------------------------------------------------------

    def register_recipient(self, namespace: str, recipient: Recipient) -> None:
        """Requests of ПОС ОГ whose business element is of ``namespace`` go to ``recipient``."""
        self._recipients[namespace] = recipient

    async def take(self, document: bytes) -> ClientMessage:
        """A ``ClientMessage`` of ПОС ОГ; raises :class:`NotAClientMessage` (counted) if it is not one."""
        try:
            message = read_client_message(parse(document))
        except (etree.XMLSyntaxError, NotAClientMessage) as error:
            self.refused += 1
            log.warning("emulators.smev_adapter.refused", error=str(error)[:200])
            raise NotAClientMessage(str(error)) from None
        if message.it_system != self.it_system:
            self.refused += 1
            raise NotAClientMessage(f"unknown itSystem {message.it_system!r}")
        if message.client_id in self._taken:
            self.repeated += 1
            return message
        self._taken.add(message.client_id)
        if message.kind == "response":
            self._record_answer(message)
        else:
            self.requests.append(message)
            assert message.content is not None
            namespace = etree.QName(message.content).namespace or ""
            outgoing = Outgoing(message.client_id, KINDS.get(namespace, namespace), self._clock())
            self.outgoing.append(outgoing)
            recipient = self._recipients.get(namespace)
            if recipient is not None:
                replies = await recipient(message.client_id, message.content)
                outgoing.replies.extend(describe_reply(reply) for reply in replies)
                if replies:
                    await self.deliver(list(replies))
        self.changed.set()
        return message

    def _record_answer(self, message: ClientMessage) -> None:
        assert message.reply_to_client_id is not None
        if message.status is not None:
            kind, code, description, parameters = "status", message.status[0], message.status[1], message.status[2]
        elif message.rejects:
            kind = "rejects"
            code = ",".join(sorted({c for c, _ in message.rejects}))
            description = "\n".join(d for _, d in message.rejects)
            parameters = ()
        else:
            kind, code, description, parameters = "content", "", "", ()
        answer = Answer(
            sender=self._senders.get(message.reply_to_client_id, "неизвестный отправитель"),
            request_client_id=message.reply_to_client_id,
            client_id=message.client_id,
            kind=kind,
            code=code,
            description=description,
            parameters=parameters,
            received_at=self._clock(),
        )
        self.answers.setdefault(message.reply_to_client_id, []).append(answer)

    async def consume_out(self) -> None:
        """The AMQP interface: take ПОС ОГ's ``ClientMessage`` documents from the out queue, forever."""
        assert self._bus is not None
        stream = self._bus.consume(self.out_queue, prefetch=200)
        async for message in stream:
            with contextlib.suppress(NotAClientMessage):  # counted and logged; the real adapter refuses it too
                await self.take(message.body)
            await message.ack()

    # --- what the pages show ----------------------------------------------------------------------

    def by_sender(self) -> dict[str, list[Answer]]:
        found: dict[str, list[Answer]] = {}
        for answers in self.answers.values():
            for answer in answers:
                found.setdefault(answer.sender, []).append(answer)
        for answers in found.values():
            answers.sort(key=lambda a: a.received_at, reverse=True)
        return found

    def answer_count(self) -> int:
        return sum(len(answers) for answers in self.answers.values())
