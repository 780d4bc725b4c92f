"""Checkpoint -> features of the recognition test list -> a valid submission file (raw float64, FORMATS.md §2).

    python -m starter_kit.predict --checkpoint runs/arcface/checkpoint.pt --data data/small --out arcface.bin

Row i of the file is the L2-normalised embedding of image i of `icartoonface_rectest_det.txt` (the face cropped
with the run's enlarge rate and size, plus its mirror image unless --no-flip). An --out ending in `.npy` or
`.npy.gz` gets a compact float16 `.npy` (gzip-compressed for `.gz`), which the scorer also reads (FORMATS.md §2):
a quarter of the bytes, and the committed baseline submissions (baselines/results/) are such files. The file is
read back with `scorer.formats.read_features` before the command reports success.
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from baselines.heads import Embedder
from facedata.layout import Layout
from scorer.formats import SubmissionError, read_features, write_features
from starter_kit.config import ConfigError
from starter_kit.data import load_faces, normalize

log = logging.getLogger(__name__)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs on fast kernels on `device`: a CUDA GPU with bf16, or a CPU for which oneDNN has
    bf16 kernels (AVX-512 or AMX). On other CPUs (AVX2 only) oneDNN computes bf16 convolutions with reference code:
    a training step measured 25x slower than float32 on an AMD EPYC with AVX2 (benchmarks/cpu_bf16_step.py)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check()) if check is not None else False
    return False


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    """runtime.bf16: "auto" -> bf16 autocast where `native_bf16(device)`, float32 elsewhere; true / false as set
    (true on a device without fast bf16 kernels is honoured, with a warning)."""
    if setting == "auto":
        return native_bf16(device)
    if setting not in (True, False):
        raise ConfigError(f"'runtime.bf16' must be true, false or auto, not {setting!r}")
    if setting and not native_bf16(device):
        log.warning("runtime.bf16=true on %s, which has no fast bf16 kernels: about float32's speed / 25", device)
    return bool(setting)


def pick_device(name: str = "auto") -> torch.device:
    """ "auto": cuda:LOCAL_RANK when a GPU is there, else cpu; anything else is passed to torch.device."""
    if name == "auto":
        if torch.cuda.is_available():
            import os

            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)


@torch.no_grad()
def embed_faces(
    embedder: torch.nn.Module,
    images: np.ndarray,
    device: torch.device,
    *,
    batch_size: int = 256,
    flip: bool = True,
    bf16: bool = True,
    channels_last: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """images uint8 (N, S, S, 3) -> L2-normalised embeddings float32 (N, D); flip adds the mirror image's
    embedding before normalising. The embedder is put in eval mode and left there."""
    embedder.eval()
    cuda = device.type == "cuda"
    chunks = []
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="embed", unit="batch")
    for start in starts:
        batch = torch.from_numpy(
            np.array(images[start : start + batch_size])
        )  # a writable copy of the memmap.to(device)
        x = normalize(batch, channels_last and cuda)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            emb = embedder(x).float()
            if flip:
                emb = emb + embedder(torch.flip(x, dims=[3])).float()
        chunks.append(F.normalize(emb, dim=1).cpu())
    if not chunks:
        return np.zeros((0, getattr(embedder, "embedding_dim", 1)), dtype=np.float32)
    return torch.cat(chunks).numpy()


def write_compact_features(path: str | Path, features: np.ndarray) -> None:
    """features (N, d) -> a float16 `.npy` at path, gzip-compressed (mtime 0: the same bytes every time) when
    path ends with `.gz`."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(features, dtype=np.float16), allow_pickle=False)
    data = buffer.getvalue()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    Path(path).write_bytes(data)


def load_embedder(checkpoint: str | Path, device: torch.device) -> tuple[Embedder, dict]:
    """The embedder of a training checkpoint (written by starter_kit.train) and the run's config."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{checkpoint}: not a checkpoint written by starter_kit.train")
    config = state["config"]
    model_cfg = config["model"]
    embedder = Embedder(model_cfg["backbone"], model_cfg["embedding_dim"], model_cfg["dropout"])
    weights = {k.removeprefix("embedder."): v for k, v in state["model"].items() if k.startswith("embedder.")}
    embedder.load_state_dict(weights)
    return embedder.to(device), config


def predict(
    checkpoint: str | Path,
    data_root: str | Path,
    out: str | Path,
    *,
    device: str = "auto",
    batch_size: int = 256,
    flip: bool = True,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Write the submission for the test list of data_root to out and return its features float64 (N, D)."""
    dev = pick_device(device)
    embedder, config = load_embedder(checkpoint, dev)
    data_cfg = config["data"]
    layout = Layout(data_root)
    test_names = layout.recognition_test().names
    faces = load_faces(
        data_root,
        "rectest",
        size=data_cfg["image_size"],
        enlarge_rate=data_cfg["enlarge_rate"],
        cache_dir=cache_dir or Path(data_root) / "packed",
        workers=workers,
    )
    if tuple(faces.names) != tuple(test_names):
        raise ValueError(
            f"the packed test faces of {data_root} are not in the order of its test list; "
            "delete the cache folder and run again"
        )
    runtime = config["runtime"]
    feats = embed_faces(
        embedder,
        faces.images,
        dev,
        batch_size=batch_size,
        flip=flip,
        # the training run's precision where this device has fast bf16 kernels; float32 elsewhere (features then
        # differ from the training machine's in their last bits only)
        bf16=runtime["bf16"] in (True, "auto") and native_bf16(dev),
        channels_last=runtime["channels_last"],
        progress=progress,
    )
    if str(out).endswith((".npy", ".npy.gz")):
        write_compact_features(out, feats)
    else:
        write_features(out, feats)
    checked = read_features(out, len(test_names))
    log.info("wrote %s: %d x %d features", out, *checked.shape)
    return checked


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["--task", "detection"]:  # the detection track has its own script: starter_kit/predict_detection.py
        from starter_kit.predict_detection import main as predict_detection

        return predict_detection(argv[2:])
    if argv[:2] == ["--task", "recognition"]:
        argv = argv[2:]
    parser = argparse.ArgumentParser(prog="python -m starter_kit.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of a run of starter_kit.train")
    parser.add_argument("--data", required=True, help="dataset root (holds icartoonface_rectest_det.txt)")
    parser.add_argument(
        "--out", required=True, help="the submission file to write (.bin: float64; .npy or .npy.gz: float16)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-flip", action="store_true", help="no mirror-image test-time augmentation")
    parser.add_argument("--cache-dir", default=None, help="where the packed test faces go (default DATA/packed)")
    parser.add_argument("--workers", type=int, default=1, help="processes that pack the test faces")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        feats = predict(
            args.checkpoint,
            args.data,
            args.out,
            device=args.device,
            batch_size=args.batch_size,
            flip=not args.no_flip,
            cache_dir=args.cache_dir,
            workers=args.workers,
            progress=True,
        )
    except (SubmissionError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    kind = "float16 .npy" if args.out.endswith((".npy", ".npy.gz")) else "float64"
    print(f"wrote {args.out}: {feats.shape[0]} rows x {feats.shape[1]} {kind}, checked with scorer's reader")
    return 0


if __name__ == "__main__":
    sys.exit(main())
