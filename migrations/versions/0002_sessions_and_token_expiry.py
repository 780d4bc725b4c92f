"""sessions end at logout and password reset (user.session_generation); API tokens expire (api_token.expires_at)

Revision ID: 0002
Revises: 0001
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    # the tokens made before this revision never expired: they expire 90 days from the upgrade (ARENA_TOKEN_DAYS)
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=90)
    op.execute(sa.text("UPDATE api_token SET expires_at = :later WHERE expires_at IS NULL").bindparams(later=later))


def downgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("session_generation")
