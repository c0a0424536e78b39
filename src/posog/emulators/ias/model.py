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


class IasPacketRecord(Base):
    """A ``RatesRequest`` the emulator took (valid against the schema): ИАС's packet id, what it said of
    the packet (``status``: ``received`` until asked enough times, then ``accepted`` or ``refused`` with
    ``errors``, one per line) and how it came (``channel``: ``http`` or ``smev``). The same document
    sent again (same bytes) gets the same packet id."""

    __tablename__ = "emulators_ias_packets"

    packet_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vendor_id: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    forms: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    errors: Mapped[str] = mapped_column(Text, default="")
    polls: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IasStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    @property
    def db(self) -> Database:
        return self._db

    @property
    def clock(self) -> Clock:
        return self._clock

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


class PacketStore:
    """The emulator's packets (``emulators_ias_packets``)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def take(
        self, *, vendor_id: int, body: str, sha256: str, forms: int, channel: str, verdict: str, errors: str
    ) -> tuple[int, bool]:
        """Store a packet (verdict decided on receipt); the same bytes again get the same id. Returns
        (packet id, new)."""
        for _ in range(2):
            async with self._db.uow() as uow:
                found = await uow.session.scalar(select(IasPacketRecord).where(IasPacketRecord.body_sha256 == sha256))
                if found is not None:
                    found.deliveries += 1
                    await uow.commit()
                    return found.packet_id, False
                try:
                    record = IasPacketRecord(
                        vendor_id=vendor_id,
                        body=body,
                        body_sha256=sha256,
                        forms=forms,
                        channel=channel,
                        status=verdict,
                        errors=errors,
                        polls=0,
                        deliveries=1,
                        received_at=self._clock(),
                    )
                    uow.session.add(record)
                    await uow.commit()
                    return record.packet_id, True
                except IntegrityError:
                    continue  # taken concurrently: read it again
        raise RuntimeError("packet neither stored nor found")

    async def asked(self, packet_ids: Sequence[int]) -> list[IasPacketRecord]:
        """The packets asked about (each asked once more), in the order asked; unknown ids left out."""
        found = []
        async with self._db.uow() as uow:
            for packet_id in packet_ids:
                record = await uow.session.get(IasPacketRecord, packet_id)
                if record is not None:
                    record.polls += 1
                    found.append(record)
            await uow.commit()
        return found

    async def packets(self) -> Sequence[IasPacketRecord]:
        async with self._db.uow() as uow:
            query = select(IasPacketRecord).order_by(IasPacketRecord.packet_id.desc())
            return (await uow.session.scalars(query)).all()

    async def get(self, packet_id: int) -> IasPacketRecord | None:
        async with self._db.uow() as uow:
            return await uow.session.get(IasPacketRecord, packet_id)
