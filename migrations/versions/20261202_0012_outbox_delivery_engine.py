"""outbox: the ГЭПС outbox on the one delivery engine — a lease and a dead marker beside its due time,
attempts, last error and sent time (the rows stay as they are: both new columns are empty)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("module_outbox") as batch:
        batch.add_column(sa.Column("lease_until", posog.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("dead_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("module_outbox") as batch:
        batch.drop_column("dead_at")
        batch.drop_column("lease_until")
