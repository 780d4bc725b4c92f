"""The authorization matrix: every API endpoint × (anonymous, a member of another team, a member of the owning team,
an organizer) gives the right status, and nothing of one team reaches another. Objects belong to team Alpha, whose
captain is the `member`; `other` captains team Beta in the same challenge; the organizer has no team. A test also
checks that every route of the API is in the matrix, so a new endpoint cannot slip past it."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from arena.models import Phase, Submission, Track
from arena.services import teams
from arena_testkit import PASSWORD, load_challenge, make_user, token_for, upload

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(300)]
ROLES = ("anonymous", "other", "member", "organizer")
ORGANIZERS_ONLY = {"anonymous": 401, "other": 403, "member": 403, "organizer": 200}


@dataclass(frozen=True)
class World:
    headers: dict[str, dict]
    ids: dict[str, int]
    invite_beta: str


@pytest.fixture
def world(make_world) -> World:
    return make_world()


@pytest.fixture
def make_world(app, client, db, data):
    """make_world() -> a fresh World (the database emptied first)."""
    from arena.models import Base
    from sqlalchemy import text

    def _make() -> World:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        db.rollback()
        db.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.commit()
        return _build(app, client, db, data)

    return _make


def _build(app, client, db, data) -> World:
    challenge = load_challenge(db, data, per_day=100, total=100, in_flight=100)
    alice, bob, mate = (make_user(db, f"{n}@example.com") for n in ("alice", "bob", "mate"))
    organizer = make_user(db, "org@example.com", organizer=True)
    alpha = teams.create_team(db, alice, challenge, "Alpha", True)
    teams.join_team(db, mate, challenge, alpha.invite_code, True)
    beta = teams.create_team(db, bob, challenge, "Beta", True)
    headers = {"anonymous": {}, "member": token_for(db, alice), "other": token_for(db, bob)}
    headers["organizer"] = token_for(db, organizer)
    sub_id = upload(client, headers["member"], data.detection_csv()).get_json()["id"]
    from arena.models import ApiToken, LabelVersion

    ids = {
        "team": alpha.id,
        "mate": mate.id,
        "sub": sub_id,
        "phase": db.query(Phase).one().id,
        "track": db.query(Track).filter(Track.slug == "detection").one().id,
        "token": db.query(ApiToken).filter(ApiToken.user_id == alice.id).one().id,
        "label": db.query(LabelVersion).filter(LabelVersion.kind == "detection_gt").one().id,
        "model": _model_run(db, alpha, alice, sub_id),
        "invite": _invite(db, alpha, alice),
    }
    return World(headers, ids, beta.invite_code)


def _model_run(db, team, user, sub_id: int) -> int:
    """A model run of Alpha's submission (the final stage), as the upload leaves it: queued."""
    from arena.models import ModelSubmission

    sub = db.get(Submission, sub_id)
    model = ModelSubmission(
        team_id=team.id,
        user_id=user.id,
        phase_id=sub.phase_id,
        track_id=sub.track_id,
        submission_id=sub.id,
        stored_path="models/none.upload",
        sha256="0" * 64,
        size=1,
        manifest={},
    )
    db.add(model)
    db.commit()
    return model.id


def _invite(db, team, captain) -> int:
    """A pending email invite of Alpha's."""
    from arena.models import TeamInvite

    invite = TeamInvite(team_id=team.id, email="invited@example.com", invited_by_id=captain.id)
    db.add(invite)
    db.commit()
    return invite.id


def _file(content: bytes = b"x\n", name: str = "f.csv"):
    return (io.BytesIO(content), name)


