"""Helpers of the platform tests (importable by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from arena.models import User

from scorer import formats

PASSWORD = "correct horse battery"


def run_worker(app, in_thread: bool = False) -> None:
    """Score everything on the queue with a real RQ worker in this process (in_thread: one that installs no
    signal handlers and times jobs out with a timer, so that it can run outside the main thread)."""
    from arena.queue import connect, queue
    from rq import SimpleWorker
    from rq.timeouts import TimerDeathPenalty

    class ThreadWorker(SimpleWorker):
        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self):
            pass

    worker_class = ThreadWorker if in_thread else SimpleWorker
    with app.app_context():
        worker_class([queue(app)], connection=connect(app)).work(burst=True)


@dataclass(frozen=True)
class Data:
    """A tiny challenge: detection GT of 20 images, recognition info of 30 images (6 identities x 3 + 12
    distractors), submissions that score 1.0 (perfect) and worse."""

    folder: Path
    det_names: tuple[str, ...]
    det_boxes: np.ndarray  # (M, 4)
    det_index: np.ndarray  # (M,)
    rec_labels: formats.RecognitionLabels

    def detection_csv(self, quality: float = 1.0) -> bytes:
        """Rows of every GT box (scored `quality`), and for quality < 1 as many far-off false positives ranked
        above them (so ap50 drops)."""
        lines = []
        for i, (image, box) in enumerate(zip(self.det_index, self.det_boxes, strict=True)):
            name = self.det_names[image]
            x1, y1, x2, y2 = box
            lines.append(f"{name},{x1},{y1},{x2},{y2},face,0.5")
            if quality < 1 and i % 2 == 0:
                lines.append(f"{name},500,500,520,520,face,0.9")
        return ("\n".join(lines) + "\n").encode()

    def features(self, good: bool = True) -> bytes:
        labels = self.rec_labels.labels
        rng = np.random.default_rng(0)
        feats = rng.normal(size=(len(labels), 16))
        if good:
            centers = rng.normal(size=(labels.max() + 1, 16)) * 10
            feats[labels >= 0] = centers[labels[labels >= 0]] + rng.normal(size=((labels >= 0).sum(), 16)) * 0.01
        return np.ascontiguousarray(feats, dtype="<f8").tobytes()


def make_data(folder: Path) -> Data:
    folder.mkdir(parents=True, exist_ok=True)
    hidden = folder / "hidden"
    hidden.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    names = tuple(f"det_{i:03d}.jpg" for i in range(20))
    index = np.repeat(np.arange(20), 2)
    corners = rng.integers(0, 300, size=(40, 2)).astype(float)
    boxes = np.concatenate([corners, corners + rng.integers(20, 80, size=(40, 2))], axis=1)
    formats.write_detection_labels(hidden / "gt.csv", names, index, boxes)
    labels = np.array([k // 3 for k in range(18)] + [-1] * 12, dtype=np.int64)
    rec = formats.RecognitionLabels(
        image_names=tuple(f"rec_{i:03d}.jpg" for i in range(30)),
        boxes=np.tile([0.0, 0.0, 10.0, 10.0], (30, 1)),
        labels=labels,
        pairs=formats.all_same_identity_pairs(labels),
    )
    formats.write_recognition_labels(hidden / "info.txt", rec)
    return Data(folder, names, boxes, index, rec)


BUNDLE = """
slug: tiny
title: Tiny cartoon faces
description: "A *tiny* challenge for the tests."
rules: "Be nice."
team_size: {team_size}
splits: {{seed: tiny, public_fraction: 0.5}}
tracks:
  - {{slug: detection, kind: detection, title: Detection, labels: {{detection_gt: hidden/gt.csv}}}}
  - {{slug: recognition, kind: recognition, title: Recognition, labels: {{test_info: hidden/info.txt}}}}
phases:
  - slug: dev
    title: Development
    starts: 2020-01-01
    ends: 2099-01-01
    limits: {{per_day: {per_day}, total: {total}, in_flight: {in_flight}}}
    final_submissions: 2
"""


def load_challenge(db, data: Data, team_size=3, per_day=5, total=10, in_flight=2):
    from arena.services.challenges import load_bundle

    text = BUNDLE.format(team_size=team_size, per_day=per_day, total=total, in_flight=in_flight)
    (data.folder / "challenge.yaml").write_text(text)
    return load_bundle(db, text, data.folder)


def finished_submission(db, team, phase, track, public, private, minute, **kw):
    """A finished submission row with these ap50 scores, made `minute` minutes into 2024 (team None: a baseline)."""
    import datetime as dt

    from arena import states
    from arena.models import Submission

    sub = Submission(
        team_id=team.id if team else None,
        phase_id=phase.id,
        track_id=track.id,
        state=states.FINISHED,
        public_score=public,
        private_score=private,
        scores={"public": {"ap50": public}, "private": {"ap50": private}},
        created_at=dt.datetime(2024, 1, 1, 0, minute),
        **kw,
    )
    db.add(sub)
    db.commit()
    return sub


def make_user(db, email: str, *, verified: bool = True, organizer: bool = False) -> User:
    from arena.services import accounts

    user = accounts.register(db, email, PASSWORD)
    user.verified, user.is_organizer = verified, organizer
    db.commit()
    return user


def token_for(db, user: User) -> dict:
    from arena.services import accounts

    _token, plaintext = accounts.create_api_token(db, user, "test")
    return {"Authorization": f"Bearer {plaintext}"}


def upload(client, headers, content: bytes, *, phase="dev", track="detection", name="sub.csv", slug="tiny"):
    return client.post(
        f"/api/v1/challenges/{slug}/submissions",
        data={"phase": phase, "track": track, "file": (io.BytesIO(content), name)},
        headers=headers,
        content_type="multipart/form-data",
    )
