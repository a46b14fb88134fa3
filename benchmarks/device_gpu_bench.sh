#!/usr/bin/env bash
# Issue 8's GPU check on a lent device machine: bench_gpu.py over hall_1080p.mp4 (~2-3 minutes).
#
# Here, once (the device has no network, no ../shared, and lacks these packages):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl av==18.1.0 facenet-pytorch==2.5.3 cryptography cffi pycparser      # ~43 MB
#   mkdir -p packed/gpu && cp ../shared/data/videos/hall_1080p.mp4 packed/gpu/
#   mkdir -p packed/gpu/also && cp ../shared/data/videos/{party_h264_aac.mp4,hikers.mp4,interview_720p.mp4,\
#     talking_vfr.mp4,marathon_vfr_pcm.mkv,walking_pause.gif,selfie_rotate-90.mp4} packed/gpu/also/  # 12 MB
# Then move the shipped weights out of the tree (the call carries 64 MiB), check with
# `python benchmarks/device_preflight.py` (no device time; exit 0 when the call fits), and run, carrying
# [".whl", "packed/gpu"]:
#   bash benchmarks/device_gpu_bench.sh            # $OUT/gpu.json, $OUT/gpu.log, $OUT/outputs.tar.*
# hall_1080p and the clips in packed/gpu/also/ are anonymized on the GPU in blur and GAN mode; the
# outputs come back (tar, 15 MiB pieces) for the dlib leak judge here:
#   cat gpu-out/outputs.tar.* | tar xf - -C /tmp/gpu-outputs
#   .venv/bin/python benchmarks/judge_gpu_outputs.py /tmp/gpu-outputs     # ~25 min on 2 cores
#
# The GAN row uses GAN (default: the deidD, deidE or deidA model that benchmarks/device_train.sh left
# in /dev/shm on this machine while it stayed warm, else models/deid); without one it is skipped.
# GAN=random times that architecture with random weights (session 11: no trained model shipped; the
# work per face does not depend on the weights, but its leak rows then mean nothing).
# Then benchmarks/prof_threads.py profiles blur (and GAN) mode on hall_1080p ($OUT/prof.log).
# Session 6 (H200): the whole script took 195 s, after a 463 s device_train.sh call with BUDGET=370.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
if [ -z "${GAN:-}" ]; then  # the first model device_train.sh left here, else models/deid
  GAN=deid
  for j in deidD deidE deidA; do
    if [ -f "/dev/shm/vidgan-runs/$j/export/generator.pt" ]; then GAN=/dev/shm/vidgan-runs/$j/export/generator.pt; break; fi
  done
fi
if [ "$GAN" = random ]; then  # speed only: the trained architecture (device_train.sh) with random weights
  python3 -c "
import sys; sys.path.insert(0, '.')
from vidgan.gan.deid import DeidArch, DeidGenerator, save_deid
save_deid('/tmp/random-deid.pt', DeidGenerator(DeidArch(size=128, ngf=32, n_down=4, n_res=4, n_proto=555,
          proto_fit=True)), {'note': 'random weights: for speed only'}, half=True)" || exit 1
  GAN=/tmp/random-deid.pt
fi
echo "GAN model: $GAN"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
K=/tmp/gpu-outputs
python3 benchmarks/bench_gpu.py --clip packed/gpu/hall_1080p.mp4 --gan-model "$GAN" --json "$OUT/gpu.json" \
  --also packed/gpu/hall_1080p.mp4 packed/gpu/also/* --keep "$K" 2>&1 | tee "$OUT/gpu.log"
(cd "$K" && tar cf - .) | split -b 15M - "$OUT/outputs.tar."
ls -la "$OUT"
# Where each thread's time goes at 1080p (benchmarks/prof_threads.py), blur and, with a model, GAN mode.
for m in blur gan; do
  if [ "$m" = gan ] && ! python3 -c "import sys; sys.path.insert(0, '.'); from vidgan.gan.deid import find_deid; find_deid('$GAN')" 2>/dev/null; then continue; fi
  python3 benchmarks/prof_threads.py packed/gpu/hall_1080p.mp4 --device cuda --top 10 --mode $m \
    $([ "$m" = gan ] && echo --gan-model "$GAN") 2>&1 | grep -v Warning | tee -a "$OUT/prof.log"
done
