"""smev: module_smev_spool — the web service's durable inbound spool: documents fetched with ``Get``
(sealed), committed before they are dispatched and deleted once the dispatcher committed them

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "module_smev_spool",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("pii_key_id", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_module_smev_spool")),
    )
    op.create_index("ix_module_smev_spool_received", "module_smev_spool", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_module_smev_spool_received", table_name="module_smev_spool")
    op.drop_table("module_smev_spool")
