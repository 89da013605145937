"""ComfyUI user data and published workflows.

Revision ID: 0006_comfy
Revises: 0005_a1111
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import JsonText, UtcDateTime

revision = "0006_comfy"
down_revision = "0005_a1111"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comfy_settings",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("values", JsonText(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "comfy_userdata",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "workflows",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("current_version", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("workflow_name", sa.String(128), sa.ForeignKey("workflows.name", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("graph", JsonText(), nullable=False),
        sa.Column("ui_graph", JsonText(), nullable=True),
        sa.Column("inputs", JsonText(), nullable=False),
        sa.Column("allowed_roles", JsonText(), nullable=False),
        sa.Column("models", JsonText(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workflow_versions")
    op.drop_table("workflows")
    op.drop_table("comfy_userdata")
    op.drop_table("comfy_settings")
