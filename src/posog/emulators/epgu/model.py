"""The ЕПГУ emulator's inbox: ГЭПС notifications as a citizen's Госуслуги account would hold them.
ЕПГУ is entitled to the recipient's data; the emulator still keeps it sealed at rest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime


class InboxNotification(Base):
    __tablename__ = "emulators_epgu_inbox"

    notification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    card_id: Mapped[str] = mapped_column(String(100), index=True)
    recipient_key: Mapped[str] = mapped_column(String(64), index=True)
    pii_key_id: Mapped[str] = mapped_column(String(40))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deliveries: Mapped[int] = mapped_column(default=1)