# name: (method, path, body maker or None, {role: expected status})
# A body maker takes (world, data) and returns request kwargs.
ENDPOINTS = {
    "submit-model": (  # the tiny challenge's phase takes no models: refused before the archive is read
        "post",
        "/api/v1/challenges/tiny/models",
        lambda w, d, role: {
            "data": {"phase": "dev", "track": "detection", "submission_id": str(w.ids["sub"]), "file": _file()},
            "content_type": "multipart/form-data",
        },
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 403},
    ),
    "get-model": (
        "get",
        "/api/v1/models/{model}",
        None,
        {"anonymous": 401, "other": 404, "member": 200, "organizer": 200},
    ),
    "openapi": ("get", "/api/v1/openapi.json", None, dict.fromkeys(ROLES, 200)),
    "register": (
        "post",
        "/api/v1/register",
        lambda w, d, role: {"json": {"email": f"new-{role}@example.com", "password": "long enough pass"}},
        dict.fromkeys(ROLES, 202),
    ),
    "token-bad-password": (
        "post",
        "/api/v1/tokens",
        lambda w, d, role: {"json": {"email": "alice@example.com", "password": "wrong password!"}},
        dict.fromkeys(ROLES, 401),
    ),
    "revoke-token": (
        "delete",
        "/api/v1/tokens/{token}",
        None,
        {"anonymous": 401, "other": 404, "member": 204, "organizer": 404},
    ),
    "me": ("get", "/api/v1/me", None, {"anonymous": 401, "other": 200, "member": 200, "organizer": 200}),
    "challenges": ("get", "/api/v1/challenges", None, dict.fromkeys(ROLES, 200)),
    "challenge": ("get", "/api/v1/challenges/tiny", None, dict.fromkeys(ROLES, 200)),
    "create-team": (
        "post",
        "/api/v1/challenges/tiny/teams",
        lambda w, d, role: {"json": {"name": f"New {role}", "accept_rules": True}},
        {"anonymous": 401, "other": 409, "member": 409, "organizer": 201},
    ),
    "join-beta": (
        "post",
        "/api/v1/challenges/tiny/join",
        lambda w, d, role: {"json": {"invite_code": w.invite_beta, "accept_rules": True}},
        {"anonymous": 401, "other": 409, "member": 409, "organizer": 200},
    ),
    "my-team": (
        "get",
        "/api/v1/challenges/tiny/team",
        None,
        {"anonymous": 401, "other": 200, "member": 200, "organizer": 404},
    ),
    "remove-member": (
        "post",
        "/api/v1/teams/{team}/members/{mate}/remove",
        None,
        {"anonymous": 401, "other": 404, "member": 204, "organizer": 404},  # 404: a team is private to its members
    ),
    "hand-over-captaincy": (
        "post",
        "/api/v1/teams/{team}/captain",
        lambda w, d, role: {"json": {"user_id": w.ids["mate"]}},
        {"anonymous": 401, "other": 404, "member": 204, "organizer": 404},
    ),
    "merge-into-beta": (
        "post",
        "/api/v1/teams/{team}/merge",
        lambda w, d, role: {"json": {"invite_code": w.invite_beta}},
        {"anonymous": 401, "other": 404, "member": 200, "organizer": 404},
    ),
    "submit": (
        "post",
        "/api/v1/challenges/tiny/submissions",
        lambda w, d, role: {
            "data": {"phase": "dev", "track": "detection", "file": _file(d.detection_csv())},
            "content_type": "multipart/form-data",
        },
        {"anonymous": 401, "other": 202, "member": 202, "organizer": 403},
    ),
    "list-submissions": (
        "get",
        "/api/v1/challenges/tiny/submissions",
        None,
        {"anonymous": 401, "other": 200, "member": 200, "organizer": 200},
    ),
    "get-submission": (
        "get",
        "/api/v1/submissions/{sub}",
        None,
        {"anonymous": 401, "other": 404, "member": 200, "organizer": 200},
    ),
    "cancel-submission": (
        "post",
        "/api/v1/submissions/{sub}/cancel",
        None,
        {"anonymous": 401, "other": 404, "member": 200, "organizer": 200},
    ),
    "pick-final": (
        "post",
        "/api/v1/submissions/{sub}/final",
        lambda w, d, role: {"json": {"selected": True}},
        {"anonymous": 401, "other": 404, "member": 409, "organizer": 409},  # 409: it is not scored yet
    ),
    "public-board": (
        "get",
        "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard",
        None,
        dict.fromkeys(ROLES, 200),
    ),
    "private-board": (
        "get",
        "/api/v1/challenges/tiny/phases/dev/tracks/detection/leaderboard?split=private",
        None,
        {"anonymous": 403, "other": 403, "member": 403, "organizer": 200},
    ),
    "rank-history": (
        "get",
        "/api/v1/challenges/tiny/phases/dev/tracks/detection/history/{team}",
        None,
        dict.fromkeys(ROLES, 200),
    ),
    "quota": (
        "get",
        "/api/v1/challenges/tiny/phases/dev/tracks/detection/quota",
        None,
        {"anonymous": 401, "other": 200, "member": 200, "organizer": 404},  # 404: the organizer has no team
    ),
    "set-display-name": (
        "patch",
        "/api/v1/me",
        lambda w, d, role: {"json": {"display_name": f"Name {role}"}},
        {"anonymous": 401, "other": 200, "member": 200, "organizer": 200},
    ),
    "change-password": (
        "post",
        "/api/v1/me/password",
        lambda w, d, role: {"json": {"current_password": PASSWORD, "new_password": PASSWORD + "!"}},
        {"anonymous": 401, "other": 200, "member": 200, "organizer": 200},
    ),
    "public-team": ("get", "/api/v1/challenges/tiny/teams/{team}", None, dict.fromkeys(ROLES, 200)),
    "invite-by-email": (
        "post",
        "/api/v1/teams/{team}/invites",
        lambda w, d, role: {"json": {"email": f"inv-{role}@example.com"}},
        {"anonymous": 401, "other": 404, "member": 201, "organizer": 404},
    ),
    "list-invites": (
        "get",
        "/api/v1/teams/{team}/invites",
        None,
        {"anonymous": 401, "other": 404, "member": 200, "organizer": 404},
    ),
    "revoke-invite": (
        "post",
        "/api/v1/invites/{invite}/revoke",
        None,
        {"anonymous": 401, "other": 404, "member": 200, "organizer": 404},
    ),
    "accept-invite-bad-link": (
        "post",
        "/api/v1/invites/accept",
        lambda w, d, role: {"json": {"token": "not-a-link", "accept_rules": True}},
        {"anonymous": 401, "other": 400, "member": 400, "organizer": 400},
    ),
    "shakeup": (  # before the reveal, like the private board: only organizers
        "get",
        "/api/v1/challenges/tiny/phases/dev/tracks/detection/shakeup",
        None,
        {"anonymous": 403, "other": 403, "member": 403, "organizer": 200},
    ),
    "admin-phase": (
        "patch",
        "/api/v1/admin/phases/{phase}",
        lambda w, d, role: {"json": {"closed": False, "reason": "matrix"}},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 200},
    ),
    "admin-labels-without-file": (  # the organizer check comes before any validation
        "post",
        "/api/v1/admin/tracks/{track}/labels",
        lambda w, d, role: {"data": {"kind": "detection_gt"}, "content_type": "multipart/form-data"},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 400},
    ),
    "admin-label-versions": (
        "get",
        "/api/v1/admin/tracks/{track}/labels",
        None,
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 200},
    ),
    "admin-label-dry-run": (
        "post",
        "/api/v1/admin/labels/{label}/activate",
        lambda w, d, role: {"json": {"dry_run": True}},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 200},
    ),
    "admin-flags": (
        "get",
        "/api/v1/admin/challenges/tiny/flags",
        None,
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 200},
    ),
    "admin-resolve-flag": (  # no such flag: the organizer check comes first, then the 404
        "post",
        "/api/v1/admin/flags/999999/dismiss",
        lambda w, d, role: {"json": {"reason": "matrix"}},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 404},
    ),
    "admin-rescore": (
        "post",
        "/api/v1/admin/tracks/{track}/rescore",
        lambda w, d, role: {"json": {"reason": "matrix"}},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 202},
    ),
    "admin-hide-team": (
        "post",
        "/api/v1/admin/teams/{team}/hide",
        lambda w, d, role: {"json": {"reason": "matrix"}},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 200},
    ),
    "admin-disqualify": (  # 409: only a scored submission can be disqualified, and this one is queued
        "post",
        "/api/v1/admin/submissions/{sub}/disqualify",
        lambda w, d, role: {"json": {"reason": "matrix"}},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 409},
    ),
    **{
        f"console-{name}": ("get", f"/api/v1/admin{path}", None, ORGANIZERS_ONLY)
        for name, path in (
            ("challenge", "/challenges/tiny"),
            ("teams", "/challenges/tiny/teams?state=approved&size=5"),
            ("submissions", "/challenges/tiny/submissions?track=detection"),
            ("audit", "/audit?scope=all"),
            ("dashboard", "/challenges/tiny/dashboard"),
            ("export", "/challenges/tiny/exports/participants?format=csv"),
        )
    },
    "console-announce": (
        "post",
        "/api/v1/admin/challenges/tiny/announcements",
        lambda w, d, role: {"json": {"title": "matrix", "body": "hello"}},
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 201},
    ),
    "announcements": ("get", "/api/v1/challenges/tiny/announcements", None, dict.fromkeys(ROLES, 200)),
    "admin-baseline": (
        "post",
        "/api/v1/admin/baselines",
        lambda w, d, role: {
            "data": {
                "challenge": "tiny",
                "phase": "dev",
                "track": "detection",
                "name": "ref",
                "file": _file(d.detection_csv()),
            },
            "content_type": "multipart/form-data",
        },
        {"anonymous": 401, "other": 403, "member": 403, "organizer": 202},
    ),
}


