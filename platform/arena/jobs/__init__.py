"""The RQ job that scores a submission, and every use of `scorer` by the platform (the layout test allows it here
only). A job reloads everything from the submission id, is safe to run twice (it scores once), fails the submission
with the parser's message on a bad file and returns, and on any other error fails it with a generic message and
re-raises so that the traceback stays in RQ's failed registry."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from flask import current_app, has_app_context
from rq import Worker
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError

from scorer.formats import (
    LabelError,
    SubmissionError,
    read_detection_labels,
    read_detection_submission,
    read_features,
    read_recognition_labels,
    read_verification_pairs,
)
from scorer.splits import split_mask

from .. import hints, integrity, labels, logs, metrics, notify, states, storage
from ..db import new_session
from ..leaderboard import record_rank_history
from ..models import LabelFile, Submission, utcnow
from ..queue import JOB
from .label_files import label_diff, label_error_types, validate_labels
from .similarity import Comparer

log = logging.getLogger(__name__)
SPLITS = ("public", "private")
CRASH_MESSAGE = "the scorer failed on our side, not because of your file; the organizers have been told"
LABEL_KINDS = {"detection": ("detection_gt",), "recognition": ("test_info", "verification_pairs")}
LABEL_CACHE_SIZE = 8  # parsed label files kept per process (a few tracks, each with its current version)
_APP = None
_LABEL_CACHE: OrderedDict[tuple[str, ...], object] = OrderedDict()  # least recently used first
_LABEL_LOCK = threading.Lock()


def _app_context():
    """The current app context (tests, the web process) or one of an app made once per worker process."""
    global _APP
    if has_app_context():
        return contextlib.nullcontext()
    if _APP is None:
        from .. import create_app

        _APP = create_app()
    return _APP.app_context()


def score_submission(submission_id: int) -> str:
    """Score one submission; returns 'finished', 'failed', 'unscorable' (it fit earlier labels, not the active
    ones) or 'skipped' (another run took it)."""
    with _app_context(), logs.bind(submission_id=submission_id):
        session = new_session()
        started, outcome = time.monotonic(), "crashed"
        try:
            outcome = _run(session, submission_id)
            return outcome
        finally:
            session.close()
            metrics.record_scoring(time.monotonic() - started, outcome)


def _run(session, submission_id: int) -> str:
    if states.claim(session, submission_id) is None:
        log.info("submission %s is not waiting to be scored: skipped", submission_id)
        return "skipped"
    sub = session.get(Submission, submission_id)
    config = current_app.config
    label_key = labels.label_key(sub.track)
    fit_before = sub.scores is not None or labels.was_scored_before(session, sub.id)  # scored on earlier labels
    try:
        with _Heartbeat(submission_id, config.get("HEARTBEAT_SECONDS", 15)):
            if config.get("SCORING_DELAY_SECONDS"):  # test-only hook: a slow run that a test can kill
                time.sleep(config["SCORING_DELAY_SECONDS"])
            result = _score(sub, config["STORAGE_DIR"])
    except SubmissionError as exc:
        session.rollback()
        if fit_before:  # it fit earlier labels: the labels changed, not the file
            labels.mark_unscorable(session, sub.id, str(exc))
            return "unscorable"
        hint = hints.other_track_format(sub.track.kind, storage.resolve(config["STORAGE_DIR"], sub.stored_path))
        _fail(session, sub, f"{exc}{hint}", exc.line)
        return "failed"
    except Exception:
        log.exception("scoring submission %s crashed", submission_id)
        session.rollback()
        _fail(session, sub, CRASH_MESSAGE, None)
        raise
    _finish(session, submission_id, *result, label_key=label_key)
    _check_integrity(session, session.get(Submission, submission_id), config["STORAGE_DIR"])
    return "finished"


def _check_integrity(session, sub: Submission, storage_dir: str) -> None:
    """Flag identical or near-identical submissions of other teams (integrity.py); the score stands regardless."""
    try:
        comparer = Comparer(sub, storage_dir, current_app.config["SECRET_KEY"])
        integrity.check_submission(session, sub, comparer.compare)
    except Exception:
        log.exception("integrity check of submission %s failed", sub.id)
        session.rollback()


FINAL_WRITE_TRIES = 5


def _finish(session, submission_id: int, scores: dict, curve: dict, label_key: str) -> None:
    """The final write of a scored submission, retried when the database connection drops under it (the score
    is kept and written again, never computed twice) and idempotent: a retry whose earlier try did reach the
    database (its commit's answer was what got lost) finds the submission finished and leaves it as it is."""
    for attempt in range(1, FINAL_WRITE_TRIES + 1):
        try:
            sub = session.get(Submission, submission_id, populate_existing=True)
            if sub.state == states.FINISHED:
                return
            sub.scores = scores
            sub.public_score = scores["public"].get(sub.track.metric)
            sub.private_score = scores["private"].get(sub.track.metric)
            sub.curve = curve
            sub.error = sub.error_line = None
            labels.keep_scores(session, sub, label_key)
            states.transition(session, sub, states.FINISHED)
            if sub.team_id is not None:
                record_rank_history(session, sub.phase, sub.track, sub.team_id, utcnow())
            notify.submission_done(session, sub)
            session.commit()
            return
        except (OperationalError, InterfaceError) as exc:
            session.rollback()
            if attempt == FINAL_WRITE_TRIES:
                raise
            log.warning("the final write of submission %s failed (%s); retrying", submission_id, exc.__class__.__name__)
            time.sleep(min(0.2 * 2**attempt, 5))


def _fail(session, sub: Submission, message: str, line: int | None) -> None:
    """Fail the submission: it shows no scores, and a final pick it held is freed (its team is told)."""
    sub = session.get(Submission, sub.id, populate_existing=True)
    sub.error, sub.error_line = message, line
    sub.public_score = sub.private_score = sub.scores = sub.curve = None
    freed = sub.selected_final or sub.final_auto
    sub.selected_final = sub.final_auto = False
    states.transition(session, sub, states.FAILED, reason=message)
    notify.submission_done(session, sub, " Its final-pick slot is free: pick another submission." if freed else "")
    session.commit()


class ScoringWorker(Worker):
    """The forking RQ worker of `arena worker`: before forking the work-horse of a scoring job, the worker process
    parses the hidden labels the job needs into its own cache (`warm_labels`); the work-horse inherits them, so a
    label file is parsed once per worker process, not once per job (a forked work-horse's own cache dies with it)."""

    def execute_job(self, job, queue):
        if job.func_name == JOB and job.args:
            warm_labels(job.args[0])
        return super().execute_job(job, queue)


class _Heartbeat:
    """Touch submission.heartbeat_at every `every` seconds from a thread while the scorer runs (the watchdog
    requeues a running submission whose heartbeat stopped)."""

    def __init__(self, submission_id: int, every: float):
        self.submission_id, self.every = submission_id, every
        self._stop = threading.Event()
        self._app = current_app._get_current_object()

    def _beat(self):
        while not self._stop.wait(self.every):
            with self._app.app_context():
                session = new_session()
                try:
                    session.execute(
                        update(Submission).where(Submission.id == self.submission_id).values(heartbeat_at=utcnow())
                    )
                    session.commit()
                except Exception as exc:
                    # a database hiccup must not end the beating: the watchdog would requeue a live run
                    log.warning("heartbeat of submission %s missed: %s", self.submission_id, exc)
                    session.rollback()
                finally:
                    session.close()

    def __enter__(self):
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------------------- scoring


def _label_path(sub: Submission, kind: str, storage_dir: str) -> tuple[Path, str] | None:
    for label in sub.track.labels:
        if label.kind == kind:
            return storage.resolve(storage_dir, label.stored_path), label.sha256
    return None


def _cached(key: tuple[str, ...], path: Path, reader):
    """reader(path), parsed once per process for a key naming the file's kind and sha256 (and those of the files
    it depends on): the stored label files are named by their checksum, so a key never goes stale. The
    LABEL_CACHE_SIZE most recently used files are kept. A parse error is raised each time, never cached."""
    with _LABEL_LOCK:
        if key in _LABEL_CACHE:
            _LABEL_CACHE.move_to_end(key)
            return _LABEL_CACHE[key]
    value = reader(path)
    with _LABEL_LOCK:
        _LABEL_CACHE[key] = value
        _LABEL_CACHE.move_to_end(key)
        while len(_LABEL_CACHE) > LABEL_CACHE_SIZE:
            _LABEL_CACHE.popitem(last=False)
    log.info("parsed hidden labels %s (%s)", key[0], key[1][:12])
    return value


def _hidden_labels(sub: Submission, storage_dir: str):
    """The parsed hidden labels of the submission's track: detection labels, or (test info, verification pairs or
    None). Raises LabelError when they are not uploaded or do not parse."""
    if sub.track.kind == "detection":
        found = _label_path(sub, "detection_gt", storage_dir)
        if found is None:
            raise LabelError("the hidden detection labels of this track are not uploaded")
        path, sha = found
        return _cached(("detection_gt", sha), path, read_detection_labels)
    found = _label_path(sub, "test_info", storage_dir)
    if found is None:
        raise LabelError("the hidden recognition labels of this track are not uploaded")
    info_path, info_sha = found
    labels = _cached(("test_info", info_sha), info_path, read_recognition_labels)
    pairs = _label_path(sub, "verification_pairs", storage_dir)
    if pairs is None:
        return labels, None
    pairs_path, pairs_sha = pairs
    # the pairs are read against the test list: the key names both files
    reader = lambda p: read_verification_pairs(p, labels.image_names)  # noqa: E731
    return labels, _cached(("verification_pairs", pairs_sha, info_sha), pairs_path, reader)


def warm_labels(submission_id: int) -> bool:
    """Parse the hidden labels that scoring submission_id will need into this process's cache; True if they are
    there. A forking worker calls it in its parent before each fork (`ScoringWorker`), so each label file is parsed
    once per worker process and every work-horse inherits it, instead of once per job. Never raises: a problem is
    left to the job itself, which reports it properly."""
    try:
        with _app_context():
            session = new_session()
            try:
                sub = session.get(Submission, submission_id)
                if sub is None:
                    return False
                _hidden_labels(sub, current_app.config["STORAGE_DIR"])
                return True
            finally:
                session.close()
    except Exception as exc:  # the job will meet the same problem and fail the submission with its message
        log.warning("could not prepare the labels of submission %s: %s", submission_id, exc)
        return False


def _score(sub: Submission, storage_dir: str) -> tuple[dict, dict]:
    """({split: metrics}, public curve) of one submission."""
    path = storage.resolve(storage_dir, sub.stored_path)
    return score_file(sub.track, sub.phase.challenge, path, sub.original_name or "submission", storage_dir)


def score_file(track, challenge, path: Path, name: str, storage_dir: str) -> tuple[dict, dict]:
    """({split: metrics}, public curve) of a predictions file for a track (an upload, or the file a sandboxed model
    wrote: arena/sandbox/jobs.py). Raises SubmissionError on an invalid file, LabelError without labels."""
    seed, fraction = challenge.split_seed, challenge.public_fraction
    sub = _TrackOnly(track)
    if track.kind == "detection":
        return _score_detection(sub, path, name, seed, fraction, storage_dir)
    return _score_recognition(sub, path, name, seed, fraction, storage_dir)


class _TrackOnly:
    """What the scoring functions read of a submission: its track."""

    def __init__(self, track):
        self.track = track


def _score_detection(sub, path, name, seed, fraction, storage_dir):
    from scorer.detection import evaluate_detection

    labels = _hidden_labels(sub, storage_dir)
    detections = read_detection_submission(
        path,
        labels.image_names,
        max_boxes_per_image=sub.track.max_boxes_per_image,
        max_bytes=sub.track.max_upload_bytes,
        name=name,
    )
    scores, curve = {}, {}
    for split in SPLITS:
        mask = split_mask(labels.image_names, split, seed, fraction)
        result = evaluate_detection(labels, detections, images=mask)
        scores[split] = _scalars(result.to_dict())
        scores[split]["ap50"] = float(result.ap50)
        if split == "public":
            curve = _pr_curve(result.pr_curve.downsample(200))
    return scores, curve


def _score_recognition(sub, path, name, seed, fraction, storage_dir):
    from scorer.recognition import evaluate_recognition

    labels, verification = _hidden_labels(sub, storage_dir)
    # what it expands to is bounded like the upload itself: by the test list's need and by the upload cap
    limit = min(sub.track.max_upload_bytes, current_app.config["MAX_UPLOAD_BYTES"])
    features = read_features(path, len(labels.image_names), max_bytes=limit, name=name)
    identities = np.unique(labels.labels[labels.labels >= 0])
    scores, curve = {}, {}
    for split in SPLITS:
        mask = split_mask(identities.tolist(), split, seed, fraction)
        result = evaluate_recognition(labels, features, verification=verification, identities=identities[mask])
        scores[split] = _scalars(result.to_dict())
        scores[split]["rank1"] = float(result.rank1)
        if split == "public":
            curve = {"cmc": {str(k): float(v) for k, v in dict(result.cmc).items()}}
    return scores, curve


def _scalars(values: dict) -> dict:
    """The numbers of a metrics dict (and dicts of numbers such as the CMC), without curves or arrays."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool | int | float | np.integer | np.floating):
            out[key] = float(value) if isinstance(value, float | np.floating) else int(value)
        elif isinstance(value, dict) and all(isinstance(v, int | float | np.number) for v in value.values()):
            out[key] = {str(k): float(v) for k, v in value.items()}
    return out


def _pr_curve(curve) -> dict:
    """A downsampled precision/recall curve as two short lists (it holds no per-image detail)."""
    if isinstance(curve, dict):
        recall, precision = curve["recall"], curve["precision"]
    elif isinstance(curve, tuple | list) and len(curve) == 2 and not hasattr(curve, "recall"):
        recall, precision = curve
    else:
        recall, precision = curve.recall, curve.precision
    return {"recall": [round(float(r), 5) for r in recall], "precision": [round(float(p), 5) for p in precision]}


__all__ = [
    "label_diff",
    "label_error_types",
    "score_submission",
    "score_file",
    "validate_labels",
    "warm_labels",
    "ScoringWorker",
    "LabelFile",
    "LABEL_KINDS",
]
