"""ias export: the module's export log for ИАС МКГУ and the ИАС emulator's received batches

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-25 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0006"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "module_ias_exports",
        sa.Column("batch_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=False),
        sa.Column("period_to", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("payload_size", sa.Integer(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("created_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_module_ias_exports")),
    )
    # batch_alter_table: SQLite and PostgreSQL alike (a plain CREATE INDEX on both).
    with op.batch_alter_table("module_ias_exports", schema=None) as batch_op:
        batch_op.create_index("ix_module_ias_exports_due", ["status", "next_attempt_at"], unique=False)
    op.create_table(
        "emulators_ias_batches",
        sa.Column("batch_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("received_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_delivery_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_emulators_ias_batches")),
    )


def downgrade() -> None:
    op.drop_table("emulators_ias_batches")
    with op.batch_alter_table("module_ias_exports", schema=None) as batch_op:
        batch_op.drop_index("ix_module_ias_exports_due")
    op.drop_table("module_ias_exports")
