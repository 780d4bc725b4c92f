"""The organizer console's lists: teams, submissions and the audit log of a challenge, filtered and paginated in
the database. Shared by the organizer pages (web_console.py) and the admin API (api_admin.py).

Paging is by keyset on the id, newest first: a page is `WHERE <filters> [AND id < before | id > after] ORDER BY id
DESC LIMIT size + 1` (the extra row only says whether another page follows), served by an index of the migration
0007 that ends with the id (`ix_*_console_*`), so page 1 and page 1,000 cost the same and no total is counted.
Whatever a page shows of each row (a submission's team and track, a team's member and submission counts) is loaded
in one query per page, never one per row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from . import states
from .contract import FormId, Model
from .errors import Invalid
from .models import AuditEvent, Challenge, Membership, Submission, Team, Track, User

PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
TEAM_STATES = ("pending", "approved", "banned", "hidden", "merged")  # status values, and two visibility filters
STATE_CHANGES = ("submission.state",)  # the automatic state changes the audit log shows apart
AUDIT_SCOPES = ("actions", "states", "all")  # organizer and participant actions | state changes | everything


def _blank_is_none(value):
    return None if value == "" else value


Blank = BeforeValidator(_blank_is_none)  # an empty field of a filter form (or ?state=) means no filter
OptionalId = Annotated[FormId | None, Blank]
OptionalText = Annotated[Annotated[str, Field(max_length=200)] | None, Blank]


class PageQuery(Model):
    """Paging of every console list: ?size= (at most MAX_PAGE_SIZE), ?before=<id> (older), ?after=<id> (newer)."""

    size: Annotated[Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] | None, Blank] = None
    before: OptionalId = None
    after: OptionalId = None


class TeamQuery(PageQuery):
    state: Annotated[Literal[TEAM_STATES] | None, Blank] = None  # type: ignore[valid-type]
    q: OptionalText = None


class SubmissionQuery(PageQuery):
    state: Annotated[Literal[states.STATES] | None, Blank] = None  # type: ignore[valid-type]
    team_id: OptionalId = None
    track: OptionalText = None
    phase: OptionalText = None
    since: Annotated[dt.date | None, Blank] = None  # created on or after this day (UTC)
    until: Annotated[dt.date | None, Blank] = None  # created on or before this day (UTC)


class AuditQuery(PageQuery):
    challenge: OptionalText = None  # a challenge's slug
    scope: Annotated[Literal[AUDIT_SCOPES], BeforeValidator(lambda v: v or "actions")] = "actions"  # type: ignore[valid-type]
    actor: OptionalText = None  # an email, or "system"
    kind: OptionalText = None  # an action ("team.ban") or its prefix ("team")
    object_type: OptionalText = None
    object_id: OptionalId = None


def _day(value: dt.date | None, plus: int = 0) -> dt.datetime | None:
    return None if value is None else dt.datetime(value.year, value.month, value.day) + dt.timedelta(days=plus)


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of a list, newest first: rows, and the keys of the pages around it (None: there is none)."""

    rows: list[Any]
    size: int
    before: int | None  # the next (older) page: ?before=<this>
    after: int | None  # the previous (newer) page: ?after=<this>


def page_size(size: int | None) -> int:
    if size is None:
        return PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise Invalid(f"the page size must be between 1 and {MAX_PAGE_SIZE}", field="size")
    return size


def _paginate(session: Session, query, id_col, size: int | None, before: int | None, after: int | None) -> Page:
    """Run a select of rows (newest first by id_col) one keyset page at a time (module docstring)."""
    size = page_size(size)
    if before is not None and after is not None:
        raise Invalid("give either before or after, not both", field="after")
    if after is not None:  # the previous page: the `size` rows just newer than `after`, read upwards
        rows = list(session.scalars(query.where(id_col > after).order_by(id_col.asc()).limit(size + 1)).unique())
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        return Page(rows, size, before=rows[-1].id if rows else after + 1, after=rows[0].id if more_newer else None)
    if before is not None:
        query = query.where(id_col < before)
    rows = list(session.scalars(query.order_by(id_col.desc()).limit(size + 1)).unique())
    more_older = len(rows) > size
    rows = rows[:size]
    return Page(
        rows,
        size,
        before=rows[-1].id if more_older else None,
        after=rows[0].id if before is not None and rows else None,
    )


