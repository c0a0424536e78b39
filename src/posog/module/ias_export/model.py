"""The export log: one row per batch (kind + period), its frozen payload and its delivery status."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime
from posog.core.outbox import Delivery, DeliveryColumns

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


class IasExport(DeliveryColumns, Base):
    """A batch for ИАС МКГУ. ``status``: ``pending`` (to be sent at ``next_attempt_at``), ``sent`` (the
    receiver accepted it, or answered that it already had it), ``failed`` (refused with a 4xx, or out
    of attempts: the engine's ``dead_at``). The payload is built once and frozen, so every attempt and
    re-send carries the same bytes under the same ``batch_id``. Aggregates and ratings only: no
    personal data. The ``ias-export`` delivery of the one engine (:mod:`posog.core.outbox`)."""

    __tablename__ = "module_ias_exports"
    __table_args__ = (Index("ix_module_ias_exports_due", "status", "next_attempt_at"),)

    batch_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    payload_size: Mapped[int] = mapped_column(Integer)
    items: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# A failed batch re-driven (``posog outbox redrive``) is pending again.
IAS_EXPORTS = Delivery("ias-export", IasExport, redrive_values=lambda now: {"status": PENDING, "updated_at": now})
