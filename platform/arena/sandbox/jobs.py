"""The RQ job of the final stage: run one model archive in the sandbox on the hidden test images, score what it
wrote with the ordinary scorer, and record the reproduced scores and the speed test. Enqueued by dotted name with
the model submission's id on the queue of the device it needs (`<MODEL_QUEUE>-cpu`, `<MODEL_QUEUE>-cuda`).

A model that crashes, times out, passes a limit or writes garbage fails the model submission with its own message
and the tail of its output, and the job returns normally: that costs the team nothing (a model submission never
counts against the limits, and the team's uploaded predictions keep their scores). Only a failure of ours (no bwrap,
no test images) re-raises, so that the traceback stays in RQ's failed registry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import shutil
import socket
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import object_session

from scorer.archive import ArchiveError, unpack
from scorer.formats import SubmissionError, read_detection_labels, read_recognition_labels

from .. import audit, storage
from ..db import new_session
from ..jobs import _app_context, score_file
from ..models import Membership, ModelSubmission, Notification, TestImageSet, utcnow
from . import bwrap

log = logging.getLogger(__name__)
JOB = "arena.sandbox.jobs.run_model"
PREDICTIONS = {"detection": "predictions.csv", "recognition": "features.bin"}
CODE_PACKAGES = ("modelrunner", "scorer", "facedata", "baselines")  # what the harness and offered code import
OURS_MESSAGE = "the model runner failed on our side, not because of your model; the organizers have been told"
STOPPED_MESSAGE = "the worker running this model stopped several times; the organizers have been told"
JOB_MARGIN_SECONDS = 300  # an RQ job may run this much past the sandbox's wall time (unpacking, scoring)
_STATUS_MESSAGES = {
    "timeout": "the model ran past the wall-time limit of {wall_seconds:g} s and was stopped",
    "cpu": "the model used more than its {cpu_seconds} s of CPU time and was stopped",
    "output": "the model wrote more than the {result_bytes:,} bytes of results allowed and was stopped",
    "exited": "the model's process ended with status {returncode} before it handed back its predictions",
}
_HINTS = (  # the usual faces of the sandbox's walls, named for the team
    (
        ("Network is unreachable", "Connection refused", "Name or service not known", "Temporary failure in name"),
        "the sandbox has no network",
    ),
    (("Resource temporarily unavailable",), "the sandbox allows at most {processes} processes"),
    (
        ("MemoryError", "can't allocate memory", "Cannot allocate memory", "std::bad_alloc"),
        "the model went past its memory limit of {memory_bytes} bytes",
    ),
    (
        ("No such file or directory", "Permission denied", "Read-only file system"),
        "inside the sandbox the model sees only its own folder (/model), the test images (/images) and /tmp",
    ),
)


class SandboxError(RuntimeError):
    """Something of ours is missing (test images, labels, bwrap): the run fails with OURS_MESSAGE and re-raises."""


def run_model(model_id: int) -> str:
    """Run one model submission; returns 'finished', 'failed' or 'skipped' (not queued: another run took it)."""
    with _app_context():
        session = new_session()
        try:
            return _run(session, model_id)
        finally:
            session.close()


def _claim(session, model_id: int) -> ModelSubmission | None:
    claimed = session.execute(
        update(ModelSubmission)
        .where(ModelSubmission.id == model_id, ModelSubmission.state == "queued")
        .values(state="running", started_at=utcnow(), attempts=ModelSubmission.attempts + 1, worker=_worker())
    ).rowcount
    session.commit()
    return session.get(ModelSubmission, model_id) if claimed else None


def _worker() -> dict:
    return {"host": socket.gethostname(), "device": current_app.config.get("SANDBOX_DEVICE", "cpu")}


def _run(session, model_id: int) -> str:
    model = _claim(session, model_id)
    if model is None:
        log.info("model submission %s is not queued: skipped", model_id)
        return "skipped"
    config = current_app.config
    work = Path(tempfile.mkdtemp(prefix=f"model-{model.id}-", dir=_sandbox_dir(config)))
    try:
        outcome, files, error = _execute(model, config, work)
        if error is None:
            try:
                model.scores, model.speed = _score(model, config, work, files)
            except (SubmissionError, _ModelFailure) as exc:
                error = f"the model's predictions are not a valid submission: {exc}"
        _finish(session, model, error, outcome.log_tail if outcome else None)
        return "finished" if error is None else "failed"
    except Exception:
        log.exception("model submission %s crashed the runner", model_id)
        session.rollback()
        _finish(session, session.get(ModelSubmission, model_id, populate_existing=True), OURS_MESSAGE, None)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sandbox_dir(config) -> str:
    path = Path(config.get("SANDBOX_WORK_DIR") or Path(config["STORAGE_DIR"]).parent / "sandbox")
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _execute(model: ModelSubmission, config, work: Path):
    """(Outcome, {name: bytes}, team-facing error or None) of one sandboxed run."""
    storage_dir = config["STORAGE_DIR"]
    images = _test_images(model, storage_dir)
    folder, inputs = work / "model", work / "input"
    folder.mkdir()
    inputs.mkdir()
    try:
        unpack(storage.resolve(storage_dir, model.stored_path), folder)
    except (ArchiveError, OSError) as exc:
        return None, {}, f"the archive cannot be unpacked: {exc}"
    (inputs / "list.txt").write_text("\n".join(_test_list(model.track, storage_dir)) + "\n")
    _readable(work)
    limits = bwrap.Limits.from_config(config)
    gpu = model.device == "cuda"
    if gpu:
        limits = bwrap.Limits(**{**limits.__dict__, "memory_bytes": None})
    code = _code_mounts()
    harness = [config.get("SANDBOX_PYTHON") or _python(), "-m", "modelrunner.harness", "--task", model.track.kind]
    harness += ["--model", "/model", "--images", "/images", "--list", "/input/list.txt", "--result-fd", "{fd}"]
    harness += ["--speed-frames", str(config.get("SPEED_FRAMES", 20)), "--device", "cuda" if gpu else "cpu"]
    harness += ["--model-bytes", str(model.size)]
    mounts = [*code, bwrap.Mount(folder, "/model"), bwrap.Mount(inputs, "/input"), bwrap.Mount(images, "/images")]
    argv = bwrap.command(
        harness, mounts, limits, uid=sandbox_uid(config, model.id), gpu=gpu, pythonpath="/opt/arena-code"
    )
    outcome = bwrap.run(argv, limits)
    log.info("model %s: sandbox %s (rc %s) in %.1f s", model.id, outcome.status, outcome.returncode, outcome.seconds)
    files, error = _parse(outcome, limits)
    return outcome, files, error


def sandbox_uid(config, model_id: int) -> int:
    """The uid a run gets when the worker is root: one of its own per run (SANDBOX_UID_BASE + id modulo
    SANDBOX_UIDS), so that the process limit of one run never counts another's processes."""
    return int(config.get("SANDBOX_UID_BASE", 200_000)) + model_id % int(config.get("SANDBOX_UIDS", 50_000))


