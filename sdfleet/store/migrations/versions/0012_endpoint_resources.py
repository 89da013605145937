"""Endpoint resources: what each replica of a `ray` endpoint asks Ray for (num_cpus, num_gpus, memory, custom).

Revision ID: 0012_endpoint_resources
Revises: 0011_model_names
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import JsonText

revision = "0012_endpoint_resources"
down_revision = "0011_model_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("resources", JsonText(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("resources")
