"""Receiving ГЭПС notifications into the emulated Госуслуги inbox: idempotent by notification_id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import func, select

from posog.core.bus import MessageBus, batches
from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.pii import PiiCipher, PiiError
from posog.emulators.epgu.model import InboxNotification
from posog.module.contracts import GepsNotification

log = structlog.get_logger(__name__)


class EpguInbox:
    def __init__(self, db: Database, cipher: PiiCipher, clock: Clock) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock

    async def receive(self, bodies: Sequence[bytes]) -> list[bool]:
        """Store notifications; returns per body whether it was well-formed. Duplicates are counted,
        not stored twice."""
        parsed: list[GepsNotification | None] = []
        for body in bodies:
            try:
                parsed.append(GepsNotification.model_validate_json(body))
            except ValidationError:
                parsed.append(None)
        good = [n for n in parsed if n is not None]
        async with self._db.uow() as uow:
            ids = list({n.notification_id for n in good})
            known = set(
                (
                    await uow.session.execute(
                        select(InboxNotification.notification_id).where(InboxNotification.notification_id.in_(ids))
                    )
                ).scalars()
            )
            now = self._clock()
            for notification in good:
                if notification.notification_id in known:
                    row = await uow.session.get(InboxNotification, notification.notification_id)
                    if row is not None:
                        row.deliveries += 1
                    continue
                known.add(notification.notification_id)
                key_id, sealed = self._cipher.seal(
                    notification.model_dump_json(by_alias=True).encode(), context=notification.notification_id
                )
                uow.session.add(
                    InboxNotification(
                        notification_id=notification.notification_id,
                        card_id=notification.card_id,
                        recipient_key=self._cipher.snils_hash(notification.recipient.snils),
                        pii_key_id=key_id,
                        body=sealed,
                        received_at=now,
                        deliveries=1,
                    )
                )
            await uow.commit()
        return [n is not None for n in parsed]

    async def consume(self, bus: MessageBus, queue: str, *, prefetch: int = 256) -> None:
        """Drain the ГЭПС queue into the inbox until cancelled."""
        async for batch in batches(bus.consume(queue, prefetch=prefetch), max_size=prefetch, max_wait_s=0.05):
            results = await self.receive([m.body for m in batch])
            for message, ok in zip(batch, results, strict=True):
                if ok:
                    await message.ack()
                else:
                    log.warning("epgu.malformed_notification")
                    await message.reject()

    async def notifications(self, *, recipient_key: str | None = None) -> list[dict[str, Any]]:
        """The inbox (of one account: ``recipient_key`` is the СНИЛС's keyed hash), oldest first: each
        notification as received, with ``recipient_key``, ``received_at`` and ``deliveries``."""
        async with self._db.uow() as uow:
            query = select(InboxNotification).order_by(InboxNotification.received_at)
            if recipient_key is not None:
                query = query.where(InboxNotification.recipient_key == recipient_key)
            rows = (await uow.session.execute(query)).scalars().all()
        shown = []
        for row in rows:
            notification = self._open(row)
            if notification is not None:
                shown.append(
                    {
                        "deliveries": row.deliveries,
                        "recipient_key": row.recipient_key,
                        "received_at": row.received_at,
                        **notification.model_dump(by_alias=True),
                    }
                )
        return shown

    def _open(self, row: InboxNotification) -> GepsNotification | None:
        """The stored notification, or None (logged) when it cannot be opened: a key rotated out of this
        stand's settings must not take the whole inbox down."""
        try:
            return GepsNotification.model_validate_json(
                self._cipher.open(row.pii_key_id, row.body, context=row.notification_id)
            )
        except (PiiError, ValidationError) as exc:
            log.warning("epgu.unreadable_notification", notification_id=row.notification_id, error=str(exc))
            return None

    async def links(self, *, offset: int = 0, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """A page of the inbox without personal data, oldest first: the total and, per notification, its
        id, card, survey link and expiry — what a simulated citizen follows."""
        async with self._db.uow() as uow:
            total = await uow.session.scalar(select(func.count()).select_from(InboxNotification)) or 0
            rows = (
                await uow.session.scalars(
                    select(InboxNotification)
                    .order_by(InboxNotification.received_at, InboxNotification.notification_id)
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
        items = []
        for row in rows:
            notification = self._open(row)
            if notification is None:
                continue
            items.append(
                {
                    "notification_id": row.notification_id,
                    "card_id": row.card_id,
                    "link": notification.link,
                    "expires_at": notification.expires_at,
                    "received_at": row.received_at.isoformat(),
                    "deliveries": row.deliveries,
                }
            )
        return total, items

    async def received(self) -> int:
        """How many notifications the inbox holds."""
        async with self._db.uow() as uow:
            return await uow.session.scalar(select(func.count()).select_from(InboxNotification)) or 0
