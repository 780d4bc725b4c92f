"""The REST API under /api/v1: bearer-token auth, JSON in and out, errors as JSON with real status codes.

One contract per endpoint, declared once beside its route (flask-openapi3 on pydantic models): the request's models
are the view's typed arguments (`path`, `query`, `body`, `form`), validated before the view runs (a bad value is a
400 naming the field, contract.py); `out=` is the success response's model; `role=` says who may call it (checked
before any validation: 401 without a valid token, 403 for a participant on an organizer route). The OpenAPI
document served at /api/v1/openapi.json is generated from these declarations, never edited; /api/docs shows it.

To add an endpoint: declare its models here (or in the service's module when several use them), then

    @route("post", "/things/<int:thing_id>/poke", role=PARTICIPANT, out=ThingOut)
    def poke_thing(path: ThingPath, body: PokeIn):
        \"\"\"One line: the operation's summary in the document.\"\"\"
        thing = things.poke(get_session(), api_user(), path.thing_id, body.strength)  # thin: the service decides
        return {"id": thing.id, "pokes": thing.pokes}  # a dict the shape of ThingOut (the tests check it is)

The authorization matrix (tests/reliability/test_authorization.py) walks the route table and schemathesis reads
the generated document, so a new route is covered by both without being listed anywhere else.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Response, current_app, jsonify, request
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from pydantic import Field, RootModel
from sqlalchemy import select

from . import boards, integrity, labels, phases, states
from .auth import api_user
from .contract import Body, Credentials, Error, FormText, Model, RowId, UtcDateTime
from .db import get_session
from .errors import ArenaError, Invalid, NotFound
from .extensions import limiter, password_form_limits, upload_limit
from .leaderboard import rank_history
from .models import Challenge, IntegrityFlag, LabelVersion, Phase, Submission, Team, Track, utcnow
from .participants import challenge_links
from .services import accounts, admin, methods, submissions, teams

PUBLIC, PARTICIPANT, ORGANIZER = "public", "participant", "organizer"
ROLE_OF: dict[str, str] = {}  # endpoint -> the role its route declares (the route table the tests read)
_TAGS = {PUBLIC: Tag(name="public"), PARTICIPANT: Tag(name="participants"), ORGANIZER: Tag(name="organizers")}
_TOKEN = [{"token": []}]
_ERRORS = {PUBLIC: (400, 404, 409, 413, 429), PARTICIPANT: (400, 401, 403, 404, 409, 413, 429)}
_ERRORS[ORGANIZER] = _ERRORS[PARTICIPANT]

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")


def route(method: str, rule: str, *, role: str, status: int = 200, out: Any = None, conditional=False, **openapi):
    """Declare an API route: its method and rule, who may call it, its success status and response model;
    conditional: the response carries an ETag and If-None-Match may get a 304 with no body (boards.conditional)."""
    responses: dict = {status: out, **({304: None} if conditional else {}), **dict.fromkeys(_ERRORS[role], Error)}
    if role != PUBLIC:
        openapi["security"] = _TOKEN
    register = getattr(bp, method)(
        rule, responses=responses, tags=[_TAGS[role]], openapi_extensions={"x-role": role}, **openapi
    )

    def decorator(view):
        ROLE_OF[f"{bp.name}.{view.__name__}"] = role
        return register(view)

    return decorator


@bp.before_request
def _authorize():
    """The role a route declares, checked before its request is validated."""
    role = ROLE_OF.get(request.endpoint or "")
    if role in (PARTICIPANT, ORGANIZER):
        user = api_user()
        if role == ORGANIZER:
            admin.require_organizer(user)


@bp.errorhandler(ArenaError)
def _arena_error(exc: ArenaError):
    return jsonify(exc.to_dict()), exc.status


@bp.errorhandler(RecursionError)
def _too_deep(_exc: RecursionError):
    """A JSON body (or a multipart field decoded as JSON) nested deeper than the parser's recursion limit."""
    return jsonify(Invalid("the request is nested too deeply").to_dict()), 400


# HTTP errors (unknown routes and methods included) answer JSON under /api/: arena/frontend.py's app-level handler.
ROLE_OF[f"{bp.name}.openapi_document"] = PUBLIC


