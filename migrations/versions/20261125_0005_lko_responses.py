"""lko responses: citizens' answers, one per card

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-25 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import posog.core.db

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lko_responses",
        sa.Column("id", posog.core.db.UUIDStr(length=36), nullable=False),
        sa.Column("card_id", sa.String(length=100), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("questionnaire_id", sa.String(length=36), nullable=False),
        sa.Column("questionnaire_version", sa.Integer(), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("survey_level", sa.String(length=16), nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("ogrn", sa.String(length=15), nullable=False),
        sa.Column("kpp", sa.String(length=9), nullable=True),
        sa.Column("region_code", sa.String(length=2), nullable=False),
        sa.Column("org_name", sa.String(length=1000), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column(
            "answers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("submitted_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completion_token", sa.String(length=128), nullable=True),
        sa.Column("link_completed_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("link_refusal", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lko_responses")),
        sa.UniqueConstraint("card_id", name=op.f("uq_lko_responses_card_id")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_lko_responses_idempotency_key")),
    )
    with op.batch_alter_table("lko_responses", schema=None) as batch_op:
        batch_op.create_index("ix_lko_responses_submitted", ["submitted_at", "id"], unique=False)
        batch_op.create_index("ix_lko_responses_inn_submitted", ["inn", "submitted_at", "id"], unique=False)
        batch_op.create_index("ix_lko_responses_region_submitted", ["region_code", "submitted_at", "id"], unique=False)
        batch_op.create_index(
            "ix_lko_responses_pending_completion",
            ["submitted_at"],
            unique=False,
            sqlite_where=sa.text("completion_token IS NOT NULL"),
            postgresql_where=sa.text("completion_token IS NOT NULL"),
        )


def downgrade() -> None:
    op.drop_table("lko_responses")
