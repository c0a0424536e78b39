"""The answers to the senders of facts that came through СМЭВ (INTEGRATION §2): one row per request
``clientId``, written in the same transaction as the fact's outcome, sent to the adapter by the one
delivery engine (:mod:`posog.core.outbox`, delivery ``smev-answers``). No personal data: the answer
holds a card id, a link state, field names and reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime
from posog.core.outbox import Delivery, DeliveryColumns

ANSWER_PREFIX = "ans-"


class SmevAnswer(DeliveryColumns, Base):
    """One answer: ``reply_to_client_id`` is the request's clientId (unique: the same envelope delivered
    again gets no second answer), ``client_id`` our own (``ans-…``) by which the adapter's statuses
    about it come back. ``answer`` is what the ResponseMessage says: ``{"status": {code, description,
    parameters}}`` or ``{"rejects": [{code, description}, …]}``."""

    __tablename__ = "module_smev_answers"
    __table_args__ = (Index("ix_module_smev_answers_due", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(50), unique=True)
    reply_to_client_id: Mapped[str] = mapped_column(String(50), unique=True)
    request_message_id: Mapped[str | None] = mapped_column(String(100))
    card_id: Mapped[str | None] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # accepted | duplicate | conflict | rejected
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What the adapter said back about the answer (a StatusMessage / ErrorMessage about ``client_id``).
    adapter_status: Mapped[str | None] = mapped_column(String(16))
    adapter_detail: Mapped[str | None] = mapped_column(Text)
    adapter_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


SMEV_ANSWERS = Delivery("smev-answers", SmevAnswer)