# --------------------------------------------------------------------------------------------------- teams


@dataclasses.dataclass(frozen=True)
class TeamRow:
    team: Team
    members: int
    submissions: int

    @property
    def id(self) -> int:
        return self.team.id


def teams(
    session: Session,
    challenge: Challenge,
    *,
    state: str | None = None,
    q: str | None = None,
    size: int | None = None,
    before: int | None = None,
    after: int | None = None,
) -> Page:
    """The challenge's teams, newest first; state: a status (pending, approved, banned) or hidden or merged;
    q: part of the name (case-insensitive). Rows are TeamRow (members and submissions counted per page)."""
    query = select(Team).where(Team.challenge_id == challenge.id)
    if state:
        if state not in TEAM_STATES:
            raise Invalid(f"unknown team state '{state}'; choose one of {', '.join(TEAM_STATES)}", field="state")
        if state == "hidden":
            query = query.where(Team.hidden.is_(True))
        elif state == "merged":
            query = query.where(Team.merged_into_id.is_not(None))
        else:
            query = query.where(Team.status == state, Team.merged_into_id.is_(None))
    if q and q.strip():
        pattern = "%" + q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(func.lower(Team.name).like(pattern, escape="\\"))
    page = _paginate(session, query, Team.id, size, before, after)
    ids = [t.id for t in page.rows]
    members = dict(
        session.execute(
            select(Membership.team_id, func.count()).where(Membership.team_id.in_(ids)).group_by(Membership.team_id)
        ).all()
    )
    subs = dict(
        session.execute(
            select(Submission.team_id, func.count()).where(Submission.team_id.in_(ids)).group_by(Submission.team_id)
        ).all()
    )
    rows = [TeamRow(t, members.get(t.id, 0), subs.get(t.id, 0)) for t in page.rows]
    return dataclasses.replace(page, rows=rows)


# --------------------------------------------------------------------------------------------------- submissions


def submissions(
    session: Session,
    challenge: Challenge,
    *,
    state: str | None = None,
    team_id: int | None = None,
    track: str | None = None,
    phase: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    size: int | None = None,
    before: int | None = None,
    after: int | None = None,
) -> Page:
    """The challenge's submissions (every state, baselines included), newest first, by state, team, track slug,
    phase slug and creation time (since <= created_at < until). Each row's team, phase and track are loaded with
    the page."""
    phase_ids = [p.id for p in challenge.phases]
    query = select(Submission).options(
        joinedload(Submission.team), joinedload(Submission.phase), joinedload(Submission.track)
    )
    if phase:
        found = next((p for p in challenge.phases if p.slug == phase), None)
        if found is None:
            raise Invalid(f"challenge '{challenge.slug}' has no phase '{phase}'", field="phase")
        query = query.where(Submission.phase_id == found.id)
    else:
        query = query.where(Submission.phase_id.in_(phase_ids))
    if track:
        found = next((t for t in challenge.tracks if t.slug == track), None)
        if found is None:
            raise Invalid(f"challenge '{challenge.slug}' has no track '{track}'", field="track")
        query = query.where(Submission.track_id == found.id)
    if state:
        if state not in states.STATES:
            raise Invalid(f"unknown state '{state}'; choose one of {', '.join(states.STATES)}", field="state")
        query = query.where(Submission.state == state)
    if team_id is not None:
        query = query.where(Submission.team_id == team_id)
    if since is not None:
        query = query.where(Submission.created_at >= since)
    if until is not None:
        query = query.where(Submission.created_at < until)
    return _paginate(session, query, Submission.id, size, before, after)


# --------------------------------------------------------------------------------------------------- audit log


