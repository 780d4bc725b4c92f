"""Errors of the service layer. Views turn them into a JSON error with `status` or a flashed message."""

from __future__ import annotations


class ArenaError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line

    def to_dict(self) -> dict:
        out = {"error": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        if self.line is not None:
            out["line"] = self.line
        return out


class Invalid(ArenaError):
    status, code = 400, "invalid"


class Unauthorized(ArenaError):
    status, code = 401, "unauthorized"


class Forbidden(ArenaError):
    status, code = 403, "forbidden"


class NotFound(ArenaError):
    status, code = 404, "not_found"


class Conflict(ArenaError):
    status, code = 409, "conflict"


class TooLarge(ArenaError):
    status, code = 413, "too_large"


class LimitReached(ArenaError):
    status, code = 429, "limit_reached"


class IllegalTransition(ArenaError):
    """A state change the state machine forbids (a bug or a race, never a participant's doing)."""

    status, code = 409, "illegal_transition"