@bp.get("/openapi.json", doc_ui=False)
def openapi_document():
    """The generated OpenAPI document (also at /api/docs/openapi.json, which the interactive docs read)."""
    return jsonify(current_app.api_doc)


# --------------------------------------------------------------------------------------------------- accounts


class RegisterIn(Credentials):
    display_name: str | None = Field(None, max_length=100)  # what other participants see (accounts.py's rules)


class TokenIn(Credentials):
    name: str = Field("api", max_length=100)


class Registered(Model):
    message: str


class UserOut(Model):
    id: int
    email: str
    display_name: str | None
    verified: bool
    organizer: bool


def user_out(user) -> dict:
    """The caller's own account (the only answer that carries an email)."""
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "verified": user.verified,
        "organizer": user.is_organizer,
    }


class TokenOut(Model):
    id: int
    name: str
    token: str


class TokenPath(Model):
    token_id: int


@route("post", "/register", role=PUBLIC, status=202, out=Registered)
@password_form_limits()
def register(body: RegisterIn):
    """Create an account (a verification link is mailed); the answer is alike whether the email was new (a taken
    display name is said: names are public)."""
    accounts.register_quietly(get_session(), body.email, body.password, body.display_name)
    return {"message": accounts.REGISTERED}, 202


@route("post", "/tokens", role=PUBLIC, status=201, out=TokenOut)
@password_form_limits()
def create_token(body: TokenIn):
    """Exchange email and password for a new API token (it expires; a password reset revokes it)."""
    session = get_session()
    user = accounts.authenticate(session, body.email, body.password)
    token, plaintext = accounts.create_api_token(session, user, body.name)
    return _token_out(token, plaintext), 201


def _token_out(token, plaintext: str) -> dict:
    return {"id": token.id, "name": token.name, "token": plaintext}


@route("delete", "/tokens/<int:token_id>", role=PARTICIPANT, status=204)
def revoke_token(path: TokenPath):
    """Revoke one of your tokens."""
    accounts.revoke_token(get_session(), api_user(), path.token_id)
    return "", 204


@route("get", "/me", role=PARTICIPANT, out=UserOut)
def me():
    """The token's user."""
    return user_out(api_user())


# --------------------------------------------------------------------------------------------------- challenges


class SlugPath(Model):
    slug: str


class TrackOut(Model):
    slug: str
    kind: str
    title: str
    metric: str


class LimitsOut(Model):
    per_day: int
    total: int
    in_flight: int


PhaseState = Literal[phases.STATES]  # type: ignore[valid-type]


class PhaseOut(Model):
    slug: str
    title: str
    starts_at: str
    ends_at: str
    open: bool
    state: PhaseState
    late_submissions: bool
    reveal_at: str | None
    tracks: list[str] | None
    limits: LimitsOut


class QuotaOut(Model):
    """What the team may still upload in a phase (the limits count the phase's tracks together); resets_at: the
    next 00:00 UTC, when the daily count starts again."""

    phase: str
    track: str
    per_day: int
    used_today: int
    left_today: int
    total: int
    used_total: int
    left_total: int
    max_in_flight: int
    in_flight: int
    left_in_flight: int
    left: int
    resets_at: str


class ChallengeOut(Model):
    slug: str
    title: str
    team_size: int
    tracks: list[TrackOut]
    phases: list[PhaseOut]
    links: dict[str, str]  # data, starter_kit (an address or a path in the platform's repository), api_docs
    quota: list[QuotaOut] | None = None  # with a member's token: the team's quota per phase and track


class ChallengeList(RootModel[list[ChallengeOut]]):
    pass


def _challenge_out(challenge: Challenge) -> dict:
    return {
        "slug": challenge.slug,
        "title": challenge.title,
        "team_size": challenge.team_size,
        "links": challenge_links(challenge),
        "tracks": [{"slug": t.slug, "kind": t.kind, "title": t.title, "metric": t.metric} for t in challenge.tracks],
        "phases": [
            {
                "slug": p.slug,
                "title": p.title,
                "starts_at": p.starts_at.isoformat() + "Z",
                "ends_at": p.ends_at.isoformat() + "Z",
                "open": p.is_open(utcnow()),
                "state": p.state(utcnow()),
                "late_submissions": p.allow_late,
                "reveal_at": p.reveal_at.isoformat() + "Z" if p.reveal_at else None,
                "tracks": p.tracks,
                "limits": {"per_day": p.max_per_day, "total": p.max_total, "in_flight": p.max_in_flight},
            }
            for p in challenge.phases
        ],
    }


