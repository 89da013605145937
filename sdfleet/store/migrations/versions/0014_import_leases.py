"""URL imports are leased: the API server running one holds a lease it renews, with a fencing token.

Revision ID: 0014_import_leases
Revises: 0013_workflow_approvals
"""

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import UtcDateTime

revision = "0014_import_leases"
down_revision = "0013_workflow_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Unfinished imports of an older server have no lease: the first server to look takes them over.
    with op.batch_alter_table("checkpoint_imports") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", UtcDateTime, nullable=True))
        batch.add_column(sa.Column("fencing_token", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_checkpoint_imports_lease", "checkpoint_imports", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_checkpoint_imports_lease", table_name="checkpoint_imports")
    with op.batch_alter_table("checkpoint_imports") as batch:
        batch.drop_column("attempts")
        batch.drop_column("fencing_token")
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner")
