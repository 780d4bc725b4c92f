"""Layered configs: defaults <- files (with _base_) <- overrides; every error names the key or file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from baselines.heads import Embedder
from baselines.methods import METHODS, build_objective
from starter_kit.config import ConfigError, load_config, parse_override
from starter_kit.predict import resolve_bf16
from starter_kit.train import DEFAULTS, OPEN_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "baselines" / "configs"
EXPERIMENTS = sorted(
    p.name for p in CONFIGS.glob("*.yaml") if p.name not in ("base.yaml", "cpu_smoke.yaml", "cpu.yaml")
)
SMALL = {"a": {"b": 1, "c": 0.5, "d": [1, 2], "e": None, "f": True}, "loss": {"name": "x"}}


def _load(tmp_path, text, overrides=(), *, defaults=SMALL):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return load_config(path, overrides, defaults=defaults, open=("loss",))


def test_layers_apply_in_order_defaults_base_experiment_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("a: {b: 2, c: 1.5}\n")
    cfg = _load(tmp_path, "_base_: base.yaml\na: {b: 3}\n", ["a.d=[7]"])
    assert cfg["a"] == {"b": 3, "c": 1.5, "d": [7], "e": None, "f": True}


def test_several_files_layer_left_to_right(tmp_path):
    (tmp_path / "one.yaml").write_text("a: {b: 2}\n")
    (tmp_path / "two.yaml").write_text("a: {c: 9.0}\n")
    cfg = load_config([tmp_path / "one.yaml", tmp_path / "two.yaml"], defaults=SMALL, open=("loss",))
    assert (cfg["a"]["b"], cfg["a"]["c"]) == (2, 9.0)


def test_open_sections_take_free_arguments(tmp_path):
    cfg = _load(tmp_path, "loss: {name: arcface, scale: 64}\n", ["loss.margin=0.4"])
    assert cfg["loss"] == {"name": "arcface", "scale": 64, "margin": 0.4}


def test_override_values_are_read_as_yaml():
    assert parse_override("a.e=null") == {"a": {"e": None}}
    assert parse_override("a.d=[0.5, 0.75]") == {"a": {"d": [0.5, 0.75]}}


@pytest.mark.parametrize(
    ("text", "overrides", "match"),
    [
        ("a: {bb: 1}\n", [], "unknown config key 'a.bb'; valid keys here: a.b, a.c"),
        ("z: 1\n", [], "unknown config key 'z'"),
        ("", ["a.b=x"], "'a.b' must be a int"),
        ("", ["a.f=1"], "'a.f' must be a bool"),
        ("a: 3\n", [], "'a' is a section"),
        ("loss: arcface\n", [], "'loss' must be a mapping"),
        ("", ["a.b"], "must look like section.key=value"),
        ("", ["=3"], "must look like section.key=value"),
        ("", ["a.b=[1"], "not valid YAML"),
        ("a: [1\n", [], "not valid YAML"),
        ("- 1\n", [], "must be a mapping at the top"),
        ("_base_: missing.yaml\n", [], "no such config file"),
        ("_base_: exp.yaml\n", [], "include each other"),
        ("_base_: {x: 1}\n", [], "'_base_' must be a file name"),
    ],
)
def test_bad_config_is_refused_with_a_message_naming_it(tmp_path, text, overrides, match):
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, text, overrides)


def test_int_is_accepted_where_the_default_is_a_float(tmp_path):
    assert _load(tmp_path, "", ["a.c=1"])["a"]["c"] == 1


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_reference_config_loads_and_builds_its_objective(name):
    cfg = load_config(CONFIGS / name, defaults=DEFAULTS, open=OPEN_SECTIONS)
    assert cfg["name"] == name.removesuffix(".yaml")
    method = cfg["method"]["name"]
    objective = build_objective(
        method,
        embedding_dim=cfg["model"]["embedding_dim"],
        num_classes=7,
        num_aux_classes=3 if METHODS[method].uses_aux else 0,
        head=cfg["head"],
        loss=cfg["loss"],
        criterion=cfg["criterion"],
        method_args={k: v for k, v in cfg["method"].items() if k != "name"},
    )
    assert objective is not None


def test_reference_runs_share_one_schedule_and_backbone():
    """RESULTS.md compares the methods: only loss, criterion, head, method and name may differ."""
    configs = [load_config(CONFIGS / n, defaults=DEFAULTS, open=OPEN_SECTIONS) for n in EXPERIMENTS]
    shared = {
        (c["model"]["backbone"], str(c["optim"]), c["data"]["image_size"], c["data"]["enlarge_rate"]) for c in configs
    }
    assert len(shared) == 1, shared


def test_cpu_smoke_layer_turns_any_experiment_into_a_tiny_cpu_run():
    cfg = load_config([CONFIGS / "cosface.yaml", CONFIGS / "cpu_smoke.yaml"], defaults=DEFAULTS, open=OPEN_SECTIONS)
    assert cfg["loss"]["name"] == "cosface" and cfg["model"]["backbone"] == "tiny_cnn"
    Embedder(cfg["model"]["backbone"], cfg["model"]["embedding_dim"])


@pytest.mark.parametrize(("text", "expected"), [("auto", "auto"), ("false", False), ("true", True)])
def test_bf16_takes_auto_or_a_bool(text, expected):
    cfg = load_config(
        [CONFIGS / "softmax.yaml", CONFIGS / "cpu.yaml"],
        [f"runtime.bf16={text}"],
        defaults=DEFAULTS,
        open=OPEN_SECTIONS,
    )
    assert cfg["runtime"]["bf16"] == expected and type(cfg["runtime"]["bf16"]) is type(expected)


def test_bf16_auto_follows_the_device_and_a_bad_value_is_refused():
    """bf16 autocast only where the device has fast bf16 kernels: on an AVX2-only CPU oneDNN's reference bf16
    convolutions make a training step ~25x slower than float32 (benchmarks/cpu_bf16_step.py), so `auto` must mean
    float32 there."""
    cpu = torch.device("cpu")
    assert resolve_bf16("auto", cpu) is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert resolve_bf16(False, cpu) is False
    assert resolve_bf16(True, cpu) is True  # asked for explicitly: honoured (with a warning where slow)
    with pytest.raises(ConfigError, match="'runtime.bf16' must be true, false or auto, not 'maybe'"):
        resolve_bf16("maybe", cpu)