@route("get", "/challenges", role=PUBLIC, out=ChallengeList)
def list_challenges():
    """All challenges with their tracks and phases."""
    return jsonify([_challenge_out(c) for c in get_session().scalars(select(Challenge).order_by(Challenge.id))])


@route("get", "/challenges/<slug>", role=PUBLIC, out=ChallengeOut)
def get_challenge(path: SlugPath):
    """One challenge; with a member's token, also the team's quota (submissions left) per phase and track."""
    from .auth import current_user
    from .participants import team_quotas

    challenge = boards.find_challenge(path.slug)
    out = _challenge_out(challenge)
    team = teams.user_team(get_session(), current_user(), challenge)
    if team is not None:
        out["quota"] = team_quotas(get_session(), team, utcnow())
    return out


# --------------------------------------------------------------------------------------------------- teams


class MemberOut(Model):
    """A teammate as the team sees them: the display name, never the email."""

    id: int
    display_name: str


class TeamOut(Model):
    id: int
    name: str
    status: str
    captain_id: int | None
    members: list[MemberOut]
    invite_code: str


class CreateTeamIn(Body):
    name: str = Field(max_length=200)
    accept_rules: bool


class JoinIn(Body):
    invite_code: str = Field(max_length=200)
    accept_rules: bool


class MergeIn(Body):
    invite_code: str = Field(max_length=200)


class CaptainIn(Body):
    user_id: RowId


class TeamPath(Model):
    team_id: int


class MemberPath(TeamPath):
    user_id: int


def _team_out(team: Team) -> dict:
    return {
        "id": team.id,
        "name": team.name,
        "status": team.status,
        "captain_id": team.captain_id,
        "members": [{"id": m.user_id, "display_name": m.user.shown_name} for m in team.members],
        "invite_code": team.invite_code,
    }


@route("post", "/challenges/<slug>/teams", role=PARTICIPANT, status=201, out=TeamOut)
def create_team(path: SlugPath, body: CreateTeamIn):
    """Accept the rules and create a team (you become its captain)."""
    challenge = boards.find_challenge(path.slug)
    return _team_out(teams.create_team(get_session(), api_user(), challenge, body.name, body.accept_rules)), 201


@route("post", "/challenges/<slug>/join", role=PARTICIPANT, out=TeamOut)
def join_team(path: SlugPath, body: JoinIn):
    """Accept the rules and join a team by its invite code."""
    challenge = boards.find_challenge(path.slug)
    return _team_out(teams.join_team(get_session(), api_user(), challenge, body.invite_code, body.accept_rules))


@route("get", "/challenges/<slug>/team", role=PARTICIPANT, out=TeamOut)
def my_team(path: SlugPath):
    """Your team in this challenge."""
    team = teams.user_team(get_session(), api_user(), boards.find_challenge(path.slug))
    if team is None:
        raise NotFound("you have no team in this challenge")
    return _team_out(team)


@route("post", "/teams/<int:team_id>/members/<int:user_id>/remove", role=PARTICIPANT, status=204)
def remove_member(path: MemberPath):
    """Captain: remove a member."""
    teams.remove_member(get_session(), api_user(), path.team_id, path.user_id)
    return "", 204


@route("post", "/teams/<int:team_id>/captain", role=PARTICIPANT, status=204)
def transfer_captain(path: TeamPath, body: CaptainIn):
    """Captain: hand over captaincy."""
    teams.transfer_captaincy(get_session(), api_user(), path.team_id, body.user_id)
    return "", 204


@route("post", "/teams/<int:team_id>/merge", role=PARTICIPANT, out=TeamOut)
def merge_team(path: TeamPath, body: MergeIn):
    """Captain: merge your team into the team with this invite code."""
    return _team_out(teams.merge_teams(get_session(), api_user(), path.team_id, body.invite_code))


# --------------------------------------------------------------------------------------------------- submissions


