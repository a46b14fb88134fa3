#!/usr/bin/env bash
# One device call that trains the two models that need a GPU, side by side, in a fixed time:
# the de-identification generator (issue 5; two loss settings, A and B) and the deepfake detector
# (issue 6). Prepare here first:
#
#   python benchmarks/device_pack.py pack devpack        # 52 MiB: UTKFace chips + crop recipes
#   (move the shipped weights other than models/face-attr out of the tree: the call carries 64 MiB)
#
# then run on the device (carry devpack):
#
#   BUDGET=380 bash benchmarks/device_train.sh          # results: $OUT/results.tar.* (split, 15 MiB)
#
# JOBS picks the runs (default "deidD deidE"; also deidA, deidB, deidC, deepfake, deepfakeB; deepfakeB
# pre-trains the detector's backbone on the face pack for DF_PRE_EPOCHS epochs (bf16), then trains the
# detector from it with detail-loss self-blends and H.264 round trips for the rest of BUDGET).
# Each trainer fits its step count to BUDGET seconds after a few warm steps (--time-budget) and is
# killed at BUDGET + 150 s whatever happens, so
# the results are always packed before the call's own limit: give the call BUDGET + ~240 s (a call
# may run 600 s at most). Session 6, H200, two deid jobs: BUDGET=370 took 463 s (unpack 12 s, bank
# ~30 s, 9.7 steps/s per job), leaving ~330 s of the 15-minute lease for device_gpu_bench.sh (195 s).
# Runs and unpacked data live in /dev/shm; they stay there while the machine is warm, so a next call
# can use them. deepfakeB needs PyAV (its H.264 round trips), which the device lacks and whose wheel
# does not fit beside devpack in one call: run it in a second call on the warm machine, carrying
# [".whl", "devpack/ffpp.npz", "devpack/deepfake.npz"] (the chips are in /dev/shm by then); the
# wheels in .whl/ are installed first when they are there (session 8: BUDGET=170 DF_PRE_EPOCHS=10
# JOBS=deepfakeB, 212 s for the call).
# Locally, as a dry run (~3 min, tiny nets): PY=.venv/bin/python DEV=cpu BUDGET=15 WORKERS=1 DEID_BS=2 \
#   DF_BS=2 DF_SIZE=64 DF_PRE_EPOCHS=1 DF_PRE_LIMIT=256 DEID_NET="--size 32 --ngf 8 --n-down 2 --n-res 1 --ndf 8" PACKED=/tmp/vp RUNS=/tmp/vr \
#   OUT=/tmp/vo bash benchmarks/device_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEV=${DEV:-cuda}
BUDGET=${BUDGET:-380}
WORKERS=${WORKERS:-12}
DEID_BS=${DEID_BS:-64}   # the dry run uses small batches
DF_BS=${DF_BS:-32}
DEID_NET=${DEID_NET:---size 128 --ngf 32 --n-down 4 --n-res 4 --ndf 64}  # 8.6 M params, 17 MB in float16
DF_SIZE=${DF_SIZE:-160}
DF_PRE_EPOCHS=${DF_PRE_EPOCHS:-20}  # ~9,000 faces an epoch; a few seconds each on an H200 with 12 workers
DF_PRE_LIMIT=${DF_PRE_LIMIT:-0}  # the dry run pre-trains on a few hundred faces only
OUT=${OUT:-/tmp/out}
# Unpacked data goes to memory: /dev/shm outlives the call while the machine stays warm; devpack/
# does not (an ignored folder not named in carry is removed there).
PACKED=${PACKED:-/dev/shm/vidgan-packed}
R=${RUNS:-/dev/shm/vidgan-runs}
JOBS=${JOBS:-deidD deidE}
mkdir -p "$R" "$OUT"
export PYTHONUNBUFFERED=1
log() { echo "== $(date -u +%H:%M:%S) $*"; }

if [ -d .whl ] && [ "$DEV" = cuda ]; then  # carried wheels (PyAV for deepfakeB), as device_gpu_bench.sh does
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
if [[ " $JOBS " == *" deepfakeB "* ]] && ! $PY -c "import av" 2>/dev/null; then
  echo "deepfakeB needs PyAV: carry .whl (see the top of this script)" >&2; exit 2
