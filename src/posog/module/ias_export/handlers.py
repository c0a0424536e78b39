"""Building, sending and retrying ИАС МКГУ batches, and the schedule that makes them (SPEC §9).

A batch is (kind, period): ``aggregates`` — the SPEC §8 figures of the country, of every region and of
every organisation, asked of analytics (our own message, ``ias.aggregates/1``, docs/ias.md) — or
``rates`` — the individual ratings of the period's services, read from ЛКО's responses feed, as
vashkontrol ``RatesRequest`` 1.2.0 packets (INTEGRATION.md §4). Its id is deterministic
(``posog-<kind>-<from>-<to>``) and its payload is built once and frozen in ``module_ias_exports``, so
every attempt and every re-send carries the same bytes under the same id: the receiver keeps a batch id
once and answers 200 to a repeat.

A ``rates`` batch is cut into packets of ``POSOG_IAS_FORMS_PER_PACKET`` forms (``module_ias_packets``,
each a frozen RatesRequest under our ``client_id``; the batch's payload is their manifest). Each form is
one rating: ``foreign-id`` its response id, ``user@id`` a pseudonym (HMAC-SHA-256 under
``POSOG_IAS_USER_KEY`` of the card's СНИЛС hash, or of the card id once that is purged), the card's ФРГУ
ids, the service's date and the rating's time as dateTimes, the ОКАТО of the organisation's subject,
and the indicator and value ids of the form in use (:mod:`posog.module.ias_export.forms`). A rating
that cannot be sent — no ФРГУ service or authority id, no ОКАТО, nothing the form maps, no criterion
rated — is listed in ``module_ias_unsendable`` with the reason and counted on the batch.

Packets go through the channel port (:mod:`posog.module.ias_export.channel`): HTTP, or the СМЭВ adapter.
ИАС answers a RatesRequest with a packet id (``RatesResponse``); the packet's status is then asked with
``PacketsRequest`` every ``POSOG_IAS_STATUS_POLL_S`` (doubling up to ``ias_retry_max_s``) until it is
final: ``accepted``, or ``refused`` with ИАС's reason. Sent is not accepted.

Delivery, on the one engine (:mod:`posog.core.outbox`, delivery ``ias-export``): 2xx (aggregates), every
packet handed over (rates) → ``sent``; a
connection error, 5xx, 408, 425 or 429 → another attempt after the engine's backoff
(``retry_base_s · 2^(attempts−1)``, at most ``retry_max_s``, a little less at random) until
``max_attempts``, then ``failed`` (dead); any other 4xx → ``failed`` at once (the receiver will never
take it; logged with its answer)."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.client import AnalyticsClient, AnalyticsError, AnalyticsRefused
from posog.core.clock import MOSCOW, Clock, today
from posog.core.db import Database
from posog.core.outbox import Failure, Outbox
from posog.core.retry import backoff
from posog.lko.client import LkoClient, LkoError
from posog.lko.contracts import QuestionnaireDocument, StoredResponse
from posog.module.ias_export import documents
from posog.module.ias_export.channel import HttpChannel, IasChannel
from posog.module.ias_export.documents import PacketStatus, RateForm
from posog.module.ias_export.forms import (
    DEFAULT_FORM,
    FormError,
    FormMapping,
    choose,
    forms_from_file,
    forms_from_json,
    mapping,
)
from posog.module.ias_export.model import (
    FAILED,
    IAS_EXPORTS,
    PACKET_ACCEPTED,
    PACKET_FAILED,
    PACKET_FINAL,
    PACKET_PENDING,
    PACKET_REFUSED,
    PACKET_REGISTERED,
    PACKET_REPLACED,
    PACKET_SENT,
    PENDING,
    SENT,
    IasExport,
    IasFormRecord,
    IasPacket,
    IasUnsendable,
)
from posog.module.ias_export.okato import okato_for_region
from posog.module.ias_export.queries import CardFacts, card_facts
from posog.module.ias_export.rates import criterion_ratings

log = structlog.get_logger(__name__)

Kind = Literal["aggregates", "rates"]
KINDS: Final[tuple[Kind, ...]] = ("aggregates", "rates")
AGGREGATES_SCHEMA: Final = "ias.aggregates/1"
RATES_MANIFEST_SCHEMA: Final = "ias.rates-batch/1"
_PATHS: Final[dict[str, tuple[str, str]]] = {
    "aggregates": ("/api/v1/batches", "application/json"),
    "rates": ("/api/v1/rates", "application/xml; charset=utf-8"),
}
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
LEASE_S: Final = 300.0  # a claimed attempt's batch is not picked by another worker for this long


class ExportError(Exception):
    """The batch could not be built (analytics or ЛКО unavailable): nothing was logged, try again."""


def batch_id(kind: str, date_from: date, date_to: date) -> str:
    """The batch's id: the same for the same kind and period, always."""
    return f"posog-{kind}-{date_from:%Y%m%d}-{date_to:%Y%m%d}"


@dataclass(frozen=True)
class Delivery:
    """What one attempt got: ``accepted`` (stored now), ``duplicate`` (already there), ``retry`` or
    ``refused`` (permanent)."""

    outcome: Literal["accepted", "duplicate", "retry", "refused"]
    status_code: int | None
    detail: str