def _python() -> str:
    return sys.executable


def _code_mounts() -> list[bwrap.Mount]:
    """Our in-sandbox packages, read-only under /opt/arena-code (the harness and the code the runner offers)."""
    mounts = []
    for name in CODE_PACKAGES:
        spec = find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SandboxError(f"package {name} is not installed on this worker")
        mounts.append(bwrap.Mount(Path(list(spec.submodule_search_locations)[0]), f"/opt/arena-code/{name}"))
    return mounts


def _readable(folder: Path) -> None:
    """Let the sandbox's unprivileged user read the run's folders (their parent stays closed to everyone else)."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _test_images(model: ModelSubmission, storage_dir: str) -> Path:
    found = object_session(model).scalar(select(TestImageSet).where(TestImageSet.track_id == model.track_id))
    if found is None:
        raise SandboxError(f"track {model.track.slug} has no test images for the model runner")
    return storage.resolve(storage_dir, found.stored_dir)


def _label(track, kind: str, storage_dir: str) -> Path:
    for label in track.labels:
        if label.kind == kind:
            return storage.resolve(storage_dir, label.stored_path)
    raise SandboxError(f"track {track.slug} has no {kind} labels")


def _test_list(track, storage_dir: str) -> list[str]:
    """The public half of the hidden labels, one row an image in test-list order: the image name (detection), or
    `image x1 y1 x2 y2` as in icartoonface_rectest_det.txt (recognition). Labels never enter the sandbox."""
    if track.kind == "detection":
        return list(read_detection_labels(_label(track, "detection_gt", storage_dir)).image_names)
    labels = read_recognition_labels(_label(track, "test_info", storage_dir))
    return [f"{n} " + " ".join(f"{v:g}" for v in box) for n, box in zip(labels.image_names, labels.boxes, strict=True)]


def _hint(error: str, limits: bwrap.Limits) -> str:
    for needles, hint in _HINTS:
        if any(needle in error for needle in needles):
            return f" ({hint.format(**limits.__dict__)})"
    return ""


def _parse(outcome: bwrap.Outcome, limits: bwrap.Limits) -> tuple[dict[str, bytes], str | None]:
    """The harness's files from its result stream, or the team-facing message of why there are none."""
    if outcome.status in _STATUS_MESSAGES and outcome.status != "exited":
        return {}, _STATUS_MESSAGES[outcome.status].format(**limits.__dict__)
    header, _, body = outcome.result.partition(b"\n")
    try:
        meta = json.loads(header)
        sizes = {str(k): int(v) for k, v in meta["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        if outcome.status == "exited":
            message = _STATUS_MESSAGES["exited"].format(returncode=outcome.returncode)
            return {}, message + _hint(outcome.log_tail, limits)
        return {}, "the model's process handed back no readable result"
    if meta.get("error"):
        error = str(meta["error"])[:1000]
        return {}, f"the model failed: {error}{_hint(error, limits)}"
    files, offset = {}, 0
    for name, size in sizes.items():
        files[name] = body[offset : offset + size]
        offset += size
    return files, None


def _score(model: ModelSubmission, config, work: Path, files: dict[str, bytes]) -> tuple[dict, dict | None]:
    """(reproduced scores per split, speed test) from the harness's files, through the ordinary scorer."""
    name = PREDICTIONS[model.track.kind]
    if name not in files:
        raise _ModelFailure(f"the model handed back no {name}")
    path = work / name
    path.write_bytes(files[name])
    scores, _curve = score_file(model.track, model.phase.challenge, path, name, config["STORAGE_DIR"])
    speed = None
    if "speed.json" in files:
        with contextlib.suppress(ValueError):
            speed = json.loads(files["speed.json"])
        if not isinstance(speed, dict):
            speed = None
    return scores, speed


class _ModelFailure(Exception):
    pass


def _finish(session, model: ModelSubmission, error: str | None, log_tail: str | None) -> None:
    model.state = "finished" if error is None else "failed"
    model.error, model.log_tail, model.finished_at = error, log_tail, utcnow()
    if error is not None:
        model.scores = model.speed = None
    _notify(session, model)
    audit.record(
        session,
        f"model_{model.state}",
        model,
        challenge_id=model.phase.challenge_id,
        after={"state": model.state, "error": error},
    )
    session.commit()


def _notify(session, model: ModelSubmission) -> None:
    """Tell the team (in the app) that its model ran: the public half of the reproduction only."""
    if model.team_id is None:
        return
    if model.state == "finished":
        public = (model.scores or {}).get("public", {}).get(model.track.metric)
        text = f"Model {model.id} ran in the sandbox: {model.track.metric} {public:.4f} on the public split"
    else:
        text = f"Model {model.id} failed in the sandbox: {model.error}"
    for member in session.scalars(select(Membership).where(Membership.team_id == model.team_id)):
        session.add(Notification(user_id=member.user_id, message=text[:500]))


def sweep(session, config, now=None) -> dict:
    """Model runs whose worker stopped: `running` past the wall-time limit plus the job's margin. Each is queued
    again while it has attempts left (MAX_ATTEMPTS), else failed with a message; returns the counts."""
    now = now or utcnow()
    limits = bwrap.Limits.from_config(config)
    cutoff = now - dt.timedelta(seconds=limits.wall_seconds + JOB_MARGIN_SECONDS)
    stale = session.scalars(
        select(ModelSubmission).where(ModelSubmission.state == "running", ModelSubmission.started_at < cutoff)
    ).all()
    counts = {"requeued": 0, "failed": 0}
    for model in stale:
        if model.attempts < int(config.get("MAX_ATTEMPTS", 3)):
            requeue(session, model, reason="its worker stopped")
            counts["requeued"] += 1
        else:
            _finish(session, model, STOPPED_MESSAGE, model.log_tail)
            counts["failed"] += 1
    return counts


def requeue(session, model: ModelSubmission, *, reason: str, actor_id: int | None = None) -> None:
    """Queue a model run again (its worker stopped, or an organizer asks for another run); audited."""
    before = {"state": model.state, "error": model.error}
    model.state, model.error, model.scores, model.speed, model.finished_at = "queued", None, None, None, None
    audit.record(
        session,
        "model_requeued",
        model,
        actor_id=actor_id,
        challenge_id=model.phase.challenge_id,
        before=before,
        after={"state": "queued"},
        reason=reason,
    )
    session.commit()
    model.job_id = enqueue(model)
    session.commit()


def enqueue(model: ModelSubmission) -> str:
    """Put the model's run on the queue of the device it needs; returns the job id."""
    from rq import Queue

    from .. import queue as arena_queue

    config = current_app.config
    name = queue_name(config, model.device)
    job_id = f"{name}-model-{model.id}-{model.attempts + 1}"
    limits = bwrap.Limits.from_config(config)
    Queue(name, connection=arena_queue.connect()).enqueue_call(
        JOB,
        args=(model.id,),
        job_id=job_id,
        timeout=int(limits.wall_seconds) + JOB_MARGIN_SECONDS,
        result_ttl=24 * 3600,
        failure_ttl=30 * 24 * 3600,
        description=f"run model submission {model.id}",
    )
    return job_id


def queue_name(config, device: str) -> str:
    return f"{config.get('MODEL_QUEUE', config['RQ_QUEUE'] + '-models')}-{device}"
