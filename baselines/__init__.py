"""Recognition methods of the iCartoonFace papers, in plain PyTorch.

- `baselines.backbones`: `BACKBONES` (tiny_cnn, resnet18/34/50/101, densenet121/169; torchvision state-dict names),
  `build_backbone`, `load_torchvision_weights`; every backbone has `forward_features` and `feature_maps`.
- `baselines.heads`: `Embedder` (backbone + embedding neck), `HEADS` (norm_linear, linear).
- `baselines.losses`: `LOSSES` (softmax, sphereface, cosface, arcface, combined: `(cos, labels) -> logits`) and
  `CRITERIA` (cross_entropy, focal).
- `baselines.fusion`: the plain objective, inter-face and intra-face fusion (2019 paper).
- `baselines.domain`: the 2020 full model (rejection loss, gradient reversal, domain classifier).
- `baselines.methods`: `METHODS` and `build_objective`, what the starter kit's train.py calls.
- `baselines/configs/`: one YAML per reference run (layered on `base.yaml`); `baselines/RESULTS.md`.

Nothing here imports `starter_kit` or `arena`; the training loop lives in `starter_kit/train.py`.
"""
