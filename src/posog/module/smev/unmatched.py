"""What the СМЭВ worker keeps of inbound documents it could not hand to a feature: replies no
feature claimed and documents it refused (not XML, an entity bomb, a wrong namespace, an unknown
``xsi:type``, too large, a request of another вид сведений …). Never lost, never in clear: the body is
sealed like a rejected fact's (it may carry a citizen's personal data), only non-personal metadata is
readable."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime, UUIDStr, new_uuid

# ``kind``: what the document was, as far as it could be read.
KIND_REQUEST = "request"
KIND_RESPONSE = "response"
KIND_STATUS = "status"
KIND_ERROR = "error"
KIND_UNREADABLE = "unreadable"

KEEP_AT_MOST = 1024 * 1024  # a larger body is not kept (its hash, size and reason are)


class SmevUnmatched(Base):
    """One inbound adapter document kept unhandled, with the reason (``unmatched`` for a reply no
    :class:`~posog.module.smev.dispatcher.ReplyRoute` claimed, else the refusal's code)."""

    __tablename__ = "module_smev_unmatched"
    __table_args__ = (Index("ix_module_smev_unmatched_received", "received_at"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    # The same document delivered again is the same row (and is answered once).
    raw_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(40))
    # What the reason is about, without personal data (e.g. the business root element's name).
    detail: Mapped[str | None] = mapped_column(String(500))
    client_id: Mapped[str | None] = mapped_column(String(50))
    # replyToClientId / originalClientId: our own clientId the reply says it is about.
    correlation_id: Mapped[str | None] = mapped_column(String(50), index=True)
    smev_message_id: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    # AES-256-GCM under ``pii_key_id``, associated data ``smev:<raw_sha256>``; None beyond KEEP_AT_MOST.
    pii_key_id: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    # When a refusal was answered to its sender (a document with a clientId); None: nobody to answer.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
