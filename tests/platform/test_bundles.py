"""Challenge bundles: validated with errors naming the key, loaded by the CLI, re-loading updates in place."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from arena.models import Challenge, LabelFile, Phase
from arena.services.challenges import BundleError, load_bundle, parse_bundle, read_bundle
from arena_testkit import BUNDLE

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]
VALID = {
    "slug": "c",
    "title": "C",
    "tracks": [{"slug": "det", "kind": "detection"}],
    "phases": [{"slug": "p", "starts": "2020-01-01", "ends": "2020-02-01"}],
}


def _with(path: str, value):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("slug", KeyError, "slug: is required"),
        ("slug", "Not A Slug", "slug: 'Not A Slug' must be lowercase"),
        ("title", 3, "title: must be text"),
        ("team_size", 0, "team_size: must be 1 to 100"),
        ("splits", {"public_fraction": 1.5}, "splits.public_fraction"),
        ("tracks", [], "tracks: a challenge needs at least one track"),
        ("tracks.0.kind", "segmentation", "tracks[0].kind: 'segmentation' must be one of"),
        ("tracks.0.labels", {"test_info": "x.txt"}, "tracks[0].labels.test_info: a detection track takes"),
        ("phases.0.ends", "2019-01-01", "phases[0].ends: must be after starts"),
        ("phases.0.starts", "someday", "phases[0].starts: 'someday' is not a date"),
        ("phases.0.tracks", ["rec"], "phases[0].tracks: unknown track 'rec'"),
        ("phases.0.limits", {"per_day": 0}, "phases[0].limits.per_day: must be at least 1"),
        ("phases.0.ranking", "worst", "phases[0].ranking: must be best or latest"),
        ("registration", {"opens": "soon"}, "registration.opens"),
    ],
)
def test_invalid_bundles_name_the_key(path, value, message):
    with pytest.raises(BundleError) as error:
        parse_bundle(_with(path, value))
    assert message in error.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: [1, 2", "not valid YAML at line"), ("- a\n- b\n", "must be a YAML mapping")],
)
def test_unreadable_yaml_is_a_clear_error(text, message):
    with pytest.raises(BundleError, match=message):
        parse_bundle(text)


def test_label_paths_must_stay_inside_the_bundle(tmp_path):
    text = _with("tracks.0.labels", {"detection_gt": "../../etc/passwd"})
    with pytest.raises(BundleError, match="must lie inside the bundle folder"):
        parse_bundle(text, tmp_path)


def test_the_shipped_icartoonface_2020_bundle_is_valid():
    spec = parse_bundle(*read_bundle(ROOT / "challenges" / "icartoonface-2020"))
    assert [t["kind"] for t in spec["tracks"]] == ["detection", "recognition"]
    assert spec["tracks"][0]["max_upload_bytes"] == 20 * 2**20
    assert "iCartoonFace" in spec["description"] and spec["rules"]


def test_reloading_a_bundle_updates_the_challenge_in_place(db, data):
    text = BUNDLE.format(team_size=3, per_day=5, total=10, in_flight=2)
    first = load_bundle(db, text, data.folder)
    again = load_bundle(
        db, text.replace("Tiny cartoon faces", "Renamed").replace("per_day: 5", "per_day: 7"), data.folder
    )
    assert again.id == first.id and again.title == "Renamed"
    assert db.query(Challenge).count() == 1 and db.query(Phase).one().max_per_day == 7
    assert db.query(LabelFile).count() == 2, "unchanged labels are not stored twice"


def test_the_cli_loads_a_bundle_folder(app, db):
    result = app.test_cli_runner().invoke(args=["challenge", "load", str(ROOT / "challenges" / "icartoonface-2020")])
    assert result.exit_code == 0, result.output
    assert "loaded challenge 'icartoonface-2020': 2 tracks, 2 phases" in result.output
    assert db.query(Challenge).one().slug == "icartoonface-2020"


def test_the_cli_reports_a_bad_bundle_without_a_traceback(app, tmp_path):
    (tmp_path / "challenge.yaml").write_text(_with("phases.0.ends", "2019-01-01"))
    result = app.test_cli_runner().invoke(args=["challenge", "load", str(tmp_path)])
    assert result.exit_code == 1 and "phases[0].ends: must be after starts" in result.output
    assert "Traceback" not in result.output


def test_labels_that_the_scorer_rejects_are_refused_with_its_message(db, challenge, tmp_path):
    from arena.errors import Invalid
    from arena.services.admin import store_labels

    track = next(t for t in challenge.tracks if t.kind == "detection")
    import io

    with pytest.raises(Invalid, match="line 1"):
        store_labels(db, track, "detection_gt", io.BytesIO(b"a.jpg,1,2,3\n"))
    with pytest.raises(Invalid, match="takes labels of kind"):
        store_labels(db, track, "test_info", io.BytesIO(b"imginfos:\n"))
