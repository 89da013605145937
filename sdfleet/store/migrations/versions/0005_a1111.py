"""A1111 per-user options (filled in by the A1111 API work).

Revision ID: 0005_a1111
Revises: 0004_endpoints
"""

revision = "0005_a1111"
down_revision = "0004_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