fi
log "unpack"
if [ ! -f "$PACKED/deepfake_faces.npz" ]; then $PY benchmarks/device_pack.py unpack devpack --packed "$PACKED" || exit 1; fi
log "unpacked"
if [ "$DEV" = cuda ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; fi

DEID="--data $PACKED/utkface --cache $PACKED $DEID_NET --batch-size $DEID_BS --steps 100000 --time-budget $BUDGET --device $DEV --lossnet face-attr
      --log-every 50 --sample-every 1000 --ckpt-every 1000"
KILL="timeout -s KILL $((BUDGET + 150))"
pids=()
for job in $JOBS; do
  case $job in
    deidA) args="$DEID --proto 1024 --w-in 3 --w-ms 0.3" ;;  # identity from a prototype bank (session 5)
    deidB) args="$DEID" ;;  # z alone decides the identity (the session-4 recipe)
    # the bank with less pull towards the unseen original: interior L1 (whose optimum is the blurred
    # average of the faces that fit the context) down, Gram-only perceptual term, more mode seeking
    deidC) args="$DEID --proto 1024 --w-in 0.5 --perc style --w-ms 1" ;;  # session 6: blocky faces
    # A's losses held to the prototype pasted into the face, not to the original (session 6: A, held to
    # the original, left 8-10 % of faces recognisable on two clips); E with a weaker pull, more z
    deidD) args="$DEID --proto 1024 --w-in 3 --w-ms 0.3 --target prototype" ;;
    deidE) args="$DEID --proto 1024 --w-in 1 --w-ms 1 --target prototype" ;;
    deepfake|deepfakeB) args="" ;;
    *) echo "unknown job $job" >&2; exit 2 ;;
  esac
  rm -rf "${R:?}/$job" "$R/$job.log"  # a fresh run (an earlier call's run of that name may be there)
  if [ "$job" = deepfakeB ]; then
    # shellcheck disable=SC2016
    $KILL bash -c '
      t0=$(date +%s)
      '"$PY"' -m vidgan train deepfake-backbone --pack "$1/deepfake_faces.npz" --size '"$DF_SIZE"' \
        --epochs '"$DF_PRE_EPOCHS"' --limit '"$DF_PRE_LIMIT"' --batch-size 128 --workers '"$WORKERS"' --threads 2 --device '"$DEV"' \
        --out "$2/backbone" || exit 1
      left=$(( '"$BUDGET"' - $(date +%s) + t0 )); [ $left -lt 30 ] && left=30
      exec '"$PY"' -m vidgan train deepfake --data devpack --pack "$1/deepfake_faces.npz" --size '"$DF_SIZE"' \
        --batch-size '"$DF_BS"' --steps 100000 --time-budget $left --curriculum 0.4 --val-every 250 \
        --workers '"$WORKERS"' --device '"$DEV"' --init "$2/backbone/backbone.pt" --detail-prob 0.5 \
        --video-prob 0.5 --out "$2" --export "$2/export"' _ "$PACKED" "$R/$job" > "$R/$job.log" 2>&1 &
  elif [ "$job" = deepfake ]; then
    $KILL $PY -m vidgan train deepfake --data devpack --pack "$PACKED/deepfake_faces.npz" --size "$DF_SIZE" \
      --batch-size "$DF_BS" --steps 100000 --time-budget "$BUDGET" --curriculum 0.4 --val-every 250 \
      --workers "$WORKERS" --device "$DEV" --out "$R/$job" --export "$R/$job/export" > "$R/$job.log" 2>&1 &
  else
    # shellcheck disable=SC2086
    $KILL $PY -m vidgan train deid $args --out "$R/$job" --export "$R/$job/export" > "$R/$job.log" 2>&1 &
  fi
  pids+=($!)
  log "started $job"
done
while true; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 30
  for job in $JOBS; do log "$job: $(tail -n1 "$R/$job.log" | cut -c1-140)"; done
  if [ "$DEV" = cuda ]; then nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; fi
done
for i in "${!pids[@]}"; do wait "${pids[$i]}"; echo "job ${i} exit $?"; done
for job in $JOBS; do tail -n 3 "$R/$job.log"; done

# Back: the exported models, logs, sample grids and metrics (no optimiser checkpoints and no float32
# copies), in 15 MiB pieces (a device call returns at most 8 files of 16 MiB).
skip=(--exclude=ckpt.pt --exclude=last.pt --exclude=best.pt --exclude=backbone.pt)
for job in $JOBS; do skip+=("--exclude=$job/generator.pt"); done  # not a wildcard: it would take export/ too
# shellcheck disable=SC2086
(cd "$R" && tar cf - "${skip[@]}" ./*.log $JOBS) | split -b 15M - "$OUT/results.tar."
ls -la "$OUT"
