#!/usr/bin/env bash
# Train, predict and score every reference configuration of baselines/configs/ with one schedule, and collect
# configs, logs, metrics and scores.
#
# On a CPU machine (the reference table of baselines/RESULTS.md; `make baselines` runs this):
#   bash baselines/run_all.sh cpu                  # data/small if missing, then every run of CPU_RUNS below, two at a
#                                                  # time with one thread each (JOBS=2), the CPU protocol layer
#                                                  # baselines/configs/cpu.yaml on top of each experiment file;
#                                                  # resumable: a finished run (scores.json) is skipped, a cut one
#                                                  # resumes from its checkpoint; results go to baselines/results/
#   bash baselines/run_all.sh cpu-report           # RESULTS.md's table from baselines/results/ (run at the end too)
#   CPU_DATA=data/small_v2 CPU_DATA_VERSION=2 CPU_RESULTS=runs/results_v2 bash baselines/run_all.sh cpu
#                                                  # the same table on generator version 2 data (facedata synth
#                                                  # --version 2, the earlier default: results/earlier/generator-v2/);
#                                                  # CPU_DATA_VERSION defaults to the generator's default, and a
#                                                  # dataset of another version is refused
#   bash baselines/run_all.sh table                # `cpu` where there is no GPU; on a GPU the same runs with the
#                                                  # paper-scale protocol (base.yaml: DenseNet-169 at 112 x 112, 40
#                                                  # epochs; detection centernet_r18), one at a time, results in
#                                                  # baselines/results/gpu/ (machine.txt names the GPU; untested:
#                                                  # no GPU was available when it was written)
# The stages below are the older GPU path, one stage group per call of the device tool:
# Written for the GPU machine (H100, python3 with torch, numpy, pillow, tqdm, pyyaml; no network), run from the
# repository root:
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


# ------------------------------------------------------------------------------------------------ the CPU table
# One line per run: run-name experiment-config seed [overrides...]. Seed 0 of every method first, then a second
# softmax seed (the spread), the float32 check of bf16 (twice the time of a bf16 run), the full model (it waits for
# the softmax run of its seed: it starts from it), a third softmax seed and the detection baseline, then more seeds,
# the rows nearest to softmax in the previous table first, with the second seed of the bf16 / float32 pair early
# (it tells a bf16 effect from run-to-run divergence). Rows that finished are skipped, so the order is also the priority when time is short.
CPU_RUNS="
softmax-seed0 softmax 0
arcface-seed0 arcface 0
sphereface-seed0 sphereface 0
cosface-seed0 cosface 0
combined-seed0 combined 0
focal_arcface-seed0 focal_arcface 0
inter_fusion-seed0 inter_fusion 0
intra_fusion-seed0 intra_fusion 0
softmax-seed1 softmax 1
arcface_fp32-seed0 arcface 0 runtime.bf16=false
full_model-seed0 full_model 0
softmax-seed2 softmax 2
detection-seed0 detection 0
sphereface-seed1 sphereface 1
sphereface-seed2 sphereface 2
intra_fusion-seed1 intra_fusion 1
arcface-seed1 arcface 1
arcface_fp32-seed1 arcface 1 runtime.bf16=false
intra_fusion-seed2 intra_fusion 2
cosface-seed1 cosface 1
cosface-seed2 cosface 2
combined-seed1 combined 1
combined-seed2 combined 2
inter_fusion-seed1 inter_fusion 1
inter_fusion-seed2 inter_fusion 2
arcface-seed2 arcface 2
focal_arcface-seed1 focal_arcface 1
focal_arcface-seed2 focal_arcface 2
full_model-seed1 full_model 1
full_model-seed2 full_model 2
"
CPU_DATA=${CPU_DATA:-data/small}
# the generator version of CPU_DATA (facedata synth --version); default: the generator's default, read from
# facedata/plan.py's text (importing facedata needs its art libraries, which a GPU machine may not have)
CPU_DATA_VERSION=${CPU_DATA_VERSION:-$(sed -n 's/^DEFAULT_VERSION = \([0-9][0-9]*\)$/\1/p' facedata/plan.py)}
LAYER=baselines/configs/cpu.yaml  # the CPU protocol layer (empty on a GPU: base.yaml's protocol)
DET_CONFIG=centernet_r18_cpu
THREADS=1
GPU_NAME=$(${PY:-python3} -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
  2>/dev/null || true)
