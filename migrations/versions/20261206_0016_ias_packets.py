"""ias packets: RatesRequest 1.2.0 packets with ИАС's packet id and status, the ratings that could not
be sent (with the reason), the forms fetched from ИАС, the count of unsendable ratings on a batch, and
the ИАС emulator's packets

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-06 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("module_ias_exports") as batch:
        batch.add_column(sa.Column("unsendable", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "module_ias_packets",
        sa.Column("client_id", sa.String(length=50), nullable=False),
        sa.Column("batch_id", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("forms", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("packet_id", sa.BigInteger(), nullable=True),
        sa.Column("ias_status", sa.String(length=50), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("sent_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("poll_client_id", sa.String(length=50), nullable=True),
        sa.Column("final_at", posog.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_module_ias_packets")),
    )
    with op.batch_alter_table("module_ias_packets") as batch:
        batch.create_index("ix_module_ias_packets_batch", ["batch_id", "seq"], unique=False)
        batch.create_index("ix_module_ias_packets_poll", ["state", "next_poll_at"], unique=False)
        batch.create_index(batch.f("ix_module_ias_packets_poll_client_id"), ["poll_client_id"], unique=False)
        batch.create_index(batch.f("ix_module_ias_packets_packet_id"), ["packet_id"], unique=False)
    op.create_table(
        "module_ias_unsendable",
        sa.Column("batch_id", sa.String(length=100), nullable=False),
        sa.Column("foreign_id", sa.String(length=100), nullable=False),
        sa.Column("card_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("recorded_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "foreign_id", name=op.f("pk_module_ias_unsendable")),
    )
    with op.batch_alter_table("module_ias_unsendable") as batch:
        batch.create_index(batch.f("ix_module_ias_unsendable_reason"), ["reason"], unique=False)
    op.create_table(
        "module_ias_forms",
        sa.Column("service_type", sa.String(length=50), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("fetched_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("service_type", "version", name=op.f("pk_module_ias_forms")),
    )
    op.create_table(
        "emulators_ias_packets",
        sa.Column("packet_id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("forms", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("received_at", posog.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("packet_id", name=op.f("pk_emulators_ias_packets")),
        sa.UniqueConstraint("body_sha256", name=op.f("uq_emulators_ias_packets_body_sha256")),
    )


def downgrade() -> None:
    op.drop_table("emulators_ias_packets")
    op.drop_table("module_ias_forms")
    with op.batch_alter_table("module_ias_unsendable") as batch:
        batch.drop_index(batch.f("ix_module_ias_unsendable_reason"))
    op.drop_table("module_ias_unsendable")
    with op.batch_alter_table("module_ias_packets") as batch:
        batch.drop_index(batch.f("ix_module_ias_packets_packet_id"))
        batch.drop_index(batch.f("ix_module_ias_packets_poll_client_id"))
        batch.drop_index("ix_module_ias_packets_poll")
        batch.drop_index("ix_module_ias_packets_batch")
    op.drop_table("module_ias_packets")
    with op.batch_alter_table("module_ias_exports") as batch:
        batch.drop_column("unsendable")
