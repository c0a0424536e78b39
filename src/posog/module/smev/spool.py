"""The durable inbound spool of the adapter's web service (``POSOG_SMEV_TRANSPORT=soap``).

``Get`` takes a document off the adapter's queue and the WSDL has no acknowledgement, so the
:class:`~posog.module.smev.worker.SoapPoller` writes every fetched document here (sealed like a kept
document: it may carry a citizen's ФИО, СНИЛС, birth date) and commits *before* it hands them to the
dispatcher, and deletes the rows once the dispatcher committed them. A process that dies in between
leaves the rows; the next poller drains them first, oldest first, through the same dispatcher. That is
at-least-once; the dispatcher's dedupe (cards by card id and content, answers unique per request
clientId, idempotent reply routes, kept documents by hash) makes it exactly-once in effect.

``attempts`` counts how many times a document was handed to the dispatcher (the first time with the
``Get`` round): a row drained again was held by a process that died or a document that could not even
be kept. It is tried alone, kept unhandled (``delivery_limit``) once over the limit, and a failed row
waits ``next_attempt_at`` (growing, at most an hour) — never a hot loop. Rows live seconds; the
personal-data purge (:mod:`posog.module.retention`) still erases one older than the retention."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.clock import Clock
from posog.core.db import Base, Database, UTCDateTime
from posog.core.pii import PiiCipher, PiiError
from posog.core.retry import backoff

log = structlog.get_logger(__name__)

MAX_POSTPONE_S = 3600.0
POSTPONE_BASE_S = 5.0  # a document that could be neither handled nor kept: 5 s, 10 s, 20 s… up to an hour


class SmevSpooled(Base):
    """One document fetched with ``Get`` and not yet committed by the dispatcher."""

    __tablename__ = "module_smev_spool"
    __table_args__ = (Index("ix_module_smev_spool_received", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    size: Mapped[int] = mapped_column(Integer)
    # AES-256-GCM under ``pii_key_id``, associated data ``smev:<raw_sha256>`` (as module_smev_unmatched).
    pii_key_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Spooled:
    """A spooled document, opened."""

    id: int
    document: bytes
    attempts: int


class InboundSpool:
    """The spool's reads and writes; each call is its own committed transaction."""

    def __init__(self, db: Database, cipher: PiiCipher, clock: Clock) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock

    async def put(self, documents: Sequence[bytes]) -> list[int]:
        """Store ``documents`` (sealed), committed; their ids, in order."""
        now = self._clock()
        rows = []
        for document in documents:
            raw_sha256 = hashlib.sha256(document).hexdigest()
            key_id, sealed = self._cipher.seal(document, context=f"smev:{raw_sha256}")
            rows.append(
                SmevSpooled(
                    raw_sha256=raw_sha256,
                    received_at=now,
                    size=len(document),
                    pii_key_id=key_id,
                    payload=sealed,
                    attempts=1,
                    next_attempt_at=None,
                )
            )
        async with self._db.uow() as uow:
            uow.session.add_all(rows)
            await uow.session.flush()
            ids = [row.id for row in rows]
            await uow.commit()
        return ids

    async def take_due(self, limit: int) -> list[Spooled]:
        """Up to ``limit`` documents due again, oldest first, each counted as one more attempt (one that
        cannot be opened is put off by the longest pause instead)."""
        now = self._clock()
        async with self._db.uow() as uow:
            rows = list(
                (
                    await uow.session.scalars(
                        select(SmevSpooled)
                        .where(or_(SmevSpooled.next_attempt_at.is_(None), SmevSpooled.next_attempt_at <= now))
                        .order_by(SmevSpooled.id)
                        .limit(limit)
                    )
                ).all()
            )
            if not rows:
                return []
            taken: list[Spooled] = []
            sealed_shut: list[int] = []
            for row in rows:
                try:
                    document = self._cipher.open(row.pii_key_id, row.payload, context=f"smev:{row.raw_sha256}")
                except PiiError:  # its key was retired too early: kept, and it does not block the rest
                    log.error("smev.spool_unreadable", spooled_id=row.id, key_id=row.pii_key_id)
                    sealed_shut.append(row.id)
                    continue
                taken.append(Spooled(row.id, document, row.attempts + 1))
            await uow.session.execute(
                update(SmevSpooled)
                .where(self._db.among(SmevSpooled.id, [row.id for row in rows]))
                .values(attempts=SmevSpooled.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if sealed_shut:
                await uow.session.execute(
                    update(SmevSpooled)
                    .where(self._db.among(SmevSpooled.id, sealed_shut))
                    .values(next_attempt_at=now + timedelta(seconds=MAX_POSTPONE_S))
                    .execution_options(synchronize_session=False)
                )
            await uow.commit()
        return taken

    async def done(self, ids: Sequence[int]) -> None:
        """The dispatcher committed these: gone."""
        if not ids:
            return
        async with self._db.uow() as uow:
            await uow.session.execute(delete(SmevSpooled).where(self._db.among(SmevSpooled.id, list(ids))))
            await uow.commit()

    async def postpone(self, spooled_id: int, attempts: int) -> None:
        """A document that could be neither handled nor kept: tried again later, not at once."""
        pause = backoff(attempts, base_s=POSTPONE_BASE_S, cap_s=MAX_POSTPONE_S, jitter=0)
        async with self._db.uow() as uow:
            await uow.session.execute(
                update(SmevSpooled).where(SmevSpooled.id == spooled_id).values(next_attempt_at=self._clock() + pause)
            )
            await uow.commit()

    async def size(self) -> int:
        async with self._db.uow() as uow:
            return int(await uow.session.scalar(select(func.count()).select_from(SmevSpooled)) or 0)
