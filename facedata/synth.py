"""`generate(out, preset, seed, workers)`: the synthetic iCartoonFace dataset in the official layout.

Work is cut into fixed chunks of images (the same whatever the number of workers). A chunk's images are written to
temporary names and renamed, then its boxes are recorded in `out/.partial/<chunk>.json`; a run that finds those
records skips the chunks (resume). The official files are written last, through `scorer.formats`, then the
manifest (sha256 of every file) and the README. Same (preset, seed) -> byte-identical files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from facedata import avatars, scenes
from facedata.layout import Layout
from facedata.plan import (
    DEFAULT_VERSION,
    PRESETS,
    S_DET_TEST,
    S_DET_TRAIN,
    Plan,
    Preset,
    image_rng,
    make_plan,
    verification_pairs,
)
from scorer import formats

log = logging.getLogger(__name__)

CHUNK = 32


# ---------------------------------------------------------------------------------------------- one job


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _run_chunk(args) -> tuple[int, list]:
    """Draw and write the images of one chunk; returns (chunk, [(key, boxes)...])."""
    root, seed, chunk, jobs = args
    results = []
    for job in jobs:
        if job[0] == "rec":
            _, split_dir, name, identity, key = job
            data, box = scenes.recognition_image(identity, image_rng(seed, key))
            _write_atomic(Path(root) / split_dir / name, data)
            results.append([name, [list(box)]])
        else:
            _, split_dir, name, key, max_faces = job
            data, boxes = scenes.detection_image(image_rng(seed, key), f"{seed}/{name}", max_faces)
            _write_atomic(Path(root) / split_dir / name, data)
            results.append([name, [list(b) for b in boxes]])
    record = Path(root) / ".partial" / f"{chunk:06d}.json"
    _write_atomic(record, json.dumps(results).encode())
    return chunk, results


def _jobs(plan: Plan, layout: Layout) -> list[tuple]:
    jobs: list[tuple] = []
    for item in plan.rec_images:
        folder = layout.split_dir(item.split).name
        jobs.append(("rec", folder, item.name, plan.identities[item.identity], item.key))
    preset = plan.preset
    for count, stream, prefix, folder in (
        (preset.det_train, S_DET_TRAIN, "personai_icartoonface_dettrain", layout.det_train_dir.name),
        (preset.det_test, S_DET_TEST, "personai_icartoonface_detval", layout.det_test_dir.name),
    ):
        for i in range(count):
            jobs.append(("det", folder, f"{prefix}_{i:05d}.jpg", (stream, i), preset.max_faces))
    return jobs


# ---------------------------------------------------------------------------------------------- the run


def generate(
    out: str | os.PathLike,
    preset: str | Preset = "tiny",
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
    version: int = DEFAULT_VERSION,
) -> dict:
    """Generate the dataset under `out` (see facedata/README.md for the layout); returns the manifest.

    workers: processes drawing images (1 = in this process). Output bytes do not depend on it.
    version: the generator version (facedata.plan.VERSIONS; recorded in the manifest).
    """
    preset = PRESETS[preset] if isinstance(preset, str) else preset
    layout = Layout(out)
    layout.root.mkdir(parents=True, exist_ok=True)
    partial = layout.root / ".partial"
    partial.mkdir(exist_ok=True)
    fingerprint = {"preset": dataclasses.asdict(preset), "seed": seed, "generator_version": str(version)}
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples as lists, as read back
    stamp = partial / "plan.json"
    if stamp.exists() and json.loads(stamp.read_text()) != fingerprint:
        raise ValueError(f"{out} holds an unfinished run of {stamp.read_text()}; use another folder or delete it")
    _write_atomic(stamp, json.dumps(fingerprint).encode())

    plan = make_plan(preset, seed, version)
    jobs = _jobs(plan, layout)
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    results: dict[str, list] = {}
    todo = []
    for index, chunk in enumerate(chunks):
        record = partial / f"{index:06d}.json"
        if record.exists():
            results.update({name: boxes for name, boxes in json.loads(record.read_text())})
        else:
            todo.append((os.fspath(layout.root), seed, index, chunk))
    log.info("%s seed %d: %d images in %d chunks, %d to draw", preset.name, seed, len(jobs), len(chunks), len(todo))
    bar = _progress(progress, len(todo))
    if workers <= 1 or len(todo) <= 1:
        for args in todo:
            _, rows = _run_chunk(args)
            results.update({name: boxes for name, boxes in rows})
            bar.update(1)
    else:
        # a process pool that raises BrokenProcessPool if a worker dies, where multiprocessing.Pool would wait forever
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for _, rows in pool.map(_run_chunk, todo):
                results.update({name: boxes for name, boxes in rows})
                bar.update(1)
    bar.close()

    _write_official_files(plan, layout, results)
    manifest = _write_manifest(plan, layout)
    shutil.rmtree(partial)
    return manifest


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(enabled: bool, total: int):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", desc="facedata synth")


def _box_array(rows) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _write_official_files(plan: Plan, layout: Layout, results: dict[str, list]) -> None:
    layout.hidden_dir.mkdir(exist_ok=True)
    preset = plan.preset
    tmp = layout.root / ".partial"

    def emit(writer, path: Path, *args, **kwargs):
        staging = tmp / path.name
        writer(staging, *args, **kwargs)
        os.replace(staging, path)

    # detection
    train_names = [f"personai_icartoonface_dettrain_{i:05d}.jpg" for i in range(preset.det_train)]
    names, boxes = [], []
    for image in train_names:
        for box in results[image]:
            names.append(image)
            boxes.append(box)
    emit(formats.write_detection_train_boxes, layout.det_train_csv, formats.BoxList(tuple(names), _box_array(boxes)))
    test_names = [f"personai_icartoonface_detval_{i:05d}.jpg" for i in range(preset.det_test)]
    index, boxes = [], []
    for i, image in enumerate(test_names):
        for box in results[image]:
            index.append(i)
            boxes.append(box)
    emit(formats.write_detection_labels, layout.det_test_gt, test_names, np.asarray(index, np.int64), _box_array(boxes))

    # recognition train and auxiliary lists
    for split, path in (("rectrain", layout.rec_train_list), ("auxiliary", layout.aux_list)):
        items = plan.split(split)
        listing = formats.BoxList(
            tuple(i.name for i in items),
            _box_array([results[i.name][0] for i in items]),
            tuple(i.name.split("/")[0] for i in items),
        )
        emit(formats.write_recognition_train_list, path, listing)

    # recognition test: public list, hidden info with pairs, hidden verification pairs
    test = plan.split("rectest")
    test_names = tuple(i.name for i in test)
    test_boxes = _box_array([results[i.name][0] for i in test])
    emit(formats.write_recognition_test_list, layout.rec_test_list, formats.BoxList(test_names, test_boxes))
    labels = np.asarray([i.label for i in test], dtype=np.int64)
    info = formats.RecognitionLabels(test_names, test_boxes, labels, formats.all_same_identity_pairs(labels))
    emit(formats.write_recognition_labels, layout.rec_test_info, info)
    a, b, same, fold = verification_pairs(plan, _nuisance_descriptor(plan))
    emit(
        formats.write_verification_pairs,
        layout.verification_pairs_file,
        test_names,
        formats.VerificationPairs(a, b, same, fold),
    )


def _nuisance_descriptor(plan: Plan):
    """test row -> float vector of the nuisance its image is drawn with (the same draws as scenes.recognition_image)."""
    test = plan.split("rectest")

    def describe(row: int) -> np.ndarray:
        item = test[row]
        identity = plan.identities[item.identity]
        rng = image_rng(plan.seed, item.key)
        face = scenes.sample_face_nuisance(identity, rng)
        image = scenes.sample_image_nuisance(rng)
        parts = [(zlib.crc32(f"{k}={v}".encode()) % 1000) / 1000 for k, v in face.expression]
        return np.array([face.rotation / 15, face.flip, 2 * image.grayscale, image.patches, image.blur, *parts])

    width = max((len(avatars.STYLES[plan.identities[i.identity].style].expression) + 2 for i in test), default=0) + 5

    def padded(row: int) -> np.ndarray:
        vector = describe(row)
        return np.pad(vector, (0, width - len(vector)))

    return padded


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(plan: Plan, layout: Layout) -> dict:
    root = layout.root
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and ".partial" not in p.parts and p.name not in ("manifest.json", "README.md")
    )
    preset = plan.preset
    test = plan.split("rectest")
    manifest = {
        "generator": "facedata",
        "generator_version": str(plan.version),
        "preset": preset.name,
        "seed": plan.seed,
        "sizes": {
            "rectrain_identities": preset.train_ids,
            "rectrain_images": len(plan.split("rectrain")),
            "rectest_identities": preset.test_ids,
            "rectest_images": len(test),
            "rectest_distractors": sum(1 for i in test if i.label < 0),
            "auxiliary_identities": preset.aux_ids,
            "auxiliary_images": len(plan.split("auxiliary")),
            "dettrain_images": preset.det_train,
            "dettest_images": preset.det_test,
        },
        "libraries": {
            name: _version(name) for name in ("dicebear-core", "dicebear-styles", "resvg-py", "pillow", "numpy")
        },
        "styles": {
            name: avatars.style_meta(name)
            for name in (*avatars.MAIN_STYLES, *avatars.AUX_STYLES, *avatars.CLUTTER_STYLES)
        },
        "files": {p.relative_to(root).as_posix(): _sha256(p) for p in files},
    }
    _write_atomic(layout.manifest, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    _write_atomic(root / "README.md", _readme(manifest).encode())
    return manifest


def synth_command(manifest: dict) -> str:
    """The command that makes a dataset again, from its manifest: the version named, since the default changes."""
    return (
        f"python -m facedata synth --preset {manifest['preset']} --seed {manifest['seed']} "
        f"--version {manifest['generator_version']}"
    )


def _readme(manifest: dict) -> str:
    sizes = "\n".join(f"| {k} | {v:,} |" for k, v in manifest["sizes"].items())
    styles = "\n".join(
        f"| {name} | {m['creator']} | {m['license']} | {m['source_url'] or ''} |"
        for name, m in manifest["styles"].items()
    )
    return f"""# Synthetic iCartoonFace ({manifest["preset"]}, seed {manifest["seed"]})

Generated by `{synth_command(manifest)}`. The layout and the file formats are those of the iCartoonFace
2020 challenge. `hidden/` holds the test labels: never ship it to participants.
`manifest.json` lists the sha256 of every file.

| size | count |
|---|---|
{sizes}

## Art
Faces are drawn with DiceBear styles (dicebear-styles), rasterised with resvg:

| style | creator | licence | source |
|---|---|---|---|
{styles}
"""
