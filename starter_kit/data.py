"""Data for recognition training and prediction: packed face crops, the identity split, batches, augmentation.

Faces are read once into `facedata`'s packed cache (pre-cropped with the enlarge rate, resized to S x S, a uint8
memmap) and training gathers whole batches from it: no JPEG decoding in the training loop. Augmentation and
normalisation run on the training device (`augment`, `normalize`), so the loader only copies uint8 bytes.

The validation split (`split_validation`) is built the way the test is: its identities are 60 % seen in training
(other images of them are trained on) and 40 % unseen, and it holds distractor identities (held out of training
too) with 1.5 distractor images per labelled image, the proportion of `small`'s test. The test's distractors are
often look-alikes of its identities; the training data carries no family labels, so the validation distractors are
only as often look-alikes as chance makes them (the training identities come in look-alike families too).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, eq=False)
class Faces:
    """Packed faces of one split: images uint8 (N, S, S, 3) (a memmap), labels int64 (N,) identity index or -1,
    names (N,) image names, identities (C,) label -> identity name."""

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    identities: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def load_faces(
    root: str | Path, split: str, *, size: int, enlarge_rate: float, cache_dir: str | Path, workers: int = 1
) -> Faces:
    """The packed faces of a split ("rectrain", "rectest" or "auxiliary") of the dataset at root, packing them into
    cache_dir first when that cache is not there yet, is older than the split's list file (a regenerated dataset) or
    lists other images (the cache's name holds the split, size and enlarge rate)."""
    from facedata.layout import Layout
    from facedata.pack import PackedFaces, pack_faces, split_entries

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    prefix = cache_dir / f"{split}_s{size}_r{enlarge_rate:g}"
    layout = Layout(root)
    names = tuple(split_entries(layout, split)[0])
    listing = {"rectrain": layout.rec_train_list, "rectest": layout.rec_test_list, "auxiliary": layout.aux_list}[split]
    index = prefix.with_name(prefix.name + ".json")
    try:
        packed = PackedFaces(prefix)
        if tuple(packed.names) != names or index.stat().st_mtime < listing.stat().st_mtime:
            log.warning("%s is older than %s or lists other images: packing again", prefix, listing)
            packed = None
    except (OSError, ValueError):  # facedata's DatasetError is a ValueError: no finished pack yet
        packed = None
    if packed is None:
        log.info("packing %s of %s at %dx%d, enlarge rate %g into %s", split, root, size, size, enlarge_rate, prefix)
        packed = pack_faces(root, split, prefix, size=size, enlarge_rate=enlarge_rate, workers=workers)
    labels = np.asarray(packed.labels, dtype=np.int64)
    return Faces(packed.images, labels, tuple(packed.names), tuple(packed.identities))


def _rank_key(seed: int, identity: str) -> str:
    return hashlib.sha256(f"{seed}:{identity}".encode()).hexdigest()


SEEN_SHARE = 0.6  # share of the labelled validation identities that are also trained on (the test's 60 / 40)
DISTRACTOR_RATIO = 1.5  # validation distractor images per labelled validation image (`small`'s test: 1,500 / 1,000)


@dataclass(frozen=True, eq=False)
class ValidationSplit:
    """train: identity names trained on (class c = train[c]); train_rows: the rows of the faces trained on.
    val_rows (sorted) / val_labels: the validation set, labels >= 0 for its identities and -1 for its distractors;
    seen / unseen / distractors: the held-out identity names by role."""

    train: tuple[str, ...]
    train_rows: np.ndarray
    val_rows: np.ndarray
    val_labels: np.ndarray
    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    distractors: tuple[str, ...]


def split_validation(
    labels: np.ndarray,
    identities: tuple[str, ...] | list[str],
    val_fraction: float,
    seed: int,
    names: tuple[str, ...] | list[str] | None = None,
) -> ValidationSplit:
    """The seeded validation split, built the way the test is (see the module docstring).

    labels int64 (N,): each training image's index into identities. n = max(2, round(val_fraction * C)) labelled
    validation identities, ordered by sha256(f"{seed}:{identity}"): the first round(SEEN_SHARE * n) with at least 4
    images are *seen* (half of their images, by the same hash of the image name, are held out for validation; the
    other half is still trained on), the next ones with at least 2 images *unseen* (all their images held out);
    then whole identities are held out as distractors (label -1) until their images reach DISTRACTOR_RATIO x the
    labelled validation images (or half of the identities have left training: tiny datasets get fewer).
    val_fraction 0: no validation, everything trained on.
    """
    labels = np.asarray(labels, dtype=np.int64)
    identities = tuple(identities)
    names = tuple(names) if names is not None else tuple(str(i) for i in range(len(labels)))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    everything = np.flatnonzero(labels >= 0)
    empty = np.zeros(0, dtype=np.int64)
    if val_fraction == 0.0:
        return ValidationSplit(identities, everything, empty, empty, (), (), ())
    counts = np.bincount(labels[labels >= 0], minlength=len(identities))
    ranked = sorted(range(len(identities)), key=lambda i: _rank_key(seed, identities[i]))
    n_val = max(2, round(val_fraction * len(identities)))
    n_seen = min(n_val - 1, max(1, round(SEEN_SHARE * n_val)))
    seen = [i for i in ranked if counts[i] >= 4][:n_seen]
    unseen = [i for i in ranked if counts[i] >= 2 and i not in seen][: n_val - len(seen)]
    if len(seen) + len(unseen) < n_val:
        raise ValueError(
            f"{len(identities)} identities cannot hold {n_val} validation identities (with 2+ images each) and train"
        )
    by_label = np.argsort(labels, kind="stable")[len(labels) - len(everything) :]  # rows grouped by identity
    starts = np.concatenate([[0], np.cumsum(counts)])

    def rows_of(i: int) -> np.ndarray:
        return by_label[starts[i] : starts[i + 1]]

    val_rows: list[np.ndarray] = []
    val_labels: list[np.ndarray] = []
    for new, i in enumerate((*seen, *unseen)):
        rows = rows_of(i)
        if new < len(seen):  # half of a seen identity's images, by the hash of their names
            rows = np.asarray(sorted(rows, key=lambda r: _rank_key(seed, names[r]))[: len(rows) // 2], np.int64)
        val_rows.append(rows)
        val_labels.append(np.full(len(rows), new, dtype=np.int64))
    labelled_images = sum(len(r) for r in val_rows)
    taken = set(seen) | set(unseen)
    distractors: list[int] = []
    made = 0
    keep = max(2, len(identities) // 2)  # at most half of the identities leave training entirely
    for i in ranked:
        if made >= DISTRACTOR_RATIO * labelled_images or len(identities) - len(unseen) - len(distractors) <= keep:
            break
        if i in taken:
            continue
        distractors.append(i)
        rows = rows_of(i)
        val_rows.append(rows)
        val_labels.append(np.full(len(rows), -1, dtype=np.int64))
        made += len(rows)
    held_out = set(unseen) | set(distractors)
    if len(identities) - len(held_out) < 2:
        raise ValueError(
            f"{len(identities)} identities cannot hold {n_val} validation identities and still train on 2; "
            "lower data.val_fraction"
        )
    if made < DISTRACTOR_RATIO * labelled_images:
        log.warning("validation: %d distractor images, fewer than %g per labelled image", made, DISTRACTOR_RATIO)
    rows = np.concatenate(val_rows)
    order = np.argsort(rows)
    rows, val_label = rows[order], np.concatenate(val_labels)[order]
    train_rows = np.setdiff1d(everything, rows)
    train_rows = train_rows[~np.isin(labels[train_rows], list(held_out))]
    return ValidationSplit(
        tuple(name for i, name in enumerate(identities) if i not in held_out),
        train_rows,
        rows,
        val_label,
        tuple(identities[i] for i in seen),
        tuple(identities[i] for i in unseen),
        tuple(identities[i] for i in distractors),
    )


def relabel(faces: Faces, keep: tuple[str, ...]) -> np.ndarray:
    """New labels int64 (N,): the index of each image's identity in keep, -1 for images of other identities."""
    new_of_old = np.full(len(faces.identities) + 1, -1, dtype=np.int64)
    position = {name: i for i, name in enumerate(keep)}
    for old, name in enumerate(faces.identities):
        new_of_old[old] = position.get(name, -1)
    return new_of_old[np.where(faces.labels >= 0, faces.labels, len(faces.identities))]


def choose_aux_identities(identities: tuple[str, ...], count: int | None, seed: int) -> tuple[str, ...]:
    """The auxiliary identities used: all when count is None, else the first `count` in the seeded sha256 order."""
    if count is None or count >= len(identities):
        return tuple(identities)
    if count < 0:
        raise ValueError(f"num_aux_classes must be >= 0 or null, not {count}")
    chosen = set(sorted(identities, key=lambda name: _rank_key(seed, name))[:count])
    return tuple(name for name in identities if name in chosen)


# --------------------------------------------------------------------------------------------------- batches


class MixedBatchSampler:
    """Batches of indices into the concatenation [cartoon rows, auxiliary rows], a fixed number from each domain.

    One epoch is one pass over the cartoon rows (sharded across ranks: rank r takes every world-th of a seeded
    permutation); each batch takes batch_size - n_aux cartoon rows and n_aux auxiliary rows, n_aux =
    round(aux_fraction * batch_size) (aux_fraction None: by dataset size). The last incomplete batch is dropped.
    The permutation depends on (seed, epoch) only, so a resumed run sees the same batches.
    """

    def __init__(
        self,
        cartoon_rows: np.ndarray,
        aux_rows: np.ndarray | None,
        batch_size: int,
        *,
        aux_fraction: float | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.cartoon_rows = np.asarray(cartoon_rows, dtype=np.int64)
        self.aux_rows = np.asarray(aux_rows if aux_rows is not None else [], dtype=np.int64)
        if len(self.aux_rows) and aux_fraction is None:
            aux_fraction = len(self.aux_rows) / (len(self.aux_rows) + len(self.cartoon_rows))
        self.n_aux = round((aux_fraction or 0.0) * batch_size) if len(self.aux_rows) else 0
        if len(self.aux_rows) and not 1 <= self.n_aux < batch_size:
            self.n_aux = min(max(self.n_aux, 1), batch_size - 1)
        self.n_cartoon = batch_size - self.n_aux
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        if len(self) == 0:
            raise ValueError(
                f"{len(self.cartoon_rows)} training images make no batch of {self.n_cartoon} cartoon "
                f"images on each of {world_size} processes; lower optim.batch_size"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cartoon_rows) // self.world_size // self.n_cartoon

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        cartoon = self.cartoon_rows[rng.permutation(len(self.cartoon_rows))][self.rank :: self.world_size]
        aux = np.empty(0, dtype=np.int64)
        if self.n_aux:
            rounds = math.ceil(len(self) * self.n_aux * self.world_size / len(self.aux_rows))
            aux = np.concatenate([self.aux_rows[rng.permutation(len(self.aux_rows))] for _ in range(rounds)])
            aux = aux[self.rank :: self.world_size]
        for b in range(len(self)):
            rows = cartoon[b * self.n_cartoon : (b + 1) * self.n_cartoon]
            if self.n_aux:
                rows = np.concatenate([rows, aux[b * self.n_aux : (b + 1) * self.n_aux]])
            yield rows


@dataclass(frozen=True)
class _MemmapRef:
    filename: str
    dtype: str
    shape: tuple[int, ...]
    offset: int


class BatchGather(torch.utils.data.Dataset):
    """Indexed by a whole batch of rows (from `MixedBatchSampler`): -> (images uint8 (B, S, S, 3), labels int64 (B,),
    domains int64 (B,): 1 cartoon, 0 auxiliary). Rows >= len(cartoon) index the auxiliary faces."""

    def __init__(
        self,
        cartoon: np.ndarray,
        cartoon_labels: np.ndarray,
        aux: np.ndarray | None = None,
        aux_labels: np.ndarray | None = None,
    ):
        self.cartoon, self.cartoon_labels = cartoon, np.asarray(cartoon_labels, dtype=np.int64)
        self.aux = aux
        self.aux_labels = np.asarray(aux_labels if aux_labels is not None else [], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cartoon_labels) + len(self.aux_labels)

    def __getstate__(self) -> dict:
        """Loader processes started by spawn/forkserver get the memmaps' file names, not gigabytes of pixels."""
        state = self.__dict__.copy()
        for key in ("cartoon", "aux"):
            array = state[key]
            if isinstance(array, np.memmap) and array.filename:
                state[key] = _MemmapRef(array.filename, array.dtype.str, array.shape, array.offset)
        return state

    def __setstate__(self, state: dict) -> None:
        for key in ("cartoon", "aux"):
            ref = state[key]
            if isinstance(ref, _MemmapRef):
                state[key] = np.memmap(ref.filename, dtype=ref.dtype, mode="r", shape=ref.shape, offset=ref.offset)
        self.__dict__.update(state)

    def __getitem__(self, rows: np.ndarray):
        rows = np.sort(np.asarray(rows, dtype=np.int64))  # sorted reads are kinder to a memmap; order is irrelevant
        n = len(self.cartoon_labels)
        c_rows, a_rows = rows[rows < n], rows[rows >= n] - n
        images = [np.asarray(self.cartoon[c_rows])]
        labels, domains = [self.cartoon_labels[c_rows]], [np.ones(len(c_rows), dtype=np.int64)]
        if len(a_rows):
            images.append(np.asarray(self.aux[a_rows]))
            labels.append(self.aux_labels[a_rows])
            domains.append(np.zeros(len(a_rows), dtype=np.int64))
        return (
            torch.from_numpy(np.concatenate(images)),
            torch.from_numpy(np.concatenate(labels)),
            torch.from_numpy(np.concatenate(domains)),
        )


# --------------------------------------------------------------------------------------------------- on device


@functools.cache
def _affine(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel scale and shift (1, 3, 1, 1) of `normalize`, made once per device (no copy per step)."""
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    scale, shift = 1.0 / (255.0 * std), -mean / std
    return scale.view(1, 3, 1, 1).to(device), shift.view(1, 3, 1, 1).to(device)


def normalize(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, S, S, 3) on any device -> float32 (B, 3, S, S), ImageNet mean/std normalised."""
    x = images.permute(0, 3, 1, 2).float()
    scale, shift = _affine(x.device)
    x = torch.addcmul(shift, x, scale)  # (x / 255 - mean) / std in one pass
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def augment(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    scale: float = 0.1,
    shift: float = 0.08,
    flip: bool = True,
    channels_last: bool = False,
) -> torch.Tensor:
    """Random horizontal flip, zoom in [1 - scale, 1 + scale] and shift up to `shift` of the side, one affine
    resample per batch on the images' device: float (B, 3, S, S) -> the same shape."""
    b = images.shape[0]
    device = images.device
    rand = torch.rand(b, 4, generator=generator, device="cpu").to(device)
    zoom = 1.0 + scale * (2 * rand[:, 0] - 1)
    mirror = torch.where(rand[:, 1] < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=device)
    tx, ty = shift * (2 * rand[:, 2] - 1), shift * (2 * rand[:, 3] - 1)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = mirror / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
