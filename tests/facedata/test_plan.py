"""The plan follows the 2020 test protocol: 60 % of the test identities are training identities, 40 % unseen,
and the distractors are identities in neither set (often look-alikes of a test identity, never an exact copy)."""

from __future__ import annotations

import pytest

from facedata.plan import PRESETS, SEEN_SHARE, make_plan


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_test_identities_are_sixty_percent_seen_and_distractors_are_in_neither_set(preset):
    plan = make_plan(PRESETS[preset], 0)
    train = {item.identity for item in plan.split("rectrain")}
    test = plan.split("rectest")
    labelled = {item.identity for item in test if item.label >= 0}
    distractors = {item.identity for item in test if item.label < 0}
    assert len(labelled) == PRESETS[preset].test_ids
    assert len(labelled & train) == round(SEEN_SHARE * PRESETS[preset].test_ids)
    assert not distractors & (train | labelled)
    looks = {(plan.identities[i].style, plan.identities[i].options) for i in train | labelled}
    assert not {(plan.identities[i].style, plan.identities[i].options) for i in distractors} & looks
    keys = [item.key for item in plan.rec_images]
    assert len(keys) == len(set(keys))  # every image has its own random stream


def test_distractors_are_often_look_alikes_of_seen_and_unseen_test_identities():
    plan = make_plan(PRESETS["small"], 0)
    train = {item.identity for item in plan.split("rectrain")}
    test = plan.split("rectest")
    seen_families = {plan.identities[i.identity].family for i in test if i.label >= 0 and i.identity in train}
    unseen_families = {plan.identities[i.identity].family for i in test if i.label >= 0 and i.identity not in train}
    families = [plan.identities[i.identity].family for i in test if i.label < 0]
    assert sum(f in seen_families for f in families) > 0.3 * len(families)
    assert sum(f in unseen_families for f in families) > 0.15 * len(families)
