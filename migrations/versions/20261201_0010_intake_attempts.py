"""intake: attempts of returned messages handled alone (a message that kills the worker is quarantined)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "module_intake_attempts",
        sa.Column("raw_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("raw_hash", name=op.f("pk_module_intake_attempts")),
    )
    op.create_index(
        op.f("ix_module_intake_attempts_last_attempt_at"),
        "module_intake_attempts",
        ["last_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_module_intake_attempts_last_attempt_at"), table_name="module_intake_attempts")
    op.drop_table("module_intake_attempts")
