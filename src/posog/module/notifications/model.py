"""The transactional outbox: messages written in the same transaction as the link they announce."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, column, text
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime
from posog.core.outbox import Delivery, DeliveryColumns

TOPIC_GEPS = "geps.notification"

# ``OutboxMessage.delivery_status``: what ЕПГУ said about the notification.
DELIVERY_DELIVERED = "delivered"
DELIVERY_FAILED = "failed"
DELIVERY_RETRYING = "retrying"


class OutboxMessage(DeliveryColumns, Base):
    """One message to publish. The body is sealed: a ГЭПС notification carries ФИО and СНИЛС. Delivered
    by the one engine (:mod:`posog.core.outbox`, delivery ``geps``) through the relay."""

    __tablename__ = "module_outbox"
    __table_args__ = (
        Index("ix_module_outbox_due", "sent_at", "next_attempt_at"),
        # The relay's claims and the backlog count read only the unsent rows (migration 0007).
        Index(
            "ix_module_outbox_unsent",
            "id",
            sqlite_where=column("sent_at").is_(None),
            postgresql_where=column("sent_at").is_(None),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(40))
    card_id: Mapped[str] = mapped_column(String(100), index=True)
    pii_key_id: Mapped[str] = mapped_column(String(40))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # NOT NULL as before the engine (0001): a sent row keeps its last due time.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What ЕПГУ answered through СМЭВ about this notification (INTEGRATION §3; migration 0015): None
    # until a status comes back (a publisher confirm only means the broker has it), then
    # ``delivered`` or ``failed`` (for good: a CLIENT error, or SERVER errors past the retries) — or
    # ``retrying`` after a SERVER error, sent again by the engine. ``delivery_reason``: the last
    # status's text (ЕПГУ's fault code and description; never personal data).
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_reason: Mapped[str | None] = mapped_column(String(500))
    delivery_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SERVER errors ЕПГУ answered so far: after ``POSOG_GEPS_MAX_ATTEMPTS`` of them the notification fails
    # (failed sends to the broker or the adapter are the engine's ``attempts``, retried for ever).
    server_errors: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


def _redriven(now: datetime) -> dict[str, Any]:
    """A re-driven notification is sent again: what ЕПГУ said of the last send no longer stands (the
    reason stays for the record until a new status comes)."""
    return {"delivery_status": None, "delivery_status_at": now, "server_errors": 0}


GEPS = Delivery("geps", OutboxMessage, redrive_values=_redriven)
