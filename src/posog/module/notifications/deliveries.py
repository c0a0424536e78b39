"""What ЕПГУ says about a ГЭПС notification (INTEGRATION §3), recorded on the notification and its link.

A publisher confirm (or the adapter's answer to ``Send``) only means the broker has the notification:
the link is ``notified`` then. Whether the citizen got it is known only from what comes back through
СМЭВ, read into a :class:`DeliveryReport` by the reply route (:mod:`posog.module.notifications.replies`):

- ``delivered`` → the notification is ``delivered``, its link ``delivered`` (lifecycle.DELIVER);
- ``failed`` (a CLIENT error: ЕПГУ cannot deliver it, e.g. no such citizen) → the notification is
  ``failed`` and dead on the delivery engine (never sent again unless an operator re-drives it:
  ``posog outbox redrive geps ID``), its link ``delivery_failed`` with the reason;
- ``retry`` (a SERVER error: СМЭВ or ЕПГУ could not take it now) → the notification is due again after
  the engine's backoff and the relay sends it again under the same id (ЕПГУ drops repeats by it); the
  link stays ``notified``. After ``max_attempts`` sends it fails for good as above;
- ``progress`` (an intermediate status: accepted, queued…) → kept as the last status, nothing moves.

Statuses arrive at least once and in any order: a repeat changes nothing, a failure never undoes a
delivery, and a delivery after a failure (a re-driven notification that got through) wins. Reasons are
ЕПГУ's fault codes and texts; nothing here logs or stores personal data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import structlog
from sqlalchemy import select

from posog.core import metrics
from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.retry import backoff
from posog.module.notifications.model import (
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_RETRYING,
    OutboxMessage,
)
from posog.module.uow import ModuleUnitOfWork

log = structlog.get_logger(__name__)

REASON_CHARS = 500

ReportKind = Literal["delivered", "failed", "retry", "progress"]


@dataclass(frozen=True)
class DeliveryReport:
    """ЕПГУ's word on one notification, whatever envelope carried it. ``reason``: the status or fault
    text (codes and ЕПГУ's description, no personal data)."""

    kind: ReportKind
    reason: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What recording a report did: ``status`` of the notification after it (None: still unknown) and
    ``link_state`` of its link (None: no link)."""

    status: str | None
    link_state: str | None


class GepsDeliveries:
    """Records delivery reports on the ГЭПС outbox rows and their links (a handler: one transaction per
    report, committed here). ``max_attempts``: the SERVER errors of one notification, the last of which
    is final; ``retry_base_s``/``retry_cap_s``: the engine's backoff between them."""

    def __init__(
        self, db: Database, clock: Clock, *, max_attempts: int, retry_base_s: float, retry_cap_s: float
    ) -> None:
        self._db = db
        self._clock = clock
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s

    async def record(self, notification_id: str, report: DeliveryReport) -> Recorded | None:
        """Apply ``report`` to the notification ``notification_id`` and its link; None when no
        notification has that id (the caller keeps the report elsewhere: it is not ours)."""
        now = self._clock()
        reason = (report.reason or "").strip()[:REASON_CHARS] or None
        async with ModuleUnitOfWork(self._db) as uow:
            row = await uow.session.scalar(
                select(OutboxMessage).where(OutboxMessage.message_id == notification_id).with_for_update()
            )
            if row is None:
                return None
            kind = report.kind
            if kind == "retry" and self._retry(row, reason, now):
                kind = "failed"
                reason = f"{reason or 'SERVER'} (ошибок сервера: {row.server_errors})"[:REASON_CHARS]
            if kind == "delivered":
                self._delivered(row, reason, now)
                await uow.links.deliver(row.card_id, at=now)
            elif kind == "failed":
                if row.delivery_status != DELIVERY_DELIVERED:
                    self._failed(row, reason, now)
                    await uow.links.fail_delivery(row.card_id, reason=reason or "ошибка доставки", at=now)
            elif kind == "progress" and row.delivery_status is None:
                row.delivery_reason = reason
                row.delivery_status_at = now
            status = row.delivery_status
            card_id = row.card_id
            link_state = await uow.links.state_of(card_id)
            await uow.commit()
        metrics.GEPS_DELIVERY_REPORTS.labels(report.kind).inc()
        log.info(
            "geps.delivery_report",
            notification_id=notification_id,
            card_id=card_id,
            report=report.kind,
            status=status,
            link_state=link_state,
        )
        return Recorded(status, link_state)

    @staticmethod
    def _delivered(row: OutboxMessage, reason: str | None, now: datetime) -> None:
        if row.delivery_status == DELIVERY_DELIVERED:
            return  # a repeat
        row.delivery_status = DELIVERY_DELIVERED
        row.delivery_reason = reason
        row.delivery_status_at = now
        # Delivered even if a retry was pending or an operator had it dead: it is never sent again.
        if row.sent_at is None:
            row.sent_at = now
        row.dead_at = None
        row.lease_until = None

    @staticmethod
    def _failed(row: OutboxMessage, reason: str | None, now: datetime) -> None:
        if row.delivery_status == DELIVERY_FAILED:
            return  # a repeat
        row.delivery_status = DELIVERY_FAILED
        row.delivery_reason = reason
        row.delivery_status_at = now
        # Dead on the engine, and unsent, so that a re-drive (posog outbox redrive geps ID) sends it again.
        row.sent_at = None
        row.dead_at = now
        row.lease_until = None
        row.last_error = reason
        metrics.DELIVERY_ATTEMPTS.labels("geps", "dead").inc()

    def _retry(self, row: OutboxMessage, reason: str | None, now: datetime) -> bool:
        """Schedule the next send after a SERVER error; True when that was the last one allowed (the
        caller fails the notification instead)."""
        if row.delivery_status in (DELIVERY_DELIVERED, DELIVERY_FAILED):
            return False  # a late SERVER error of an earlier send: the outcome is known
        if row.sent_at is None:
            return False  # a repeat of the error that already scheduled the next send
        row.server_errors += 1
        if row.server_errors >= self._max_attempts:
            return True
        row.delivery_status = DELIVERY_RETRYING
        row.delivery_reason = reason
        row.delivery_status_at = now
        row.sent_at = None
        row.dead_at = None
        row.lease_until = None
        row.last_error = reason
        row.next_attempt_at = now + backoff(row.server_errors, base_s=self._retry_base_s, cap_s=self._retry_cap_s)
        metrics.DELIVERY_ATTEMPTS.labels("geps", "retry").inc()
        return False
