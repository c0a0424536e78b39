"""Database engines for SQLite (embedded) and PostgreSQL (production), the declarative base and the
unit of work. Only handlers commit; a unit of work left without commit rolls back."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Executable,
    MetaData,
    String,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    event,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DatabaseError, DataError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from posog.core.clock import as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """All tables of all systems. Each system prefixes its tables and never reads another's."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which forgets the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class UUIDStr(TypeDecorator[str]):
    """UUIDs as 36-character strings: portable and readable in both databases."""

    impl = String(36)
    cache_ok = True


def new_uuid() -> str:
    return str(uuid.uuid4())


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


class UnitOfWork:
    """One transaction for one request, message batch or job. Rolls back unless committed.

    The entry point opens it (``async with``) and hands it to a handler, which commits: each
    ``commit()`` ends one transaction and the next statement begins another, so a handler that calls
    another system between two steps commits (or rolls back) first and holds no connection meanwhile.
    The session is opened at its first statement: a unit whose work went elsewhere (a repository's
    one-statement fast path on its own connection) costs no checkout. Systems subclass it to put their
    repositories on it (``uow.links``, ``uow.responses``…)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._session: AsyncSession | None = None
        self._open = False

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def session(self) -> AsyncSession:
        if not self._open:
            raise RuntimeError("unit of work used outside 'async with'")
        if self._session is None:
            self._session = self.db.sessions()
        return self._session

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError("unit of work entered twice")
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # close() rolls back whatever was not committed, and, unlike rollback(), leaves the objects
        # read in this unit usable (detached, not expired) for the caller.
        session, self._session, self._open = self._session, None, False
        if session is not None:
            await session.close()

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()
        elif not self._open:
            raise RuntimeError("unit of work used outside 'async with'")

    async def rollback(self) -> None:
        if self._session is not None:
            await self._session.rollback()
        elif not self._open:
            raise RuntimeError("unit of work used outside 'async with'")


class Repository:
    """The write side of one feature on a unit of work: its statements, and where they differ by
    dialect, the difference (through :func:`among` and :func:`insert_ignoring`, or its own)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @property
    def session(self) -> AsyncSession:
        return self._uow.session

    @property
    def dialect(self) -> str:
        return self._uow.dialect

    def among(self, column: Any, values: list[Any]) -> ColumnElement[bool]:
        """:func:`among` on this unit's database."""
        return among(self.dialect, column, values)

    def insert_ignoring(self, table: Table | Any, conflict_columns: list[str] | None = None) -> Executable:
        """:func:`insert_ignoring` on this unit's database."""
        return insert_ignoring(self.dialect, table, conflict_columns)


class Database:
    """Engine plus session factory; ``uow()`` opens a unit of work."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        dialect = self.engine.dialect
        self._dialect = dialect.name
        # PostgreSQL through asyncpg: the driver-level fast paths (COPY, a lean pool) apply.
        self.on_asyncpg = dialect.name == "postgresql" and dialect.driver == "asyncpg"

    @property
    def dialect(self) -> str:
        return self._dialect

    def asyncpg_connect_args(self) -> dict[str, Any]:
        """The keyword arguments ``asyncpg.connect`` needs to reach this database as the engine does."""
        engine = self.engine.sync_engine
        _, params = engine.dialect.create_connect_args(engine.url)
        for name in _SQLALCHEMY_ONLY:
            params.pop(name, None)
        return dict(params)

    def uow(self) -> UnitOfWork:
        """A plain unit of work (no repositories): for reads and for code outside the systems."""
        return UnitOfWork(self)

    def among(self, column: Any, values: list[Any]) -> ColumnElement[bool]:
        """:func:`among` on this database."""
        return among(self.dialect, column, values)

    async def dispose(self) -> None:
        await self.engine.dispose()


# Connect arguments of SQLAlchemy's asyncpg dialect that asyncpg itself does not take.
_SQLALCHEMY_ONLY = ("async_creator_fn", "prepared_statement_cache_size", "prepared_statement_name_func")


# --- Statements that differ by dialect: written here once ------------------------------------------


def among(dialect: str, column: Any, values: list[Any]) -> ColumnElement[bool]:
    """``column IN (…)``; on PostgreSQL ``column = ANY(:values)`` with one array parameter. asyncpg
    prepares each statement, and an IN list of a new length per batch may get a generic plan made
    while the table was small — a sequential scan (measured at intake: 199 ms per batch at 20 000
    rows against 1.6 ms), kept until the connection goes."""
    if dialect == "postgresql":
        return column == any_(bindparam(f"{column.key}_values", values, type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]


def insert_ignoring(dialect: str, table: Table | Any, conflict_columns: list[str] | None = None) -> Executable:
    """``INSERT … ON CONFLICT [(columns)] DO NOTHING`` on PostgreSQL and SQLite: the same row twice is
    one row. Execute it with the rows as parameters (or add ``.values(rows)``)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    raise NotImplementedError(f"no INSERT … ON CONFLICT for {dialect}")