CPU_WORK=${CPU_WORK:-runs/baselines_cpu}
CPU_RESULTS=${CPU_RESULTS:-baselines/results}
JOBS=${JOBS:-2}
CPU_EXTRA=${CPU_EXTRA:-}  # overrides for every recognition run (a dry run: "optim.epochs=1 optim.max_steps_per_epoch=2")
DET_EXTRA=${DET_EXTRA:-}  # arguments for the detection run (a dry run: "--set epochs=1 --max-steps 2")
CPU_ONLY=${CPU_ONLY:-}    # run only these run names (space-separated); empty: all of CPU_RUNS

say() { echo "[$(date -u +%H:%M:%S)] $*"; }

cpu_machine() {
  mkdir -p "$CPU_RESULTS"
  if [ -n "$GPU_NAME" ]; then
    { echo "gpu: $GPU_NAME, $JOBS run at a time"; $PY -c "import torch; print('torch', torch.__version__)"; } \
      > "$CPU_RESULTS/machine.txt"
    return
  fi
  { echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $JOBS runs at a time, 1 thread each"
    $PY -c "import torch, platform; print('torch', torch.__version__, '| python', platform.python_version())"
  } > "$CPU_RESULTS/machine.txt"
}

cpu_data() {
  if [ ! -f "$CPU_DATA/hidden/icartoonface_rectest_info.txt" ]; then
    say "generating $CPU_DATA (facedata synth --preset small --seed 0 --version $CPU_DATA_VERSION)"
    $PY -m facedata synth --preset small --out "$CPU_DATA" --seed 0 --version "$CPU_DATA_VERSION" --no-progress
  fi
  local found=$CPU_DATA_VERSION  # a generated dataset says its version in manifest.json (the real data has none)
  if [ -f "$CPU_DATA/manifest.json" ]; then
    found=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['generator_version'])" "$CPU_DATA/manifest.json")
  fi
  if [ "$found" != "$CPU_DATA_VERSION" ]; then
    say "$CPU_DATA is generator version $found, not $CPU_DATA_VERSION (CPU_DATA_VERSION): use another CPU_DATA"
    exit 2
  fi
  # pack once at the protocol's crop: the layer's size and enlarge rate (base.yaml's on a GPU)
  $PY -c "
import sys
import yaml
from starter_kit.data import load_faces
if __name__ == '__main__':
    data = yaml.safe_load(open(sys.argv[3]))['data']
    for split in ('rectrain', 'auxiliary', 'rectest'):
        load_faces(sys.argv[1], split, size=int(data['image_size']), enlarge_rate=float(data['enlarge_rate']),
                   cache_dir=sys.argv[2], workers=2)
" "$CPU_DATA" "$CPU_WORK/cache" "${LAYER:-baselines/configs/base.yaml}"
}

cpu_detection() {  # the detection baseline on the synthetic scenes: train, predict the test images, score
  local dir=$1 res=$2 gt="$CPU_DATA/hidden/personai_icartoonface_detval.csv" resume=()
  [ -f "$dir/last.pt" ] && resume=(--resume)
  OMP_NUM_THREADS=$THREADS /usr/bin/time -f "%U %S" -o "$dir.time" $PY -m starter_kit.train_detection \
    --config "$DET_CONFIG" --data "$CPU_DATA" --out "$dir" --no-progress ${resume[@]+"${resume[@]}"} $DET_EXTRA \
    > "$dir.log" 2>&1 || return 1
  OMP_NUM_THREADS=$THREADS $PY -m starter_kit.predict_detection --checkpoint "$dir/best.pt" --data "$CPU_DATA" \
    --out "$dir/submission.csv" --labels "$gt" --workers 0 --no-progress >> "$dir.log" 2>&1 || return 1
  $PY -m scorer detection "$gt" "$dir/submission.csv" --json > "$dir/scores.tmp" || return 1
  mv "$dir/scores.tmp" "$dir/scores.json"
  mkdir -p "$res"
  cp "$dir/config.yaml" "$dir/metrics.jsonl" "$dir/scores.json" "$dir/submission.csv" "$res/"
  cp "$dir.log" "$res/train.log"
  sed -i "s#$PWD/##g" "$res/config.yaml" "$res/train.log"
  awk '{print $1 + $2}' "$dir.time" > "$res/train_cpu_s"
}

