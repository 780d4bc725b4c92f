"""Challenge bundles: a YAML file (challenge.yaml in a folder) describing a challenge, validated with errors that
name the key, loaded into the database; loading it again updates the challenge in place.

    slug, title, description | description_file, rules | rules_file, team_size, teams_need_approval,
    reproduction_tolerance (final stage: how far a model's reproduced score may stray from the submitted one),
    registration: {opens, closes}, merge_deadline,
    splits: {seed, public_fraction},
    tracks: [{slug, kind: detection|recognition, title, max_upload_mb, max_boxes_per_image,
              labels: {detection_gt | test_info | verification_pairs: path relative to the bundle}}],
    phases: [{slug, title, starts, ends, reveal (the private board shows from then on; never before ends),
              late_submissions: true|false (uploads after the phase closes: scored, never ranked),
              tracks: [slug...], ranking: best|latest, final_submissions, limits: {per_day, total, in_flight},
              accepts_models (final stage: model archives),
              require_method_for_final (a final pick must name its method; default: the challenge's)}],
    require_method_for_final: true|false (the default of every phase),
    links: {data, starter_kit}: where participants get the data and the starter kit (an http(s) address, or a
              path in the platform's repository; defaults: facedata/README.md and starter_kit/README.md)
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit
from ..contract import parse_time
from ..errors import Invalid
from ..models import Challenge, Phase, Track

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
KINDS = ("detection", "recognition")
DEFAULT_MB = {"detection": 20, "recognition": 110}


class BundleError(Invalid):
    """A bundle is invalid; the message starts with the key that is wrong (e.g. `phases[1].ends`)."""


DEFAULT_LINKS = {"data": "facedata/README.md", "starter_kit": "starter_kit/README.md"}  # bundle key `links`


def _need(data: dict, key: str, where: str, kind: type | tuple = str) -> Any:
    if key not in data or data[key] is None:
        raise BundleError(f"{where}{key}: is required")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(f"{where}{key}: must be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind) -> str:
    names = {str: "text", int: "an integer", float: "a number", list: "a list", dict: "a mapping", bool: "true/false"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _opt(data: dict, key: str, where: str, kind, default):
    return default if data.get(key) is None else _need(data, key, where, kind)


def _slug(data: dict, where: str) -> str:
    slug = _need(data, "slug", where)
    if not SLUG.match(slug):
        raise BundleError(f"{where}slug: '{slug}' must be lowercase letters, digits and dashes (1-64)")
    return slug


def _time(value, key: str) -> dt.datetime | None:
    """A date or ISO date-time, naive UTC (contract.parse_time: the one parser of the platform)."""
    if value is None:
        return None
    try:
        return parse_time(value, key)
    except Invalid as exc:
        raise BundleError(exc.message) from None


def _text(data: dict, key: str, base: Path | None) -> str:
    if data.get(f"{key}_file"):
        if base is None:
            raise BundleError(f"{key}_file: only a bundle folder can refer to files")
        path = _inside(base, data[f"{key}_file"], f"{key}_file")
        return path.read_text(encoding="utf-8")
    return str(data.get(key) or "")


def _inside(base: Path, relpath: str, key: str) -> Path:
    path = (base / str(relpath)).resolve()
    if base.resolve() not in path.parents:
        raise BundleError(f"{key}: '{relpath}' must lie inside the bundle folder")
    if not path.is_file():
        raise BundleError(f"{key}: no file '{relpath}' in the bundle")
    return path


def parse_bundle(text: str, base: Path | None = None) -> dict:
    """Validate a bundle's YAML; return a normalised dict (labels as absolute paths). Raises BundleError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise BundleError(f"the bundle is not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise BundleError("the bundle must be a YAML mapping")
    out: dict[str, Any] = {"slug": _slug(data, ""), "title": _need(data, "title", "")}
    out["description"], out["rules"] = _text(data, "description", base), _text(data, "rules", base)
    out["team_size"] = _opt(data, "team_size", "", int, 5)
    if not 1 <= out["team_size"] <= 100:
        raise BundleError("team_size: must be 1 to 100")
    out["teams_need_approval"] = _opt(data, "teams_need_approval", "", bool, False)
    tolerance = data.get("reproduction_tolerance", 0.005)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance <= 1:
        raise BundleError("reproduction_tolerance: must be a number in [0, 1]")
    out["reproduction_tolerance"] = float(tolerance)
    require_method = _opt(data, "require_method_for_final", "", bool, False)
    links = _opt(data, "links", "", dict, {})
    unknown_links = sorted(set(links) - set(DEFAULT_LINKS))
    if unknown_links:
        raise BundleError(f"links.{unknown_links[0]}: unknown link; the links are {', '.join(DEFAULT_LINKS)}")
    out["links"] = {key: _opt(links, key, "links.", str, default) for key, default in DEFAULT_LINKS.items()}
    registration = _opt(data, "registration", "", dict, {})
    out["registration_opens"] = _time(registration.get("opens"), "registration.opens")
    out["registration_closes"] = _time(registration.get("closes"), "registration.closes")
    out["merge_deadline"] = _time(data.get("merge_deadline"), "merge_deadline")
    splits = _opt(data, "splits", "", dict, {})
    out["split_seed"] = str(splits.get("seed", out["slug"]))
    fraction = splits.get("public_fraction", 0.5)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise BundleError("splits.public_fraction: must be a number in (0, 1]")
    out["public_fraction"] = float(fraction)
    out["tracks"] = []
    for i, track in enumerate(_need(data, "tracks", "", list)):
        where = f"tracks[{i}]."
        if not isinstance(track, dict):
            raise BundleError(f"tracks[{i}]: must be a mapping")
        kind = _need(track, "kind", where)
        if kind not in KINDS:
            raise BundleError(f"{where}kind: '{kind}' must be one of {', '.join(KINDS)}")
        labels = {}
        for label_kind, relpath in _opt(track, "labels", where, dict, {}).items():
            allowed = ("detection_gt",) if kind == "detection" else ("test_info", "verification_pairs")
            if label_kind not in allowed:
                raise BundleError(f"{where}labels.{label_kind}: a {kind} track takes {', '.join(allowed)}")
            if base is None:
                raise BundleError(f"{where}labels: only a bundle folder can refer to label files")
            labels[label_kind] = _inside(base, relpath, f"{where}labels.{label_kind}")
        mb = _opt(track, "max_upload_mb", where, (int, float), DEFAULT_MB[kind])
        out["tracks"].append(
            {
                "slug": _slug(track, where),
                "kind": kind,
                "title": _opt(track, "title", where, str, kind.title()),
                "max_upload_bytes": int(mb * 2**20),
                "max_boxes_per_image": _opt(track, "max_boxes_per_image", where, int, 100),
                "labels": labels,
            }
        )
    if not out["tracks"]:
        raise BundleError("tracks: a challenge needs at least one track")
    track_slugs = [t["slug"] for t in out["tracks"]]
    if len(set(track_slugs)) != len(track_slugs):
        raise BundleError("tracks: two tracks have the same slug")
    out["phases"] = []
    for i, phase in enumerate(_need(data, "phases", "", list)):
        where = f"phases[{i}]."
        if not isinstance(phase, dict):
            raise BundleError(f"phases[{i}]: must be a mapping")
        starts, ends = (
            _time(_need(phase, "starts", where, (str, dt.date)), f"{where}starts"),
            _time(_need(phase, "ends", where, (str, dt.date)), f"{where}ends"),
        )
        if ends <= starts:
            raise BundleError(f"{where}ends: must be after starts")
        reveal = _time(phase.get("reveal"), f"{where}reveal")
        if reveal is not None and reveal < ends:
            raise BundleError(f"{where}reveal: must not be before ends (closing never reveals the private board)")
        tracks = _opt(phase, "tracks", where, list, track_slugs)
        unknown = [t for t in tracks if t not in track_slugs]
        if unknown:
            raise BundleError(f"{where}tracks: unknown track '{unknown[0]}'; the tracks are {', '.join(track_slugs)}")
        limits = _opt(phase, "limits", where, dict, {})
        ranking = _opt(phase, "ranking", where, str, "best")
        if ranking not in ("best", "latest"):
            raise BundleError(f"{where}ranking: must be best or latest")
        parsed = {
            "slug": _slug(phase, where),
            "title": _opt(phase, "title", where, str, phase["slug"]),
            "starts_at": starts,
            "ends_at": ends,
            "track_slugs": ",".join(tracks),
            "ranking": ranking,
            "final_count": _opt(phase, "final_submissions", where, int, 2),
            "reveal_at": reveal,
            "allow_late": _opt(phase, "late_submissions", where, bool, False),
            "accepts_models": _opt(phase, "accepts_models", where, bool, False),
            "require_method_for_final": _opt(phase, "require_method_for_final", where, bool, require_method),
        }
        for key, column, default in (
            ("per_day", "max_per_day", 5),
            ("total", "max_total", 100),
            ("in_flight", "max_in_flight", 2),
        ):
            value = _opt(limits, key, f"{where}limits.", int, default)
            if value < 1:
                raise BundleError(f"{where}limits.{key}: must be at least 1")
            parsed[column] = value
        out["phases"].append(parsed)
    if not out["phases"]:
        raise BundleError("phases: a challenge needs at least one phase")
    if len({p["slug"] for p in out["phases"]}) != len(out["phases"]):
        raise BundleError("phases: two phases have the same slug")
    return out


