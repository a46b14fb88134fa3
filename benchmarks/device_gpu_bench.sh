#!/usr/bin/env bash
# Issue 8's GPU check on a lent device machine: bench_gpu.py over hall_1080p.mp4 (~2-3 minutes).
#
# Here, once (the device has no network, no ../shared, and lacks these packages):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl av==18.1.0 facenet-pytorch==2.5.3 cryptography cffi pycparser      # ~43 MB
#   mkdir -p packed/gpu && cp ../shared/data/videos/hall_1080p.mp4 packed/gpu/
# Then move the shipped weights out of the tree (the call carries 64 MiB) and run, carrying
# [".whl", "packed/gpu"]:
#   bash benchmarks/device_gpu_bench.sh            # $OUT/gpu.json and $OUT/gpu.log
#
# The GAN row uses GAN (default: the deidA model that benchmarks/device_train.sh left in /dev/shm on
# this machine while it stayed warm, else models/deid); without one it is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
GAN=${GAN:-/dev/shm/vidgan-runs/deidA/export/generator.pt}
[ -f "$GAN" ] || GAN=deid
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 benchmarks/bench_gpu.py --clip packed/gpu/hall_1080p.mp4 --gan-model "$GAN" --json "$OUT/gpu.json" 2>&1 |
  tee "$OUT/gpu.log"
