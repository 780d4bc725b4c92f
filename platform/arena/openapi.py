"""The OpenAPI 3.1 document of /api/v1, built from one table of the routes in api.py."""

from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}
JSON_OBJ = {"type": "object"}
SUBMISSION = {"$ref": "#/components/schemas/Submission"}

# (method, path, summary, auth: none | token | organizer, body: None | schema | "multipart:<fields>", ok status, ok)
ROUTES = [
    (
        "post",
        "/register",
        "Create an account (a verification link is mailed)",
        "none",
        {
            "type": "object",
            "required": ["email", "password"],
            "properties": {"email": {"type": "string"}, "password": {"type": "string", "minLength": 8}},
        },
        201,
        JSON_OBJ,
    ),
    (
        "post",
        "/tokens",
        "Exchange email and password for a new API token",
        "none",
        {
            "type": "object",
            "required": ["email", "password"],
            "properties": {"email": {"type": "string"}, "password": {"type": "string"}, "name": {"type": "string"}},
        },
        201,
        {"type": "object", "properties": {"id": {"type": "integer"}, "token": {"type": "string"}}},
    ),
    ("delete", "/tokens/{token_id}", "Revoke one of your tokens", "token", None, 204, None),
    ("get", "/me", "The token's user", "token", None, 200, JSON_OBJ),
    (
        "get",
        "/challenges",
        "All challenges with their tracks and phases",
        "none",
        None,
        200,
        {"type": "array", "items": JSON_OBJ},
    ),
    ("get", "/challenges/{slug}", "One challenge", "none", None, 200, JSON_OBJ),
    (
        "post",
        "/challenges/{slug}/teams",
        "Accept the rules and create a team (you become its captain)",
        "token",
        {
            "type": "object",
            "required": ["name", "accept_rules"],
            "properties": {"name": {"type": "string"}, "accept_rules": {"type": "boolean"}},
        },
        201,
        JSON_OBJ,
    ),
    (
        "post",
        "/challenges/{slug}/join",
        "Accept the rules and join a team by its invite code",
        "token",
        {
            "type": "object",
            "required": ["invite_code", "accept_rules"],
            "properties": {"invite_code": {"type": "string"}, "accept_rules": {"type": "boolean"}},
        },
        200,
        JSON_OBJ,
    ),
    ("get", "/challenges/{slug}/team", "Your team in this challenge", "token", None, 200, JSON_OBJ),
    ("post", "/teams/{team_id}/members/{user_id}/remove", "Captain: remove a member", "token", None, 204, None),
    (
        "post",
        "/teams/{team_id}/captain",
        "Captain: hand over captaincy",
        "token",
        {"type": "object", "required": ["user_id"], "properties": {"user_id": {"type": "integer"}}},
        204,
        None,
    ),
    (
        "post",
        "/teams/{team_id}/merge",
        "Captain: merge your team into the team with this invite code",
        "token",
        {"type": "object", "required": ["invite_code"], "properties": {"invite_code": {"type": "string"}}},
        200,
        JSON_OBJ,
    ),
    (
        "post",
        "/challenges/{slug}/submissions",
        "Upload a submission; it is scored by a worker",
        "token",
        "multipart:phase,track,note,file",
        202,
        SUBMISSION,
    ),
    (
        "get",
        "/challenges/{slug}/submissions",
        "Your team's submissions",
        "token",
        None,
        200,
        {"type": "array", "items": SUBMISSION},
    ),
    (
        "get",
        "/submissions/{submission_id}",
        "A submission of your team: state, public scores, error and line",
        "token",
        None,
        200,
        SUBMISSION,
    ),
    (
        "post",
        "/submissions/{submission_id}/cancel",
        "Cancel a queued submission (refunded)",
        "token",
        None,
        200,
        SUBMISSION,
    ),
    (
        "post",
        "/submissions/{submission_id}/final",
        "Pick (or unpick) a final submission for the private board",
        "token",
        {"type": "object", "properties": {"selected": {"type": "boolean"}}},
        200,
        SUBMISSION,
    ),
    (
        "get",
        "/challenges/{slug}/phases/{phase_slug}/tracks/{track_slug}/leaderboard",
        "A leaderboard (split=public|private, format=json|csv)",
        "none",
        None,
        200,
        JSON_OBJ,
    ),
    (
        "get",
        "/challenges/{slug}/phases/{phase_slug}/tracks/{track_slug}/history/{team_id}",
        "A team's public rank history",
        "none",
        None,
        200,
        {"type": "array", "items": JSON_OBJ},
    ),
    (
        "patch",
        "/admin/phases/{phase_id}",
        "Organizer: open, close, extend a phase or reveal its private board",
        "organizer",
        {
            "type": "object",
            "properties": {
                "starts_at": {"type": "string", "format": "date-time"},
                "ends_at": {"type": "string", "format": "date-time"},
                "closed": {"type": "boolean"},
                "private_revealed": {"type": "boolean"},
                "reason": {"type": "string"},
            },
        },
        200,
        JSON_OBJ,
    ),
    (
        "post",
        "/admin/tracks/{track_id}/labels",
        "Organizer: upload or replace hidden labels (rescores)",
        "organizer",
        "multipart:kind,file",
        201,
        JSON_OBJ,
    ),
    (
        "post",
        "/admin/tracks/{track_id}/rescore",
        "Organizer: rescore every finished submission",
        "organizer",
        {"type": "object", "properties": {"reason": {"type": "string"}}},
        202,
        JSON_OBJ,
    ),
    (
        "post",
        "/admin/teams/{team_id}/{action}",
        "Organizer: approve, ban, hide or unhide a team (reason needed)",
        "organizer",
        {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}},
        200,
        JSON_OBJ,
    ),
    (
        "post",
        "/admin/submissions/{submission_id}/disqualify",
        "Organizer: disqualify a submission",
        "organizer",
        {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}},
        200,
        SUBMISSION,
    ),
    (
        "post",
        "/admin/baselines",
        "Organizer: post a baseline submission (a marked row on the boards)",
        "organizer",
        "multipart:challenge,phase,track,name,note,file",
        202,
        SUBMISSION,
    ),
    # the final stage (arena/sandbox/http.py)
    (
        "post",
        "/challenges/{slug}/models",
        "Hand in a model archive that reproduces a finished submission; a sandboxed worker re-runs it",
        "token",
        "multipart:phase,track,submission_id,device,file",
        202,
        JSON_OBJ,
    ),
    (
        "get",
        "/models/{model_id}",
        "One model run: state, error, log tail, speed test, reproduction",
        "token",
        None,
        200,
        JSON_OBJ,
    ),
]
_INT_PARAMS = {"token_id", "team_id", "user_id", "submission_id", "phase_id", "track_id", "model_id"}


