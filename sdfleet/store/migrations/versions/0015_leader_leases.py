"""Leader leases: one row per role only one API server may play at a time (the fleet manager).

Revision ID: 0015_leader_leases
Revises: 0014_import_leases
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import UtcDateTime

revision = "0015_leader_leases"
down_revision = "0014_import_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leader_leases")
