"""Model registry: checkpoints, their allowed roles, resumable uploads and URL imports.

Revision ID: 0002_registry
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import JsonText, UtcDateTime

revision = "0002_registry"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("short_hash", sa.String(10), nullable=False),
        sa.Column("architecture", sa.String(32), nullable=False),
        sa.Column("layout", sa.String(32), nullable=False),
        sa.Column("precision", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("tensor_count", sa.Integer(), nullable=False),
        sa.Column("metadata_json", JsonText(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("model_type", "name", name="uq_checkpoints_type_name"),
    )
    op.create_index("ix_checkpoints_sha256", "checkpoints", ["sha256"])
    op.create_table(
        "checkpoint_roles",
        sa.Column(
            "checkpoint_id", sa.String(32), sa.ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("role_name", sa.String(64), primary_key=True),
    )
    op.create_table(
        "checkpoint_uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("declared_sha256", sa.String(64), nullable=True),
        sa.Column("allowed_roles", JsonText(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("object_key", sa.String(255), nullable=False),
        sa.Column("store_upload_id", sa.String(1024), nullable=False),
        sa.Column("checkpoint_id", sa.String(32), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_checkpoint_uploads_user_id", "checkpoint_uploads", ["user_id"])
    op.create_index("ix_checkpoint_uploads_expires_at", "checkpoint_uploads", ["expires_at"])
    op.create_table(
        "checkpoint_upload_parts",
        sa.Column(
            "upload_id",
            sa.String(32),
            sa.ForeignKey("checkpoint_uploads.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("part_number", sa.Integer(), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("etag", sa.String(255), nullable=False),
    )
    op.create_table(
        "checkpoint_imports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("allowed_roles", JsonText(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=True),
        sa.Column("checkpoint_id", sa.String(32), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_checkpoint_imports_user_id", "checkpoint_imports", ["user_id"])
    op.create_index("ix_checkpoint_imports_status", "checkpoint_imports", ["status"])


def downgrade() -> None:
    op.drop_table("checkpoint_imports")
    op.drop_table("checkpoint_upload_parts")
    op.drop_table("checkpoint_uploads")
    op.drop_table("checkpoint_roles")
    op.drop_table("checkpoints")