# roles whose call changes what the next role's call would find: each of them gets a world of its own
FRESH = {"cancel-submission": {"organizer"}}


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_every_endpoint_answers_each_role_as_it_should(client, data, make_world, endpoint):
    """One world per endpoint, the roles in the order anonymous, other, member, organizer (the refused calls
    change nothing, which test_a_refused_call_changes_nothing checks for the submission)."""
    method, path, body, expected = ENDPOINTS[endpoint]
    world = make_world()
    answers = {}
    for role in ROLES:
        if role in FRESH.get(endpoint, ()):
            world = make_world()
        kwargs = body(world, data, role) if body else {}
        response = getattr(client, method)(path.format(**world.ids), headers=world.headers[role], **kwargs)
        answers[role] = response.status_code
        if response.status_code >= 400:  # a JSON error with a message, never HTML
            assert response.is_json and response.get_json()["message"], (endpoint, role)
    assert answers == expected


@pytest.mark.parametrize("role", ["other", "organizer"])
def test_a_team_never_sees_another_teams_submissions_in_its_list(client, world, role):
    listed = client.get("/api/v1/challenges/tiny/submissions", headers=world.headers[role]).get_json()
    assert world.ids["sub"] not in [s["id"] for s in listed]


def test_another_teams_view_of_its_own_team_holds_nothing_of_alpha(client, world):
    team = client.get("/api/v1/challenges/tiny/team", headers=world.headers["other"]).get_json()
    assert team["name"] == "Beta" and "alice@example.com" not in str(team)


