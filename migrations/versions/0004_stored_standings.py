"""stored standings: the board rows per phase x track x split, and a version per board

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-02 04:00:00

Self-contained: it creates two new tables and touches none of 0001's. Run `flask --app arena standings rebuild`
after upgrading a database that already holds scored submissions (the tables start empty).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"  # was 0001; chained after issue 17's 0002 when main was merged (one head)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "standing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phase_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("is_baseline", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["phase_id"], ["phase.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["submission_id"], ["submission.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["track_id"], ["track.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("phase_id", "track_id", "split", "submission_id"),
        sa.UniqueConstraint("phase_id", "track_id", "split", "team_id"),
    )
    with op.batch_alter_table("standing", schema=None) as batch_op:
        batch_op.create_index("ix_standing_board", ["phase_id", "track_id", "split"], unique=False)
    op.create_table(
        "standing_board",
        sa.Column("phase_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["phase_id"], ["phase.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["track_id"], ["track.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("phase_id", "track_id"),
    )


def downgrade() -> None:
    op.drop_table("standing_board")
    with op.batch_alter_table("standing", schema=None) as batch_op:
        batch_op.drop_index("ix_standing_board")
    op.drop_table("standing")
