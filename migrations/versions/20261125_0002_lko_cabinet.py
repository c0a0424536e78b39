"""ЛКО cabinet: accounts, sessions, sign-in throttle, publication announcements

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lko_users",
        sa.Column("id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("region_code", sa.String(length=2), nullable=True),
        sa.Column("inn", sa.String(length=12), nullable=True),
        sa.Column("full_name", sa.String(length=300), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('federal', 'regional', 'organization')", name=op.f("ck_lko_users_role")),
        sa.CheckConstraint(
            "role <> 'regional' OR region_code IS NOT NULL", name=op.f("ck_lko_users_regional_has_region")
        ),
        sa.CheckConstraint("role <> 'organization' OR inn IS NOT NULL", name=op.f("ck_lko_users_organization_has_inn")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lko_users")),
        sa.UniqueConstraint("login", name=op.f("uq_lko_users_login")),
    )
    op.create_table(
        "lko_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["lko_users.id"], name="fk_lko_sessions_user_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_lko_sessions")),
    )
    with op.batch_alter_table("lko_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lko_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lko_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "lko_login_throttle",
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("login", name=op.f("pk_lko_login_throttle")),
    )
    op.create_table(
        "lko_announcements",
        sa.Column("id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("questionnaire_id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("created_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("issued", sa.Integer(), nullable=True),
        sa.Column("late", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lko_announcements")),
    )
    with op.batch_alter_table("lko_announcements", schema=None) as batch_op:
        batch_op.create_index("ix_lko_announcements_due", ["sent_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lko_announcements", schema=None) as batch_op:
        batch_op.drop_index("ix_lko_announcements_due")
    op.drop_table("lko_announcements")
    op.drop_table("lko_login_throttle")
    with op.batch_alter_table("lko_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lko_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_lko_sessions_expires_at"))
    op.drop_table("lko_sessions")
    op.drop_table("lko_users")
