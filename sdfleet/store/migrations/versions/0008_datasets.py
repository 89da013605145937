"""Training datasets: datasets, their allowed roles and images.

Revision ID: 0008_datasets
Revises: 0007_notifications
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import UtcDateTime

revision = "0008_datasets"
down_revision = "0007_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_datasets_user_name"),
    )
    op.create_table(
        "dataset_roles",
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role_name", sa.String(64), primary_key=True),
    )
    op.create_table(
        "dataset_images",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("caption", sa.Text(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("dataset_id", "sha256", name="uq_dataset_images_sha256"),
    )
    op.create_index("ix_dataset_images_dataset", "dataset_images", ["dataset_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_dataset_images_dataset", table_name="dataset_images")
    op.drop_table("dataset_images")
    op.drop_table("dataset_roles")
    op.drop_table("datasets")
