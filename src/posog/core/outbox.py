"""One delivery engine for every "write it now, send it until it is taken" table of the systems.

A delivery is a table whose rows have the :class:`DeliveryColumns` (due time, attempts, last error,
lease, sent, dead), described by a :class:`Delivery` (a name and the model) and driven by an
:class:`Outbox` (the database, the retry policy). The user supplies only "send this row": it claims
the due rows, sends them its own way and reports each one sent or failed.

- A row is **due** when it is neither sent nor dead, its ``next_attempt_at`` has come and it is not
  leased (``lease_until`` unset or past).
- **Claiming** locks due rows with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so several workers take
  disjoint rows. A user that sends inside the claiming transaction (the ГЭПС relay: publish with
  confirms, then mark sent, then commit) holds the row locks and needs no lease
  (:meth:`Outbox.due`); one that must not hold a transaction while it sends (a call to another
  system) commits a lease instead (:meth:`Outbox.claim_due`): should it die, the row is due again
  when the lease ends. SQLite has no row locks: there ``FOR UPDATE`` is not rendered and a claim is a
  plain select and a lease update in one transaction — one process at a time, as SQLite runs anyway.
- A failed attempt schedules the next one after :func:`backoff`; a row becomes **dead** only when it
  can never be sent — the sender says so (``permanent``), or the delivery has a ``max_attempts`` and
  the row used them up. Deliveries without one retry for ever, as they always did. Dead rows are
  listed and re-driven by ``posog outbox dead|redrive`` (:mod:`posog.core.outbox_cli`).
- Delivery is at least once: a crash between the send and the commit sends the row again, so every
  receiver takes a repeat as a no-op (by the row's message id, batch id, response id…).

Metrics, per delivery: ``posog_delivery_attempts_total{delivery,outcome}`` (sent, retry, dead),
``posog_delivery_backlog``, ``posog_delivery_oldest_due_seconds`` and ``posog_delivery_dead``
(:meth:`Outbox.observe`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Generic, TypeVar

import structlog
from sqlalchemy import ColumnElement, Integer, Select, Table, Text, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from posog.core import metrics
from posog.core.clock import Clock, utcnow
from posog.core.db import Database, UTCDateTime
from posog.core.retry import JITTER, backoff

log = structlog.get_logger(__name__)

ERROR_CHARS: Final = 500


class DeliveryColumns:
    """The columns of a delivery's table (a declarative mixin). ``next_attempt_at``: when the row is
    due; ``attempts``: attempts made; ``last_error``: what the last failed one got; ``lease_until``:
    claimed by a worker that is sending it until then; ``sent_at``: taken by the receiver;
    ``dead_at``: will never be sent (until an operator re-drives it)."""

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


M = TypeVar("M", bound=DeliveryColumns)


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """A delivery's identity: its ``name`` (metrics, the CLI), its ``model`` (a mapped class with
    :class:`DeliveryColumns` and one primary key column) and what else a re-driven row needs
    (``redrive_values(now)``, e.g. a status column the delivery keeps beside the engine's)."""

    name: str
    model: type[M]
    redrive_values: Callable[[datetime], dict[str, Any]] | None = None

    @property
    def table(self) -> Table:
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        return table

    @property
    def key(self) -> Any:
        """The primary key column (one per delivery table)."""
        (column,) = self.table.primary_key.columns
        return getattr(self.model, column.key)

    def parse_key(self, text: str) -> Any:
        """An id given on the command line, as the key column holds it."""
        return int(text) if self.key.type.python_type is int else text


@dataclass(frozen=True)
class Failure:
    """A failed attempt of row ``key``, which had ``attempts`` before it. ``permanent``: the row can
    never be sent (dead now); ``penalty``: extra doublings of the backoff (a row that fails in a way
    unlikely to pass soon, so that it does not hold back the others)."""

    key: Any
    attempts: int
    error: str
    permanent: bool = False
    penalty: int = 0


@dataclass(frozen=True)
class DeadRow:
    delivery: str
    key: Any
    attempts: int
    last_error: str | None
    dead_at: datetime


@dataclass
class Outbox(Generic[M]):
    """The engine for one delivery: claims, outcomes, re-drives and metrics. The retry policy:
    ``base_s`` and ``cap_s`` of :func:`backoff`, ``max_attempts`` (None: retry for ever)."""

    db: Database
    delivery: Delivery[M]
    base_s: float = 1.0
    cap_s: float = 60.0
    max_attempts: int | None = None
    jitter: float = JITTER
    clock: Clock = utcnow

    @property
    def name(self) -> str:
        return self.delivery.name

    @property
    def model(self) -> type[M]:
        return self.delivery.model

    # --- Claims ------------------------------------------------------------------------------------

    def is_due(self, now: datetime) -> ColumnElement[bool]:
        model: Any = self.model
        return and_(
            model.sent_at.is_(None),
            model.dead_at.is_(None),
            model.next_attempt_at <= now,
            or_(model.lease_until.is_(None), model.lease_until <= now),
        )

    def due(self, *columns: Any, now: datetime, limit: int | None = None, where: Iterable[Any] = ()) -> Select[Any]:
        """``SELECT columns`` (default: the rows) of due rows, ``FOR UPDATE SKIP LOCKED``: the rows stay
        locked to the caller's transaction. Add an ``ORDER BY`` (a claim is a batch of the earliest
        due rows by default in :meth:`claim_due`)."""
        query = select(*columns) if columns else select(self.model)
        query = query.where(self.is_due(now), *where).with_for_update(skip_locked=True)
        return query.limit(limit) if limit is not None else query

    async def claim_due(
        self, limit: int | None, *, lease: timedelta, now: datetime | None = None, where: Iterable[Any] = ()
    ) -> list[M]:
        """Claim up to ``limit`` due rows, the earliest due first, for ``lease``, in a transaction of
        its own (committed): another worker takes them only once the lease is over."""
        now = now or self.clock()
        model: Any = self.model
        async with self.db.uow() as uow:
            query = self.due(now=now, limit=limit, where=where).order_by(model.next_attempt_at, self.delivery.key)
            rows = list((await uow.session.scalars(query)).all())
            for row in rows:
                row.lease_until = now + lease
            await uow.commit()
        return rows

    async def lease(self, session: AsyncSession, key: Any, *, lease: timedelta, now: datetime) -> bool:
        """Lease one row (not sent, not dead) whether due or not: an attempt asked for now."""
        model: Any = self.model
        result = await session.execute(
            update(model)
            .where(self.delivery.key == key, model.sent_at.is_(None), model.dead_at.is_(None))
            .values(lease_until=now + lease)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- Outcomes ----------------------------------------------------------------------------------

    def sent_values(self, at: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {"sent_at": at, "last_error": None, "lease_until": None, "dead_at": None}
        if self._due_nullable():
            values["next_attempt_at"] = None
        return values

    async def mark_sent(self, session: AsyncSession, keys: list[Any], *, at: datetime, **values: Any) -> None:
        """Rows ``keys`` were taken by the receiver at ``at`` (one attempt more each), in the caller's
        transaction; ``values``: the delivery's own columns to set with it."""
        if not keys:
            return
        model: Any = self.model
        await session.execute(
            update(model)
            .where(self.db.among(self.delivery.key, keys))
            .values(attempts=model.attempts + 1, **self.sent_values(at), **values)
        )
        metrics.DELIVERY_ATTEMPTS.labels(self.name, "sent").inc(len(keys))

    def sent(self, row: M, *, at: datetime) -> None:
        """:meth:`mark_sent` of a row loaded in the caller's session."""
        row.attempts += 1
        for name, value in self.sent_values(at).items():
            setattr(row, name, value)
        metrics.DELIVERY_ATTEMPTS.labels(self.name, "sent").inc()

    def failure_values(self, failure: Failure, now: datetime) -> dict[str, Any]:
        """What a failed attempt writes: one attempt more, the error, and the next attempt after the
        backoff — or dead, if the row can never be sent or has used up ``max_attempts``."""
        attempts = failure.attempts + 1
        dead = failure.permanent or (self.max_attempts is not None and attempts >= self.max_attempts)
        metrics.DELIVERY_ATTEMPTS.labels(self.name, "dead" if dead else "retry").inc()
        delay = backoff(attempts + failure.penalty, base_s=self.base_s, cap_s=self.cap_s, jitter=self.jitter)
        return {
            "attempts": attempts,
            "last_error": failure.error[:ERROR_CHARS],
            "lease_until": None,
            "next_attempt_at": now + delay if not dead else None if self._due_nullable() else now,
            "dead_at": now if dead else None,
        }

    async def mark_failed(self, session: AsyncSession, failures: Sequence[Failure], *, now: datetime) -> None:
        """Record failed attempts (one statement for all of them), in the caller's transaction."""
        if not failures:
            return
        table = self.delivery.table
        key = self.delivery.key.key
        rows = [{"_key": failure.key, **self.failure_values(failure, now)} for failure in failures]
        statement = (
            update(table)
            .where(table.c[key] == bindparam("_key"))
            .values({name: bindparam(name) for name in rows[0] if name != "_key"})
        )
        await session.execute(statement, rows)

    def failed(self, row: M, failure: Failure, *, now: datetime) -> bool:
        """:meth:`mark_failed` of a row loaded in the caller's session; True if it is dead now."""
        for name, value in self.failure_values(failure, now).items():
            setattr(row, name, value)
        return row.dead_at is not None

    def _due_nullable(self) -> bool:
        """Whether a row that is not waiting (sent, dead) has no due time: on every delivery table but
        the ГЭПС outbox, whose ``next_attempt_at`` predates the engine and stays NOT NULL (its sent
        rows keep their last due time; the sent and dead markers are what the claims read)."""
        return bool(self.delivery.table.c.next_attempt_at.nullable)

    # --- Dead rows ---------------------------------------------------------------------------------

    async def dead(self, limit: int = 100) -> list[DeadRow]:
        """The dead rows, the latest first."""
        model: Any = self.model
        async with self.db.uow() as uow:
            query = (
                select(self.delivery.key, model.attempts, model.last_error, model.dead_at)
                .where(model.dead_at.is_not(None))
                .order_by(model.dead_at.desc())
                .limit(limit)
            )
            rows = (await uow.session.execute(query)).all()
        return [DeadRow(self.name, row[0], row[1], row[2], row[3]) for row in rows]

    async def redrive_in(self, session: AsyncSession, keys: list[Any], *, now: datetime) -> list[Any]:
        """Make dead rows ``keys`` due now with a fresh round of attempts, in the caller's transaction;
        returns the keys that were dead (the others are left alone)."""
        if not keys:
            return []
        model: Any = self.model
        extra = self.delivery.redrive_values(now) if self.delivery.redrive_values else {}
        result = await session.execute(
            update(model)
            .where(self.db.among(self.delivery.key, keys), model.dead_at.is_not(None))
            .values(dead_at=None, attempts=0, next_attempt_at=now, lease_until=None, **extra)
            .returning(self.delivery.key)
        )
        return list(result.scalars().all())

    async def redrive(self, keys: list[Any]) -> list[Any]:
        async with self.db.uow() as uow:
            redriven = await self.redrive_in(uow.session, keys, now=self.clock())
            await uow.commit()
        return redriven

    # --- Metrics -----------------------------------------------------------------------------------

    async def observe(self) -> tuple[int, float, int]:
        """Set the delivery's gauges: the backlog (neither sent nor dead), how long its most overdue
        row has been due (seconds, 0 when none is) and the dead rows. Returns them."""
        model: Any = self.model
        now = self.clock()
        async with self.db.uow() as uow:
            waiting = model.sent_at.is_(None) & model.dead_at.is_(None)
            backlog, oldest = (
                await uow.session.execute(select(func.count(), func.min(model.next_attempt_at)).where(waiting))
            ).one()
            dead = await uow.session.scalar(select(func.count()).select_from(model).where(model.dead_at.is_not(None)))
        overdue = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        metrics.DELIVERY_BACKLOG.labels(self.name).set(backlog or 0)
        metrics.DELIVERY_OLDEST_DUE.labels(self.name).set(overdue)
        metrics.DELIVERY_DEAD.labels(self.name).set(dead or 0)
        return int(backlog or 0), overdue, int(dead or 0)

    async def observe_quietly(self) -> None:
        """:meth:`observe` from a worker's loop (each round of every delivery's worker): a failure
        (the database away for a while) is logged and the loop goes on."""
        try:
            await self.observe()
        except Exception as exc:
            log.warning("delivery.observe_failed", delivery=self.name, error=exc.__class__.__name__)


async def relay_forever(
    relay_once: Callable[[], Awaitable[int]],
    *,
    name: str,
    batch_size: int,
    idle_sleep_s: float,
    observe: Callable[[], Awaitable[object]],
    observe_every_s: float = 15.0,
) -> None:
    """A delivery worker's loop, until cancelled: ``relay_once`` sends one batch and says how many
    rows it sent; the loop sleeps only when a batch came short (nothing more is due), sets the
    delivery's gauges (``observe``) every ``observe_every_s``, and never dies of an error (the database
    away for a while: logged by class, tried again after the idle sleep)."""
    log.info("delivery.relay_started", delivery=name)
    observed = float("-inf")
    while True:
        try:
            if time.monotonic() - observed >= observe_every_s:
                observed = time.monotonic()
                await observe()
            sent = await relay_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away: keep going, never crash the worker
            log.error("delivery.relay_error", delivery=name, error=exc.__class__.__name__)
            sent = 0
        if sent < batch_size:
            await asyncio.sleep(idle_sleep_s)
