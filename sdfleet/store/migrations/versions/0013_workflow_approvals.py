"""Workflow versions that wait for approval: one row per held version, who approved it and when.

Revision ID: 0013_workflow_approvals
Revises: 0012_endpoint_resources
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import UtcDateTime

revision = "0013_workflow_approvals"
down_revision = "0012_endpoint_resources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_approvals",
        sa.Column("workflow_name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("approved_by", sa.String(32), nullable=True),
        sa.Column("approved_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(["workflow_name", "version"],
                                ["workflow_versions.workflow_name", "workflow_versions.version"],
                                ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("workflow_approvals")
