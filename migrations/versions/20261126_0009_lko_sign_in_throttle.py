"""lko: the sign-in throttle per (login, client), per client and per login (replacing the per-login
lockout), and the audit of login locks

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The old per-login counters are throttle state only (no audit): they are dropped, not converted.
    op.drop_table("lko_login_throttle")
    op.create_table(
        "lko_login_throttle",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_failure_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('pair', 'client', 'login')", name=op.f("ck_lko_login_throttle_kind")),
        sa.PrimaryKeyConstraint("kind", "login", "client", name=op.f("pk_lko_login_throttle")),
    )
    with op.batch_alter_table("lko_login_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lko_login_throttle_last_failure_at"), ["last_failure_at"], unique=False)
    op.create_table(
        "lko_login_locks",
        sa.Column("id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("locked_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("released_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lko_login_locks")),
    )
    with op.batch_alter_table("lko_login_locks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lko_login_locks_login"), ["login"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lko_login_locks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lko_login_locks_login"))
    op.drop_table("lko_login_locks")
    with op.batch_alter_table("lko_login_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lko_login_throttle_last_failure_at"))
    op.drop_table("lko_login_throttle")
    op.create_table(
        "lko_login_throttle",
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("login", name=op.f("pk_lko_login_throttle")),
    )
