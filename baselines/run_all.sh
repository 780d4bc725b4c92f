#!/usr/bin/env bash
# Train, predict and score every reference configuration of baselines/configs/ with one schedule, and collect
# configs, logs, metrics and scores under $OUT. Written for the GPU machine (H100, python3 with torch, numpy,
# pillow, tqdm, pyyaml; no network), run from the repository root:
#
#   bash baselines/run_all.sh                      # everything: check, data, train+predict+score all, bench, report
#   bash baselines/run_all.sh check data           # stages can be run one call at a time (each call < 10 minutes):
#   bash baselines/run_all.sh run softmax sphereface cosface
#   bash baselines/run_all.sh run arcface combined focal_arcface
#   bash baselines/run_all.sh run inter_fusion intra_fusion full_model
#   bash baselines/run_all.sh bench report        # BENCH=densenet169:112:128 bash baselines/run_all.sh bench
#
# DATA: the dataset root (default data/small). The device cannot run the generator (its art libraries are not
# installed there), so make the recognition part of `small` here first and carry it:
#   bash baselines/prepare_device_data.sh          # -> data/small_rec (about 25 MB), then DATA=data/small_rec
# WORK: runs and caches (default runs/baselines; kept between calls while the machine stays warm).
# OUT: where the collected results go (the device tool's $OUT; default $WORK/out).
# EXTRA: extra overrides for every run, e.g. EXTRA="optim.epochs=2" for a dry run. Leave empty for RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DATA=${DATA:-data/small}
WORK=${WORK:-runs/baselines}
OUT=${OUT:-$WORK/out}
EXTRA=${EXTRA:-}
ALL="softmax sphereface cosface arcface combined focal_arcface inter_fusion intra_fusion full_model"
mkdir -p "$WORK" "$OUT/runs" "$OUT/logs"

stage_check() {
  { nvidia-smi || true; $PY -c "import torch, numpy, PIL, yaml, tqdm; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"; } \
    | tee "$OUT/logs/check.txt"
}

stage_data() {
  if [ ! -f "$DATA/icartoonface_rectrain_det.txt" ]; then
    echo "generating $DATA (needs facedata's art libraries)"
    $PY -m facedata synth --preset small --out "$DATA" --seed 0 --no-progress
  fi
  # pack the faces once (112 x 112, enlarge rate 1.0): every run then reads the same cache
  $PY - "$DATA" "$WORK/cache" <<'PYEOF' | tee "$OUT/logs/data.txt"
import sys, time
from starter_kit.data import load_faces
root, cache = sys.argv[1], sys.argv[2]
for split in ("rectrain", "auxiliary", "rectest"):
    started = time.perf_counter()
    faces = load_faces(root, split, size=112, enlarge_rate=1.0, cache_dir=cache, workers=12)
    print(f"{split}: {len(faces)} faces, {len(faces.identities)} identities, {time.perf_counter() - started:.1f} s")
PYEOF
}

run_one() {
  local name=$1 dir="$WORK/$1" extra=()
  if [ "$name" = full_model ]; then
    [ -f "$WORK/softmax/checkpoint.pt" ] || { echo "full_model starts from the softmax run: run softmax first"; exit 1; }
    extra+=("model.init_from=$WORK/softmax/checkpoint.pt")
  fi
  local started=$(date +%s)
  # shellcheck disable=SC2086
  $PY -m starter_kit.train "baselines/configs/$name.yaml" "data.root=$DATA" "data.cache_dir=$WORK/cache" \
    "runtime.run_dir=$dir" runtime.progress=false "${extra[@]}" $EXTRA 2>&1 | tee "$OUT/logs/$name.train.log"
  echo $(( $(date +%s) - started )) > "$dir/wall_s"
  $PY -m starter_kit.predict --checkpoint "$dir/checkpoint.pt" --data "$DATA" --out "$dir/features.bin" \
    --cache-dir "$WORK/cache" 2>&1 | tail -2 | tee "$OUT/logs/$name.predict.log"
  $PY -m scorer recognition "$DATA/hidden/icartoonface_rectest_info.txt" "$dir/features.bin" \
    --verification-pairs "$DATA/hidden/icartoonface_verification_pairs.txt" --json > "$dir/scores.json"
  cat "$dir/scores.json"
  mkdir -p "$OUT/runs/$name"
  cp "$dir/config.yaml" "$dir/metrics.csv" "$dir/train.log" "$dir/scores.json" "$dir/wall_s" "$OUT/runs/$name/"
}

stage_bench() {
  # BENCH: backbone:size:batch specs; the issue's reference is ResNet-50 at 224 x 224 (one spec per call is safest:
  # compiling takes minutes), e.g. BENCH=densenet169:112:128 for the reference runs' model
  local spec backbone size batch
  for spec in ${BENCH:-resnet50:224:256}; do
    IFS=: read -r backbone size batch <<< "$spec"
    $PY benchmarks/training_throughput.py --data "$DATA" --cache-dir "$WORK/cache" --backbone "$backbone" \
      --size "$size" --batch "$batch" --steps 60 --workers 12 2>&1 | tee "$OUT/logs/throughput_${backbone}_$size.txt"
  done
}

stage_report() {
  $PY baselines/results_table.py "$WORK" --gpu "$($PY -c 'import torch; print(torch.cuda.get_device_name(0))' \
    2>/dev/null || echo cpu)" | tee "$OUT/results_table.md"
}

[ $# -eq 0 ] && set -- all
while [ $# -gt 0 ]; do
  case $1 in
    check) stage_check ;;
    data) stage_data ;;
    run) shift; while [ $# -gt 0 ] && [[ " $ALL " == *" $1 "* ]]; do run_one "$1"; shift; done; continue ;;
    bench) stage_bench ;;
    report) stage_report ;;
    all) stage_check; stage_data; for n in $ALL; do run_one "$n"; done; stage_bench; stage_report ;;
    *) echo "unknown stage '$1': check, data, run NAME..., bench, report, all (NAME: $ALL)"; exit 2 ;;
  esac
  shift
done
