"""participants: display names, challenge links, method metadata, the method rule of final picks, email invites

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("display_name", sa.String(length=40), nullable=True))
        batch.create_unique_constraint("uq_user_display_name", ["display_name"])
    with op.batch_alter_table("challenge") as batch:
        batch.add_column(sa.Column("links", sa.JSON(), nullable=True))
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("method_name", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("method_description", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("paper_url", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("code_url", sa.String(length=500), nullable=True))
    with op.batch_alter_table("phase") as batch:
        batch.add_column(sa.Column("require_method_for_final", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "team_invite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invited_by_id"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_team_invite_team_id"), "team_invite", ["team_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_team_invite_team_id"), table_name="team_invite")
    op.drop_table("team_invite")
    with op.batch_alter_table("phase") as batch:
        batch.drop_column("require_method_for_final")
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("code_url")
        batch.drop_column("paper_url")
        batch.drop_column("method_description")
        batch.drop_column("method_name")
    with op.batch_alter_table("challenge") as batch:
        batch.drop_column("links")
    with op.batch_alter_table("user") as batch:
        batch.drop_constraint("uq_user_display_name", type_="unique")
        batch.drop_column("display_name")