class SubmissionOut(Model):
    """A submission as its team sees it (services.submissions.public_view)."""

    id: int
    state: Literal[states.STATES]  # type: ignore[valid-type]
    phase: str
    track: str
    file_name: str | None
    size: int | None
    sha256: str | None
    note: str | None
    created_at: str
    finished_at: str | None
    metric: str
    public_score: float | None
    scores: dict[str, Any] | None
    error: str | None
    error_line: int | None
    selected_final: bool
    final_auto: bool
    late: bool
    phase_state: PhaseState
    disqualified_reason: str | None
    is_baseline: bool
    method: dict[str, str | None] | None = None  # name, description, paper_url, code_url (services/methods.py)


class FinalOut(SubmissionOut):
    message: str  # what the pick did, in words


class SubmissionList(RootModel[list[SubmissionOut]]):
    pass


class UploadForm(Model):
    file: FileStorage  # first: a missing file is the error named
    phase: FormText = Field(max_length=64)
    track: FormText = Field(max_length=64)
    note: FormText = Field("", max_length=500)
    method_name: FormText = Field("", max_length=100)
    method_description: FormText = Field("", max_length=500)
    paper_url: FormText = Field("", max_length=500)
    code_url: FormText = Field("", max_length=500)


class SubmissionPath(Model):
    submission_id: int


class FinalIn(Body):
    selected: bool = True


@route("post", "/challenges/<slug>/submissions", role=PARTICIPANT, status=202, out=SubmissionOut)
@limiter.limit(upload_limit)
def submit(path: SlugPath, form: UploadForm):
    """Upload a submission; it is scored by a worker."""
    challenge = boards.find_challenge(path.slug)
    method = methods.clean(form.method_name, form.method_description, form.paper_url, form.code_url)
    sub = submissions.submit(
        get_session(),
        api_user(),
        challenge,
        form.phase,
        form.track,
        form.file.stream,
        form.file.filename,
        form.note,
        method,
    )
    return submissions.public_view(sub), 202


@route("get", "/challenges/<slug>/submissions", role=PARTICIPANT, out=SubmissionList)
def my_submissions(path: SlugPath):
    """Your team's submissions."""
    rows = submissions.team_submissions(get_session(), api_user(), boards.find_challenge(path.slug))
    return jsonify([submissions.public_view(s) for s in rows])


@route("get", "/submissions/<int:submission_id>", role=PARTICIPANT, out=SubmissionOut)
def get_submission(path: SubmissionPath):
    """A submission of your team: state, public scores, error and line."""
    return submissions.public_view(submissions.visible_submission(get_session(), api_user(), path.submission_id))


@route("post", "/submissions/<int:submission_id>/cancel", role=PARTICIPANT, out=SubmissionOut)
def cancel_submission(path: SubmissionPath):
    """Cancel a queued submission (refunded)."""
    return submissions.public_view(submissions.cancel(get_session(), api_user(), path.submission_id))


@route("post", "/submissions/<int:submission_id>/final", role=PARTICIPANT, out=FinalOut)
def select_final(path: SubmissionPath, body: FinalIn):
    """Pick (or unpick) a final submission for the private board; `message` says what the pick did."""
    session, user = get_session(), api_user()
    before = submissions.final_picks(session, submissions.visible_submission(session, user, path.submission_id))
    sub = submissions.select_final(session, user, path.submission_id, body.selected)
    return {**submissions.public_view(sub), "message": submissions.final_confirmation(session, sub, before)}


# --------------------------------------------------------------------------------------------------- leaderboards


class BoardPath(SlugPath):
    phase_slug: str
    track_slug: str


class HistoryPath(BoardPath):
    team_id: int


class BoardQuery(Model):
    split: Literal["public", "private", "late"] = "public"
    format: Literal["json", "csv"] = "json"
    offset: int = Field(0, ge=0, description="the first row answered (JSON; 0: the top)")
    limit: int | None = Field(None, ge=1, le=10_000, description="at most this many rows (JSON; default: all)")


class BoardRow(Model):
    rank: int | None
    name: str
    team_id: int | None
    submission_id: int
    score: float
    baseline: bool
    submitted_at: str | None
    scores: dict[str, Any] | None
    entries: int | None = None  # the team's counted submissions on this board (failed and cancelled: refunded)
    last_submission_at: str | None = None
    members: list[str] | None = None  # display names, never emails
    method: dict[str, str | None] | None = None


class BoardOut(Model):
    split: str
    metric: str
    phase_state: PhaseState
    total: int  # the board's rows in all: `rows` is rows offset .. offset + limit of them
    offset: int
    rows: list[BoardRow]