cpu_train() {  # run-name config seed run-dir [overrides...]: train (or resume) with the protocol layer; log in run-dir.log
  local name=$1 config=$2 seed=$3 dir=$4; shift 4
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$THREADS $PY -m starter_kit.train "baselines/configs/$config.yaml" $LAYER \
    "name=$name" "seed=$seed" "data.root=$CPU_DATA" "data.cache_dir=$CPU_WORK/cache" "runtime.run_dir=$dir" \
    "$@" $CPU_EXTRA > "$dir.log" 2>&1
}

cpu_one() {  # run-name config seed [overrides...]: train (or resume), predict float16 features, score
  local name=$1 config=$2 seed=$3; shift 3
  local dir="$CPU_WORK/$name" res="$CPU_RESULTS/$name" started=$SECONDS extra=()
  if [ -f "$res/scores.json" ]; then say "skip $name (done: $res/scores.json)"; return 0; fi
  mkdir -p "$dir"
  if [ "$config" = full_model ]; then  # the paper starts from a softmax-trained model: the softmax run of this seed
    local base="$CPU_WORK/softmax-seed$seed/checkpoint.pt"
    while [ ! -f "$CPU_RESULTS/softmax-seed$seed/scores.json" ]; do sleep 20; done
    if [ ! -f "$base" ]; then  # the repository keeps the softmax run's results, not its checkpoint: train it again
      say "training softmax-seed$seed again for its checkpoint (the start of $name)"
      cpu_train "softmax-seed$seed" softmax "$seed" "$CPU_WORK/softmax-seed$seed" \
        || { say "FAILED softmax-seed$seed (log: $CPU_WORK/softmax-seed$seed.log)"; return 1; }
    fi
    extra+=("model.init_from=$base")
  fi
  say "start $name"
  if [ "$config" = detection ]; then
    cpu_detection "$dir" "$res" || { say "FAILED $name (log: $dir.log)"; return 1; }
    say "done $name in $((SECONDS - started)) s: $(tr -d '\n' < "$res/scores.json" | head -c 160)"
    return 0
  fi
  if ! cpu_train "$name" "$config" "$seed" "$dir" ${extra[@]+"${extra[@]}"} "$@"; then
    say "FAILED $name (log: $dir.log)"; return 1
  fi
  OMP_NUM_THREADS=$THREADS $PY -m starter_kit.predict --checkpoint "$dir/checkpoint.pt" --data "$CPU_DATA" \
    --out "$dir/features.npy.gz" --cache-dir "$CPU_WORK/cache" >> "$dir.log" 2>&1 \
    && $PY -m scorer recognition "$CPU_DATA/hidden/icartoonface_rectest_info.txt" "$dir/features.npy.gz" \
      --verification-pairs "$CPU_DATA/hidden/icartoonface_verification_pairs.txt" --json > "$dir/scores.tmp" \
    && mv "$dir/scores.tmp" "$dir/scores.json" || { say "FAILED $name: predict or score (log: $dir.log)"; return 1; }
  mkdir -p "$res"
  cp "$dir/config.yaml" "$dir/metrics.csv" "$dir/train.log" "$dir/scores.json" "$res/"
  sed -i "s#$PWD/##g" "$res/config.yaml" "$res/train.log"  # committed files hold no path of this checkout
  # the board's baseline rows: the seed-0 run of each method (the float16 submission the platform scores)
  case $name in *_fp32-*) ;; *-seed0) cp "$dir/features.npy.gz" "$res/" ;; esac
  say "done $name in $((SECONDS - started)) s: test rank-1 $($PY -c "import json,sys; print(round(100 * json.load(open(sys.argv[1]))['rank1'], 2))" "$res/scores.json") %"
}

