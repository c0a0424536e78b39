"""The outbox relay: publishes committed outbox rows with publisher confirms, marks them sent and the
links notified — the ``geps`` delivery of the one engine (:mod:`posog.core.outbox`), which claims the
rows, schedules the retries and counts the outcomes; the relay supplies the send (a whole claimed
batch published with confirms in one call). Rows are claimed with ``FOR UPDATE SKIP LOCKED``, held
for the transaction that publishes them, so several relays can run side by side on PostgreSQL. A
crash between the broker's confirm and the commit republishes the same ``notification_id``: delivery
is at least once, and receivers drop duplicates by that id.

Two ways out (``POSOG_SMEV_TRANSPORT``): ``none`` publishes the JSON notification (``geps.notification/1``,
SPEC §4) to the ГЭПС exchange; with a СМЭВ transport the relay sends each notification as a
``RequestMessage`` whose ``clientId`` is the notification id, its business document built and validated
by the :class:`~posog.module.notifications.mapping.GepsMapping`, through the adapter
(:class:`~posog.module.smev.port.AdapterOutbound`). Either way the confirm only means the broker (or the
adapter) has it: the link is ``notified``; ЕПГУ's statuses coming back move it on
(:mod:`posog.module.notifications.replies`). The personal data is opened only to build what is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from posog.core import metrics
from posog.core.bus import BusError, MessageBus, OutgoingMessage
from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.outbox import Failure, Outbox, relay_forever
from posog.core.pii import PiiCipher, PiiError
from posog.core.retry import backoff
from posog.module.contracts import GepsNotification
from posog.module.notifications.mapping import GepsDocumentError, GepsMapping, PosogGepsMapping
from posog.module.notifications.model import DELIVERY_FAILED, GEPS, TOPIC_GEPS, OutboxMessage
from posog.module.smev.envelope import OutboundInvalid, OutboundRequest, client_message
from posog.module.smev.port import AdapterOutbound
from posog.module.uow import ModuleUnitOfWork

log = structlog.get_logger(__name__)

FULL_CLAIM_EVERY_S = 5.0
BASE_BACKOFF_S = 0.5
UNREADABLE_PENALTY = 10  # extra doublings of the backoff of a row nobody can open (capped all the same)
OBSERVE_EVERY_S = 15.0


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        bus: MessageBus,
        cipher: PiiCipher,
        clock: Clock,
        *,
        exchange: str,
        routing_key: str,
        batch_size: int,
        idle_sleep_s: float,
        max_backoff_s: float,
        adapter: AdapterOutbound | None = None,
        it_system: str = "POSOG",
        mapping: GepsMapping | None = None,
    ) -> None:
        self._db = db
        self._bus = bus
        self._cipher = cipher
        self._clock = clock
        self._exchange = exchange
        self._routing_key = routing_key
        self._batch_size = batch_size
        self._idle_sleep_s = idle_sleep_s
        self._max_backoff_s = max_backoff_s
        self.outbox = Outbox(db, GEPS, base_s=BASE_BACKOFF_S, cap_s=max_backoff_s, clock=clock)
        self.mapping: GepsMapping = mapping or PosogGepsMapping()
        self._adapter = adapter
        self._it_system = it_system
        self.published = 0
        self._claimed_up_to: int | None = None  # the last id of the last full batch claimed, see _claim
        self._full_claim_at = float("-inf")

    def use_adapter(self, adapter: AdapterOutbound, it_system: str) -> None:
        """Send through the СМЭВ adapter as ``it_system`` from now on (a СМЭВ transport is configured)."""
        self._adapter = adapter
        self._it_system = it_system

    @property
    def through_smev(self) -> bool:
        return self._adapter is not None

    def backoff(self, attempts: int) -> timedelta:
        """The engine's backoff with this relay's base and cap."""
        return backoff(attempts, base_s=BASE_BACKOFF_S, cap_s=self._max_backoff_s)

    async def relay_once(self) -> int:
        """Publish one batch of due messages. Returns how many were published (0: nothing due or the
        broker refused, in which case the rows are scheduled for a retry with backoff)."""
        now = self._clock()
        async with ModuleUnitOfWork(self._db) as uow:
            rows = await self._claim(uow.session, now)
            if not rows:
                return 0
            messages: list[OutgoingMessage] = []
            documents: list[bytes] = []
            publishable = []
            unreadable: list[Failure] = []
            refused: list[tuple[Any, str]] = []
            for row in rows:
                try:
                    body = self._cipher.open(row.pii_key_id, row.body, context=row.message_id)
                except PiiError as exc:
                    # A row nobody can open (its key was removed) must not block the ones behind it;
                    # retried for ever (the key may come back), far apart.
                    unreadable.append(Failure(row.id, row.attempts, str(exc), penalty=UNREADABLE_PENALTY))
                    log.error("outbox.unreadable_message", outbox_id=row.id, error=str(exc)[:200])
                    continue
                if self._adapter is not None:
                    try:
                        documents.append(self._client_message(row.message_id, body))
                    except (GepsDocumentError, OutboundInvalid, ValueError) as exc:
                        # Never sendable as it stands (СМЭВ would refuse it): failed for good, with the
                        # schema's complaint (element paths, no values).
                        refused.append((row, _refusal(exc)))
                        continue
                    publishable.append(row)
                    continue
                publishable.append(row)
                messages.append(
                    OutgoingMessage(
                        body=body,
                        message_id=row.message_id,
                        headers={"card_id": row.card_id, "schema": "geps.notification/1"},
                    )
                )
            await self.outbox.mark_failed(uow.session, unreadable, now=now)
            await self._refuse(uow, refused, now)
            rows = publishable
            if not rows:
                await uow.commit()
                return 0
            ids = [row.id for row in rows]
            try:
                if self._adapter is not None:
                    await self._adapter.send(documents)
                else:
                    await self._bus.publish(self._exchange, self._routing_key, messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # BusError, the adapter's web service away…: retried with backoff
                if self._adapter is None and not isinstance(exc, BusError):
                    raise
                metrics.OUTBOX_FAILURES.inc()
                failures = [Failure(row.id, row.attempts, str(exc)) for row in rows]
                await self.outbox.mark_failed(uow.session, failures, now=now)
                await uow.commit()
                log.warning("outbox.publish_failed", size=len(rows), error=str(exc)[:200])
                return 0
            sent_at = self._clock()
            await self.outbox.mark_sent(uow.session, ids, at=sent_at)
            await uow.links.notify([row.card_id for row in rows], at=sent_at)
            await uow.commit()
        metrics.OUTBOX_PUBLISHED.labels(TOPIC_GEPS).inc(len(rows))
        self.published += len(rows)
        return len(rows)

    def _client_message(self, notification_id: str, body: bytes) -> bytes:
        """The ``ClientMessage`` of one notification: a ``RequestMessage`` whose clientId is its id and
        whose content is the mapping's business document (validated by the mapping and the envelope)."""
        notification = GepsNotification.model_validate_json(body)
        document = self.mapping.document(notification)
        request = OutboundRequest(client_id=notification_id, content=document)
        return client_message(self._it_system, request)

    async def _refuse(self, uow: ModuleUnitOfWork, refused: list[tuple[Any, str]], now: datetime) -> None:
        """Notifications that can never be sent as they are: dead, failed with the reason, their links
        ``delivery_failed``."""
        if not refused:
            return
        failures = [Failure(row.id, row.attempts, reason, permanent=True) for row, reason in refused]
        await self.outbox.mark_failed(uow.session, failures, now=now)
        for row, reason in refused:
            await uow.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id)
                .values(delivery_status=DELIVERY_FAILED, delivery_reason=reason, delivery_status_at=now)
            )
            await uow.links.fail_delivery(row.card_id, reason=reason, at=now)
            log.error("outbox.geps_document_refused", outbox_id=row.id, card_id=row.card_id, reason=reason)

    async def _claim(self, session: AsyncSession, now: datetime) -> Sequence[Any]:
        """Lock up to a batch of due, unsent rows (``FOR UPDATE SKIP LOCKED``), as plain rows — not ORM
        objects: the batch is read once and written back with two UPDATEs (loading 500 ORM objects
        cost more than publishing them).

        Mostly the rows after the last one this relay claimed, in id order: a range scan of the
        primary key, as cheap on a table of millions of sent rows as on an empty one. (``ORDER BY id``
        over all unsent rows walks the primary key through every row already sent: 120 ms per claim
        after 90 000, so draining a backlog took time quadratic in its size.) Every
        ``FULL_CLAIM_EVERY_S``, whenever that range runs short, and at the start: the due rows in order
        of due time over the ``(sent_at, next_attempt_at)`` index — retries, and rows another relay
        held when this one passed them — so none waits longer than that behind a steady stream."""
        columns = (
            OutboxMessage.id,
            OutboxMessage.message_id,
            OutboxMessage.card_id,
            OutboxMessage.pii_key_id,
            OutboxMessage.body,
            OutboxMessage.attempts,
        )
        due = self.outbox.due(*columns, now=now, limit=self._batch_size)
        started = time.monotonic()
        if self._claimed_up_to is not None and started - self._full_claim_at < FULL_CLAIM_EVERY_S:
            following = due.where(OutboxMessage.id > self._claimed_up_to).order_by(OutboxMessage.id)
            rows: Sequence[Any] = (await session.execute(following)).all()
            if rows:
                # A full batch: go on from its last row; a short one: everything after the mark is
                # taken, so look at all due rows next time.
                self._claimed_up_to = rows[-1].id if len(rows) == self._batch_size else None
                return rows
        rows = (await session.execute(due.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id))).all()
        self._full_claim_at = started
        self._claimed_up_to = max(row.id for row in rows) if len(rows) == self._batch_size else None
        return rows

    async def backlog(self) -> int:
        """The messages not yet published (nor dead); sets the backlog gauges."""
        count, _, _ = await self.outbox.observe()
        metrics.OUTBOX_BACKLOG.set(count)
        return count

    async def run(self) -> None:
        """Relay until cancelled; sleeps only when there was nothing to publish."""
        log.info("outbox.started", exchange=self._exchange)
        await relay_forever(
            self.relay_once,
            name=GEPS.name,
            batch_size=self._batch_size,
            idle_sleep_s=self._idle_sleep_s,
            observe=self.backlog,
            observe_every_s=OBSERVE_EVERY_S,
        )


def _refusal(exc: Exception) -> str:
    """Why a notification cannot be sent, without any value it holds."""
    if isinstance(exc, GepsDocumentError):
        return ("invalid_document: " + "; ".join(exc.problems))[:500]
    if isinstance(exc, OutboundInvalid):  # the element paths, not libxml2's messages (they quote values)
        return ("invalid_envelope: " + "; ".join(part.split(":", 1)[0] for part in str(exc).split("; ")))[:500]
    return f"unreadable_notification: {exc.__class__.__name__}"
