"""The Alembic history builds exactly the schema the models describe, on SQLite and PostgreSQL. These
tests migrate databases of their own (``fresh_*``), not copies of the run's template; the copies every
other test gets are checked to hold the same schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection

import posog.analytics.tables
import posog.emulators.tables
import posog.lko.tables
import posog.module.tables  # noqa: F401
from posog.core.db import Base, Database, UTCDateTime, make_engine
from posog.core.migrate import upgrade
from posog.core.outbox import Outbox
from posog.lko.questionnaires.announcements import Announcement
from posog.lko.responses.model import PendingCompletion
from posog.module.ias_export.model import IAS_EXPORTS, IasExport
from posog.module.notifications.model import GEPS, OutboxMessage
from tests.support import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _assert_in_step(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


async def test_sqlite_schema_matches_the_models(fresh_sqlite_url: str) -> None:
    await _assert_in_step(fresh_sqlite_url)
    await upgrade(fresh_sqlite_url)  # idempotent


async def test_postgresql_schema_matches_the_models(fresh_pg_url: str) -> None:
    await _assert_in_step(fresh_pg_url)
    await upgrade(fresh_pg_url)


async def test_the_copies_tests_get_hold_the_migrated_schema(sqlite_url: str, pg_url: str) -> None:
    """The run's templates (migrated once, copied for every test) are in step with the models too."""
    await _assert_in_step(sqlite_url)
    await _assert_in_step(pg_url)


# --- The delivery engine's migrations (0012…) move the existing rows without losing one ---------------

BEFORE_ENGINE = "0011"


def _old_table(name: str, **columns: Any) -> Any:
    """A table as it was before the engine, with just the columns the test writes."""
    return sa.table(name, *[sa.column(column, type_) for column, type_ in columns.items()])


async def _populate_before_engine(url: str) -> None:
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            outbox = _old_table(
                "module_outbox",
                id=sa.Integer(),
                message_id=sa.String(),
                topic=sa.String(),
                card_id=sa.String(),
                pii_key_id=sa.String(),
                body=sa.LargeBinary(),
                attempts=sa.Integer(),
                next_attempt_at=UTCDateTime(),
                sent_at=UTCDateTime(),
                last_error=sa.Text(),
                created_at=UTCDateTime(),
            )
            await connection.execute(
                sa.insert(outbox),
                [
                    {
                        "id": i,
                        "message_id": f"m-{i}",
                        "topic": "geps.notification",
                        "card_id": f"card-{i}",
                        "pii_key_id": "k1",
                        "body": b"sealed",
                        "attempts": i % 3,
                        "next_attempt_at": when + timedelta(seconds=i),
                        "sent_at": when if i % 2 else None,
                        "last_error": "refused" if i % 3 else None,
                        "created_at": when,
                    }
                    for i in range(1, 11)
                ],
            )
            announcements = _old_table(
                "lko_announcements",
                id=sa.String(),
                questionnaire_id=sa.String(),
                version=sa.Integer(),
                type_code=sa.String(),
                level=sa.String(),
                created_at=UTCDateTime(),
                next_attempt_at=UTCDateTime(),
                attempts=sa.Integer(),
                sent_at=UTCDateTime(),
                last_error=sa.Text(),
            )
            await connection.execute(
                sa.insert(announcements),
                [
                    {
                        "id": f"00000000-0000-0000-0000-00000000000{i}",
                        "questionnaire_id": "00000000-0000-0000-0000-0000000000aa",
                        "version": i,
                        "type_code": "mfc",
                        "level": "regional",
                        "created_at": when,
                        "next_attempt_at": when + timedelta(minutes=i),
                        "attempts": i,
                        "sent_at": when if i == 1 else None,
                        "last_error": None if i == 1 else "ModuleError",
                    }
                    for i in (1, 2)
                ],
            )
            exports = _old_table(
                "module_ias_exports",
                batch_id=sa.String(),
                kind=sa.String(),
                period_from=sa.Date(),
                period_to=sa.Date(),
                status=sa.String(),
                attempts=sa.Integer(),
                next_attempt_at=UTCDateTime(),
                last_error=sa.Text(),
                payload=sa.LargeBinary(),
                payload_sha256=sa.String(),
                payload_size=sa.Integer(),
                items=sa.Integer(),
                created_at=UTCDateTime(),
                updated_at=UTCDateTime(),
                sent_at=UTCDateTime(),
            )
            await connection.execute(
                sa.insert(exports),
                [
                    {
                        "batch_id": f"posog-aggregates-{status}",
                        "kind": "aggregates",
                        "period_from": date(2026, 11, day),
                        "period_to": date(2026, 11, day),
                        "status": status,
                        "attempts": day,
                        "next_attempt_at": when if status == "pending" else None,
                        "last_error": "HTTP 400: no" if status == "failed" else None,
                        "payload": b"{}",
                        "payload_sha256": "0" * 64,
                        "payload_size": 2,
                        "items": 1,
                        "created_at": when,
                        "updated_at": when + timedelta(hours=day),
                        "sent_at": when if status == "sent" else None,
                    }
                    for day, status in ((1, "pending"), (2, "sent"), (3, "failed"))
                ],
            )
            responses = _old_table(
                "lko_responses",
                id=sa.String(),
                card_id=sa.String(),
                idempotency_key=sa.String(),
                token_hash=sa.String(),
                questionnaire_id=sa.String(),
                questionnaire_version=sa.Integer(),
                type_code=sa.String(),
                survey_level=sa.String(),
                inn=sa.String(),
                ogrn=sa.String(),
                region_code=sa.String(),
                org_name=sa.String(),
                service_date=sa.Date(),
                answers=sa.JSON(),
                submitted_at=UTCDateTime(),
                completion_token=sa.String(),
                link_completed_at=UTCDateTime(),
            )
            await connection.execute(
                sa.insert(responses),
                [
                    {
                        "id": f"00000000-0000-0000-0000-0000000001{i:02}",
                        "card_id": f"card-{i}",
                        "idempotency_key": f"key-{i}",
                        "token_hash": "0" * 64,
                        "questionnaire_id": "00000000-0000-0000-0000-0000000000aa",
                        "questionnaire_version": 1,
                        "type_code": "mfc",
                        "survey_level": "regional",
                        "inn": "7700000000",
                        "ogrn": "1027700000000",
                        "region_code": "77",
                        "org_name": "МФЦ",
                        "service_date": date(2026, 11, 30),
                        "answers": {"q1": 5},
                        "submitted_at": when + timedelta(seconds=i),
                        "completion_token": f"token-{i}" if i % 2 else None,
                        "link_completed_at": None if i % 2 else when,
                    }
                    for i in range(1, 6)
                ],
            )
    finally:
        await engine.dispose()


