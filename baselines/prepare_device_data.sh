#!/usr/bin/env bash
# Make the recognition part of the synthetic `small` benchmark on this (CPU) machine, for baselines/run_all.sh on
# the GPU machine, which cannot run the generator. Writes data/small (the whole set) and data/small_rec (what
# recognition needs: train/test/auxiliary images, their lists and the hidden recognition labels; ~25 MB), then
# pass carry=["data/small_rec"] to the device tool and DATA=data/small_rec to run_all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -f data/small/manifest.json ] || $PY -m facedata synth --preset small --out data/small --seed 0 --no-progress
rm -rf data/small_rec && mkdir -p data/small_rec/hidden
cp -r data/small/icartoonface_rectrain data/small/icartoonface_rectest data/small/auxiliary data/small_rec/
cp data/small/icartoonface_rectrain_det.txt data/small/icartoonface_rectest_det.txt data/small_rec/
cp data/small/hidden/icartoonface_rectest_info.txt data/small/hidden/icartoonface_verification_pairs.txt \
  data/small_rec/hidden/
du -sh data/small_rec
