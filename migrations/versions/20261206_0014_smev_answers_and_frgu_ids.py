"""СМЭВ: the ФРГУ ids of a card (og.fact/1's optional service.frgu_service_id,
service.frgu_procedure_id, organization.frgu_authority_id) and module_smev_answers, the answers to
the senders of facts that came through the СМЭВ adapter (a delivery on the engine)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("module_service_cards") as batch:
        batch.add_column(sa.Column("frgu_service_id", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("frgu_procedure_id", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("frgu_authority_id", sa.String(length=20), nullable=True))

    op.create_table(
        "module_smev_answers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=50), nullable=False),
        sa.Column("reply_to_client_id", sa.String(length=50), nullable=False),
        sa.Column("request_message_id", sa.String(length=100), nullable=True),
        sa.Column("card_id", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("adapter_status", sa.String(length=16), nullable=True),
        sa.Column("adapter_detail", sa.Text(), nullable=True),
        sa.Column("adapter_status_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dead_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_module_smev_answers")),
        sa.UniqueConstraint("client_id", name=op.f("uq_module_smev_answers_client_id")),
        sa.UniqueConstraint("reply_to_client_id", name=op.f("uq_module_smev_answers_reply_to_client_id")),
    )
    op.create_index(op.f("ix_module_smev_answers_card_id"), "module_smev_answers", ["card_id"], unique=False)
    op.create_index("ix_module_smev_answers_due", "module_smev_answers", ["sent_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_module_smev_answers_due", table_name="module_smev_answers")
    op.drop_index(op.f("ix_module_smev_answers_card_id"), table_name="module_smev_answers")
    op.drop_table("module_smev_answers")
    with op.batch_alter_table("module_service_cards") as batch:
        batch.drop_column("frgu_authority_id")
        batch.drop_column("frgu_procedure_id")
        batch.drop_column("frgu_service_id")
