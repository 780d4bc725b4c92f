"""scorer.splits: public/private membership is a deterministic function of the key, seed and fraction."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from scorer.splits import public_mask, split_mask

KEYS = [f"personai_icartoonface_detval_{i:05d}.jpg" for i in range(4000)]


def test_membership_is_the_documented_sha256_rule():
    expected = [int.from_bytes(hashlib.sha256(b"s1\0" + k.encode()).digest()[:8], "big") < 0.3 * 2**64 for k in KEYS]
    assert public_mask(KEYS, "s1", 0.3).tolist() == expected


def test_a_key_keeps_its_split_when_other_keys_are_added_or_reordered():
    mask = dict(zip(KEYS, public_mask(KEYS, "seed", 0.5), strict=True))
    shuffled = list(np.random.default_rng(0).permutation(KEYS[:1000])) + ["new_image.jpg"]
    for key, public in zip(shuffled, public_mask(shuffled, "seed", 0.5), strict=True):
        if key in mask:
            assert mask[key] == public


def test_the_public_fraction_is_close_to_the_requested_one():
    assert abs(public_mask(KEYS, "seed", 0.3).mean() - 0.3) < 0.03


def test_another_seed_gives_another_split():
    assert (public_mask(KEYS, "a", 0.5) != public_mask(KEYS, "b", 0.5)).any()


def test_public_and_private_partition_the_keys_and_all_is_no_subset():
    public = split_mask(KEYS, "public", "seed", 0.5)
    private = split_mask(KEYS, "private", "seed", 0.5)
    assert not (public & private).any() and (public | private).all()
    assert split_mask(KEYS, "all", "seed", 0.5) is None


def test_integer_identities_split_like_their_decimal_names():
    assert public_mask([7, 12], "seed", 0.5).tolist() == public_mask(["7", "12"], "seed", 0.5).tolist()


def test_fractions_zero_and_one_are_all_private_and_all_public():
    assert not public_mask(KEYS, "seed", 0.0).any()
    assert public_mask(KEYS, "seed", 1.0).all()


@pytest.mark.parametrize(("split", "fraction", "words"), [("public", 1.5, "in \\[0, 1\\]"), ("test", 0.5, "unknown")])
def test_bad_split_arguments_are_refused(split, fraction, words):
    with pytest.raises(ValueError, match=words):
        split_mask(KEYS, split, "seed", fraction)
