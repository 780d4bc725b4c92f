"""The final stage's services: model archives (upload, checked before anything runs), the test images the sandbox
sees, the reproduction report (reproduced score beside the uploaded predictions' score, difference, verdict) and
the winner-verification checklist, every tick audited."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import logging
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from scorer.archive import RUNNER_OFFERS, ArchiveError, validate_archive

from .. import audit, storage
from ..contract import Field, FormId, Model
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..models import Challenge, FinalCheck, ModelSubmission, Submission, TestImageSet, Track, User, utcnow
from ..services.accounts import require_verified
from ..services.admin import require_organizer
from ..services.submissions import phase_and_track, shown_filename
from ..services.teams import user_team

log = logging.getLogger(__name__)
DEVICES = ("cpu", "cuda")
CHECKLIST = {
    "code_archive": "the training and inference code was handed over and runs",
    "model_archive": "the model archive reproduces the submitted score",
    "method_description": "a description of the method was handed over",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def runner_offers(config=None) -> dict[str, str]:
    """{distribution: version} that the sandboxed runner offers to a model: SANDBOX_OFFERS when the workers run
    another environment than the web process, else the versions installed here."""
    config = config if config is not None else current_app.config
    if config.get("SANDBOX_OFFERS"):
        return dict(config["SANDBOX_OFFERS"])
    offers = {}
    for name in RUNNER_OFFERS:
        try:
            offers[name] = importlib.metadata.version(name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            continue
    return offers


def submit_model(
    session: Session,
    user: User,
    challenge: Challenge,
    phase_slug: str,
    track_slug: str,
    stream: BinaryIO,
    filename: str | None,
    submission_id: int,
    device: str = "cpu",
) -> ModelSubmission:
    """Store and check a team's model archive that reproduces its finished submission `submission_id`, and queue
    its sandboxed run. Every check that needs no torch runs here: a bad archive is refused with its reason."""
    from . import jobs

    require_verified(user)
    phase, track = phase_and_track(session, challenge, phase_slug, track_slug)
    if not phase.accepts_models:
        raise Forbidden(f"phase '{phase.title}' does not accept model archives")
    team = user_team(session, user, challenge)
    if team is None or team.status != "approved":
        raise Forbidden("only an approved team can hand in a model")
    if device not in DEVICES:
        raise Invalid(f"device must be one of {', '.join(DEVICES)}", field="device")
    sub = session.get(Submission, submission_id)
    if sub is None or sub.team_id != team.id or sub.phase_id != phase.id or sub.track_id != track.id:
        raise NotFound(f"your team has no submission {submission_id} in this phase and track", field="submission_id")
    if sub.state != "finished":
        raise Conflict("a model reproduces a finished submission; this one is " + sub.state)
    config = current_app.config
    max_bytes = int(config.get("MAX_MODEL_BYTES", 500 * 2**20))
    stored = storage.save_stream(stream, config["STORAGE_DIR"], "models", max_bytes)
    path = storage.resolve(config["STORAGE_DIR"], stored.relpath)
    try:
        manifest = validate_archive(path, track.kind, runner_offers(config), max_bytes)
    except ArchiveError as exc:
        path.unlink(missing_ok=True)
        raise Invalid(str(exc), field=exc.field) from None
    model = ModelSubmission(
        team_id=team.id,
        user_id=user.id,
        phase_id=phase.id,
        track_id=track.id,
        submission_id=sub.id,
        original_name=shown_filename(filename),
        stored_path=stored.relpath,
        sha256=stored.sha256,
        size=stored.size,
        manifest=manifest.to_dict(),
        device=device,
    )
    session.add(model)
    session.commit()
    model.job_id = jobs.enqueue(model)
    session.commit()
    return model


def import_test_images(session: Session, actor: User | None, track: Track, folder: str | Path) -> TestImageSet:
    """Copy the hidden test images of a track (a flat folder of image files) into storage, where the sandboxed
    runner binds them read-only; replaces the track's earlier set."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise Invalid(f"{folder} holds no images", field="folder")
    config = current_app.config
    relative = f"test_images/{track.id}/{secrets.token_hex(8)}"
    target = storage.resolve(config["STORAGE_DIR"], relative)
    target.mkdir(parents=True)
    digest = hashlib.sha256()
    for path in files:
        shutil.copyfile(path, target / path.name)
        (target / path.name).chmod(0o644)
        digest.update(path.name.encode() + b"\0" + storage.sha256_of(path).encode())
    target.chmod(0o755)
    found = session.scalar(select(TestImageSet).where(TestImageSet.track_id == track.id))
    before = {"sha256": found.sha256, "num_images": found.num_images} if found else None
    if found is None:
        found = TestImageSet(track_id=track.id)
        session.add(found)
    else:
        shutil.rmtree(storage.resolve(config["STORAGE_DIR"], found.stored_dir), ignore_errors=True)
    found.stored_dir, found.num_images, found.sha256 = relative, len(files), digest.hexdigest()
    found.uploaded_at, found.uploaded_by_id = utcnow(), actor.id if actor else None
    session.flush()
    after = {"sha256": found.sha256, "num_images": found.num_images}
    audit.record(
        session,
        "test_images_set",
        found,
        actor_id=found.uploaded_by_id,
        before=before,
        after=after,
        challenge_id=track.challenge_id,
    )
    session.commit()
    return found