class RankPoint(Model):
    at: str
    rank: int | None
    score: float | None


class RankHistory(RootModel[list[RankPoint]]):
    pass


@route(
    "get",
    "/challenges/<slug>/phases/<phase_slug>/tracks/<track_slug>/leaderboard",
    role=PUBLIC,
    out=BoardOut,
    conditional=True,
)
def get_leaderboard(path: BoardPath, query: BoardQuery) -> Response:
    """A leaderboard (split=public|private|late; format=json|csv); late submissions are listed unranked; conditional
    on its ETag (If-None-Match: 304)."""
    board, phase_state = boards.read_board(path.slug, path.phase_slug, path.track_slug, query.split)
    if query.format == "csv":
        return boards.csv_response(board, f"{path.slug}-{path.phase_slug}-{path.track_slug}-{query.split}.csv")
    return boards.json_board(board, phase_state, query.offset, query.limit)


@route(
    "get",
    "/challenges/<slug>/phases/<phase_slug>/tracks/<track_slug>/history/<int:team_id>",
    role=PUBLIC,
    out=RankHistory,
)
def get_rank_history(path: HistoryPath):
    """A team's public rank history."""
    session = get_session()
    phase, track = submissions.phase_and_track(
        session, boards.find_challenge(path.slug), path.phase_slug, path.track_slug
    )
    team = session.get(Team, path.team_id)
    if team is None or team.hidden or team.challenge_id != phase.challenge_id:
        raise NotFound(f"no team {path.team_id}")
    points = rank_history(session, phase, track, path.team_id)
    return jsonify([{"at": s.at.isoformat() + "Z", "rank": s.rank, "score": s.score} for s in points])


# --------------------------------------------------------------------------------------------------- organizers


class PhasePath(Model):
    phase_id: int


class TrackPath(Model):
    track_id: int


class ModeratePath(TeamPath):
    action: Literal[admin.TEAM_ACTIONS]  # type: ignore[valid-type]


class PhaseChanges(Body):
    model_config = {"extra": "forbid"}

    starts_at: UtcDateTime | None = None
    ends_at: UtcDateTime | None = None
    closed: bool | None = None
    private_revealed: bool | None = None
    reason: str | None = Field(None, max_length=500)


class PhaseStateOut(Model):
    id: int
    state: PhaseState
    starts_at: str
    ends_at: str
    closed: bool
    private_revealed: bool
    finals_recorded: bool


class LabelsForm(Model):
    file: FileStorage
    kind: FormText = Field(max_length=64)


class LabelOut(Model):
    """A version of a hidden label file; `active` says whether scoring uses it now."""

    id: int
    kind: str
    version: int
    name: str
    sha256: str
    size: int
    num_images: int | None
    active: bool
    uploaded_at: str


class LabelList(RootModel[list[LabelOut]]):
    pass


class LabelVersionPath(Model):
    version_id: int


class ActivateIn(Body):
    dry_run: bool = False
    reason: str | None = Field(None, max_length=500)


class LabelDiffOut(Model):
    kind: str
    version: int
    active_version: int | None
    is_active: bool
    changes: dict[str, Any]


class ActivateOut(Model):
    diff: LabelDiffOut
    activated: bool
    restored: int
    rescoring: int


class ReasonIn(Body):
    reason: str | None = Field(None, max_length=500)


RescorableState = Literal[tuple(sorted(states.RESCORABLE))]  # type: ignore[valid-type]


class RescoreIn(ReasonIn):
    states: list[RescorableState] | None = None  # default: every finished, failed and unscorable submission
    team_id: RowId | None = None


class RescoreOut(Model):
    rescoring: int


class TeamStateOut(Model):
    id: int
    status: str
    hidden: bool
    message: str  # what was done, e.g. "Team 'Foo' banned: its 3 finished submissions leave the boards (...)."


class BaselineForm(Model):
    file: FileStorage
    challenge: FormText = Field(max_length=64)
    phase: FormText = Field(max_length=64)
    track: FormText = Field(max_length=64)
    name: FormText = Field(max_length=200)
    note: FormText = Field("", max_length=500)
    method_name: FormText = Field("", max_length=100)  # the board's method column, as for participants' uploads
    method_description: FormText = Field("", max_length=500)
    paper_url: FormText = Field("", max_length=500)
    code_url: FormText = Field("", max_length=500)


