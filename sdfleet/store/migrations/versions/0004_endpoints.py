"""Endpoints (filled in by the endpoints work).

Revision ID: 0004_endpoints
Revises: 0003_jobs
"""

revision = "0004_endpoints"
down_revision = "0003_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
