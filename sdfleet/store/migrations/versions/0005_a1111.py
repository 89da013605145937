"""A1111 per-user options.

Revision ID: 0005_a1111
Revises: 0004_endpoints
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import JsonText, UtcDateTime

revision = "0005_a1111"
down_revision = "0004_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_options",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", JsonText(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_options")