stage_cpu() {
  if [ "$PY" = python3 ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
  # `table` on a machine with a GPU: the paper-scale protocol (base.yaml alone: DenseNet-169 at 112 x 112, 40 epochs;
  # the detection baseline's centernet_r18), one run at a time, into baselines/results/gpu/ with the GPU named
  if [ "${1:-cpu}" = table ] && [ -n "$GPU_NAME" ]; then
    LAYER="" DET_CONFIG=centernet_r18 THREADS=${THREADS:-8} JOBS=1 CPU_RESULTS=${CPU_RESULTS_GPU:-baselines/results/gpu}
    CPU_WORK=${CPU_WORK_GPU:-runs/baselines_gpu}
  else
    GPU_NAME=""
  fi
  mkdir -p "$CPU_WORK" "$CPU_RESULTS"
  cpu_machine
  cpu_data
  local total n=0 line native
  total=$(grep -c . <<< "$CPU_RUNS")
  # the float32 twins check bf16 against float32; where bf16 is not used (runtime.bf16=auto on a CPU without bf16
  # kernels: float32 already) they would train the same float32 run again, so they are skipped
  native=$($PY -c "import torch; from starter_kit.predict import native_bf16
print(int(native_bf16(torch.device('cuda' if torch.cuda.is_available() else 'cpu'))))" 2>/dev/null || echo 1)
  if [ "$native" = 0 ]; then total=$((total - $(grep -c "runtime.bf16=false" <<< "$CPU_RUNS"))); fi
  say "CPU table: $total runs, $JOBS at a time (results: $CPU_RESULTS, work: $CPU_WORK)"
  while read -r line; do
    [ -n "$line" ] || continue
    if [ -n "$CPU_ONLY" ] && [[ " $CPU_ONLY " != *" ${line%% *} "* ]]; then continue; fi
    if [ "$native" = 0 ] && [[ "$line" == *runtime.bf16=false* ]]; then
      say "skip ${line%% *} (no bf16 kernels here: every run trains in float32)"; continue
    fi
    n=$((n + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    # shellcheck disable=SC2086
    { cpu_one $line || true; say "progress: $(ls "$CPU_RESULTS"/*/scores.json 2>/dev/null | wc -l) of $total runs done"; } &
    sleep 2
  done <<< "$CPU_RUNS"
  wait
  stage_cpu_report
}

stage_cpu_report() {
  if [ "$PY" = python3 ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
  if [ "$CPU_RESULTS" -ef baselines/results ]; then  # the committed CPU table
    $PY baselines/results_table.py "$CPU_RESULTS" --write baselines/RESULTS.md --data "$CPU_DATA"
  else  # other results (the GPU runs, a dry run): their block, to paste into RESULTS.md next to the CPU one
    $PY baselines/results_table.py "$CPU_RESULTS" | tee "$CPU_RESULTS/results_block.md"
  fi
}

main() {
[ $# -eq 0 ] && set -- all
while [ $# -gt 0 ]; do
  case $1 in
    check) stage_check ;;
    data) stage_data ;;
    run) shift; while [ $# -gt 0 ] && [[ " $ALL " == *" $1 "* ]]; do run_one "$1"; shift; done; continue ;;
    bench) stage_bench ;;
    report) stage_report ;;
    cpu) stage_cpu cpu ;;
    table) stage_cpu table ;;
    cpu-report) stage_cpu_report ;;
    all) stage_check; stage_data; for n in $ALL; do run_one "$n"; done; stage_bench; stage_report ;;
    *) echo "unknown stage '$1': cpu, cpu-report, check, data, run NAME..., bench, report, all (NAME: $ALL)"; exit 2 ;;
  esac
  shift
done
}

# the whole file is parsed before anything runs (main, then exit on one line): editing it during a run is safe
main "$@"; exit
