"""The export log: one row per batch (kind + period), its frozen payload and its delivery status."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, LargeBinary, String, Text
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
    # Ratings of the period that could not be sent (``module_ias_unsendable`` lists them with the reason).
    unsendable: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# A failed batch re-driven (``posog outbox redrive``) is pending again.
IAS_EXPORTS = Delivery("ias-export", IasExport, redrive_values=lambda now: {"status": PENDING, "updated_at": now})


# The states of a RatesRequest packet (``IasPacket.state``).
PACKET_PENDING = "pending"  # built, not handed over yet (the batch's delivery sends it)
PACKET_SENT = "sent"  # handed to the СМЭВ adapter: its RatesResponse (the packet id) has not come yet
PACKET_REGISTERED = "registered"  # ИАС gave it a packet id; its status is asked until final
PACKET_ACCEPTED = "accepted"  # final: ИАС took the ratings
PACKET_REFUSED = "refused"  # final: ИАС refused the packet (``reason`` says why)
PACKET_FAILED = "failed"  # final: it never reached ИАС (refused by the channel; ``reason`` says why)
PACKET_REPLACED = (
    "replaced"  # final: refused or failed, and made again from the data as it is now (posog export rebuild)
)
PACKET_FINAL = frozenset({PACKET_ACCEPTED, PACKET_REFUSED, PACKET_FAILED, PACKET_REPLACED})


class IasPacket(Base):
    """One ``RatesRequest`` of a ``rates`` batch (a batch is cut into packets of
    ``POSOG_IAS_FORMS_PER_PACKET`` forms), frozen when the batch is logged. ``client_id`` is our id of
    it (the СМЭВ ``clientId`` too: ``ias-…``, at most 50 characters); ``packet_id`` is ИАС's, from its
    ``RatesResponse``; ``ias_status`` what ИАС last said of it (``PacketsResponse``), asked at
    ``next_poll_at`` until final (``poll_client_id``: the clientId of the ``PacketsRequest`` awaiting its
    answer through СМЭВ). No personal data: ratings under pseudonyms."""

    __tablename__ = "module_ias_packets"
    __table_args__ = (
        Index("ix_module_ias_packets_batch", "batch_id", "seq"),
        Index("ix_module_ias_packets_poll", "state", "next_poll_at"),
    )

    client_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    forms: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    packet_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    ias_status: Mapped[str | None] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(Text)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    poll_client_id: Mapped[str | None] = mapped_column(String(50), index=True)
    final_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IasUnsendable(Base):
    """A rating of a ``rates`` batch that could not be sent, and why (``reason``: ``no_frgu_service``,
    ``no_frgu_authority``, ``no_okato``, ``no_mapping``, ``no_criteria``, ``unknown_questionnaire``,
    ``unknown_card``); ``detail`` in Russian for the operator. Counted on the batch, never dropped
    silently."""

    __tablename__ = "module_ias_unsendable"

    batch_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    foreign_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    card_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(String(500))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IasFormRecord(Base):
    """A form ИАС serves (its indicators and value ids), as last fetched: the configuration the ratings
    are mapped with (:mod:`posog.module.ias_export.forms`)."""

    __tablename__ = "module_ias_forms"

    service_type: Mapped[str] = mapped_column(String(50), primary_key=True)
    version: Mapped[str] = mapped_column(String(20), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
