"""The contract of every HTTP request: typed models (pydantic) that validate the API's bodies, queries and path
parameters and the HTML forms alike, the one parser of dates and times, and the JSON error a bad value becomes.

The API (api.py) declares its models beside its routes and flask-openapi3 builds /api/v1/openapi.json from them;
the HTML views (web.py, web_admin.py) validate request.form with `form(Model)`. A bad value is always a 400 that
names the field, never a 500. To add an endpoint, see the top of api.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from types import MappingProxyType
from typing import Annotated, Any

from flask import Response, has_request_context, jsonify, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .errors import Invalid

ROW_ID_MAX = 2**31 - 1  # an integer primary key on both databases


# --------------------------------------------------------------------------------------------------- dates


def parse_time(value: Any, field: str) -> dt.datetime:
    """The one parser of dates and times (API, organizer forms, challenge bundles): a date, an ISO 8601 date-time
    with or without an offset (Z, +02:00) or a datetime; naive means UTC. Returns naive UTC, as stored."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            if "offset" in str(exc):
                why = "has a time zone offset out of range (from -23:59 to +23:59)"
            else:
                why = "is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM:SS, then Z or +HH:MM)"
            raise Invalid(f"{field}: '{value}' {why}", field=field) from None
    else:
        raise Invalid(f"{field}: must be a date or date-time, not {type(value).__name__}", field=field)
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise Invalid(f"{field}: '{value}' is out of range once converted to UTC", field=field) from None
    return moment


def _utc(value: Any, info) -> dt.datetime:
    try:
        return parse_time(value, info.field_name or "value")
    except Invalid as exc:
        raise ValueError(exc.message) from None


UtcDateTime = Annotated[dt.datetime, BeforeValidator(_utc)]
RowId = Annotated[int, Field(ge=0, le=ROW_ID_MAX, strict=True)]  # in a JSON body: a number, never "5" nor true
FormId = Annotated[int, Field(ge=0, le=ROW_ID_MAX)]  # in an HTML form, where every value is text


def _as_sent(value: Any) -> Any:
    """flask-openapi3 decodes each multipart field as JSON when it can ('1' becomes 1, 'true' True); a text field
    wants the text back."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


FormText = Annotated[str, BeforeValidator(_as_sent)]


# --------------------------------------------------------------------------------------------------- models


class Body(BaseModel):
    """A JSON request body. An empty body is an empty object (all fields optional then); anything else that is
    not a JSON object (malformed JSON, an array, a string) is a 400."""

    @model_validator(mode="before")
    @classmethod
    def _empty_is_an_object(cls, data: Any) -> Any:
        if data is None and has_request_context() and not request.get_data(cache=True):
            return {}
        return data


class Model(BaseModel):
    """Path parameters, queries, multipart forms and the HTML forms."""

    @classmethod
    def model_json_schema(cls, *args, **kwargs) -> Any:
        """The model's JSON schema, generated once per class and set of arguments: flask-openapi3 reads a query's or
        a form's schema on every request to find its list fields (request.py, `_validate_query`, which calls this
        with no arguments), and generating it took 1.4 ms of a 3 ms leaderboard request. That call gets the cached
        schema read-only (mappings and tuples: copying it was 10 % of a board request); a call with arguments
        (the OpenAPI document's generation) gets a copy of its own to change."""
        key = (args, tuple(sorted(kwargs.items())))
        cache = cls.__dict__.get("_schema_cache")
        if cache is None:
            cache = {}
            type.__setattr__(cls, "_schema_cache", cache)
        if key not in cache:
            generated = super().model_json_schema(*args, **kwargs)
            cache[key] = (generated, _frozen(generated))
        generated, frozen = cache[key]
        return frozen if not args and not kwargs else copy.deepcopy(generated)


def _frozen(value: Any) -> Any:
    """A read-only view of a JSON-like value: dicts as mappingproxies, lists as tuples."""
    if isinstance(value, dict):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


class Credentials(Body):
    """An email and a password: the API's /register and /tokens, the pages' login and registration forms."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


# --------------------------------------------------------------------------------------------------- errors

_KINDS = {
    "string_type": "a string",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "datetime_type": "a date-time",
}


def _message(error: dict) -> tuple[str, str | None]:
    field = ".".join(str(part) for part in error.get("loc", ())) or None
    kind, ctx = error["type"], error.get("ctx") or {}
    if field is None and kind in ("model_type", "dict_type", "model_attributes_type"):
        return "the body must be a JSON object", None
    if kind == "missing":
        return f"'{field}' is required", field
    if kind in _KINDS:
        return f"'{field}' must be {_KINDS[kind]}", field
    if kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        return f"'{field}' is out of range ({error['msg'].lower()})", field
    if kind == "extra_forbidden":
        return f"unknown field '{field}'", field
    if kind == "value_error":
        return str(ctx.get("error", error["msg"])), field
    if kind == "literal_error":
        return f"'{field}' must be {ctx.get('expected', 'one of the listed values')}", field
    return (f"'{field}': {error['msg']}" if field else error["msg"]), field


def invalid(exc: ValidationError) -> Invalid:
    """The first error of a pydantic ValidationError as our Invalid (a 400 naming the field)."""
    message, field = _message(exc.errors(include_url=False)[0])
    return Invalid(message, field=field)


def validation_error_response(exc: ValidationError) -> Response:
    """flask-openapi3's validation_error_callback: our JSON error, status 400."""
    error = invalid(exc)
    response = jsonify(error.to_dict())
    response.status_code = error.status
    return response


class Error(BaseModel):
    """Every error of the API: a code, a message for people, the field or the line at fault when there is one."""

    error: str
    message: str
    field: str | None = None
    line: int | None = None


def form(model: type[BaseModel], data: Any = None) -> Any:
    """Validate an HTML form (request.form unless `data`) with `model`; a bad value raises Invalid (a 400)."""
    values = request.form.to_dict() if data is None else data
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise invalid(exc) from None


__all__ = [
    "Body",
    "ConfigDict",
    "Credentials",
    "Error",
    "Field",
    "FormId",
    "FormText",
    "Model",
    "RowId",
    "UtcDateTime",
    "form",
    "invalid",
    "parse_time",
    "validation_error_response",
]