def audit(
    session: Session,
    *,
    challenge: Challenge | None = None,
    scope: str = "actions",
    actor: str | None = None,
    kind: str | None = None,
    object_type: str | None = None,
    object_id: int | None = None,
    size: int | None = None,
    before: int | None = None,
    after: int | None = None,
) -> Page:
    """Audit events, newest first. scope: actions (the default: what people did, without the state changes),
    states (only the submission state changes, automatic or not), all. actor: an email, or "system";
    kind: an action name ("team.ban") or its prefix ("team"); object_type and object_id: what it touched."""
    if scope not in AUDIT_SCOPES:
        raise Invalid(f"unknown scope '{scope}'; choose one of {', '.join(AUDIT_SCOPES)}", field="scope")
    query = select(AuditEvent).options(joinedload(AuditEvent.actor))
    if challenge is not None:
        query = query.where(AuditEvent.challenge_id == challenge.id)
    if scope == "actions":  # as a literal: the partial indexes of the actions (models.AUDIT_ACTIONS) then serve it
        query = query.where(AuditEvent.action != bindparam("state_change", STATE_CHANGES[0], literal_execute=True))
    elif scope == "states":
        query = query.where(AuditEvent.action.in_(STATE_CHANGES))
    if actor:
        if actor == "system":
            query = query.where(AuditEvent.actor_id.is_(None))
        else:
            user_id = session.scalar(select(User.id).where(func.lower(User.email) == actor.strip().lower()))
            if user_id is None:
                raise Invalid(f"no user with the email '{actor}'", field="actor")
            query = query.where(AuditEvent.actor_id == user_id)
    if kind:
        kind = kind.strip()
        query = query.where(AuditEvent.action == kind if "." in kind else AuditEvent.action.like(f"{kind}.%"))
    if object_type:
        query = query.where(AuditEvent.object_type == object_type.strip().lower())
    if object_id is not None:
        query = query.where(AuditEvent.object_id == object_id)
    return _paginate(session, query, AuditEvent.id, size, before, after)


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(map(str, value))
    else:
        text = str(value)
    return text if len(text) <= 40 else text[:16] + "…"  # a checksum, a long message: its start tells it apart


def changes(event: AuditEvent) -> list[str]:
    """An event's before/after as readable lines: "status: pending → banned" for a changed field, "name: Foo" for
    a field that only one side has, nothing for a field that did not change."""
    before, after = event.before or {}, event.after or {}
    lines = []
    for key in list(before) + [k for k in after if k not in before]:
        if key in before and key in after:
            if before[key] != after[key]:
                lines.append(f"{key}: {_show(before[key])} → {_show(after[key])}")
        elif key in after:
            lines.append(f"{key}: {_show(after[key])}")
        else:
            lines.append(f"{key}: {_show(before[key])} → removed")
    return lines


def team_page(session: Session, challenge: Challenge, query: TeamQuery) -> Page:
    return teams(session, challenge, **query.model_dump())


def submission_page(session: Session, challenge: Challenge, query: SubmissionQuery) -> Page:
    fields = query.model_dump()
    fields["since"], fields["until"] = _day(query.since), _day(query.until, plus=1)
    return submissions(session, challenge, **fields)


def audit_page(session: Session, query: AuditQuery) -> Page:
    fields = query.model_dump()
    slug = fields.pop("challenge")
    challenge = None
    if slug:
        challenge = session.scalar(select(Challenge).where(Challenge.slug == slug))
        if challenge is None:
            raise Invalid(f"no challenge '{slug}'", field="challenge")
    return audit(session, challenge=challenge, **fields)


def phase_and_track_ids(session: Session, challenge: Challenge) -> dict:
    """Every id an admin endpoint of the challenge needs: its phases, tracks and label versions."""
    from .labels import active_version_ids, versions

    return {
        "phases": [{"id": p.id, "slug": p.slug} for p in challenge.phases],
        "tracks": [
            {
                "id": t.id,
                "slug": t.slug,
                "labels": [{"id": v.id, "kind": v.kind, "version": v.version} for v in versions(session, t)],
                "active_labels": sorted(active_version_ids(t)),
            }
            for t in session.scalars(
                select(Track).where(Track.challenge_id == challenge.id).options(selectinload(Track.labels))
            )
        ],
    }
