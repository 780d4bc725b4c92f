"""The domain of DESIGN.md as SQLAlchemy 2 typed models. Times are naive UTC (`utcnow()`), alike on SQLite and
PostgreSQL. Behaviour lives in the service modules; these classes only hold data and small derived properties."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, dt.datetime: DateTime()}


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    is_organizer: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # bumped on logout and password reset: a session cookie signed for an older generation is refused (auth.py)
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # what other participants see of a person (never the email): unique on the platform (services/accounts.py)
    display_name: Mapped[str | None] = mapped_column(String(40), unique=True)

    @property
    def shown_name(self) -> str:
        """The name other participants see: the display name, or "user <id>" for an account that has none."""
        return self.display_name or f"user {self.id}"


class ApiToken(Base):
    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of a 256-bit random token
    prefix: Mapped[str] = mapped_column(String(16))  # shown to the user to tell tokens apart
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]  # set at creation: ARENA_TOKEN_DAYS later
    user: Mapped[User] = relationship()


class Challenge(Base):
    __tablename__ = "challenge"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")  # Markdown, sanitised when shown
    rules: Mapped[str] = mapped_column(Text, default="")
    team_size: Mapped[int] = mapped_column(Integer, default=5)
    registration_opens: Mapped[dt.datetime | None]
    registration_closes: Mapped[dt.datetime | None]
    merge_deadline: Mapped[dt.datetime | None]
    split_seed: Mapped[str] = mapped_column(String(64))
    public_fraction: Mapped[float] = mapped_column(Float, default=0.5)
    teams_need_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    reproduction_tolerance: Mapped[float] = mapped_column(Float, default=0.005)  # final stage: |reproduced - submitted|
    links: Mapped[dict[str, Any] | None]  # {"data": ..., "starter_kit": ...}: addresses or repository paths (bundle)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    tracks: Mapped[list[Track]] = relationship(back_populates="challenge", order_by="Track.position")
    phases: Mapped[list[Phase]] = relationship(back_populates="challenge", order_by="Phase.position")


class Track(Base):
    __tablename__ = "track"
    __table_args__ = (UniqueConstraint("challenge_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenge.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # detection | recognition
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    max_upload_bytes: Mapped[int] = mapped_column(BigInteger)
    max_boxes_per_image: Mapped[int] = mapped_column(Integer, default=100)
    challenge: Mapped[Challenge] = relationship(back_populates="tracks")
    labels: Mapped[list[LabelFile]] = relationship(back_populates="track")

    @property
    def metric(self) -> str:
        return "ap50" if self.kind == "detection" else "rank1"


class LabelFile(Base):
    """The active hidden label file of a track and kind (a copy of its LabelVersion's file fields, which scoring
    reads), stored under storage/labels by its checksum, never served."""

    __tablename__ = "label_file"
    __table_args__ = (UniqueConstraint("track_id", "kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # detection_gt | test_info | verification_pairs
    stored_path: Mapped[str] = mapped_column(String(255))  # relative to STORAGE_DIR, built from ids and sha256 only
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    num_images: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("label_version.id", ondelete="SET NULL"))
    track: Mapped[Track] = relationship(back_populates="labels")


class LabelVersion(Base):
    """Every upload of a hidden label file, kept (labels.py): the track's LabelFile of that kind points to the
    active one, chosen explicitly by an organizer after seeing its diff against the active version."""

    __tablename__ = "label_version"
    __table_args__ = (UniqueConstraint("track_id", "kind", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per track and kind
    stored_path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    num_images: Mapped[int] = mapped_column(Integer, default=0)
    original_name: Mapped[str] = mapped_column(String(255), default="")
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    activated_at: Mapped[dt.datetime | None]  # last time it became the active version


class SubmissionScore(Base):
    """A submission's scores under one set of active labels (`label_key`): switching labels back restores them."""

    __tablename__ = "submission_score"
    __table_args__ = (UniqueConstraint("submission_id", "label_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    label_key: Mapped[str] = mapped_column(String(255))  # the active label versions, e.g. "detection_gt:3"
    public_score: Mapped[float | None] = mapped_column(Float)
    private_score: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any] | None]
    curve: Mapped[dict[str, Any] | None]
    scored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Phase(Base):
    __tablename__ = "phase"
    __table_args__ = (UniqueConstraint("challenge_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenge.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    closed: Mapped[bool] = mapped_column(Boolean, default=False)  # closed early by an organizer
    max_per_day: Mapped[int] = mapped_column(Integer, default=5)
    max_total: Mapped[int] = mapped_column(Integer, default=100)
    max_in_flight: Mapped[int] = mapped_column(Integer, default=2)
    ranking: Mapped[str] = mapped_column(String(8), default="best")  # best | latest
    final_count: Mapped[int] = mapped_column(Integer, default=2)
    private_revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    reveal_at: Mapped[dt.datetime | None]  # the bundle's reveal time: the private board shows from then on (closed)
    allow_late: Mapped[bool] = mapped_column(Boolean, default=False)  # late uploads: scored, never ranked
    finals_recorded: Mapped[bool] = mapped_column(Boolean, default=False)  # automatic final picks written
    track_slugs: Mapped[str] = mapped_column(String(255), default="")  # comma-separated tracks open in this phase
    accepts_models: Mapped[bool] = mapped_column(Boolean, default=False)  # final stage: model archives (sandbox)
    require_method_for_final: Mapped[bool] = mapped_column(Boolean, default=False)  # a final pick needs a method name
    challenge: Mapped[Challenge] = relationship(back_populates="phases")

    def state(self, now: dt.datetime) -> str:
        """scheduled | open | closed | revealed: the state machine of arena/phases.py."""
        from .phases import state

        return state(self, now)

    def is_open(self, now: dt.datetime) -> bool:
        return self.state(now) == "open"

    def private_visible(self, now: dt.datetime) -> bool:
        return self.state(now) == "revealed"

    @property
    def tracks(self) -> list[str]:
        return [s for s in self.track_slugs.split(",") if s]


class Team(Base):
    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("challenge_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenge.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    invite_code: Mapped[str] = mapped_column(String(32), unique=True)
    captain_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="approved")  # pending | approved | banned
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    lock_version: Mapped[int] = mapped_column(Integer, default=0)  # bumped to serialise joins and submissions
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    challenge: Mapped[Challenge] = relationship()
    members: Mapped[list[Membership]] = relationship(back_populates="team")


class Membership(Base):
    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("challenge_id", "user_id"),)  # one team per user per challenge
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenge.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    rules_accepted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    team: Mapped[Team] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class Submission(Base):
    __tablename__ = "submission"
    __table_args__ = (Index("ix_submission_board", "phase_id", "track_id", "state"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    phase_id: Mapped[int] = mapped_column(ForeignKey("phase.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="submitted")
    original_name: Mapped[str] = mapped_column(String(255), default="")  # shown only; never used as a path
    stored_path: Mapped[str] = mapped_column(String(255), default="")  # relative to STORAGE_DIR
    sha256: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    note: Mapped[str] = mapped_column(String(500), default="")
    public_score: Mapped[float | None] = mapped_column(Float)
    private_score: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any] | None]  # {"public": {...}, "private": {...}}
    curve: Mapped[dict[str, Any] | None]  # public split only: PR curve (detection) or CMC (recognition)
    error: Mapped[str | None] = mapped_column(Text)  # participant-facing message
    error_line: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None]
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    baseline_name: Mapped[str | None] = mapped_column(String(100))
    selected_final: Mapped[bool] = mapped_column(Boolean, default=False)
    final_auto: Mapped[bool] = mapped_column(Boolean, default=False)  # the automatic final choice (phases.py)
    late: Mapped[bool] = mapped_column(Boolean, default=False)  # uploaded after its phase closed: never ranked
    disqualified_reason: Mapped[str | None] = mapped_column(String(500))
    # the method, as its team describes it (services/methods.py): shown on the boards and the submission page
    method_name: Mapped[str | None] = mapped_column(String(100))
    method_description: Mapped[str | None] = mapped_column(String(500))
    paper_url: Mapped[str | None] = mapped_column(String(500))
    code_url: Mapped[str | None] = mapped_column(String(500))
    team: Mapped[Team | None] = relationship()
    phase: Mapped[Phase] = relationship()
    track: Mapped[Track] = relationship()
    user: Mapped[User | None] = relationship()


class IntegrityFlag(Base):
    """A suspicion raised by the worker after scoring (integrity.py): two teams' submissions too alike. Organizers
    dismiss it or disqualify a submission, with a reason; both are audited."""

    __tablename__ = "integrity_flag"
    __table_args__ = (UniqueConstraint("kind", "submission_id", "other_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenge.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # identical_file | similar_predictions
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"))  # the later one
    other_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"))
    similarity: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | dismissed | disqualified
    reason: Mapped[str | None] = mapped_column(String(500))
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    resolved_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submission: Mapped[Submission] = relationship(foreign_keys=[submission_id])
    other: Mapped[Submission] = relationship(foreign_keys=[other_id])


class RankSnapshot(Base):
    """A team's public rank on one board from `at` on (written when it changes): the rank history."""

    __tablename__ = "rank_snapshot"
    __table_args__ = (Index("ix_rank_snapshot_board", "phase_id", "track_id", "team_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phase.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))  # None: the system
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    challenge_id: Mapped[int | None] = mapped_column(Integer, index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[User | None] = relationship()


class Notification(Base):
    __tablename__ = "notification"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    message: Mapped[str] = mapped_column(String(500))
    link: Mapped[str | None] = mapped_column(String(255))
    read: Mapped[bool] = mapped_column(Boolean, default=False)


# --------------------------------------------------------------------------------------------------- final stage


class TestImageSet(Base):
    """The hidden test images of a track, stored under storage/test_images for the sandboxed runner (read-only
    there); never served."""

    __tablename__ = "test_image_set"
    __test__ = False  # not a pytest class, whatever its name
    id: Mapped[int] = mapped_column(primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"), unique=True)
    stored_dir: Mapped[str] = mapped_column(String(255))  # relative to STORAGE_DIR
    num_images: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))  # of the sorted names and contents
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))


class ModelSubmission(Base):
    """A team's model archive, re-run by a sandboxed worker on the hidden images (arena/sandbox). It reproduces the
    team's uploaded predictions `submission_id`; it never counts against the team's limits."""

    __tablename__ = "model_submission"
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    phase_id: Mapped[int] = mapped_column(ForeignKey("phase.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id", ondelete="SET NULL"), index=True)
    original_name: Mapped[str] = mapped_column(String(255), default="")
    stored_path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]]
    device: Mapped[str] = mapped_column(String(16), default="cpu")  # what the job needs: cpu | cuda
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | finished | failed
    error: Mapped[str | None] = mapped_column(Text)  # the team-facing message
    log_tail: Mapped[str | None] = mapped_column(Text)  # the end of the model's output
    job_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[dict[str, Any] | None]  # the worker that ran it: host, advertised device
    scores: Mapped[dict[str, Any] | None]  # reproduced {"public": {...}, "private": {...}}
    speed: Mapped[dict[str, Any] | None]  # the speed test: images/s, ms/image, memory, model size, hardware
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    team: Mapped[Team | None] = relationship()
    phase: Mapped[Phase] = relationship()
    track: Mapped[Track] = relationship()
    submission: Mapped[Submission | None] = relationship()


class FinalCheck(Base):
    """The winner-verification checklist of one final submission: {item: {"checked", "by", "at"}}, ticked by
    organizers, each tick audited."""

    __tablename__ = "final_check"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), unique=True)
    items: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Standing(Base):
    """A stored board row (arena/standings.py): per phase × track × split, each visible team's chosen submission
    (best or latest, final picks, the tie-break of leaderboard.py) and every baseline, kept equal to
    `leaderboard.leaderboard()` in the transaction of each change that can move it. Ranks are counted on read."""

    __tablename__ = "standing"
    __table_args__ = (
        UniqueConstraint("phase_id", "track_id", "split", "team_id"),  # one row per team (NULL: baselines)
        UniqueConstraint("phase_id", "track_id", "split", "submission_id"),
        Index("ix_standing_board", "phase_id", "track_id", "split"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phase.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(8))  # public | private
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))  # None: a baseline
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))  # the team's name, or the baseline's
    score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, Any] | None]  # every metric of this split
    submitted_at: Mapped[dt.datetime]
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)


