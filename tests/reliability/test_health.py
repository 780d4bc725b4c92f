"""Health, readiness, Prometheus metrics and structured logs."""

from __future__ import annotations

import io
import json
import logging

import pytest
from arena import logs
from arena.services import teams
from arena_testkit import load_challenge, make_user, run_worker, token_for, upload
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]


def _metrics(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    out = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_healthz_answers_while_the_process_runs(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_is_ready_with_the_database_the_files_and_the_queue(client):
    body = client.get("/readyz").get_json()
    assert body == {"status": "ready", "checks": {"database": "ok", "storage": "ok", "redis": "ok"}}


def test_readyz_stays_ready_without_redis_because_uploads_are_still_accepted(client, redis_server):
    redis_server.stop()
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["checks"]["redis"] != "ok" and "scored when it is back" in body["note"]


def test_readyz_is_unavailable_without_the_database(make_app, redis_server):
    from arena.db import make_engine

    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2})
    response = make_app(engine, redis_server.url).test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["database"] != "ok"


def test_metrics_count_submissions_the_queue_and_scoring_runs(app, client, db, data):
    challenge = load_challenge(db, data, per_day=100, total=100, in_flight=100)
    user = make_user(db, "cap@example.com")
    teams.create_team(db, user, challenge, "Team", True)
    headers = token_for(db, user)
    upload(client, headers, data.detection_csv())
    upload(client, headers, b"garbage\n")
    before = _metrics(client)
    assert before[("arena_queue_jobs", (("registry", "queued"),))] == 2
    assert before[("arena_submissions", (("state", "queued"),))] == 2
    assert before[("arena_redis_up", ())] == 1
    run_worker(app)
    after = _metrics(client)
    assert after[("arena_queue_jobs", (("registry", "queued"),))] == 0
    assert after[("arena_submissions", (("state", "finished"),))] == 1
    assert after[("arena_submissions", (("state", "failed"),))] == 1
    assert after[("arena_scoring_runs_total", (("outcome", "finished"),))] == 1
    assert after[("arena_scoring_runs_total", (("outcome", "failed"),))] == 1
    assert after[("arena_scoring_seconds_count", ())] == 2
    assert after[("arena_scoring_seconds_bucket", (("le", "+Inf"),))] == 2


def test_metrics_without_redis_still_answer_with_the_database_figures(client, redis_server):
    redis_server.stop()
    values = _metrics(client)
    assert values[("arena_redis_up", ())] == 0
    assert ("arena_submissions", (("state", "queued"),)) in values


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("Bearer wrong", 401), ("Bearer s3cret", 200)],
    ids=["no-token", "wrong-token", "right-token"],
)
def test_metrics_need_the_token_when_one_is_configured(app, header, status):
    app.config["METRICS_TOKEN"] = "s3cret"
    headers = {"Authorization": header} if header else {}
    assert app.test_client().get("/metrics", headers=headers).status_code == status


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_records_carry_the_submission_id_they_concern(fmt):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter() if fmt == "json" else logs.TextFormatter("%(message)s"))
    logger = logging.getLogger("arena.test_logs")
    logger.addHandler(handler)
    try:
        with logs.bind(submission_id=42):
            logger.warning("scoring %s", "started")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    if fmt == "json":
        record = json.loads(first)
        assert record["submission_id"] == 42 and record["message"] == "scoring started"
        assert "submission_id" not in json.loads(second)
    else:
        assert first == "scoring started [submission_id=42]" and second == "outside"
