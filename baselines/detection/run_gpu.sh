#!/usr/bin/env bash
# The detection baseline, end to end, in stages that each fit the device's 10-minute limit per command.
#
#   baselines/detection/run_gpu.sh prepare             # on the CPU machine: synthetic `small` preset → data/det_small
#   baselines/detection/run_gpu.sh train   [CONFIG]    # on the GPU: torchrun over every visible GPU
#   baselines/detection/run_gpu.sh predict [CONFIG]    # checkpoint → submission CSV, scored on the hidden test GT
#   baselines/detection/run_gpu.sh speed   [CONFIG]    # inference speed, 2,000 frames at 1920x1080
#   baselines/detection/run_gpu.sh all     [CONFIG]    # train, predict, speed
#
# CONFIG is a name under baselines/detection/configs/ (default centernet_r18). The device has python3 with torch,
# numpy, pillow, tqdm and pyyaml but not the generator's renderer, so `prepare` runs here and data/det_small (about
# 15 MB: detection files only) travels with the run tool's `carry` (data/ and runs/ are git-ignored). Logs,
# config, metrics, the submission and the JSON results are written under $OUT. A train stage cut by the time limit
# continues with `RESUME=1 baselines/detection/run_gpu.sh train` while the machine is still warm.
# A dry run on a CPU: EXTRA="epochs=1 repeat=1" SPEED_IMAGES=8 SPEED_SIZE=320x180 run_gpu.sh all tiny_cpu
# (EXTRA: space-separated config overrides for training; leave it empty for the reference run).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

STAGE="${1:?usage: run_gpu.sh prepare|train|predict|speed|all [CONFIG]}"
CONFIG="${2:-centernet_r18}"
PY="${PYTHON:-python3}"
DATA="${DATA:-data/det_small}"
RUN="${RUNS:-runs/detection}/$CONFIG"
OUT="${OUT:-runs/detection/out}"
GT="$DATA/hidden/personai_icartoonface_detval.csv"
EXTRA_SETS=()
for item in ${EXTRA:-}; do EXTRA_SETS+=(--set "$item"); done
mkdir -p "$OUT"

prepare() {
  # reuses a generated `small` set (SYNTH, default data/small) if there is one, else generates it (seed 0)
  local full="${SYNTH:-data/small}"
  [ -f "$full/icartoonface_dettrain.csv" ] || "$PY" -m facedata synth --preset small --out "$full" --seed 0 \
    --workers "${WORKERS:-2}"
  rm -rf "$DATA" && mkdir -p "$DATA/hidden"
  cp -r "$full/icartoonface_dettrain" "$full/icartoonface_dettest" "$full/icartoonface_dettrain.csv" "$DATA/"
  cp "$full/hidden/personai_icartoonface_detval.csv" "$DATA/hidden/"
  cp "$full/manifest.json" "$DATA/source_manifest.json"
  du -sh "$DATA"
}

train() {
  local gpus resume=()
  gpus="$(nvidia-smi -L 2>/dev/null | wc -l)"
  [ "$gpus" -ge 1 ] || gpus=1
  [ "${RESUME:-0}" = 1 ] && resume=(--resume)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1 || true
  "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    >> "$OUT/gpu.txt"
  local started=$SECONDS
  "$PY" -m torch.distributed.run --standalone --nproc_per_node="$gpus" \
    -m starter_kit.train_detection --config "$CONFIG" --data "$DATA" --out "$RUN" --no-progress \
    ${resume[@]+"${resume[@]}"} ${EXTRA_SETS[@]+"${EXTRA_SETS[@]}"} \
    2>&1 | tee "$OUT/train_$CONFIG.log"
  echo "train stage wall time: $((SECONDS - started)) s, $gpus process(es)" | tee -a "$OUT/train_$CONFIG.log"
  cp "$RUN/config.yaml" "$OUT/${CONFIG}_config.yaml"
  cp "$RUN/metrics.jsonl" "$OUT/${CONFIG}_metrics.jsonl"
}

predict() {
  "$PY" -m starter_kit.predict_detection --checkpoint "$RUN/best.pt" --data "$DATA" \
    --out "$OUT/${CONFIG}_submission.csv" --labels "$GT" --workers 8 --no-progress 2>&1 | tee "$OUT/predict_$CONFIG.log"
  "$PY" -m starter_kit.predict_detection --checkpoint "$RUN/best.pt" --data "$DATA" --flip-test \
    --out "$OUT/${CONFIG}_flip_submission.csv" --labels "$GT" --workers 8 --no-progress 2>&1 \
    | tee "$OUT/predict_${CONFIG}_flip.log"
  "$PY" -m scorer detection "$GT" "$OUT/${CONFIG}_submission.csv" --json > "$OUT/${CONFIG}_scores.json"
}

speed() {
  "$PY" benchmarks/detection_inference.py --checkpoint "$RUN/best.pt" --images "${SPEED_IMAGES:-2000}" \
    --size "${SPEED_SIZE:-1920x1080}" \
    --workers 12 --json "$OUT/${CONFIG}_inference.json" 2>&1 | tee "$OUT/speed_$CONFIG.log"
}

case "$STAGE" in
  prepare) prepare ;;
  train) train ;;
  predict) predict ;;
  speed) speed ;;
  all) train && predict && speed ;;
  *) echo "unknown stage '$STAGE': prepare|train|predict|speed|all" >&2; exit 2 ;;
esac