# --------------------------------------------------------------------------------------------------- the report


def reproduction(model: ModelSubmission) -> dict:
    """The reproduced primary metric beside the uploaded predictions' one, per split, the largest difference and a
    verdict against the challenge's tolerance: reproduced | not reproduced | failed | pending."""
    metric = model.track.metric
    tolerance = model.phase.challenge.reproduction_tolerance
    out = {"model_id": model.id, "state": model.state, "metric": metric, "tolerance": tolerance, "splits": {}}
    submitted = (model.submission.scores or {}) if model.submission else {}
    worst = None
    for split in ("public", "private"):
        got = ((model.scores or {}).get(split) or {}).get(metric)
        want = (submitted.get(split) or {}).get(metric)
        diff = None if got is None or want is None else got - want
        out["splits"][split] = {"reproduced": got, "submitted": want, "difference": diff}
        if diff is not None:
            worst = abs(diff) if worst is None else max(worst, abs(diff))
    if model.state == "failed":
        out["verdict"] = "failed"
    elif model.state != "finished" or worst is None:
        out["verdict"] = "pending"
    else:
        out["verdict"] = "reproduced" if worst <= tolerance else "not reproduced"
    out["max_difference"] = worst
    out["speed"] = model.speed
    out["error"] = model.error
    return out


def final_report(session: Session, challenge: Challenge, phase_slug: str, track_slug: str) -> list[dict]:
    """One row per final submission (picked by its team) of a phase and track: the team, the submitted scores,
    the latest model run's reproduction and speed test, and the checklist."""
    phase, track = phase_and_track(session, challenge, phase_slug, track_slug)
    finals = session.scalars(
        select(Submission)
        .where(Submission.phase_id == phase.id, Submission.track_id == track.id, Submission.selected_final.is_(True))
        .order_by(Submission.private_score.desc(), Submission.id)
    )
    rows = []
    for sub in finals:
        model = session.scalar(
            select(ModelSubmission).where(ModelSubmission.submission_id == sub.id).order_by(ModelSubmission.id.desc())
        )
        check = session.scalar(select(FinalCheck).where(FinalCheck.submission_id == sub.id))
        rows.append(
            {
                "submission_id": sub.id,
                "team": sub.team.name if sub.team else None,
                "public_score": sub.public_score,
                "private_score": sub.private_score,
                "reproduction": reproduction(model) if model else {"verdict": "no model"},
                "checklist": checklist(check),
            }
        )
    return rows


def visible_model(session: Session, user: User, model_id: int) -> ModelSubmission:
    """The model run if the user may see it: the same rule as the submission it reproduces (its team or an
    organizer); else NotFound."""
    from ..services.submissions import visible_submission

    model = session.get(ModelSubmission, model_id)
    if model is None or model.submission_id is None:
        raise NotFound(f"no model {model_id}")
    try:
        visible_submission(session, user, model.submission_id)
    except NotFound:
        raise NotFound(f"no model {model_id}") from None
    return model


def checklist(check: FinalCheck | None) -> dict:
    items = (check.items if check else None) or {}
    return {key: {"label": label, **items.get(key, {"checked": False})} for key, label in CHECKLIST.items()}


