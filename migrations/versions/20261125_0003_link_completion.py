"""link completion: the ЛКО response that completed a survey link

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot alter tables in place; PostgreSQL gets a plain ALTER TABLE.
    with op.batch_alter_table("module_survey_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("module_survey_links", schema=None) as batch_op:
        batch_op.drop_column("response_id")
