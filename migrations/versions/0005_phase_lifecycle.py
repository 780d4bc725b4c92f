"""contest lifecycle: reveal time, late submissions, recorded automatic finals, versioned labels, scores per
label version, integrity flags

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("stored_path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("num_images", sa.Integer(), nullable=False),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["track_id"], ["track.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by_id"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("track_id", "kind", "version"),
    )
    op.create_index(op.f("ix_label_version_track_id"), "label_version", ["track_id"], unique=False)
    op.create_table(
        "submission_score",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("label_key", sa.String(length=255), nullable=False),
        sa.Column("public_score", sa.Float(), nullable=True),
        sa.Column("private_score", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("curve", sa.JSON(), nullable=True),
        sa.Column("scored_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submission.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("submission_id", "label_key"),
    )
    op.create_index(op.f("ix_submission_score_submission_id"), "submission_score", ["submission_id"], unique=False)
    op.create_table(
        "integrity_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("challenge_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("other_id", sa.Integer(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["challenge_id"], ["challenge.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["submission_id"], ["submission.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["other_id"], ["submission.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["resolved_by_id"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "submission_id", "other_id"),
    )
    op.create_index(op.f("ix_integrity_flag_challenge_id"), "integrity_flag", ["challenge_id"], unique=False)
    with op.batch_alter_table("label_file") as batch:
        batch.add_column(sa.Column("version_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_label_file_version_id", "label_version", ["version_id"], ["id"], ondelete="SET NULL"
        )
    # the labels stored before versions existed become version 1 of their kind, active
    op.execute(
        "INSERT INTO label_version (track_id, kind, version, stored_path, sha256, size, num_images, original_name,"
        " uploaded_at, uploaded_by_id, activated_at) SELECT track_id, kind, 1, stored_path, sha256, size, num_images,"
        " '', uploaded_at, uploaded_by_id, uploaded_at FROM label_file"
    )
    op.execute(
        "UPDATE label_file SET version_id = (SELECT v.id FROM label_version v"
        " WHERE v.track_id = label_file.track_id AND v.kind = label_file.kind)"
    )
    with op.batch_alter_table("phase") as batch:
        batch.add_column(sa.Column("reveal_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("allow_late", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("finals_recorded", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("final_auto", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("label_file") as batch:
        batch.drop_constraint("fk_label_file_version_id", type_="foreignkey")
        batch.drop_column("version_id")
    op.drop_index(op.f("ix_integrity_flag_challenge_id"), table_name="integrity_flag")
    op.drop_table("integrity_flag")
    op.drop_index(op.f("ix_submission_score_submission_id"), table_name="submission_score")
    op.drop_table("submission_score")
    op.drop_index(op.f("ix_label_version_track_id"), table_name="label_version")
    op.drop_table("label_version")
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("late")
        batch.drop_column("final_auto")
    with op.batch_alter_table("phase") as batch:
        batch.drop_column("finals_recorded")
        batch.drop_column("allow_late")
        batch.drop_column("reveal_at")
