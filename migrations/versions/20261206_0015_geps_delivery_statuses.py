"""ГЭПС delivery statuses (INTEGRATION §3): what ЕПГУ answered through СМЭВ about each notification
(module_outbox.delivery_status, delivery_reason, delivery_status_at, and the SERVER errors counted
towards POSOG_GEPS_MAX_ATTEMPTS), the link's delivery stamps and
reason (module_survey_links: the states ``delivered`` and ``delivery_failed`` fit its state column), and
the failed deliveries counted by analytics (analytics_cards.delivery_failed and a ``delivery_failed``
measure on the three counts rollups; existing rows count none, as nothing was known of deliveries)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS_ROLLUPS = ("analytics_rollups", "analytics_org_month_rollups", "analytics_month_rollups")


def upgrade() -> None:
    with op.batch_alter_table("module_outbox") as batch:
        batch.add_column(sa.Column("delivery_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("delivery_reason", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("delivery_status_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("server_errors", sa.Integer(), server_default=sa.text("0"), nullable=False))
    with op.batch_alter_table("module_survey_links") as batch:
        batch.add_column(sa.Column("delivered_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("delivery_failed_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("delivery_failure_reason", sa.String(length=500), nullable=True))
    with op.batch_alter_table("analytics_cards") as batch:
        batch.add_column(sa.Column("delivery_failed", sa.Boolean(), server_default=sa.false(), nullable=False))
    for table in COUNTS_ROLLUPS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("delivery_failed", sa.Integer(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    for table in COUNTS_ROLLUPS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("delivery_failed")
    with op.batch_alter_table("analytics_cards") as batch:
        batch.drop_column("delivery_failed")
    with op.batch_alter_table("module_survey_links") as batch:
        batch.drop_column("delivery_failure_reason")
        batch.drop_column("delivery_failed_at")
        batch.drop_column("delivered_at")
    with op.batch_alter_table("module_outbox") as batch:
        batch.drop_column("server_errors")
        batch.drop_column("delivery_status_at")
        batch.drop_column("delivery_reason")
        batch.drop_column("delivery_status")