class IasSender:
    """Posts batches to ИАС МКГУ (``POSOG_IAS_URL``, or the in-process emulator)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    async def send(self, kind: str, batch: str, payload: bytes) -> Delivery:
        path, content_type = _PATHS[kind]
        try:
            response = await self._http.post(
                path, content=payload, headers={"Content-Type": content_type, "X-Batch-Id": batch}
            )
        except httpx.HTTPError as exc:
            return Delivery("retry", None, f"ИАС недоступна: {exc.__class__.__name__}")
        code = response.status_code
        answer = response.text[:300]
        if 200 <= code < 300:
            return Delivery("duplicate" if code == 200 else "accepted", code, answer)
        if code >= 500 or code in _RETRYABLE_4XX:
            return Delivery("retry", code, f"HTTP {code}: {answer}")
        return Delivery("refused", code, f"HTTP {code}: {answer}")


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class Unsendable:
    foreign_id: str
    card_id: str
    reason: str
    detail: str


@dataclass
class Built:
    """A batch as built: its frozen payload, its items (aggregates: figures; rates: forms sent), and for
    rates its packets (client id, forms, RatesRequest) and the ratings that cannot be sent."""

    payload: bytes
    items: int
    packets: list[tuple[str, int, bytes]] = field(default_factory=list)
    unsendable: list[Unsendable] = field(default_factory=list)


@dataclass(frozen=True)
class Rebuilt:
    """What :meth:`IasExporter.rebuild` did: the packets replaced, the new ones, and how many of the
    replaced packets' ratings cannot be sent now."""

    replaced: list[str]
    packets: list[str]
    unsendable: int


UNSENDABLE_REASONS: Final[dict[str, str]] = {
    "unknown_questionnaire": "анкета ответа не найдена в ЛКО",
    "no_criteria": "в ответе нет оценки ни по одному из пяти критериев",
    "unknown_card": "карточка услуги не найдена в модуле",
    "no_frgu_service": "у услуги нет идентификатора ФРГУ (service.frgu_service_id)",
    "no_frgu_authority": "у организации нет идентификатора ФРГУ (organization.frgu_authority_id)",
    "no_okato": "для региона организации не известен ОКАТО",
    "no_mapping": "форма ИАС не содержит показателей для оценённых критериев",
}


def packet_client_id(batch: str, seq: int) -> str:
    """Our id of a packet, the СМЭВ clientId too (≤ 50 characters): ``ias-r-<from>-<to>-<n>``."""
    _, _, period = batch.partition("-rates-")
    return f"ias-r-{period}-{seq}"


def send_client_id(client_id: str, sends: int) -> str:
    """The СМЭВ clientId of a packet's send: the packet's own id the first time, ``<id>.<n>`` for the
    n-th send again (after a СМЭВ server error, a lost RatesResponse, a re-drive) — the adapter takes
    each clientId once, so a repeated one would never leave."""
    return client_id if sends == 0 else f"{client_id}.{sends}"


def packet_id_of(client_id: str) -> str:
    """The packet a send's clientId belongs to (the inverse of :func:`send_client_id`)."""
    base, dot, number = client_id.rpartition(".")
    return base if dot and number.isdigit() and base.startswith("ias-r-") else client_id


def pseudonym(key: bytes, card: CardFacts) -> str:
    """``user@id``: a keyed hash of the citizen's СНИЛС hash (the same citizen, the same pseudonym), or of
    the card id once personal data is purged. Never reversible without the key, never personal data."""
    subject = f"snils:{card.snils_hash}" if card.snils_hash else f"card:{card.card_id}"
    return "u" + hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:40]


def _packet_row(batch: str, packet: tuple[str, int, bytes], now: datetime) -> IasPacket:
    """A new, pending packet of ``batch``: (client id, forms, RatesRequest)."""
    client_id, forms, payload = packet
    return IasPacket(
        client_id=client_id,
        batch_id=batch,
        seq=int(client_id.rsplit("-", 1)[1]),
        forms=forms,
        payload=payload,
        payload_sha256=_sha256(payload),
        state=PACKET_PENDING,
        sends=0,
        polls=0,
        created_at=now,
        updated_at=now,
    )


