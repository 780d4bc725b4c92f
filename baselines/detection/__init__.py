"""The anchor-free one-stage face detector of the detection baseline (CenterNet-style, one class).

- `config`: DetectionConfig (frozen, YAML + key=value overrides); configs/ holds the reference runs.
- `features`: backbones of `baselines.backbones` as C2–C5 extractors (+ `tiny_det` for CPU tests).
- `model`: CenterNet (FPN top-down neck at stride 4, heatmap / size / offset heads), build_detector(cfg).
- `targets`: encode(boxes) → Targets, decode(maps) → boxes; `loss`: centernet_loss.
- `data`: the train list of a dataset folder, the seeded validation split, scale/flip augmentation, the Dataset.
- `infer`: detect(model, images) on whole images; `evaluate`: ap50 of a model on labelled images with `scorer`.

The training and prediction scripts are `starter_kit/train_detection.py` and `starter_kit/predict_detection.py`.
"""
