"""phase lifecycle: reveal time, late submissions, recorded automatic finals

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-02 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("phase") as batch:
        batch.add_column(sa.Column("reveal_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("allow_late", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("finals_recorded", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("final_auto", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("late")
        batch.drop_column("final_auto")
    with op.batch_alter_table("phase") as batch:
        batch.drop_column("finals_recorded")
        batch.drop_column("allow_late")
        batch.drop_column("reveal_at")
