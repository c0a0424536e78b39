"""links: an operator's revocation, recorded (when and why)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("module_survey_links") as batch:
        batch.add_column(sa.Column("revoked_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoke_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("module_survey_links") as batch:
        batch.drop_column("revoke_reason")
        batch.drop_column("revoked_at")