def _unsendable_row(batch: str, item: Unsendable, now: datetime) -> IasUnsendable:
    return IasUnsendable(
        batch_id=batch,
        foreign_id=item.foreign_id[:100],
        card_id=item.card_id[:100],
        reason=item.reason,
        detail=item.detail[:500],
        recorded_at=now,
    )


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class IasForms:
    """The form the ratings are mapped with (:mod:`posog.module.ias_export.forms`): ``forms_file`` if
    set, else the newest fetched from ИАС (``module_ias_forms``), else the federal form "direct" 0.0.4."""

    def __init__(
        self, db: Database, clock: Clock, *, service_type: str = "direct", forms_file: Path | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self.service_type = service_type
        self._file = forms_file

    async def current(self) -> FormMapping:
        if self._file is not None:
            chosen = choose(forms_from_file(self._file), self.service_type)
            if chosen is None:
                raise FormError(f"POSOG_IAS_FORMS_FILE {self._file} has no form {self.service_type!r}")
            return mapping(chosen, "file")
        async with self._db.uow() as uow:
            rows = (
                await uow.session.scalars(select(IasFormRecord).where(IasFormRecord.service_type == self.service_type))
            ).all()
        cached = choose([f for r in rows for f in forms_from_json(r.document)], self.service_type)
        if cached is not None:
            return mapping(cached, "ias")
        if self.service_type == DEFAULT_FORM.service_type:
            return mapping(DEFAULT_FORM, "default")
        raise FormError(f"no form {self.service_type!r}: fetch the forms from ИАС (posog export forms --refresh)")

    async def refresh(self, http: httpx.AsyncClient) -> list[str]:
        """Ask ИАС for its forms (``GET /api/v1/forms``) and keep them; returns their names."""
        try:
            response = await http.get("/api/v1/forms")
        except httpx.HTTPError as exc:
            raise FormError(f"ИАС недоступна: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise FormError(f"ИАС ответила HTTP {response.status_code}")
        forms = forms_from_json(response.text)
        now = self._clock()
        async with self._db.uow() as uow:
            for form in forms:
                document = json.dumps(form.document(), ensure_ascii=False, sort_keys=True)
                row = await uow.session.get(IasFormRecord, (form.service_type, form.version))
                if row is None:
                    uow.session.add(
                        IasFormRecord(
                            service_type=form.service_type, version=form.version, document=document, fetched_at=now
                        )
                    )
                else:
                    row.document, row.fetched_at = document, now
            await uow.commit()
        return [form.name for form in forms]


class IasExporter:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        analytics: AnalyticsClient,
        lko: LkoClient,
        sender: IasSender,
        *,
        channel: IasChannel | None = None,
        forms: IasForms | None = None,
        vendor_id: int = 1,
        user_key: bytes = b"posog-development-ias-user-key",
        forms_per_packet: int = 1000,
        status_poll_s: float = 60.0,
        reply_timeout_s: float = 3600.0,
        retry_base_s: float = 30.0,
        retry_max_s: float = 3600.0,
        max_attempts: int = 20,
        page_size: int = 500,
        lease_s: float = LEASE_S,
    ) -> None:
        self._db = db
        self._clock = clock
        self._analytics = analytics
        self._lko = lko
        self._sender = sender
        self.channel: IasChannel = channel or HttpChannel(sender.http)
        self.forms = forms or IasForms(db, clock)
        self._vendor_id = vendor_id
        self._user_key = user_key
        self._forms_per_packet = forms_per_packet
        self._status_poll_s = status_poll_s
        self._reply_timeout_s = reply_timeout_s
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._max_attempts = max_attempts
        self._page_size = page_size
        self._lease = timedelta(seconds=lease_s)
        self.outbox = Outbox(
            db, IAS_EXPORTS, base_s=retry_base_s, cap_s=retry_max_s, max_attempts=max_attempts, clock=clock
        )

    # --- Batches -----------------------------------------------------------------------------------

    async def export(self, kind: Kind, date_from: date, date_to: date) -> IasExport:
        """Log the batch of (kind, period) if new, and make one attempt now: a new or pending batch is
        sent; a sent one is sent again (the receiver answers that it has it); a failed one is given
        another round of attempts."""
        if date_from > date_to:
            raise ValueError("the period's start is after its end")
        batch = batch_id(kind, date_from, date_to)
        row = await self.get(batch)
        if row is None:
            built = await self.build(kind, date_from, date_to, batch)
            await self._create(batch, kind, date_from, date_to, built)
        elif row.status == FAILED:  # re-driven: pending, with a fresh round of attempts
            await self.outbox.redrive([batch])
        return await self.attempt(batch)

    async def exists(self, kind: Kind, date_from: date, date_to: date) -> bool:
        return await self.get(batch_id(kind, date_from, date_to)) is not None

    async def get(self, batch: str) -> IasExport | None:
        async with self._db.uow() as uow:
            return await uow.session.get(IasExport, batch)

    async def log(self, limit: int = 100) -> Sequence[IasExport]:
        """The newest batches first."""
        async with self._db.uow() as uow:
            query = select(IasExport).order_by(IasExport.created_at.desc(), IasExport.batch_id).limit(limit)
            return (await uow.session.scalars(query)).all()

    async def packets(self, batches: Iterable[str] | None = None, limit: int = 1000) -> Sequence[IasPacket]:
        """The RatesRequest packets of ``batches`` (all when None), by batch and number."""
        async with self._db.uow() as uow:
            query = select(IasPacket).order_by(IasPacket.batch_id.desc(), IasPacket.seq).limit(limit)
            if batches is not None:
                query = query.where(IasPacket.batch_id.in_(list(batches)))
            return (await uow.session.scalars(query)).all()

    async def unsendable(self, batch: str | None = None, limit: int = 1000) -> Sequence[IasUnsendable]:
        """The ratings that could not be sent, with the reason (of one batch, or of all)."""
        async with self._db.uow() as uow:
            query = select(IasUnsendable).order_by(IasUnsendable.batch_id.desc(), IasUnsendable.foreign_id).limit(limit)
            if batch is not None:
                query = query.where(IasUnsendable.batch_id == batch)
            return (await uow.session.scalars(query)).all()

    async def unsendable_counts(self) -> dict[str, int]:
        """reason → how many ratings could not be sent for it, over every batch."""
        async with self._db.uow() as uow:
            rows = await uow.session.execute(select(IasUnsendable.reason, func.count()).group_by(IasUnsendable.reason))
            return {reason: int(count) for reason, count in rows}

    async def _create(self, batch: str, kind: str, date_from: date, date_to: date, built: Built) -> None:
        now = self._clock()
        try:
            async with self._db.uow() as uow:
                uow.session.add(
                    IasExport(
                        batch_id=batch,
                        kind=kind,
                        period_from=date_from,
                        period_to=date_to,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        payload=built.payload,
                        payload_sha256=_sha256(built.payload),
                        payload_size=len(built.payload),
                        items=built.items,
                        unsendable=len(built.unsendable),
                        created_at=now,
                        updated_at=now,
                    )
                )
                await uow.session.flush()  # the batch first: a second worker's duplicate fails here
                uow.session.add_all([_packet_row(batch, packet, now) for packet in built.packets])
                uow.session.add_all([_unsendable_row(batch, item, now) for item in built.unsendable])
                await uow.commit()
        except IntegrityError:  # another worker logged it first: theirs is the frozen payload
            log.info("ias.batch.already_logged", batch_id=batch)
        else:
            log.info(
                "ias.batch.logged",
                batch_id=batch,
                kind=kind,
                items=built.items,
                packets=len(built.packets),
                unsendable=len(built.unsendable),
                size=len(built.payload),
            )

    # --- Delivery ----------------------------------------------------------------------------------

    async def attempt(self, batch: str) -> IasExport:
        """One delivery attempt of a logged batch, and its outcome logged."""
        now = self._clock()
        async with self._db.uow() as uow:
            row = await uow.session.get(IasExport, batch)
            if row is None:
                raise KeyError(batch)
            if row.status == PENDING:  # a lease, so that a concurrent worker does not send it too
                await self.outbox.lease(uow.session, batch, lease=self._lease, now=now)
                await uow.commit()
        if row.kind == "rates" and row.status == PENDING and row.attempts == 0:
            await self._repend_failed_packets(batch)  # a re-driven batch: its refused packets go again
        if row.kind == "rates":
            delivery = await self._send_packets(batch)
        else:
            delivery = await self._sender.send(row.kind, row.batch_id, row.payload)
        now = self._clock()
        async with self._db.uow() as uow:
            row = await uow.session.get(IasExport, batch)
            assert row is not None
            row.updated_at = now
            if delivery.outcome in ("accepted", "duplicate"):
                self.outbox.sent(row, at=row.sent_at or now)
                row.status = SENT
                log.info("ias.batch.sent", batch_id=batch, attempts=row.attempts, outcome=delivery.outcome)
            elif row.status == SENT:  # a re-send that did not go through changes nothing of the batch
                row.attempts += 1
                log.warning("ias.batch.resend_failed", batch_id=batch, error=delivery.detail)
            elif delivery.outcome == "refused":
                self.outbox.failed(row, Failure(batch, row.attempts, delivery.detail, permanent=True), now=now)
                row.status = FAILED
                log.error("ias.batch.refused", batch_id=batch, status=delivery.status_code, error=delivery.detail)
            elif self.outbox.failed(row, Failure(batch, row.attempts, delivery.detail), now=now):
                row.status = FAILED  # out of attempts
                row.last_error = f"{delivery.detail} (попыток: {row.attempts})"
                log.error("ias.batch.out_of_attempts", batch_id=batch, attempts=row.attempts, error=delivery.detail)
            else:
                assert row.next_attempt_at is not None
                log.warning(
                    "ias.batch.retry_scheduled",
                    batch_id=batch,
                    attempts=row.attempts,
                    next_attempt_at=row.next_attempt_at.isoformat(),
                    error=delivery.detail,
                )
            await uow.commit()
            return row

    async def _send_packets(self, batch: str) -> Delivery:
        """Hand over every pending packet of a rates batch: ``accepted`` when none is left pending (the
        packets' own states say what ИАС made of them), ``retry`` when one should be tried again,
        ``refused`` when the channel refused one for good."""
        async with self._db.uow() as uow:
            query = (
                select(IasPacket.client_id, IasPacket.payload, IasPacket.sends)
                .where(IasPacket.batch_id == batch, IasPacket.state == PACKET_PENDING)
                .order_by(IasPacket.seq)
            )
            pending = (await uow.session.execute(query)).all()
        if not pending:
            return Delivery("duplicate", None, "все пакеты уже переданы")
        retry: list[str] = []
        refused: list[str] = []
        for client_id, payload, sends in pending:
            handover = await self.channel.send_rates(send_client_id(client_id, sends), payload)
            now = self._clock()
            async with self._db.uow() as uow:
                packet = await uow.session.get(IasPacket, client_id)
                assert packet is not None
                packet.sends += 1
                packet.updated_at = now
                if handover.outcome == "registered" and handover.packet_id is not None:
                    self._registered(packet, handover.packet_id, now)
                elif handover.outcome == "sent":
                    packet.state, packet.sent_at = PACKET_SENT, packet.sent_at or now
                elif handover.outcome == "refused":
                    self._final(packet, PACKET_FAILED, handover.detail, now)
                    refused.append(f"{client_id}: {handover.detail}")
                else:
                    packet.reason = handover.detail
                    retry.append(f"{client_id}: {handover.detail}")
                await uow.commit()
            log.info("ias.packet.handed_over", client_id=client_id, outcome=handover.outcome, channel=self.channel.name)
        if retry:
            return Delivery("retry", None, "; ".join(retry)[:500])
        if refused:
            return Delivery("refused", None, "; ".join(refused)[:500])
        return Delivery("accepted", None, f"пакетов передано: {len(pending)}")

    async def _repend_failed_packets(self, batch: str) -> None:
        async with self._db.uow() as uow:
            await uow.session.execute(
                update(IasPacket)
                .where(IasPacket.batch_id == batch, IasPacket.state == PACKET_FAILED)
                .values(state=PACKET_PENDING, reason=None, final_at=None, updated_at=self._clock())
            )
            await uow.commit()

    async def retry_due(self) -> int:
        """Attempt every pending batch whose time has come; returns how many were attempted. Each is
        claimed under a lease first: only one worker attempts a batch at a time."""
        claimed = await self.outbox.claim_due(
            None, lease=self._lease, now=self._clock(), where=[IasExport.status == PENDING]
        )
        for row in claimed:
            await self.attempt(row.batch_id)
        return len(claimed)

    async def settle(self, batch: str, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> IasExport:
        """Keep attempting a pending batch, waiting out each backoff, until it is sent or failed."""
        while True:
            row = await self.get(batch)
            if row is None:
                raise KeyError(batch)
            if row.status != PENDING:
                return row
            if row.next_attempt_at is not None:
                wait = (row.next_attempt_at - self._clock()).total_seconds()
                if wait > 0:
                    await sleep(wait)
            await self.attempt(batch)

    # --- Packets: their ids and statuses -----------------------------------------------------------

    def _registered(self, packet: IasPacket, packet_id: int, now: datetime) -> None:
        packet.packet_id = packet_id
        packet.state = PACKET_REGISTERED
        packet.sent_at = packet.sent_at or now
        packet.reason = None
        packet.next_poll_at = now + timedelta(seconds=self._status_poll_s)
        log.info("ias.packet.registered", client_id=packet.client_id, packet_id=packet_id)

    def _final(self, packet: IasPacket, state: str, reason: str | None, now: datetime) -> None:
        packet.state = state
        packet.reason = reason[:2000] if reason else None
        packet.final_at = now
        packet.next_poll_at = None
        packet.poll_client_id = None
        logger = log.info if state == PACKET_ACCEPTED else log.warning
        logger("ias.packet.final", client_id=packet.client_id, packet_id=packet.packet_id, state=state, reason=reason)

    async def poll_due(self, limit: int = 100) -> int:
        """Ask ИАС the status of every registered packet whose time has come (one ``PacketsRequest``
        each); returns how many were asked. Over HTTP the answer is applied at once; through СМЭВ it
        comes back to :meth:`on_packets_response`. A packet is asked again at its next poll time if no
        answer came; one handed to the СМЭВ adapter whose RatesResponse has not come within the reply
        timeout is sent again by its batch (ИАС gives the same document the same packet)."""
        now = self._clock()
        await self._resend_unanswered(now)
        async with self._db.uow() as uow:
            query = (
                select(IasPacket)
                .where(IasPacket.state == PACKET_REGISTERED, IasPacket.next_poll_at <= now)
                .order_by(IasPacket.next_poll_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            due = list((await uow.session.scalars(query)).all())
            asks = []
            for packet in due:
                packet.polls += 1
                packet.poll_client_id = f"ias-q-{uuid.uuid4().hex}"
                packet.next_poll_at = now + self._poll_delay(packet.polls)
                asks.append((packet.poll_client_id, packet.packet_id))
            await uow.commit()
        for poll_client_id, packet_id in asks:
            assert packet_id is not None
            asked = await self.channel.ask_packets(
                poll_client_id, documents.packets_request(self._vendor_id, [packet_id])
            )
            if asked.statuses is not None:
                await self.apply_statuses(asked.statuses)
            elif asked.error:
                log.warning("ias.packet.status_not_asked", packet_id=packet_id, error=asked.error)
        return len(asks)

    async def ask_now(self, batch: str) -> int:
        """Ask at once the status of every registered packet of ``batch`` (the demo, an operator)."""
        async with self._db.uow() as uow:
            await uow.session.execute(
                update(IasPacket)
                .where(IasPacket.batch_id == batch, IasPacket.state == PACKET_REGISTERED)
                .values(next_poll_at=self._clock())
            )
            await uow.commit()
        return await self.poll_due()

    async def _resend_unanswered(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=self._reply_timeout_s)
        async with self._db.uow() as uow:
            query = select(IasPacket).where(IasPacket.state == PACKET_SENT, IasPacket.sent_at <= cutoff).limit(100)
            stale = list((await uow.session.scalars(query)).all())
            for packet in stale:
                reason = f"нет RatesResponse за {self._reply_timeout_s:.0f} с: отправлен снова"
                packet.state, packet.reason, packet.sent_at, packet.updated_at = PACKET_PENDING, reason, None, now
                batch = await uow.session.get(IasExport, packet.batch_id)
                if batch is not None and batch.dead_at is None and batch.status != PENDING:
                    batch.status, batch.sent_at, batch.lease_until = PENDING, None, None
                    batch.next_attempt_at, batch.updated_at = now, now
                log.warning("ias.packet.no_reply", client_id=packet.client_id, batch_id=packet.batch_id)
            await uow.commit()

    def _poll_delay(self, polls: int) -> timedelta:
        return backoff(polls, base_s=self._status_poll_s, cap_s=max(self._status_poll_s, self._retry_max_s))

    async def apply_statuses(self, statuses: Sequence[PacketStatus]) -> int:
        """Record what ИАС said of packets; returns how many of ours (not final yet) it named."""
        now = self._clock()
        matched = 0
        async with self._db.uow() as uow:
            for status in statuses:
                query = select(IasPacket).where(IasPacket.packet_id == status.packet_id)
                packet = (await uow.session.scalars(query)).first()
                if packet is None or packet.state in PACKET_FINAL:
                    continue
                matched += 1
                packet.ias_status = status.status
                packet.updated_at = now
                if status.status == "accepted":
                    self._final(packet, PACKET_ACCEPTED, None, now)
                elif status.final:
                    self._final(packet, PACKET_REFUSED, "; ".join(status.errors) or f"ИАС: {status.status}", now)
            await uow.commit()
        return matched

    async def settle_packets(
        self, batch: str, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, timeout_s: float = 600.0
    ) -> Sequence[IasPacket]:
        """Ask the statuses of a batch's registered packets, waiting out each poll interval, until none is
        left registered (or ``timeout_s``); the packets as they are then."""
        deadline = self._clock() + timedelta(seconds=timeout_s)
        while True:
            packets = await self.packets([batch])
            waiting = [p for p in packets if p.state == PACKET_REGISTERED]
            if not waiting or self._clock() >= deadline:
                return packets
            soonest = min(p.next_poll_at or self._clock() for p in waiting)
            wait = (soonest - self._clock()).total_seconds()
            if wait > 0:
                await sleep(min(wait, max(0.0, (deadline - self._clock()).total_seconds())))
            await self.poll_due()

    # --- Answers coming back through СМЭВ (the ReplyRoute calls these) -------------------------------

    async def packet_by_client_id(self, session: AsyncSession, client_id: str) -> IasPacket | None:
        """The packet a clientId of ours names: one of its sends (RatesRequest), or its status request."""
        packet = await session.get(IasPacket, packet_id_of(client_id))
        if packet is not None:
            return packet
        query = select(IasPacket).where(IasPacket.poll_client_id == client_id)
        return (await session.scalars(query)).first()

    async def knows(self, client_id: str) -> bool:
        async with self._db.uow() as uow:
            return await self.packet_by_client_id(uow.session, client_id) is not None

    async def on_rates_response(self, client_id: str, packet_id: int) -> bool:
        now = self._clock()
        async with self._db.uow() as uow:
            packet = await uow.session.get(IasPacket, packet_id_of(client_id))
            if packet is None:
                return False
            if packet.state in (PACKET_PENDING, PACKET_SENT):
                self._registered(packet, packet_id, now)
                packet.updated_at = now
            await uow.commit()
        return True

    async def on_refusal(self, client_id: str, reason: str, *, retry: bool) -> bool:
        """A reject, an error or an ERROR status about one of our documents. About a RatesRequest: the
        packet failed with the reason, or (``retry``: a СМЭВ server error) is sent again by its batch;
        about a PacketsRequest: logged, the status is asked again at the next poll."""
        now = self._clock()
        async with self._db.uow() as uow:
            packet = await self.packet_by_client_id(uow.session, client_id)
            if packet is None:
                return False
            if packet.client_id != packet_id_of(client_id):  # a PacketsRequest of ours
                log.warning("ias.packet.status_request_refused", client_id=client_id, reason=reason)
                packet.reason = reason[:2000]
            elif packet.state in PACKET_FINAL:
                pass
            elif retry:
                packet.state, packet.reason, packet.updated_at = PACKET_PENDING, reason[:2000], now
                batch = await uow.session.get(IasExport, packet.batch_id)
                if batch is not None and batch.dead_at is None:
                    batch.status, batch.sent_at, batch.lease_until = PENDING, None, None
                    batch.next_attempt_at = now + backoff(
                        batch.attempts, base_s=self._retry_base_s, cap_s=self._retry_max_s
                    )
                    batch.last_error, batch.updated_at = reason[:500], now
            else:
                self._final(packet, PACKET_FAILED, reason, now)
                packet.updated_at = now
            await uow.commit()
        return True

    async def on_packets_response(self, client_id: str, statuses: Sequence[PacketStatus]) -> bool:
        """Statuses asked by one of our PacketsRequests (even an older one, answered late): applied to
        the packets they name. False when they name no packet of ours."""
        ids = [status.packet_id for status in statuses]
        async with self._db.uow() as uow:
            ours = await uow.session.scalar(select(func.count()).where(IasPacket.packet_id.in_(ids)))
        if not ours:
            return False
        await self.apply_statuses(statuses)
        return True

    # --- Payloads ----------------------------------------------------------------------------------

    async def build(self, kind: Kind, date_from: date, date_to: date, batch: str) -> Built:
        """The payload of a batch, the number of items in it, and for rates its packets."""
        try:
            if kind == "aggregates":
                payload, items = await self._aggregates(date_from, date_to, batch)
                return Built(payload, items)
            return await self._rates(date_from, date_to, batch)
        except (AnalyticsError, AnalyticsRefused, LkoError, FormError) as exc:
            raise ExportError(f"{kind} {date_from}..{date_to}: {exc}") from exc

    async def _aggregates(self, date_from: date, date_to: date, batch: str) -> tuple[bytes, int]:
        country = await self._analytics.summary(level="country", date_from=date_from, date_to=date_to)
        regions = await self._analytics.ratings(level="region", date_from=date_from, date_to=date_to)
        organizations = await self._analytics.ratings(level="organization", date_from=date_from, date_to=date_to)
        document: dict[str, Any] = {
            "schema": AGGREGATES_SCHEMA,
            "batch_id": batch,
            "kind": "aggregates",
            "period": {"from": date_from.isoformat(), "to": date_to.isoformat()},
            "min_responses": regions.min_responses,
            "country": country.model_dump(mode="json", exclude={"scope", "period"}),
            "regions": [item.model_dump(mode="json", exclude={"inn", "org_name"}) for item in regions.items],
            "organizations": [item.model_dump(mode="json") for item in organizations.items],
        }
        payload = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        return payload, 1 + len(regions.items) + len(organizations.items)

    async def _period_responses(self, date_from: date, date_to: date) -> list[StoredResponse]:
        found: list[StoredResponse] = []
        cursor: str | None = None
        while True:
            page = await self._lko.responses_feed(cursor, limit=self._page_size)
            for response in page.items:
                if date_from <= date.fromisoformat(response.service_date[:10]) <= date_to:
                    found.append(response)
            if not page.items or page.next_cursor is None or page.next_cursor == cursor:
                return found
            cursor = page.next_cursor

    async def _rate_forms(self, date_from: date, date_to: date) -> tuple[list[RateForm], list[Unsendable], str]:
        """The period's ratings as forms (by service date, then response id), the ratings that cannot be
        sent and why, and the name of the form they were mapped with — from the data and form of now."""
        responses = await self._period_responses(date_from, date_to)
        versions: dict[tuple[str, int], QuestionnaireDocument | None] = {}
        for response in responses:
            key = (response.questionnaire_id, response.questionnaire_version)
            if key not in versions:
                versions[key] = await self._lko.questionnaire_version(*key)
        async with self._db.uow() as uow:
            cards = await card_facts(uow.session, {r.card_id for r in responses})
        form_mapping = await self.forms.current()
        forms: list[RateForm] = []
        unsendable: list[Unsendable] = []
        for response in sorted(responses, key=lambda r: (r.service_date, r.id)):
            form, problems = self._form(response, versions, cards, form_mapping)
            if form is not None:
                forms.append(form)
            else:
                detail = "; ".join(UNSENDABLE_REASONS[p] for p in problems)
                unsendable.append(Unsendable(response.id, response.card_id, problems[0], detail))
        return forms, unsendable, form_mapping.form.name

    def _packets(self, batch: str, forms: Sequence[RateForm], first_seq: int = 1) -> list[tuple[str, int, bytes]]:
        """``forms`` cut into RatesRequests of ``forms_per_packet``: (client id, forms, document) each."""
        return [
            (
                packet_client_id(batch, seq),
                len(forms[start : start + self._forms_per_packet]),
                documents.rates_request(self._vendor_id, forms[start : start + self._forms_per_packet]),
            )
            for seq, start in enumerate(range(0, len(forms), self._forms_per_packet), first_seq)
        ]

    async def _rates(self, date_from: date, date_to: date, batch: str) -> Built:
        forms, unsendable, form_name = await self._rate_forms(date_from, date_to)
        packets = self._packets(batch, forms)
        manifest = {
            "schema": RATES_MANIFEST_SCHEMA,
            "batch_id": batch,
            "form": form_name,
            "vendor_id": self._vendor_id,
            "packets": [{"client_id": c, "forms": n, "sha256": _sha256(p)} for c, n, p in packets],
            "unsendable": len(unsendable),
        }
        payload = json.dumps(manifest, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        if unsendable:
            log.warning(
                "ias.rates.unsendable",
                batch_id=batch,
                count=len(unsendable),
                reasons=sorted({u.reason for u in unsendable}),
            )
        return Built(payload, len(forms), packets, unsendable)

    async def rebuild(self, batch: str) -> Rebuilt:
        """The packets of a ``rates`` batch that ИАС refused, or that the channel refused for good, made
        again from the data and the form as they are now (after ``posog export forms --refresh``, a
        corrected directory…): the same ratings — by their ``foreign-id`` — in new packets under new
        ids, pending; the old ones kept as ``replaced``, with what replaced them. A rating that cannot
        be sent now is listed among the batch's unsendable ones with the reason. The batch is pending
        again: the worker (or ``attempt``) sends the new packets. :class:`ExportError` when the data
        cannot be read now; ``KeyError`` for an unknown batch; ``ValueError`` for an aggregates batch."""
        row = await self.get(batch)
        if row is None:
            raise KeyError(batch)
        if row.kind != "rates":
            raise ValueError(f"{batch} is an aggregates batch: it is sent again as it is (posog export ias)")
        async with self._db.uow() as uow:
            query = select(IasPacket).where(
                IasPacket.batch_id == batch, IasPacket.state.in_((PACKET_REFUSED, PACKET_FAILED))
            )
            old = list((await uow.session.scalars(query.order_by(IasPacket.seq))).all())
            last_seq = await uow.session.scalar(select(func.max(IasPacket.seq)).where(IasPacket.batch_id == batch))
        if not old:
            return Rebuilt([], [], 0)
        wanted = {form.foreign_id for packet in old for form in documents.parse_rates_request(packet.payload).forms}
        try:
            forms, unsendable, _ = await self._rate_forms(row.period_from, row.period_to)
        except (LkoError, FormError) as exc:
            raise ExportError(f"rates {row.period_from}..{row.period_to}: {exc}") from exc
        again = [form for form in forms if form.foreign_id in wanted]
        lost = [u for u in unsendable if u.foreign_id in wanted]
        packets = self._packets(batch, again, first_seq=int(last_seq or 0) + 1)
        now = self._clock()
        new_ids = [client_id for client_id, _, _ in packets]
        async with self._db.uow() as uow:
            for packet in old:
                stored = await uow.session.get(IasPacket, packet.client_id)
                assert stored is not None
                if stored.state not in (PACKET_REFUSED, PACKET_FAILED):  # rebuilt meanwhile by another operator
                    raise ValueError(f"{batch}: the packet {stored.client_id} changed meanwhile; run it again")
                replaced_by = ", ".join(new_ids) or "нет: ни одна оценка не может быть отправлена"
                stored.state = PACKET_REPLACED
                stored.reason = f"{stored.reason or ''} → пересобран: {replaced_by}"[-2000:]
                stored.updated_at = now
            uow.session.add_all([_packet_row(batch, packet, now) for packet in packets])
            for item in lost:
                await uow.session.merge(_unsendable_row(batch, item, now))
            stored_batch = await uow.session.get(IasExport, batch)
            assert stored_batch is not None
            stored_batch.items = stored_batch.items - len(lost)
            stored_batch.unsendable = stored_batch.unsendable + len(lost)
            stored_batch.updated_at = now
            if packets:  # pending again, with a fresh round of attempts, whether it was sent or failed
                stored_batch.status, stored_batch.sent_at, stored_batch.dead_at = PENDING, None, None
                stored_batch.attempts, stored_batch.next_attempt_at, stored_batch.lease_until = 0, now, None
                stored_batch.last_error = None
            await uow.commit()
        log.info("ias.batch.rebuilt", batch_id=batch, replaced=len(old), packets=len(packets), unsendable=len(lost))
        return Rebuilt([p.client_id for p in old], new_ids, len(lost))

    def _form(
        self,
        response: StoredResponse,
        versions: dict[tuple[str, int], QuestionnaireDocument | None],
        cards: dict[str, CardFacts],
        form_mapping: FormMapping,
    ) -> tuple[RateForm | None, list[str]]:
        """The ``form`` of one response, or the reasons it cannot be sent (never a partial form)."""
        questionnaire = versions[(response.questionnaire_id, response.questionnaire_version)]
        if questionnaire is None:
            return None, ["unknown_questionnaire"]
        ratings = criterion_ratings(questionnaire, response.answers)
        card = cards.get(response.card_id)
        problems = [] if ratings else ["no_criteria"]
        if card is None:
            return None, [*problems, "unknown_card"]
        if not card.frgu_service_id:
            problems.append("no_frgu_service")
        if not card.frgu_authority_id:
            problems.append("no_frgu_authority")
        okato = okato_for_region(response.region_code or card.region_code)
        if okato is None:
            problems.append("no_okato")
        rates = form_mapping.rates(ratings) if ratings else ()
        if ratings and not rates:
            problems.append("no_mapping")
        if problems:
            return None, problems
        assert card.frgu_service_id is not None
        assert card.frgu_authority_id is not None
        assert okato is not None
        return (
            RateForm(
                foreign_id=response.id,
                user_id=pseudonym(self._user_key, card),
                authority_id=card.frgu_authority_id,
                service_id=card.frgu_service_id,
                procedure_id=card.frgu_procedure_id,
                service_date=datetime.combine(date.fromisoformat(response.service_date[:10]), time(0), tzinfo=MOSCOW),
                received_date=_aware(response.submitted_at).astimezone(MOSCOW),
                okato=okato,
                rates=rates,
                authority_name=response.org_name,
                service_name=card.service_name or questionnaire.title,
            ),
            [],
        )


# --- Schedule --------------------------------------------------------------------------------------


def previous_day(day: date) -> tuple[date, date]:
    yesterday = day - timedelta(days=1)
    return yesterday, yesterday


def previous_month(day: date) -> tuple[date, date]:
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last.replace(day=calendar.monthrange(last.year, last.month)[1])


class IasSchedule:
    """``posog worker ias-export``: every ``interval_s``, once the Moscow hour is ``after_hour`` or later,
    the batches of the previous day (``daily``) and of the previous month (``monthly``) for each kind are
    made if not logged yet; then the pending batches whose time has come are attempted, and the status
    of every registered packet whose time has come is asked."""

    def __init__(
        self,
        exporter: IasExporter,
        clock: Clock,
        *,
        kinds: Sequence[Kind] = KINDS,
        daily: bool = True,
        monthly: bool = True,
        after_hour: int = 2,
        interval_s: float = 60.0,
    ) -> None:
        self._exporter = exporter
        self._clock = clock
        self._kinds = tuple(kinds)
        self._daily = daily
        self._monthly = monthly
        self._after_hour = after_hour
        self._interval_s = interval_s

    def periods(self, now: datetime) -> list[tuple[date, date]]:
        if now.astimezone(MOSCOW).hour < self._after_hour:
            return []
        day = today(lambda: now)
        found = []
        if self._daily:
            found.append(previous_day(day))
        if self._monthly:
            found.append(previous_month(day))
        return found

    async def tick(self) -> None:
        for date_from, date_to in self.periods(self._clock()):
            for kind in self._kinds:
                if await self._exporter.exists(kind, date_from, date_to):
                    continue
                try:
                    await self._exporter.export(kind, date_from, date_to)
                except ExportError as exc:
                    log.warning("ias.schedule.build_failed", error=str(exc))
        await self._exporter.retry_due()
        await self._exporter.poll_due()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ias.schedule.tick_failed")
            await self._exporter.outbox.observe_quietly()  # the delivery's gauges, after each round
            await asyncio.sleep(self._interval_s)