@route("patch", "/admin/phases/<int:phase_id>", role=ORGANIZER, out=PhaseStateOut)
def update_phase(path: PhasePath, body: PhaseChanges):
    """Organizer: open, close, extend a phase or reveal its private board (only once it is closed; audited)."""
    session = get_session()
    phase = admin.get_or_404(session, Phase, path.phase_id)
    changes = body.model_dump(exclude_unset=True, exclude={"reason"})
    admin.update_phase(session, api_user(), phase, changes, body.reason)
    return {
        "id": phase.id,
        "state": phase.state(utcnow()),
        "starts_at": phase.starts_at.isoformat() + "Z",
        "ends_at": phase.ends_at.isoformat() + "Z",
        "closed": phase.closed,
        "private_revealed": phase.private_revealed,
        "finals_recorded": phase.finals_recorded,
    }


def _label_out(version: LabelVersion, track: Track) -> dict:
    return {
        "id": version.id,
        "kind": version.kind,
        "version": version.version,
        "name": version.original_name,
        "sha256": version.sha256,
        "size": version.size,
        "num_images": version.num_images,
        "active": version.id in labels.active_version_ids(track),
        "uploaded_at": version.uploaded_at.isoformat() + "Z",
    }


@route("post", "/admin/tracks/<int:track_id>/labels", role=ORGANIZER, status=201, out=LabelOut)
def upload_labels(path: TrackPath, form: LabelsForm):
    """Organizer: upload hidden labels as a new version (active at once only if it is the first of its kind)."""
    session = get_session()
    track = admin.get_or_404(session, Track, path.track_id)
    version = admin.store_labels(
        session, track, form.kind, form.file.stream, actor_id=api_user().id, filename=form.file.filename
    )
    session.refresh(track)
    return _label_out(version, track), 201


@route("get", "/admin/tracks/<int:track_id>/labels", role=ORGANIZER, out=LabelList)
def list_labels(path: TrackPath):
    """Organizer: every version of the track's hidden labels, newest first per kind."""
    session = get_session()
    track = admin.get_or_404(session, Track, path.track_id)
    return jsonify([_label_out(v, track) for v in labels.versions(session, track)])


@route("post", "/admin/labels/<int:version_id>/activate", role=ORGANIZER, out=ActivateOut)
def activate_labels(path: LabelVersionPath, body: ActivateIn):
    """Organizer: the diff against the active version (dry_run: only that), else make it active (reason needed)."""
    session = get_session()
    version = admin.get_or_404(session, LabelVersion, path.version_id)
    return admin.activate_labels(session, api_user(), version, body.reason, dry_run=body.dry_run)


@route("post", "/admin/tracks/<int:track_id>/rescore", role=ORGANIZER, status=202, out=RescoreOut)
def rescore(path: TrackPath, body: RescoreIn):
    """Organizer: rescore a set of submissions: all finished, failed and unscorable ones, or by state, by team."""
    session = get_session()
    track = admin.get_or_404(session, Track, path.track_id)
    reason = body.reason or "rescore requested"
    count = admin.rescore_track(
        session, track, api_user().id, reason, states_=tuple(body.states) if body.states else None, team_id=body.team_id
    )
    return {"rescoring": count}, 202


class FlagOut(Model):
    """An integrity flag: two teams' submissions too alike, with the evidence."""

    id: int
    kind: Literal[integrity.IDENTICAL, integrity.SIMILAR]  # type: ignore[valid-type]
    status: Literal[integrity.OPEN, integrity.DISMISSED, integrity.DISQUALIFIED]  # type: ignore[valid-type]
    similarity: float
    evidence: dict[str, Any]
    submission_id: int
    other_id: int
    teams: list[str | None]
    phase: str
    track: str
    reason: str | None
    created_at: str


class FlagList(RootModel[list[FlagOut]]):
    pass


class FlagQuery(Model):
    status: Literal["open", "dismissed", "disqualified", "all"] = "open"


class FlagPath(Model):
    flag_id: int
    action: Literal["dismiss", "disqualify"]


class ResolveIn(ReasonIn):
    submission_id: RowId | None = None  # disqualify: which of the two (default: the later one)


