"""analytics: two month grains beside the day grain — per organisation (month, region, ИНН, type, level)
and without it (month, region, type, level) — filled from the day grain; the cursors' ``changed_at``
(the rollups' version, for the answer cache); fill factors for HOT updates

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import posog.core.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LENGTHS = {"region_code": 2, "inn": 12, "type_code": 40, "survey_level": 16}
# (table prefix, key columns, secondary indexes)
_GRAINS = (
    (
        "analytics_org_month",
        ("month", "region_code", "inn", "type_code", "survey_level"),
        (("region_month", ("region_code", "month")), ("inn_month", ("inn", "month"))),
    ),
    (
        "analytics_month",
        ("month", "region_code", "type_code", "survey_level"),
        (("region_month", ("region_code", "month")),),
    ),
)
_COUNTS = ("services", "notified", "responses")
_RATINGS = ("count", "sum", "n1", "n2", "n3", "n4", "n5")


def _key_columns(key: tuple[str, ...]) -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.Date() if name == "month" else sa.String(length=_LENGTHS[name]), nullable=False)
        for name in key
    ]


def upgrade() -> None:
    with op.batch_alter_table("analytics_cursors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_at", posog.core.db.UTCDateTime(timezone=True), nullable=True))
    month = (
        "date_trunc('month', day)::date"
        if op.get_context().dialect.name == "postgresql"
        else "date(day, 'start of month')"
    )
    for prefix, key, indexes in _GRAINS:
        counts, criteria = f"{prefix}_rollups", f"{prefix}_criterion_rollups"
        op.create_table(
            counts,
            *_key_columns(key),
            *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
            sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{counts}")),
        )
        op.create_table(
            criteria,
            *_key_columns(key),
            sa.Column("criterion", sa.String(length=20), nullable=False),
            *(sa.Column(name, sa.Integer(), nullable=False) for name in _RATINGS),
            sa.PrimaryKeyConstraint(*key, "criterion", name=op.f(f"pk_{criteria}")),
        )
        for table in (counts, criteria):
            for suffix, columns in indexes:
                op.create_index(f"ix_{table}_{suffix}", table, list(columns))
        # The existing day rollups summed into their months, so an upgraded installation answers at once.
        values = ", ".join(month if name == "month" else name for name in key)
        groups = ", ".join(str(n) for n in range(1, len(key) + 1))
        op.execute(
            f"INSERT INTO {counts} ({', '.join(key)}, {', '.join(_COUNTS)}) "  # noqa: S608 (names: ours)
            f"SELECT {values}, {', '.join(f'sum({name})' for name in _COUNTS)} "
            f"FROM analytics_rollups GROUP BY {groups}"
        )
        op.execute(
            f"INSERT INTO {criteria} ({', '.join(key)}, criterion, {', '.join(_RATINGS)}) "  # noqa: S608
            f"SELECT {values}, criterion, {', '.join(f'sum({name})' for name in _RATINGS)} "
            f"FROM analytics_criterion_rollups GROUP BY {groups}, {len(key) + 1}"
        )

    if op.get_context().dialect.name == "postgresql":
        # Room in every page for a changed row's new version: a refresh that adds to a rollup row, or
        # moves a card on, writes it beside the old one without touching the indexes (a HOT update).
        for table, fillfactor in _FILLFACTORS.items():
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


_FILLFACTORS = {
    "analytics_cards": 90,
    "analytics_rollups": 85,
    "analytics_criterion_rollups": 85,
    "analytics_org_month_rollups": 70,
    "analytics_org_month_criterion_rollups": 70,
    "analytics_month_rollups": 50,
    "analytics_month_criterion_rollups": 50,
}


def downgrade() -> None:
    with op.batch_alter_table("analytics_cursors", schema=None) as batch_op:
        batch_op.drop_column("changed_at")
    if op.get_context().dialect.name == "postgresql":
        for table in ("analytics_cards", "analytics_rollups", "analytics_criterion_rollups"):
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    for prefix, _key, indexes in reversed(_GRAINS):
        for table in (f"{prefix}_criterion_rollups", f"{prefix}_rollups"):
            for suffix, _columns in indexes:
                op.drop_index(f"ix_{table}_{suffix}", table_name=table)
            op.drop_table(table)
