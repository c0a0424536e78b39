"""deliveries: the ЛКО announcements, the ИАС export and the link completions on the one delivery
engine — a lease and a dead marker on lko_announcements and module_ias_exports (failed batches are
dead since their last update), and lko_response_completions: one row per response whose link
completion the module has not confirmed yet, moved from lko_responses (completion_token set)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lease_and_dead(table: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("lease_until", posog.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("dead_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))


def upgrade() -> None:
    _lease_and_dead("lko_announcements")
    _lease_and_dead("module_ias_exports")
    op.execute("UPDATE module_ias_exports SET dead_at = updated_at WHERE status = 'failed'")

    op.create_table(
        "lko_response_completions",
        sa.Column("response_id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("created_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dead_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_lko_response_completions")),
    )
    op.create_index(
        "ix_lko_response_completions_due", "lko_response_completions", ["sent_at", "next_attempt_at"], unique=False
    )
    # The pending completions, due at once (as the recovery saw them: every response with a token).
    op.execute(
        "INSERT INTO lko_response_completions (response_id, created_at, attempts, next_attempt_at) "
        "SELECT id, submitted_at, 0, submitted_at FROM lko_responses WHERE completion_token IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_lko_response_completions_due", table_name="lko_response_completions")
    op.drop_table("lko_response_completions")
    for table in ("module_ias_exports", "lko_announcements"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("dead_at")
            batch.drop_column("lease_until")
