"""Web UI: prompt styles, generation presets, boards, stars, model notes; team permissions for lead artists.

Revision ID: 0009_web
Revises: 0008_datasets
"""

import json

import sqlalchemy as sa
from alembic import op

from sdfleet.store.types import JsonText, UtcDateTime

revision = "0009_web"
down_revision = "0008_datasets"
branch_labels = None
depends_on = None

#: permissions this revision introduces; the built-in lead-artist role of an existing install gets them
NEW_LEAD_PERMISSIONS = ("gallery:all", "queue:all", "style:all")


def _user_fk(nullable: bool = False) -> sa.Column:
    return sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "prompt_styles",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_key", sa.String(32), nullable=False),
        _user_fk(nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("owner_key", "name", name="uq_prompt_styles_owner_name"),
    )
    op.create_table(
        "generation_presets",
        sa.Column("id", sa.String(32), primary_key=True),
        _user_fk(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("values", JsonText(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_generation_presets_user_name"),
    )
    op.create_table(
        "boards",
        sa.Column("id", sa.String(32), primary_key=True),
        _user_fk(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_boards_user_name"),
    )
    op.create_table(
        "board_items",
        sa.Column("board_id", sa.String(32), sa.ForeignKey("boards.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_board_items_job", "board_items", ["job_id"])
    op.create_table(
        "job_stars",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_job_stars_job", "job_stars", ["job_id"])
    op.create_table(
        "checkpoint_notes",
        sa.Column("checkpoint_id", sa.String(32), sa.ForeignKey("checkpoints.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("trigger_words", sa.String(1000), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("preview_key", sa.String(255), nullable=True),
        sa.Column("updated_by", sa.String(32), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    # The built-in lead-artist role (if this install has it) gets the permissions added with these features.
    roles = sa.table("roles", sa.column("name", sa.String), sa.column("permissions", sa.Text),
                     sa.column("builtin", sa.Boolean))
    bind = op.get_bind()
    row = bind.execute(sa.select(roles.c.permissions).where(roles.c.name == "lead-artist",
                                                            roles.c.builtin.is_(True))).first()
    if row is not None:
        permissions = sorted(set(json.loads(row.permissions)) | set(NEW_LEAD_PERMISSIONS))
        bind.execute(roles.update().where(roles.c.name == "lead-artist")
                     .values(permissions=json.dumps(permissions, separators=(",", ":"), sort_keys=True)))


def downgrade() -> None:
    for table in ("checkpoint_notes", "job_stars", "board_items", "boards", "generation_presets", "prompt_styles"):
        op.drop_table(table)