@route("get", "/admin/challenges/<slug>/flags", role=ORGANIZER, out=FlagList)
def list_flags(path: SlugPath, query: FlagQuery):
    """Organizer: the integrity queue (identical files, near-identical predictions across teams)."""
    challenge = boards.find_challenge(path.slug)
    status = None if query.status == "all" else query.status
    return jsonify([integrity.view(f) for f in integrity.queue(get_session(), challenge.id, status)])


@route("post", "/admin/flags/<int:flag_id>/<action>", role=ORGANIZER, out=FlagOut)
def resolve_flag(path: FlagPath, body: ResolveIn):
    """Organizer: dismiss a flag, or disqualify one of its submissions (reason needed; audited)."""
    session = get_session()
    flag = admin.get_or_404(session, IntegrityFlag, path.flag_id)
    return integrity.view(integrity.resolve(session, api_user(), flag, path.action, body.reason, body.submission_id))


@route("post", "/admin/teams/<int:team_id>/<action>", role=ORGANIZER, out=TeamStateOut)
def moderate_team(path: ModeratePath, body: ReasonIn):
    """Organizer: approve, ban, unban, hide or unhide a team, as its state allows (else a 409; reason needed)."""
    session = get_session()
    team, message = admin.moderate(
        session, api_user(), admin.get_or_404(session, Team, path.team_id), path.action, body.reason
    )
    return {"id": team.id, "status": team.status, "hidden": team.hidden, "message": message}


@route("post", "/admin/submissions/<int:submission_id>/disqualify", role=ORGANIZER, out=SubmissionOut)
def disqualify(path: SubmissionPath, body: ReasonIn):
    """Organizer: disqualify a submission."""
    session = get_session()
    sub = admin.get_or_404(session, Submission, path.submission_id)
    return submissions.public_view(admin.disqualify(session, api_user(), sub, body.reason))


@route("post", "/admin/baselines", role=ORGANIZER, status=202, out=SubmissionOut)
def post_baseline(form: BaselineForm):
    """Organizer: post a baseline submission (a marked row on the boards)."""
    session = get_session()
    phase, track = submissions.phase_and_track(session, boards.find_challenge(form.challenge), form.phase, form.track)
    method = methods.clean(form.method_name, form.method_description, form.paper_url, form.code_url)
    sub = admin.post_baseline(
        session, api_user(), phase, track, form.file.stream, form.file.filename, form.name, form.note, method
    )
    return submissions.public_view(sub), 202


# --------------------------------------------------------------------------------------------------- final stage


class ModelForm(Model):
    file: FileStorage  # first: a missing file is the error named
    phase: FormText = Field(max_length=64)
    track: FormText = Field(max_length=64)
    submission_id: RowId
    device: Literal["cpu", "cuda"] = "cpu"


class ModelPath(Model):
    model_id: int


class ModelOut(Model):
    """A model run (arena/sandbox): what its team sees; an organizer sees the whole reproduction."""

    id: int
    state: Literal["queued", "running", "finished", "failed"]
    phase: str
    track: str
    submission_id: int | None
    file_name: str
    size: int
    sha256: str
    device: str
    manifest: dict[str, Any]
    error: str | None
    log_tail: str | None
    worker: dict[str, Any] | None
    created_at: str
    finished_at: str | None
    reproduction: dict[str, Any]


@route("post", "/challenges/<slug>/models", role=PARTICIPANT, status=202, out=ModelOut)
@limiter.limit(upload_limit)
def submit_model(path: SlugPath, form: ModelForm):
    """Hand in a model archive that reproduces a finished submission; a sandboxed worker re-runs and times it."""
    from .sandbox import service as final

    user = api_user()
    model = final.submit_model(
        get_session(),
        user,
        boards.find_challenge(path.slug),
        form.phase,
        form.track,
        form.file.stream,
        form.file.filename,
        form.submission_id,
        form.device,
    )
    return final.model_view(model, user.is_organizer), 202


@route("get", "/models/<int:model_id>", role=PARTICIPANT, out=ModelOut)
def get_model(path: ModelPath):
    """A model run of your team: state, error and the tail of its output, speed test, reproduction."""
    from .sandbox import service as final

    user = api_user()
    return final.model_view(final.visible_model(get_session(), user, path.model_id), user.is_organizer)


from . import api_participants  # noqa: E402,F401  the participants' endpoints of issue 15, on this blueprint
