"""outbox: a partial index of the unsent rows (the relay's claim and the backlog count); joins the heads

Revision ID: 0007
Revises: 0002, 0003, 0004, 0005, 0006
Create Date: 2026-11-25 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: tuple[str, ...] | None = ("0002", "0003", "0004", "0005", "0006")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Sent rows stay until the personal-data purge deletes them; without this index a claim after a burst
    # walks every sent row (or sorts on disk when the statistics are stale).
    op.create_index(
        "ix_module_outbox_unsent",
        "module_outbox",
        ["id"],
        unique=False,
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_module_outbox_unsent", table_name="module_outbox")
