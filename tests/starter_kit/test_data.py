"""The validation split, the mixed-domain batch sampler, the batch gatherer and the on-device augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from starter_kit.data import (
    BatchGather,
    Faces,
    MixedBatchSampler,
    augment,
    choose_aux_identities,
    normalize,
    relabel,
    split_validation,
)

NAMES = tuple(f"id{i:03d}" for i in range(30))
# 30 identities of 2 to 9 images each, labels grouped as a packed split lists them
COUNTS = np.random.default_rng(0).integers(2, 10, size=len(NAMES))
LABELS = np.repeat(np.arange(len(NAMES)), COUNTS)
IMAGES = tuple(
    f"{NAMES[label]}/{k:04d}.jpg"
    for label, k in zip(LABELS, np.concatenate([np.arange(c) for c in COUNTS]), strict=True)
)


def _split(fraction=0.2, seed=3, labels=LABELS, names=NAMES, images=IMAGES):
    return split_validation(labels, names, fraction, seed, images)


def test_validation_split_is_built_like_the_test():
    """60 % seen / 40 % unseen labelled identities, 1.5 distractor images per labelled image, nothing shared."""
    split = _split()
    assert (len(split.seen), len(split.unseen)) == (4, 2)  # 0.2 x 30 = 6 labelled identities
    assert not {*split.seen} & {*split.unseen} and not {*split.seen, *split.unseen} & {*split.distractors}
    assert set(split.train) == set(NAMES) - set(split.unseen) - set(split.distractors)
    assert list(split.train) == sorted(split.train)  # class c = train[c], in the given order
    trained, held = set(split.train_rows.tolist()), set(split.val_rows.tolist())
    assert not trained & held and list(split.val_rows) == sorted(split.val_rows)
    for name in split.seen:  # half of a seen identity's images are held out, the rest trained on
        rows = set(np.flatnonzero(LABELS == NAMES.index(name)).tolist())
        assert len(rows & held) == len(rows) // 2 and len(rows & trained) == len(rows) - len(rows) // 2
    for name in (*split.unseen, *split.distractors):
        rows = set(np.flatnonzero(LABELS == NAMES.index(name)).tolist())
        assert rows <= held
    labelled = int((split.val_labels >= 0).sum())
    distractor_images = int((split.val_labels < 0).sum())
    assert 1.5 * labelled <= distractor_images < 1.5 * labelled + COUNTS.max()
    assert len(np.unique(split.val_labels[split.val_labels >= 0])) == 6  # every labelled identity is a probe


def test_validation_split_is_seeded():
    split = _split()
    again, other = _split(), _split(seed=4)
    assert (split.seen, split.unseen, split.distractors) == (again.seen, again.unseen, again.distractors)
    assert np.array_equal(split.val_rows, again.val_rows)
    assert (split.seen, split.unseen) != (other.seen, other.unseen)


def test_zero_validation_fraction_trains_on_everything():
    split = _split(0.0)
    assert split.train == NAMES and len(split.train_rows) == len(LABELS) and not len(split.val_rows)


@pytest.mark.parametrize(
    ("count", "fraction", "match"),
    [(30, 1.0, "val_fraction must be in"), (30, -0.1, "val_fraction must be in"), (2, 0.5, "cannot hold")],
)
def test_impossible_validation_split_is_refused(count, fraction, match):
    rows = np.isin(LABELS, np.arange(count))
    with pytest.raises(ValueError, match=match):
        _split(fraction, labels=LABELS[rows], names=NAMES[:count], images=tuple(np.asarray(IMAGES)[rows]))


def test_a_small_dataset_keeps_half_of_its_identities_in_training():
    rows = np.isin(LABELS, np.arange(6))
    split = _split(0.1, labels=LABELS[rows], names=NAMES[:6], images=tuple(np.asarray(IMAGES)[rows]))
    assert len(split.train) >= 3 and len(split.seen) == len(split.unseen) == 1


def test_relabel_numbers_kept_identities_and_drops_the_others():
    faces = Faces(np.zeros((5, 2, 2, 3), np.uint8), np.array([0, 1, 2, 1, -1]), tuple("abcde"), ("x", "y", "z"))
    assert relabel(faces, ("z", "x")).tolist() == [1, -1, 0, -1, -1]


def test_chosen_auxiliary_identities_are_a_seeded_subset():
    chosen = choose_aux_identities(NAMES, 7, seed=1)
    assert len(chosen) == 7 and set(chosen) <= set(NAMES)
    assert choose_aux_identities(NAMES, None, seed=1) == NAMES
    with pytest.raises(ValueError, match="num_aux_classes"):
        choose_aux_identities(NAMES, -1, seed=1)


def test_sampler_batches_hold_a_fixed_share_of_each_domain_and_cover_the_cartoon_rows_once():
    cartoon, aux = np.arange(40), np.arange(40, 50)
    sampler = MixedBatchSampler(cartoon, aux, 8, aux_fraction=0.25, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 40 // 6
    for batch in batches:
        assert (batch < 40).sum() == 6 and (batch >= 40).sum() == 2
    seen = np.concatenate([b[b < 40] for b in batches])
    assert len(set(seen.tolist())) == len(seen)


def test_sampler_shards_disjoint_rows_across_ranks_and_repeats_an_epoch_exactly():
    shards = [MixedBatchSampler(np.arange(64), None, 8, seed=5, rank=r, world_size=2) for r in range(2)]
    rows = [np.concatenate(list(s)) for s in shards]
    assert not set(rows[0]) & set(rows[1])
    again = MixedBatchSampler(np.arange(64), None, 8, seed=5, rank=0, world_size=2)
    assert np.array_equal(np.concatenate(list(again)), rows[0])
    again.set_epoch(1)
    assert not np.array_equal(np.concatenate(list(again)), rows[0])


def test_sampler_without_aux_fraction_mixes_by_dataset_size():
    sampler = MixedBatchSampler(np.arange(30), np.arange(30, 40), 8, seed=0)
    assert sampler.n_aux == 2  # 10 / 40 of 8


def test_sampler_refuses_a_batch_larger_than_the_data():
    with pytest.raises(ValueError, match="lower optim.batch_size"):
        MixedBatchSampler(np.arange(5), None, 8)


def test_gather_returns_images_labels_and_domains_of_both_parts():
    cartoon = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    aux = np.full((3, 2, 2, 3), 200, dtype=np.uint8)
    gather = BatchGather(cartoon, np.array([0, 1, 2, 3]), aux, np.array([5, 6, 7]))
    images, labels, domains = gather[np.array([5, 1, 3])]
    assert images.shape == (3, 2, 2, 3) and images.dtype == torch.uint8
    assert labels.tolist() == [1, 3, 6] and domains.tolist() == [1, 1, 0]
    assert torch.equal(images[0], torch.from_numpy(cartoon[1])) and int(images[2].min()) == 200


def test_normalize_maps_uint8_hwc_to_standardised_chw():
    images = torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)
    x = normalize(images)
    assert x.shape == (2, 3, 4, 4)
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)


def test_augment_keeps_shape_and_changes_pixels_reproducibly():
    x = torch.randn(4, 3, 16, 16)
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x)


def test_augment_without_zoom_shift_or_flip_is_the_identity():
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(augment(x, scale=0.0, shift=0.0, flip=False), x, atol=1e-5)


def test_gather_pickles_a_memmap_by_file_name_not_by_content(tmp_path):
    import pickle

    path = tmp_path / "faces.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, size=(64, 64, 64, 3), dtype=np.uint8))  # 786 kB
    images = np.load(path, mmap_mode="r")
    gather = BatchGather(images, np.arange(64))
    blob = pickle.dumps(gather)
    assert len(blob) < 10_000
    copy = pickle.loads(blob)
    assert isinstance(copy.cartoon, np.memmap) and copy.cartoon.filename == images.filename
    assert torch.equal(copy[np.array([40, 1])][0], gather[np.array([40, 1])][0])


def test_faces_are_packed_once_and_packed_again_when_the_dataset_is_regenerated(tmp_path, make_mini_dataset):
    import os

    from starter_kit.data import load_faces

    write_mini_dataset = make_mini_dataset

    root = write_mini_dataset(
        tmp_path / "data", train_ids=3, per_train=2, test_ids=2, per_test=2, distractors=2, aux_ids=2, per_aux=2, seed=0
    )
    first = load_faces(root, "rectrain", size=16, enlarge_rate=1.0, cache_dir=tmp_path / "cache")
    index = tmp_path / "cache" / "rectrain_s16_r1.json"
    packed_at = index.stat().st_mtime_ns
    again = load_faces(root, "rectrain", size=16, enlarge_rate=1.0, cache_dir=tmp_path / "cache")
    assert index.stat().st_mtime_ns == packed_at and np.array_equal(first.images, again.images)
    write_mini_dataset(
        root, train_ids=3, per_train=2, test_ids=2, per_test=2, distractors=2, aux_ids=2, per_aux=2, seed=1
    )
    listing = root / "icartoonface_rectrain_det.txt"
    os.utime(listing, ns=(packed_at + 10**9, packed_at + 10**9))
    fresh = load_faces(root, "rectrain", size=16, enlarge_rate=1.0, cache_dir=tmp_path / "cache")
    assert fresh.names == first.names and not np.array_equal(fresh.images, first.images)
