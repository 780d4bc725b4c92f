"""schemathesis against the generated OpenAPI document (/api/v1/openapi.json): every operation, positive and
negative inputs, as an anonymous caller, as a team member and as an organizer: never a 500. Then schemathesis's
stateful run (sequences of calls joined by the links it infers between operations: a created team's id fed to the
team routes, ...) as a member and as an organizer. Then hostile uploads through the API (random bytes,
truncations, unicode names): a clear error at once or a submission the worker scores or fails with the parser's
message, never a crash."""

from __future__ import annotations

import pytest
import schemathesis
from arena import states
from arena.models import Submission
from arena.services import teams
from arena_testkit import load_challenge, make_user, run_worker, token_for, upload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.profiles import examples

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(600)]
EXAMPLES = examples(6)  # per operation, mode and caller


@pytest.fixture
def member(app, db, data):
    challenge = load_challenge(db, data, per_day=10_000, total=10_000, in_flight=10_000)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    return token_for(db, user)


@pytest.fixture
def callers(db, member):
    return {
        "anonymous": {},
        "member": member,
        "organizer": token_for(db, make_user(db, "org@example.com", organizer=True)),
    }


def _operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("caller", ["anonymous", "member", "organizer"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_operation_of_the_openapi_document_answers_500(app, callers, caller, mode):
    headers = callers[caller]
    operations = _operations(app)
    assert len(operations) >= 20
    server_errors = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case):
            response = case.call(headers={**(case.headers or {}), **headers})
            if response.status_code >= 500:
                where = f"{case.method} {case.formatted_path}"
                server_errors.append(f"{where}: {response.status_code} {response.text[:200]}")

        try:
            call()
        except Unsatisfiable:  # negative mode: an operation with no input to get wrong (GET /openapi.json)
            assert mode is GenerationMode.NEGATIVE
    assert server_errors == []


@pytest.mark.parametrize("caller", ["member", "organizer"])
def test_no_sequence_of_linked_calls_answers_500(app, callers, caller):
    """schemathesis's state machine over the links it infers from the document (an id one call answers feeds
    the next call's parameter); any answer of 500 or more fails the run."""
    from hypothesis.stateful import run_state_machine_as_test

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = callers[caller]

    class Machine(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": {**(case.headers or {}), **headers}}

        def validate_response(self, response, case, **kwargs):
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=EXAMPLES, stateful_step_count=8, suppress_health_check=list(HealthCheck)),
    )


HOSTILE = st.one_of(
    st.binary(min_size=1, max_size=2000),
    st.text(min_size=1, max_size=500).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"det_000.jpg,1,2,3,4,face,nan\n",
            b"det_000.jpg,1,2,3,4,face,0.5",  # no final newline
            b"\x1f\x8b\x08\x00",  # a truncated gzip header
            b"PK\x03\x04",  # a truncated zip
            "d\u00e9t_000.jpg,1,2,3,4,face,0.5\n".encode(),
        ]
    ),
)
NAMES = st.sampled_from(["sub.csv", "../../etc/passwd", "f\u00e9\u6587.csv", "a" * 300 + ".csv", "x.csv.gz", "y.zip"])


def test_hostile_uploads_get_a_clear_error_never_a_crash(app, client, db, data, member):
    seen = {"finished": 0, "failed": 0, "refused": 0}

    @settings(max_examples=examples(20), suppress_health_check=list(HealthCheck))
    @given(content=HOSTILE, name=NAMES)
    def one(content, name):
        response = upload(client, member, content, name=name)
        if response.status_code != 202:
            assert 400 <= response.status_code < 500 and response.get_json()["message"]
            seen["refused"] += 1
            return
        sub_id = response.get_json()["id"]
        run_worker(app)  # a crash would re-raise out of the job and fail the submission with the generic message
        db.expire_all()
        sub = db.get(Submission, sub_id)
        assert sub.state in (states.FINISHED, states.FAILED)
        if sub.state == states.FAILED:
            assert sub.error and "the scorer failed on our side" not in sub.error, sub.error
        seen[sub.state] += 1

    one()
    assert seen["failed"] > 0