def test_a_refused_call_changes_nothing(client, db, world):
    client.post(f"/api/v1/submissions/{world.ids['sub']}/cancel", headers=world.headers["other"])
    db.expire_all()
    assert db.get(Submission, world.ids["sub"]).state == "queued"


def test_the_matrix_covers_every_api_route(app):
    """A new endpoint must be added to ENDPOINTS (with its expected answers) before this passes."""
    routes = {
        (method.lower(), rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    covered = set()
    for method, path, _body, _expected in ENDPOINTS.values():
        template = path.split("?")[0]
        for route_method, rule in routes:
            pattern = rule
            for converter in (
                "<int:team_id>",
                "<int:user_id>",
                "<int:submission_id>",
                "<int:phase_id>",
                "<int:model_id>",
                "<int:invite_id>",
            ):
                pattern = pattern.replace(converter, "{}")
            for converter in (
                "<int:track_id>",
                "<int:token_id>",
                "<int:version_id>",
                "<int:flag_id>",
                "<slug>",
                "<phase_slug>",
                "<track_slug>",
            ):
                pattern = pattern.replace(converter, "{}")
            pattern = pattern.replace("<action>", "{}").replace("<what>", "{}")
            import re

            regex = "^" + re.escape(pattern).replace(r"\{\}", "[^/]+") + "$"
            filled = re.sub(r"\{[a-z]+\}", "1", template)
            if route_method == method and re.match(regex, filled):
                covered.add((route_method, rule))
    assert routes - covered == set()


# --------------------------------------------------------------------------------------------------- route table

# the value of each path parameter of the API's rules, by name (an object of team Alpha, or the tiny challenge's)
PATH_VALUES = {
    "slug": lambda w: "tiny",
    "phase_slug": lambda w: "dev",
    "track_slug": lambda w: "detection",
    "action": lambda w: "hide",
    "what": lambda w: "participants",
    "team_id": lambda w: w.ids["team"],
    "user_id": lambda w: w.ids["mate"],
    "submission_id": lambda w: w.ids["sub"],
    "phase_id": lambda w: w.ids["phase"],
    "track_id": lambda w: w.ids["track"],
    "token_id": lambda w: w.ids["token"],
    "version_id": lambda w: w.ids["label"],
    "flag_id": lambda w: 999999,  # no flag in the world: the role is checked before the lookup
    "model_id": lambda w: w.ids["model"],
    "invite_id": lambda w: w.ids["invite"],
}


def _api_routes(app):
    """(endpoint, method, rule) of every API route, from the app's route table."""
    return sorted(
        (rule.endpoint, method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def test_every_api_route_declares_a_role_and_the_document_says_the_same(app, client):
    from arena.api import PUBLIC, ROLE_OF

    doc = client.get("/api/v1/openapi.json").get_json()
    for endpoint, method, rule in _api_routes(app):
        assert endpoint in ROLE_OF, f"{method} {rule} declares no role: declare it with api.route()"
        if endpoint == "api.openapi_document":
            continue
        import re

        operation = doc["paths"][re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)][method.lower()]
        assert operation["x-role"] == ROLE_OF[endpoint]
        assert ("security" in operation) == (ROLE_OF[endpoint] != PUBLIC)


@pytest.mark.slow
def test_every_route_of_the_route_table_refuses_the_roles_its_declaration_excludes(app, client, make_world):
    """Every API route × every role, built from the route table and the role each route declares: no token is
    a 401 where a token is needed, a participant's token a 403 on an organizer's route, and the roles a route
    admits are never refused for who they are; nobody gets a 500. The requests carry no body: the role is
    checked before the request is validated."""
    from arena.api import ORGANIZER, PARTICIPANT, ROLE_OF

    world = make_world()
    bad_token = {"Authorization": "Bearer arena_not-a-token"}
    failures = []
    # the member's own token is revoked by the token route: that one goes last
    for endpoint, method, rule in sorted(_api_routes(app), key=lambda route: "token_id" in route[2]):
        role = ROLE_OF[endpoint]
        path = rule
        for name, value in PATH_VALUES.items():
            path = path.replace(f"<int:{name}>", str(value(world))).replace(f"<{name}>", str(value(world)))
        callers = {**world.headers, "bad-token": bad_token}
        for caller, headers in callers.items():
            status = getattr(client, method.lower())(path, headers=headers).status_code
            if caller in ("anonymous", "bad-token"):
                wanted = "401" if role in (PARTICIPANT, ORGANIZER) else "not 401/403"
            elif caller in ("member", "other"):
                wanted = "403" if role == ORGANIZER else "not 401/403"
            else:
                wanted = "not 401/403"
            refused = status in (401, 403)
            ok = status < 500 and (str(status) == wanted if wanted != "not 401/403" else not refused)
            if endpoint.endswith(("get_leaderboard", "get_shakeup")) and status == 403:
                ok = True  # the private split is hidden from everyone but organizers: the service's rule, not a role
            if not ok:
                failures.append(f"{method} {rule} as {caller}: {status}, wanted {wanted}")
    assert failures == []
