"""What a preset generates: identities, images per identity, test order, and the hidden verification pairs.

The plan is a pure function of (preset, seed): every random stream is `numpy.random.default_rng([seed, STREAM,
item...])`, so nothing depends on worker count or order. Rendering the images is `facedata.synth`'s job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from facedata import avatars

log = logging.getLogger(__name__)

# stream ids of the random generators (never reorder: they are part of the format of a seed)
S_TRAIN, S_TEST, S_AUX, S_DET_TRAIN, S_DET_TEST, S_ORDER, S_PAIRS, S_IMAGE = range(1, 9)

# share of the test identities that are training identities (the 2020 paper: 1,200 of the 2,000 probe persons)
SEEN_SHARE = 0.6

# generator versions a plan can follow: 2, the test identities mix seen and unseen (60 / 40) as the 2020 protocol;
# 3, look-alikes are also drawn differently from their identity (avatars.make_identity's drawn_apart). The default
# is the version the committed reference runs (baselines/results/) and the demo's baseline rows are scored on.
VERSIONS = (2, 3)
DEFAULT_VERSION = 3


@dataclass(frozen=True)
class Preset:
    """Sizes of a generated dataset. Image counts per identity are drawn in [lo, hi] and adjusted to the totals."""

    name: str
    train_ids: int
    train_images: int
    test_ids: int
    test_images: int  # labelled test images (the distractors come on top)
    distractors: int
    aux_ids: int
    aux_images: int
    det_train: int
    det_test: int
    same_pairs: int
    diff_pairs: int
    test_per_id: tuple[int, int] = (5, 17)
    max_faces: int = 60


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", 6, 24, 10, 35, 10, 3, 12, 6, 6, 20, 20, test_per_id=(3, 4), max_faces=4),
    "small": Preset("small", 300, 2400, 150, 1000, 1500, 60, 480, 400, 200, 1000, 1000, test_per_id=(5, 9)),
    # the official sizes of the 2020 challenge (the auxiliary set is ours)
    "full": Preset("full", 5013, 389_678, 2000, 20_000, 2500, 1000, 20_000, 50_000, 10_000, 3000, 3000),
}


@dataclass(frozen=True)
class RecImage:
    """One recognition image to draw: where it goes, who it shows, and the key of its random stream."""

    split: str  # "rectrain", "rectest", "auxiliary"
    name: str  # relpath under the split folder
    identity: int  # index into Plan.identities
    label: int  # identity label in the hidden files (-1: distractor; train/aux: the folder index)
    key: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    preset: Preset
    seed: int
    identities: tuple[avatars.Identity, ...]
    rec_images: tuple[RecImage, ...]  # train, then test in test-list order, then auxiliary
    version: int = DEFAULT_VERSION  # the generator version it follows (VERSIONS)

    def split(self, name: str) -> list[RecImage]:
        return [item for item in self.rec_images if item.split == name]


def _counts(rng: np.random.Generator, n: int, total: int, lo: int, hi: int) -> np.ndarray:
    """n counts in [lo, hi] summing to total (clamped to the feasible range)."""
    total = int(np.clip(total, n * lo, n * hi))
    counts = rng.integers(lo, hi + 1, size=n)
    while counts.sum() != total:
        i = int(rng.integers(n))
        if counts.sum() < total and counts[i] < hi:
            counts[i] += 1
        elif counts.sum() > total and counts[i] > lo:
            counts[i] -= 1
    return counts


def _families(rng: np.random.Generator, styles, n: int, tag: str, seed: int, first_family: int, drawn_apart: bool):
    """n identities in look-alike families of 1 to 3 members (p = .5, .3, .2) of one style each."""
    out: list[avatars.Identity] = []
    family = first_family
    while len(out) < n:
        size = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
        style = styles[int(rng.integers(len(styles)))]
        for member in range(min(size, n - len(out))):
            out.append(avatars.make_identity(style, f"{seed}:{tag}:{family}", member, family, drawn_apart))
        family += 1
    return out, family


def plan_of(manifest: dict) -> Plan:
    """The plan a generated dataset follows, from its manifest.json (preset, seed and generator version)."""
    return make_plan(PRESETS[manifest["preset"]], int(manifest["seed"]), int(manifest["generator_version"]))


def make_plan(preset: Preset, seed: int, version: int = DEFAULT_VERSION) -> Plan:
    if version not in VERSIONS:
        raise ValueError(
            f"generator version {version!r}: this generator makes versions {', '.join(map(str, VERSIONS))}"
        )
    drawn_apart = version >= 3
    identities: list[avatars.Identity] = []
    images: list[RecImage] = []

    # training identities: folders personai_icartoonface_rectrain_00000 ...
    rng = np.random.default_rng([seed, S_TRAIN])
    train, next_family = _families(rng, avatars.MAIN_STYLES, preset.train_ids, "train", seed, 0, drawn_apart)
    counts = _counts(rng, preset.train_ids, preset.train_images, 2, max(2, 4 * preset.train_images // preset.train_ids))
    for label, (identity, count) in enumerate(zip(train, counts, strict=True)):
        folder = f"personai_icartoonface_rectrain_{label:05d}"
        for k in range(int(count)):
            images.append(
                RecImage("rectrain", f"{folder}/{folder}_{k:04d}.jpg", len(identities), label, (S_TRAIN, label, k))
            )
        identities.append(identity)

    # test identities, as the 2020 protocol: SEEN_SHARE of them are training identities (other images of them),
    # the rest unseen in training; distractors are identities in neither, often look-alikes of a test identity
    rng = np.random.default_rng([seed, S_TEST])
    n_seen = min(round(SEEN_SHARE * preset.test_ids), preset.train_ids)
    seen = [int(i) for i in np.sort(rng.choice(preset.train_ids, size=n_seen, replace=False))]
    unseen, next_family = _families(
        rng, avatars.MAIN_STYLES, preset.test_ids - n_seen, "test", seed, next_family, drawn_apart
    )
    lo, hi = preset.test_per_id
    counts = _counts(rng, preset.test_ids, preset.test_images, lo, hi)
    test_members: list[tuple[int, str]] = []  # (identity index, family tag) of each test identity, label order
    test_members += [(index, "train") for index in seen]
    for identity in unseen:
        test_members.append((len(identities), "test"))
        identities.append(identity)
    test_items: list[tuple[int, int, int]] = []  # (identity index, label, k)
    for label, ((index, _), count) in enumerate(zip(test_members, counts, strict=True)):
        test_items.extend((index, label, k) for k in range(int(count)))
    looks = {(i.style, i.options) for i in identities}  # a distractor never looks exactly like another identity
    made = 0
    member = 3  # families have 1 to 3 members (0, 1, 2): look-alikes are members 4, 5, ... of a test family
    while made < preset.distractors:
        if rng.random() < 0.7:  # a look-alike of a test identity: one more member of its family
            index, tag = test_members[int(rng.integers(len(test_members)))]
            base = identities[index]
            member += 1
            identity = avatars.make_identity(
                base.style, f"{seed}:{tag}:{base.family}", member, base.family, drawn_apart
            )
        else:
            style = avatars.MAIN_STYLES[int(rng.integers(len(avatars.MAIN_STYLES)))]
            identity = avatars.make_identity(style, f"{seed}:test:{next_family}", 0, next_family)
            next_family += 1
        if (identity.style, identity.options) in looks:
            continue
        looks.add((identity.style, identity.options))
        count = min(int(rng.integers(1, 4)), preset.distractors - made)
        test_items.extend((len(identities), -1, k) for k in range(count))
        identities.append(identity)
        made += count
    order = np.random.default_rng([seed, S_ORDER]).permutation(len(test_items))
    for position, item in enumerate(order):
        identity, label, k = test_items[int(item)]
        images.append(
            RecImage(
                "rectest", f"personai_icartoonface_rectest_{position:05d}.jpg", identity, label, (S_TEST, identity, k)
            )
        )

    # the auxiliary domain: other drawing styles
    rng = np.random.default_rng([seed, S_AUX])
    aux, _ = _families(rng, avatars.AUX_STYLES, preset.aux_ids, "aux", seed, next_family + 1_000_000, drawn_apart)
    counts = _counts(rng, preset.aux_ids, preset.aux_images, 2, max(2, 4 * preset.aux_images // preset.aux_ids))
    for label, (identity, count) in enumerate(zip(aux, counts, strict=True)):
        folder = f"icartoonface_auxiliary_{label:05d}"
        for k in range(int(count)):
            images.append(
                RecImage("auxiliary", f"{folder}/{folder}_{k:04d}.jpg", len(identities), label, (S_AUX, label, k))
            )
        identities.append(identity)
    return Plan(preset, seed, tuple(identities), tuple(images), version)


def image_rng(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    return np.random.default_rng([seed, S_IMAGE, *key])


# ---------------------------------------------------------------------------------------------- verification


def verification_pairs(plan: Plan, nuisance_of) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hard-mined verification pairs over the labelled test images, in 10 folds of disjoint identities.

    nuisance_of(test_row) -> float vector describing the image's nuisance (rotation, flip, grayscale, expression
    hash...); same-identity pairs whose nuisance differs most are taken first, and different-identity pairs of
    one look-alike family first, then of one style. Returns (a, b, same, fold) as int64 arrays (rows of the test list).
    """
    test = plan.split("rectest")
    preset = plan.preset
    rng = np.random.default_rng([plan.seed, S_PAIRS])
    labels = np.array([item.label for item in test])
    labelled = np.flatnonzero(labels >= 0)
    test_labels = np.unique(labels[labelled])
    fold_of_label = {int(lab): int(i % 10) for i, lab in enumerate(rng.permutation(test_labels))}
    family = np.array([plan.identities[item.identity].family for item in test])
    style = np.array([plan.identities[item.identity].style for item in test])
    nuisance = np.stack([nuisance_of(i) for i in range(len(test))]) if len(test) else np.zeros((0, 1))

    by_label: dict[int, list[int]] = {}
    for i in labelled:
        by_label.setdefault(int(labels[i]), []).append(int(i))
    same_rows, diff_rows = [], []
    for lab, rows in by_label.items():
        fold = fold_of_label[lab]
        for x in range(len(rows)):
            for y in range(x + 1, len(rows)):
                a, b = rows[x], rows[y]
                hardness = float(np.abs(nuisance[a] - nuisance[b]).sum())
                same_rows.append((fold, hardness + 1e-3 * rng.random(), a, b))
    # different pairs: each labelled image against candidates of its family, its style, anything
    for a in labelled:
        fold = fold_of_label[int(labels[a])]
        others = labelled[labels[labelled] != labels[a]]
        if not len(others):
            continue
        picks = rng.choice(others, size=min(len(others), 12), replace=False)
        kin = others[family[others] == family[a]]
        picks = np.concatenate([kin, picks])
        for b in picks:
            hardness = 2.0 * (family[b] == family[a]) + 1.0 * (style[b] == style[a]) + rng.random()
            diff_rows.append((fold, float(hardness), int(a), int(b)))

    chosen = []
    for rows, total, same in ((same_rows, preset.same_pairs, 1), (diff_rows, preset.diff_pairs, 0)):
        per_fold = total // 10
        seen: set[tuple[int, int]] = set()
        for fold in range(10):
            candidates = sorted((r for r in rows if r[0] == fold), key=lambda r: -r[1])
            taken = 0
            for _, _, a, b in candidates:
                if taken == per_fold:
                    break
                key = (min(a, b), max(a, b))
                if key in seen:
                    continue
                seen.add(key)
                chosen.append((a, b, same, fold))
                taken += 1
            if taken < per_fold:
                log.info("fold %d: %d of %d %s pairs available", fold, taken, per_fold, "same" if same else "different")
    table = np.asarray(chosen, dtype=np.int64).reshape(-1, 4)
    return table[:, 0], table[:, 1], table[:, 2].astype(bool), table[:, 3]
