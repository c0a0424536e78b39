"""smev: module_smev_unmatched — inbound СМЭВ-adapter documents the СМЭВ worker kept unhandled
(replies no feature claimed, refused documents), sealed, with the reason

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "module_smev_unmatched",
        sa.Column("id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("client_id", sa.String(length=50), nullable=True),
        sa.Column("correlation_id", sa.String(length=50), nullable=True),
        sa.Column("smev_message_id", sa.String(length=100), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("pii_key_id", sa.String(length=40), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("answered_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_module_smev_unmatched")),
        sa.UniqueConstraint("raw_sha256", name=op.f("uq_module_smev_unmatched_raw_sha256")),
    )
    op.create_index("ix_module_smev_unmatched_received", "module_smev_unmatched", ["received_at"], unique=False)
    op.create_index(
        op.f("ix_module_smev_unmatched_correlation_id"), "module_smev_unmatched", ["correlation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_module_smev_unmatched_correlation_id"), table_name="module_smev_unmatched")
    op.drop_index("ix_module_smev_unmatched_received", table_name="module_smev_unmatched")
    op.drop_table("module_smev_unmatched")
