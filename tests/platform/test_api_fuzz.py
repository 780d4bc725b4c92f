"""Property-based requests drawn from the API's own OpenAPI document (schemathesis strategies, sent through the
Flask test client): whatever a client sends, the API never answers with a server error, and every error is JSON."""

from __future__ import annotations

import io

import pytest
import schemathesis
from arena.openapi import document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.redis, pytest.mark.slow]
OPERATIONS = [result.ok() for result in schemathesis.openapi.from_dict(document()).get_all_operations()]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_the_api_never_answers_with_a_server_error(data, engine, client, team_user):
    if engine.dialect.name != "sqlite":
        pytest.skip("the fuzzing runs once, on SQLite; the API tests cover both databases")
    _user, headers, _team = team_user
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    case = data.draw(operation.as_strategy())
    kwargs = {
        "headers": {**headers, **{k: str(v) for k, v in (case.headers or {}).items() if k.lower() != "authorization"}},
        "query_string": case.query or {},
    }
    if isinstance(case.body, dict) and case.media_type == "multipart/form-data":
        kwargs["data"] = {
            k: (io.BytesIO(v if isinstance(v, bytes) else str(v).encode()), "f.bin") if k == "file" else str(v)
            for k, v in case.body.items()
        }
        kwargs["content_type"] = "multipart/form-data"
    elif case.body is not None and not isinstance(case.body, type(schemathesis.core.NOT_SET)):
        kwargs["json"] = case.body
    response = client.open(case.formatted_path, method=case.method, **kwargs)
    assert response.status_code < 500, (case.method, case.formatted_path, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        assert response.is_json and "message" in response.get_json()