def read_bundle(path: str | Path) -> tuple[str, Path | None]:
    """(YAML text, bundle folder) of a folder holding challenge.yaml or of a YAML file."""
    path = Path(path)
    if path.is_dir():
        path = path / "challenge.yaml"
    if not path.is_file():
        raise BundleError(f"no bundle at {path} (a folder with challenge.yaml, or a YAML file)")
    return path.read_text(encoding="utf-8"), path.parent


def load_bundle(session: Session, text: str, base: Path | None = None, actor_id: int | None = None) -> Challenge:
    """Create or update the challenge a bundle describes; store its label files (replacing labels rescores).
    Tracks and phases are matched by slug; ones the bundle no longer lists are kept (they may hold submissions)."""
    from .admin import store_labels  # labels are an organizer action of their own

    spec = parse_bundle(text, base)
    challenge = session.scalar(select(Challenge).where(Challenge.slug == spec["slug"]))
    created = challenge is None
    if created:
        challenge = Challenge(slug=spec["slug"], split_seed=spec["split_seed"])
        session.add(challenge)
    for key in (
        "title",
        "description",
        "rules",
        "team_size",
        "teams_need_approval",
        "registration_opens",
        "registration_closes",
        "merge_deadline",
        "split_seed",
        "public_fraction",
        "reproduction_tolerance",
        "links",
    ):
        setattr(challenge, key, spec[key])
    session.flush()
    tracks = {t.slug: t for t in session.scalars(select(Track).where(Track.challenge_id == challenge.id))}
    for position, t in enumerate(spec["tracks"]):
        track = tracks.get(t["slug"]) or Track(challenge_id=challenge.id, slug=t["slug"])
        if track.id is not None and track.kind != t["kind"]:
            raise BundleError(f"tracks[{position}].kind: track '{track.slug}' is {track.kind}; its kind cannot change")
        track.kind, track.title, track.position = t["kind"], t["title"], position
        track.max_upload_bytes, track.max_boxes_per_image = t["max_upload_bytes"], t["max_boxes_per_image"]
        session.add(track)
        tracks[t["slug"]] = track
    phases = {p.slug: p for p in session.scalars(select(Phase).where(Phase.challenge_id == challenge.id))}
    for position, p in enumerate(spec["phases"]):
        phase = phases.get(p["slug"]) or Phase(challenge_id=challenge.id, slug=p["slug"])
        for key, value in p.items():
            setattr(phase, key, value)
        phase.position = position
        session.add(phase)
    audit.record(
        session,
        "challenge.load",
        challenge,
        actor_id=actor_id,
        challenge_id=challenge.id,
        after={"created": created, "tracks": len(spec["tracks"]), "phases": len(spec["phases"])},
    )
    session.commit()
    for t in spec["tracks"]:
        for kind in ("test_info", "detection_gt", "verification_pairs"):
            if kind in t["labels"]:
                with open(t["labels"][kind], "rb") as stream:
                    store_labels(
                        session, tracks[t["slug"]], kind, stream, actor_id=actor_id, filename=t["labels"][kind].name
                    )
    return challenge
