"""analytics: feed cursors, anonymous cards and responses, rollups; the links' change time for the cards feed

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GRAIN = ("day", "region_code", "inn", "type_code", "survey_level")


def _grain_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("region_code", sa.String(length=2), nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("survey_level", sa.String(length=16), nullable=False),
    ]


def upgrade() -> None:
    # --- The module: every change of a link is dated, and both feed streams read from an index. ---
    # batch_alter_table: SQLite cannot alter tables in place; PostgreSQL gets a plain ALTER TABLE.
    with op.batch_alter_table("module_survey_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))
    # Existing links: their latest known transition (states only move forward).
    op.execute("UPDATE module_survey_links SET changed_at = COALESCE(completed_at, opened_at, notified_at, issued_at)")
    with op.batch_alter_table("module_survey_links", schema=None) as batch_op:
        batch_op.alter_column("changed_at", existing_type=posog.core.db.UTCDateTime(timezone=True), nullable=False)
        batch_op.create_index(batch_op.f("ix_module_survey_links_changed_at"), ["changed_at"], unique=False)
    with op.batch_alter_table("module_service_cards", schema=None) as batch_op:
        batch_op.create_index("ix_module_service_cards_updated", ["updated_at"], unique=False)

    # --- Analytics ---
    op.create_table(
        "analytics_cursors",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("base_cursor", sa.Text(), nullable=True),
        sa.Column("base_bound", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_poll_started_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_poll_finished_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("items_read", sa.Integer(), nullable=False),
        sa.Column("updated_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_analytics_cursors")),
    )
    op.create_table(
        "analytics_cards",
        sa.Column("card_id", sa.String(length=100), nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("region_code", sa.String(length=2), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("survey_level", sa.String(length=16), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("link_state", sa.String(length=16), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("source_updated_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("card_id", name=op.f("pk_analytics_cards")),
    )
    op.create_table(
        "analytics_responses",
        sa.Column("response_id", sa.String(length=64), nullable=False),
        sa.Column("card_id", sa.String(length=100), nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("region_code", sa.String(length=2), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("survey_level", sa.String(length=16), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("questionnaire_id", sa.String(length=36), nullable=False),
        sa.Column("questionnaire_version", sa.Integer(), nullable=False),
        sa.Column("submitted_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ratings", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_analytics_responses")),
    )
    op.create_table(
        "analytics_organizations",
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("org_name", sa.String(length=1000), nullable=False),
        sa.Column("region_code", sa.String(length=2), nullable=False),
        sa.Column("name_key", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("inn", name=op.f("pk_analytics_organizations")),
    )
    op.create_table(
        "analytics_rollups",
        *_grain_columns(),
        sa.Column("services", sa.Integer(), nullable=False),
        sa.Column("notified", sa.Integer(), nullable=False),
        sa.Column("responses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*_GRAIN, name=op.f("pk_analytics_rollups")),
    )
    with op.batch_alter_table("analytics_rollups", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_rollups_region_day", ["region_code", "day"], unique=False)
        batch_op.create_index("ix_analytics_rollups_inn_day", ["inn", "day"], unique=False)
    op.create_table(
        "analytics_criterion_rollups",
        *_grain_columns(),
        sa.Column("criterion", sa.String(length=20), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum", sa.Integer(), nullable=False),
        sa.Column("n1", sa.Integer(), nullable=False),
        sa.Column("n2", sa.Integer(), nullable=False),
        sa.Column("n3", sa.Integer(), nullable=False),
        sa.Column("n4", sa.Integer(), nullable=False),
        sa.Column("n5", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*_GRAIN, "criterion", name=op.f("pk_analytics_criterion_rollups")),
    )
    with op.batch_alter_table("analytics_criterion_rollups", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_criterion_rollups_region_day", ["region_code", "day"], unique=False)
        batch_op.create_index("ix_analytics_criterion_rollups_inn_day", ["inn", "day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("analytics_criterion_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_criterion_rollups_inn_day")
        batch_op.drop_index("ix_analytics_criterion_rollups_region_day")
    op.drop_table("analytics_criterion_rollups")
    with op.batch_alter_table("analytics_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_rollups_inn_day")
        batch_op.drop_index("ix_analytics_rollups_region_day")
    op.drop_table("analytics_rollups")
    op.drop_table("analytics_organizations")
    op.drop_table("analytics_responses")
    op.drop_table("analytics_cards")
    op.drop_table("analytics_cursors")
    with op.batch_alter_table("module_service_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_module_service_cards_updated")
    with op.batch_alter_table("module_survey_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_module_survey_links_changed_at"))
        batch_op.drop_column("changed_at")