async def _assert_moved(url: str) -> None:
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    db = Database(url)
    try:
        async with db.uow() as uow:
            messages = (await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        assert [(m.id, m.attempts, m.next_attempt_at, m.sent_at, m.last_error) for m in messages] == [
            (i, i % 3, when + timedelta(seconds=i), when if i % 2 else None, "refused" if i % 3 else None)
            for i in range(1, 11)
        ]
        assert all(m.lease_until is None and m.dead_at is None for m in messages)
        # The unsent ones are due for the engine as they were for the relay.
        outbox = Outbox(db, GEPS, clock=lambda: when + timedelta(minutes=1))
        async with db.uow() as uow:
            due = (await uow.session.scalars(outbox.due(OutboxMessage.id, now=outbox.clock()))).all()
        assert sorted(due) == [2, 4, 6, 8, 10]

        async with db.uow() as uow:
            announced = (await uow.session.scalars(select(Announcement).order_by(Announcement.version))).all()
            exports = {e.status: e for e in (await uow.session.scalars(select(IasExport))).all()}
            pending = (
                await uow.session.scalars(select(PendingCompletion).order_by(PendingCompletion.response_id))
            ).all()
        assert [(a.version, a.attempts, a.sent_at, a.next_attempt_at, a.lease_until, a.dead_at) for a in announced] == [
            (1, 1, when, when + timedelta(minutes=1), None, None),
            (2, 2, None, when + timedelta(minutes=2), None, None),
        ]
        assert sorted(exports) == ["failed", "pending", "sent"]
        assert (exports["failed"].dead_at, exports["failed"].attempts) == (when + timedelta(hours=3), 3)
        assert exports["failed"].last_error == "HTTP 400: no"
        assert (exports["pending"].dead_at, exports["pending"].next_attempt_at) == (None, when)
        assert (exports["sent"].dead_at, exports["sent"].sent_at) == (None, when)
        # Every response whose completion was pending has its pending completion, due as before.
        assert [(p.response_id[-3:], p.created_at, p.next_attempt_at, p.attempts, p.sent_at) for p in pending] == [
            (f"1{i:02}", when + timedelta(seconds=i), when + timedelta(seconds=i), 0, None) for i in (1, 3, 5)
        ]
        ias = Outbox(db, IAS_EXPORTS, clock=lambda: when + timedelta(hours=1))
        claimed = await ias.claim_due(10, lease=timedelta(seconds=5))
        assert [row.batch_id for row in claimed] == ["posog-aggregates-pending"]
        assert [d.key for d in await ias.dead()] == ["posog-aggregates-failed"]
    finally:
        await db.dispose()


async def _migrate_populated(url: str) -> None:
    await upgrade(url, BEFORE_ENGINE)
    await _populate_before_engine(url)
    await upgrade(url)
    await _assert_moved(url)
    await _assert_in_step(url)


async def test_sqlite_migrations_to_the_delivery_engine_keep_every_row(tmp_path: Path) -> None:
    await _migrate_populated(f"sqlite+aiosqlite:///{tmp_path / 'populated.sqlite3'}")


async def test_postgresql_migrations_to_the_delivery_engine_keep_every_row() -> None:
    url = await create_pg_database(migrated=False)
    try:
        await _migrate_populated(url)
    finally:
        await drop_pg_database(url)
