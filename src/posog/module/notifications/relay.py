"""The outbox relay: publishes committed outbox rows with publisher confirms, marks them sent and the
links notified. Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several relays can run side by
side on PostgreSQL. A crash between the broker's confirm and the commit republishes the same
``notification_id``: delivery is at least once, and receivers drop duplicates by that id."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import structlog
from sqlalchemy import func, select, update

from posog.core import metrics
from posog.core.bus import BusError, MessageBus, OutgoingMessage
from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.pii import PiiCipher, PiiError
from posog.module.links.model import ISSUED, NOTIFIED, SurveyLink
from posog.module.notifications.model import TOPIC_GEPS, OutboxMessage

log = structlog.get_logger(__name__)


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
        self.published = 0

    def backoff(self, attempts: int) -> timedelta:
        seconds = min(self._max_backoff_s, 0.5 * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=seconds * random.uniform(0.8, 1.0))

    async def relay_once(self) -> int:
        """Publish one batch of due messages. Returns how many were published (0: nothing due or the
        broker refused, in which case the rows are scheduled for a retry with backoff)."""
        now = self._clock()
        async with self._db.uow() as uow:
            claim = (
                select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = (await uow.session.execute(claim)).scalars().all()
            if not rows:
                return 0
            messages: list[OutgoingMessage] = []
            publishable = []
            for row in rows:
                try:
                    body = self._cipher.open(row.pii_key_id, row.body, context=row.message_id)
                except PiiError as exc:
                    # A row nobody can open (its key was removed) must not block the ones behind it.
                    row.attempts += 1
                    row.next_attempt_at = now + self.backoff(row.attempts + 10)
                    row.last_error = str(exc)[:500]
                    log.error("outbox.unreadable_message", outbox_id=row.id, error=str(exc)[:200])
                    continue
                publishable.append(row)
                messages.append(
                    OutgoingMessage(
                        body=body,
                        message_id=row.message_id,
                        headers={"card_id": row.card_id, "schema": "geps.notification/1"},
                    )
                )
            rows = publishable
            if not rows:
                await uow.commit()
                return 0
            ids = [row.id for row in rows]
            try:
                await self._bus.publish(self._exchange, self._routing_key, messages)
            except BusError as exc:
                metrics.OUTBOX_FAILURES.inc()
                for row in rows:
                    row.attempts += 1
                    row.next_attempt_at = now + self.backoff(row.attempts)
                    row.last_error = str(exc)[:500]
                await uow.commit()
                log.warning("outbox.publish_failed", size=len(rows), error=str(exc)[:200])
                return 0
            sent_at = self._clock()
            await uow.session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(sent_at=sent_at, last_error=None)
            )
            await uow.session.execute(
                update(SurveyLink)
                .where(SurveyLink.card_id.in_([row.card_id for row in rows]), SurveyLink.state == ISSUED)
                .values(state=NOTIFIED, notified_at=sent_at)
            )
            await uow.commit()
        metrics.OUTBOX_PUBLISHED.labels(TOPIC_GEPS).inc(len(rows))
        self.published += len(rows)
        return len(rows)

    async def backlog(self) -> int:
        async with self._db.uow() as uow:
            count = await uow.session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
            )
        metrics.OUTBOX_BACKLOG.set(count or 0)
        return count or 0

    async def run(self) -> None:
        """Relay until cancelled; sleeps only when there was nothing to publish."""
        log.info("outbox.started", exchange=self._exchange)
        while True:
            try:
                published = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: keep going, never crash the worker
                log.error("outbox.relay_error", error=exc.__class__.__name__)
                published = 0
            if published < self._batch_size:
                await asyncio.sleep(self._idle_sleep_s)
