"""Endpoints and their events (autoscaler decisions, replica replacements).

Revision ID: 0004_endpoints
Revises: 0003_jobs
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import JsonText, UtcDateTime

revision = "0004_endpoints"
down_revision = "0003_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("launcher", sa.String(32), nullable=False),
        sa.Column("devices", JsonText(), nullable=False),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("target_queue_per_replica", sa.Integer(), nullable=False),
        sa.Column("idle_seconds", sa.Float(), nullable=False),
        sa.Column("preload", JsonText(), nullable=False),
        sa.Column("allowed_roles", JsonText(), nullable=False),
        sa.Column("kinds", JsonText(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=True),
        sa.Column("desired_replicas", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("event_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "endpoint_events",
        sa.Column("endpoint", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", JsonText(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("endpoint_events")
    op.drop_table("endpoints")
