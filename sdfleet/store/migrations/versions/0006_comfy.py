"""ComfyUI user data and published workflows (filled in by the ComfyUI work).

Revision ID: 0006_comfy
Revises: 0005_a1111
"""

revision = "0006_comfy"
down_revision = "0005_a1111"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
