"""Model registry (filled in by the registry work).

Revision ID: 0002_registry
Revises: 0001_core
"""

revision = "0002_registry"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
