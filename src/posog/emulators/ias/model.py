"""What the ИАС МКГУ emulator received, and the receiving itself: a batch id is stored once; a repeat is
counted in ``deliveries`` and answered as already received."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Integer, String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.clock import Clock
from posog.core.db import Base, Database, UTCDateTime


class IasBatch(Base):
    __tablename__ = "emulators_ias_batches"

    batch_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_delivery_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)


class IasStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def receive(self, batch_id: str, kind: str, content_type: str, body: str) -> bool:
        """Store a batch; True if it is new, False if the id was already received (then only counted)."""
        now = self._clock()
        try:
            async with self._db.uow() as uow:
                if await uow.session.get(IasBatch, batch_id) is None:
                    uow.session.add(
                        IasBatch(
                            batch_id=batch_id,
                            kind=kind,
                            content_type=content_type,
                            body=body,
                            size=len(body.encode()),
                            received_at=now,
                            last_delivery_at=now,
                            deliveries=1,
                        )
                    )
                    await uow.commit()
                    return True
        except IntegrityError:
            pass  # received concurrently: a repeat
        async with self._db.uow() as uow:
            await uow.session.execute(
                update(IasBatch)
                .where(IasBatch.batch_id == batch_id)
                .values(deliveries=IasBatch.deliveries + 1, last_delivery_at=now)
            )
            await uow.commit()
        return False

    async def batches(self, kind: str | None = None) -> Sequence[IasBatch]:
        """The newest first."""
        async with self._db.uow() as uow:
            query = select(IasBatch).order_by(IasBatch.received_at.desc(), IasBatch.batch_id)
            if kind is not None:
                query = query.where(IasBatch.kind == kind)
            return (await uow.session.scalars(query)).all()

    async def get(self, batch_id: str) -> IasBatch | None:
        async with self._db.uow() as uow:
            return await uow.session.get(IasBatch, batch_id)
