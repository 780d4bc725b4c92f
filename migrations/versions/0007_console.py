"""organizer console: announcements, and the indexes of the console's paginated lists

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_team_console", "team", ["challenge_id", "status", "id"]),
    ("ix_submission_console_track", "submission", ["track_id", "id"]),
    ("ix_submission_console_state", "submission", ["state", "id"]),
    ("ix_submission_console_team", "submission", ["team_id", "id"]),
    ("ix_audit_console_challenge", "audit_event", ["challenge_id", "id"]),
    ("ix_audit_console_actor", "audit_event", ["actor_id", "id"]),
    ("ix_audit_console_action", "audit_event", ["action", "id"]),
    ("ix_audit_console_object", "audit_event", ["object_type", "object_id", "id"]),
)


PARTIAL = (  # the default view of the audit log, people's actions: the state changes are not in these indexes
    ("ix_audit_console_actions", ["id"]),
    ("ix_audit_console_challenge_actions", ["challenge_id", "id"]),
)
ACTIONS = "action <> 'submission.state'"


def upgrade() -> None:
    op.create_table(
        "announcement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("challenge_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["challenge_id"], ["challenge.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_id"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_announcement_challenge", "announcement", ["challenge_id", "id"], unique=False)
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    for name, columns in PARTIAL:
        where = {"postgresql_where": sa.text(ACTIONS), "sqlite_where": sa.text(ACTIONS)}
        op.create_index(name, "audit_event", columns, unique=False, **where)


def downgrade() -> None:
    for name, _columns in PARTIAL:
        op.drop_index(name, table_name="audit_event")
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_announcement_challenge", table_name="announcement")
    op.drop_table("announcement")