def _parameters(path: str) -> list[dict]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "integer" if n in _INT_PARAMS else "string"}}
        for n in names
    ]


def _body(body) -> dict:
    if isinstance(body, str):
        fields = body.split(":", 1)[1].split(",")
        props = {f: ({"type": "string", "format": "binary"} if f == "file" else {"type": "string"}) for f in fields}
        return {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": props,
                        "required": [f for f in fields if f not in ("note", "device")],
                    }
                }
            },
        }
    return {"required": True, "content": {"application/json": {"schema": body}}}


def document() -> dict:
    paths: dict[str, dict] = {}
    for method, path, summary, auth, body, status, schema in ROUTES:
        op: dict = {
            "summary": summary,
            "operationId": f"{method}_{path.strip('/').replace('/', '_')}",
            "parameters": _parameters(path),
            "responses": {},
        }
        if path.endswith("/leaderboard"):
            op["parameters"] += [
                {"name": "split", "in": "query", "schema": {"type": "string", "enum": ["public", "private"]}},
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
            ]
        if body is not None:
            op["requestBody"] = _body(body)
        ok = {"description": "OK"}
        if schema is not None:
            ok["content"] = {"application/json": {"schema": schema}}
        op["responses"][str(status)] = ok
        for code in ("400", "404", "409", "413", "429") + (("401", "403") if auth != "none" else ()):
            op["responses"][code] = {"description": "error", "content": {"application/json": {"schema": ERROR}}}
        if auth != "none":
            op["security"] = [{"token": []}]
        if auth == "organizer":
            op["tags"] = ["organizers"]
        paths.setdefault(f"/api/v1{path}", {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "iCartoonFace arena API", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                        "line": {"type": "integer"},
                    },
                },
                "Submission": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "state": {
                            "type": "string",
                            "enum": ["submitted", "queued", "running", "finished", "failed", "cancelled", "rescoring"],
                        },
                        "public_score": {"type": ["number", "null"]},
                        "error": {"type": ["string", "null"]},
                        "error_line": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    }
