"""Model names unique per viewer: the global (type, name) unique constraint becomes a plain index.

A name taken by a model the caller cannot see must not answer 409 (that answer told them the hidden model
exists); the services check a new name against the models its owner can see (docs/decisions.md).

Revision ID: 0011_model_names
Revises: 0010_security
"""

from alembic import op

revision = "0011_model_names"
down_revision = "0010_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_constraint("uq_checkpoints_type_name", type_="unique")
        batch.create_index("ix_checkpoints_type_name", ["model_type", "name"])


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_index("ix_checkpoints_type_name")
        batch.create_unique_constraint("uq_checkpoints_type_name", ["model_type", "name"])
