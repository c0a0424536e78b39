"""Survey links (SPEC §5): an unguessable token stored only as its hash, pinned questionnaire version,
expiry at the end of the Moscow day of service date + validity."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.clock import MOSCOW, end_of_day, utcnow
from posog.core.db import Base, UTCDateTime, UUIDStr, new_uuid

ISSUED = "issued"
NOTIFIED = "notified"
OPENED = "opened"
COMPLETED = "completed"
EXPIRED = "expired"
REVOKED = "revoked"
# What ЕПГУ reported about the ГЭПС notification (INTEGRATION §3): in the citizen's inbox, or not
# deliverable (the reason kept in ``delivery_failure_reason``). Both stay live: the link still opens.
DELIVERED = "delivered"
DELIVERY_FAILED = "delivery_failed"
LINK_STATES = (ISSUED, NOTIFIED, OPENED, COMPLETED, EXPIRED, REVOKED, DELIVERED, DELIVERY_FAILED)
# States in which a link may still be opened, answered or expire.
LIVE_STATES = (ISSUED, NOTIFIED, OPENED, DELIVERED, DELIVERY_FAILED)

TOKEN_BYTES = 24  # 192 bits from the OS CSPRNG


class SurveyLink(Base):
    __tablename__ = "module_survey_links"
    __table_args__ = (Index("ix_module_survey_links_state_expiry", "state", "expires_at"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    card_id: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    questionnaire_id: Mapped[str] = mapped_column(String(36))
    questionnaire_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The ЛКО response that completed the link: a repeated completion with it is a no-op, another is refused.
    response_id: Mapped[str | None] = mapped_column(String(64))
    # An operator's revocation (``posog links revoke``): when and why, for the record.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(500))
    # ГЭПС delivery as ЕПГУ reported it through СМЭВ (migration 0015): when the notification reached the
    # citizen's inbox, or when it failed for good and why (an ЕПГУ fault code and text, never personal data).
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_failure_reason: Mapped[str | None] = mapped_column(String(500))
    # When the link last changed: the analytics cards feed orders by it. Set by the ORM on every INSERT
    # and UPDATE made through SQLAlchemy (issuing, the outbox relay, the link handlers, any future
    # sweeper), so no writer has to remember it.
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, index=True)


def new_token() -> str:
    """A fresh URL-safe token; it is shown once (in the notification) and never stored."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    # A plain SHA-256 suffices: the token carries 192 random bits, so there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def link_expiry(service_date: date, validity_days: int) -> datetime:
    """End of the Moscow day of service date + validity days."""
    return end_of_day(service_date + timedelta(days=validity_days), MOSCOW)