class TickForm(Model):
    """The console's checklist form: one item of one final submission, ticked (1) or unticked (0)."""

    submission_id: FormId
    item: str = Field(max_length=64)
    checked: bool = False


def model_runs(session: Session, submission_id: int) -> list[ModelSubmission]:
    return list(
        session.scalars(
            select(ModelSubmission).where(ModelSubmission.submission_id == submission_id).order_by(ModelSubmission.id)
        )
    )


def tick(session: Session, actor: User, submission_id: int, item: str, checked: bool) -> dict:
    """Tick (or untick) one item of a final submission's verification checklist; audited."""
    require_organizer(actor)
    if item not in CHECKLIST:
        raise Invalid(f"unknown checklist item '{item}'; choose one of {', '.join(CHECKLIST)}", field="item")
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(f"no submission {submission_id}")
    if not sub.selected_final:
        raise Conflict("only a final submission has a verification checklist")
    check = session.scalar(select(FinalCheck).where(FinalCheck.submission_id == sub.id))
    if check is None:
        check = FinalCheck(submission_id=sub.id, items={})
        session.add(check)
    before = dict(check.items or {}).get(item)
    entry = {"checked": bool(checked), "by": actor.id, "at": utcnow().isoformat() + "Z"}
    check.items = {**(check.items or {}), item: entry}  # a new dict: JSON columns track assignment only
    session.flush()
    audit.record(
        session,
        "final_check",
        sub,
        actor_id=actor.id,
        challenge_id=sub.phase.challenge_id,
        before={item: before},
        after={item: entry},
    )
    session.commit()
    return checklist(check)


# --------------------------------------------------------------------------------------------------- views


def model_view(model: ModelSubmission, organizer: bool) -> dict:
    """A model run as its team sees it (no private split before the reveal: the reproduction's public half only);
    an organizer sees the whole reproduction."""
    report = reproduction(model)
    if not organizer:
        report["splits"] = {"public": report["splits"]["public"]}
        report.pop("max_difference", None)
        report.pop("verdict", None)
    return {
        "id": model.id,
        "state": model.state,
        "phase": model.phase.slug,
        "track": model.track.slug,
        "submission_id": model.submission_id,
        "file_name": model.original_name,
        "size": model.size,
        "sha256": model.sha256,
        "device": model.device,
        "manifest": model.manifest,
        "error": model.error,
        "log_tail": model.log_tail,
        "worker": model.worker,
        "created_at": model.created_at.isoformat() + "Z",
        "finished_at": model.finished_at.isoformat() + "Z" if model.finished_at else None,
        "reproduction": report,
    }


CSV_COLUMNS = (
    "submission_id",
    "team",
    "public_score",
    "private_score",
    "reproduced_public",
    "reproduced_private",
    "max_difference",
    "tolerance",
    "verdict",
    "images_per_second",
    "ms_per_image",
    "peak_rss_bytes",
    "model_bytes",
    "device",
    *CHECKLIST,
)


def _csv_row(row: dict) -> dict:
    rep, speed = row["reproduction"], row["reproduction"].get("speed") or {}
    splits = rep.get("splits", {})
    out = {
        "submission_id": row["submission_id"],
        "team": row["team"],
        "public_score": row["public_score"],
        "private_score": row["private_score"],
        "reproduced_public": splits.get("public", {}).get("reproduced"),
        "reproduced_private": splits.get("private", {}).get("reproduced"),
        "max_difference": rep.get("max_difference"),
        "tolerance": rep.get("tolerance"),
        "verdict": rep["verdict"],
        "images_per_second": speed.get("images_per_second"),
        "ms_per_image": speed.get("ms_per_image"),
        "peak_rss_bytes": speed.get("peak_rss_bytes"),
        "model_bytes": speed.get("model_bytes"),
        "device": (speed.get("hardware") or {}).get("device"),
    }
    out.update({key: int(item["checked"]) for key, item in row["checklist"].items()})
    return out


def final_csv(rows: list[dict]) -> str:
    """The final-standings export: one row per final submission (final_report's rows), checklist ticks as 0/1."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(_csv_row(row) for row in rows)
    return out.getvalue()
