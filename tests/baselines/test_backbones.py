"""Backbones: torchvision-compatible state dicts, shapes, feature maps, registry errors, checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from baselines.backbones import BACKBONES, build_backbone, load_torchvision_weights
from baselines.heads import HEADS, Embedder, build_head

# num_params of torchvision's 1000-class models (torchvision's model documentation) and tensors of its state dicts
TORCHVISION = {
    "resnet18": (11_689_512, {"layer4.1.conv2.weight": (512, 512, 3, 3), "fc.weight": (1000, 512)}),
    "resnet50": (
        25_557_032,
        {
            "layer4.2.conv3.weight": (2048, 512, 1, 1),
            "layer1.0.downsample.1.running_var": (256,),
            "fc.weight": (1000, 2048),
        },
    ),
    "densenet169": (
        14_149_480,
        {
            "features.denseblock4.denselayer32.conv2.weight": (32, 128, 3, 3),
            "features.transition3.conv.weight": (640, 1280, 1, 1),
            "features.norm5.weight": (1664,),
            "classifier.weight": (1000, 1664),
        },
    ),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_backbone_has_torchvision_parameter_count_and_tensor_names(name):
    count, tensors = TORCHVISION[name]
    model = build_backbone(name, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == count
    state = model.state_dict()
    for key, shape in tensors.items():
        assert tuple(state[key].shape) == shape, key


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18", pytest.param("densenet121", marks=pytest.mark.slow)])
def test_feature_maps_have_four_stages_with_the_declared_channels(name):
    model = build_backbone(name).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = model.feature_maps(x)
    assert [m.shape[1] for m in maps] == list(model.stage_channels)
    assert [m.shape[-1] for m in maps] == sorted((m.shape[-1] for m in maps), reverse=True)
    assert torch.equal(model.forward_features(x), maps[-1])
    assert model(x).shape == (2, model.num_features)


def test_unknown_backbone_error_lists_the_valid_names():
    with pytest.raises(KeyError) as info:
        build_backbone("resnet5O")
    assert "resnet50" in str(info.value) and "densenet169" in str(info.value)


def test_unknown_head_error_lists_the_valid_names():
    with pytest.raises(KeyError, match="norm_linear"):
        build_head("cosine", 8, 4)
    assert set(HEADS) == {"norm_linear", "linear"}


def test_registry_holds_the_papers_backbones():
    assert {"resnet50", "densenet169", "tiny_cnn"} <= set(BACKBONES)


def test_torchvision_checkpoint_loads_and_its_classifier_is_skipped(tmp_path):
    source = build_backbone("resnet18", num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    target = build_backbone("resnet18")  # no classifier
    skipped = load_torchvision_weights(target, str(path))
    assert skipped == ["fc.bias", "fc.weight"]
    assert torch.equal(target.state_dict()["layer3.1.conv1.weight"], source.state_dict()["layer3.1.conv1.weight"])


def test_legacy_densenet_key_names_are_renamed_on_load():
    source = build_backbone("densenet121").state_dict()
    legacy = {
        k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2.") if "denselayer" in k else k: v
        for k, v in source.items()
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    target = build_backbone("densenet121")
    load_torchvision_weights(target, legacy)
    assert torch.equal(
        target.state_dict()["features.denseblock2.denselayer3.conv2.weight"],
        source["features.denseblock2.denselayer3.conv2.weight"],
    )


def test_checkpoint_missing_backbone_tensors_is_refused():
    state = build_backbone("resnet18").state_dict()
    del state["layer2.0.conv1.weight"]
    with pytest.raises(ValueError, match="layer2.0.conv1.weight"):
        load_torchvision_weights(build_backbone("resnet18"), state)


def test_embedder_maps_any_input_size_to_the_embedding_dim():
    embedder = Embedder("tiny_cnn", embedding_dim=16).eval()
    for side in (32, 48):
        assert embedder(torch.randn(3, 3, side, side)).shape == (3, 16)
