"""Service cards and the records intake keeps of what it could not apply."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime, UUIDStr, new_uuid

# Card statuses: waiting for a questionnaire, linked (a link was issued), late (arrived or released
# after the survey period: a card without a link).
CARD_WAITING = "waiting"
CARD_LINKED = "linked"
CARD_LATE = "late"


class ServiceCard(Base):
    """The card of one provided service. Personal data only sealed (``pii``), purged after retention."""

    __tablename__ = "module_service_cards"
    __table_args__ = (
        Index("ix_module_service_cards_waiting", "type_code", "survey_level", "status"),
        Index("ix_module_service_cards_created", "created_at"),
        Index("ix_module_service_cards_updated", "updated_at"),  # the analytics cards feed
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    card_id: Mapped[str] = mapped_column(String(100), unique=True)
    message_id: Mapped[str] = mapped_column(String(100))
    payload_hash: Mapped[str] = mapped_column(String(64))
    survey_level: Mapped[str] = mapped_column(String(16))
    service_date: Mapped[date] = mapped_column(Date)
    service_name: Mapped[str | None] = mapped_column(String(1000))
    service_code: Mapped[str | None] = mapped_column(String(100))
    org_name: Mapped[str] = mapped_column(String(1000))
    org_address: Mapped[str] = mapped_column(String(1000))
    inn: Mapped[str] = mapped_column(String(12), index=True)
    ogrn: Mapped[str] = mapped_column(String(15))
    kpp: Mapped[str | None] = mapped_column(String(9))
    type_code: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(2), index=True)
    status: Mapped[str] = mapped_column(String(16))
    pii_key_id: Mapped[str | None] = mapped_column(String(40))
    pii: Mapped[bytes | None] = mapped_column(LargeBinary)
    snils_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    pii_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FactConflict(Base):
    """A different payload under a known ``card_id``: recorded, not applied. One row per distinct payload."""

    __tablename__ = "module_fact_conflicts"
    __table_args__ = (UniqueConstraint("card_id", "payload_hash"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    card_id: Mapped[str] = mapped_column(String(100), index=True)
    message_id: Mapped[str] = mapped_column(String(100))
    payload_hash: Mapped[str] = mapped_column(String(64))
    differing_fields: Mapped[list[str]] = mapped_column(JSON)
    pii_key_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


REJECTED = "rejected"
REDRIVEN = "redriven"


class RejectedFact(Base):
    """A message that failed validation, kept whole (sealed) with every reason, for re-driving."""

    __tablename__ = "module_rejected_facts"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    raw_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(100))
    card_id: Mapped[str | None] = mapped_column(String(100), index=True)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    pii_key_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=REJECTED)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IntakeAttempt(Base):
    """How often intake started handling one returned message on its own (by the hash of its body).
    Written, and committed, before each such attempt: when a message kills the worker, only its own
    count grows — not that of the messages that happened to be in flight beside it, which the
    broker's delivery count cannot tell apart. Deleted by the personal-data purge with age."""

    __tablename__ = "module_intake_attempts"

    raw_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