class StandingBoard(Base):
    """The version of one phase × track's stored standings: bumped (row-locked) by every refresh, so that writers
    of one board serialise and a reader can tell a board it has already built from a changed one."""

    __tablename__ = "standing_board"
    phase_id: Mapped[int] = mapped_column(ForeignKey("phase.id", ondelete="CASCADE"), primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TeamInvite(Base):
    """A captain's invitation of an email address to a team (services/invites.py): mailed as a signed link; it is
    pending until accepted or revoked."""

    __tablename__ = "team_invite"
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    team: Mapped[Team] = relationship()


# --------------------------------------------------------------------------------------------------- console


class Announcement(Base):
    """An organizers' message to every team of a challenge (arena/announcements.py): shown on the challenge page,
    sent in-app and by mail to each member when it is posted."""

    __tablename__ = "announcement"
    __table_args__ = (Index("ix_announcement_challenge", "challenge_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenge.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown, sanitised when shown
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    recipients: Mapped[int] = mapped_column(Integer, default=0)  # how many members it was sent to
    author: Mapped[User | None] = relationship()


AUDIT_ACTIONS = "action <> 'submission.state'"  # the audit events that are not a submission's state change

# the indexes that serve the organizer console's filtered, keyset-paginated lists (arena/console.py): each list
# walks one of them backwards by id, so a page costs a LIMIT however many rows the challenge holds
CONSOLE_INDEXES = (
    Index("ix_team_console", Team.challenge_id, Team.status, Team.id),
    Index("ix_submission_console_track", Submission.track_id, Submission.id),
    Index("ix_submission_console_state", Submission.state, Submission.id),
    Index("ix_submission_console_team", Submission.team_id, Submission.id),
    Index("ix_audit_console_challenge", AuditEvent.challenge_id, AuditEvent.id),
    Index("ix_audit_console_actor", AuditEvent.actor_id, AuditEvent.id),
    Index("ix_audit_console_action", AuditEvent.action, AuditEvent.id),
    Index("ix_audit_console_object", AuditEvent.object_type, AuditEvent.object_id, AuditEvent.id),
    # the default view of the log, people's actions: the state changes (most of the rows) are not in these indexes
    Index(
        "ix_audit_console_actions",
        AuditEvent.id,
        **{f"{d}_where": text(AUDIT_ACTIONS) for d in ("postgresql", "sqlite")},
    ),
    Index(
        "ix_audit_console_challenge_actions",
        AuditEvent.challenge_id,
        AuditEvent.id,
        **{f"{d}_where": text(AUDIT_ACTIONS) for d in ("postgresql", "sqlite")},
    ),
)