# --- Writing a batch's new rows: one statement per table ------------------------------------------------
#
# The repositories' new rows (cards, links, outbox, answers) in one statement per table.
#
# On PostgreSQL with asyncpg: ``COPY … FROM STDIN (FORMAT binary)`` inside the batch's transaction, which
# costs the worker a third of what SQLAlchemy's ORM bulk ``INSERT`` does per row (measured: 19 against
# 48 µs of Python CPU per fact for the three rows; Core ``insert()`` executemany 33 µs; one ``INSERT …
# SELECT FROM unnest(arrays)`` 30 µs — asyncpg encodes array elements with an ``isinstance`` check
# against abstract base classes each). Elsewhere (SQLite), Core ``insert()`` executemany.
#
# Either way the rows get what the ORM would give them: columns left out of the rows take their
# Python-side defaults (``default=new_uuid``, ``default=utcnow``), or the database's own, and a
# uniqueness violation is an :class:`sqlalchemy.exc.IntegrityError`, which intake's race retry expects.

# (table, given columns) → (all columns to copy, a value maker per column left out), or None when a
# column left out has a default only SQL can compute (then COPY cannot apply it: Core insert does).
_Plan = tuple[tuple[str, ...], tuple[Callable[[], Any], ...]] | None
_plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}


def _plan(table: Table, given: tuple[str, ...]) -> _Plan:
    key = (table.name, given)
    if key not in _plans:
        columns: list[str] = []
        makers: list[Callable[[], Any]] = []
        plan: _Plan = None
        for column in table.columns:
            if column.key in given:
                continue
            default = column.default
            if default is None:
                continue  # the server's default, or NULL: what an INSERT without it would store
            if isinstance(default, ScalarElementColumnDefault):
                value = default.arg
                makers.append(lambda value=value: value)  # type: ignore[misc]
            elif isinstance(default, CallableColumnDefault):
                function = default.arg  # SQLAlchemy's wrapper, taking an execution context
                makers.append(lambda function=function: function(None))  # type: ignore[misc]
            else:
                break  # a SQL expression or sequence: leave it to INSERT
            columns.append(column.key)
        else:
            plan = ((*given, *columns), tuple(makers))
        _plans[key] = plan
    return _plans[key]


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in the session's transaction."""
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "asyncpg":
        given = tuple(rows[0])
        plan = _plan(table, given)
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # an asyncpg.Connection
        # COPY only inside the transaction SQLAlchemy began (asyncpg's adapter begins it with the
        # first statement; intake's lookup of known cards always comes first).
        if plan is not None and driver is not None and driver.is_in_transaction():
            columns, makers = plan
            values = operator.itemgetter(*given) if len(given) > 1 else (lambda row: (row[given[0]],))
            if makers:
                records = [values(row) + tuple([make() for make in makers]) for row in rows]
            else:
                records = [values(row) for row in rows]
            try:
                await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
            except Exception as exc:
                raise _translated(exc, f"COPY {table.name}") from exc
            return
    await session.execute(insert(table), list(rows))


def _translated(exc: Exception, statement: str) -> Exception:
    """What SQLAlchemy would have raised for the driver's error, so that callers tell a race
    (IntegrityError: retry), bad data (DataError) and the database being away (OperationalError:
    back off, requeue) apart as they do for statements that go through it."""
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    if sqlstate.startswith("23"):  # integrity constraint violation
        return IntegrityError(statement, None, exc)
    if sqlstate.startswith("22"):  # data exception
        return DataError(statement, None, exc)
    if sqlstate.startswith(("08", "40", "53", "57")) or (
        not sqlstate and (isinstance(exc, OSError | TimeoutError) or "Connection" in type(exc).__name__)
    ):  # connection lost, serialisation failure or deadlock, out of resources, shutdown
        return OperationalError(statement, None, exc)
    if sqlstate:
        return DatabaseError(statement, None, exc)
    return exc
