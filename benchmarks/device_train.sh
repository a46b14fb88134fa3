#!/usr/bin/env bash
# One device call that trains the two models that need a GPU, side by side, in a fixed time:
# the de-identification generator (issue 5; two loss settings, A and B) and the deepfake detector
# (issue 6). Prepare here first:
#
#   python benchmarks/device_pack.py pack devpack        # ~53 MiB: UTKFace chips + crop recipes
#   (move the shipped weights other than models/face-attr out of the tree: the call carries 64 MiB)
#
# then run on the device (carry devpack):
#
#   BUDGET=380 bash benchmarks/device_train.sh          # results: $OUT/results.tar.* (split, 15 MiB)
#
# Each trainer fits its step count to BUDGET seconds after a few warm steps (--time-budget).
# Locally, as a dry run (slow: full-size nets on the CPU): PY=.venv/bin/python DEV=cpu \
#   BUDGET=20 WORKERS=2 DEID_BS=2 DF_BS=4 bash benchmarks/device_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEV=${DEV:-cuda}
BUDGET=${BUDGET:-380}
WORKERS=${WORKERS:-12}
DEID_BS=${DEID_BS:-64}   # the dry run uses small batches
DF_BS=${DF_BS:-32}
OUT=${OUT:-/tmp/out}
# Unpacked data goes to memory: unpacking onto the device's disk took 6.5 of the 15 lent minutes
# (session 4). /dev/shm also outlives the call while the machine stays warm; devpack/ does not.
PACKED=${PACKED:-/dev/shm/vidgan-packed}
R=runs/device
mkdir -p "$R" "$OUT"
export PYTHONUNBUFFERED=1
log() { echo "== $(date -u +%H:%M:%S) $*"; }

log "unpack"
if [ ! -f "$PACKED/deepfake_faces.npz" ]; then $PY benchmarks/device_pack.py unpack devpack --packed "$PACKED" || exit 1; fi
log "unpacked" 
if [ "$DEV" = cuda ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; fi

DEID="--data $PACKED/utkface --cache $PACKED --size 128 --ngf 32 --n-down 4 --n-res 4 --ndf 64
      --batch-size $DEID_BS --steps 100000 --time-budget $BUDGET --device $DEV --lossnet face-attr
      --log-every 50 --sample-every 1000 --ckpt-every 1000"
log "start: deid A, deid B, deepfake"
$PY -m vidgan train deid $DEID --out $R/deidA --export $R/deidA/export > $R/deidA.log 2>&1 &
A=$!
$PY -m vidgan train deid $DEID --w-ms 5 --w-in 0.3 --out $R/deidB --export $R/deidB/export > $R/deidB.log 2>&1 &
B=$!
$PY -m vidgan train deepfake --data devpack --pack "$PACKED/deepfake_faces.npz" --size 160 --batch-size "$DF_BS" \
  --steps 100000 --time-budget "$BUDGET" --curriculum 0.4 --val-every 250 --workers "$WORKERS" \
  --device "$DEV" --out $R/deepfake --export $R/deepfake/export > $R/deepfake.log 2>&1 &
D=$!
while kill -0 $A 2>/dev/null || kill -0 $B 2>/dev/null || kill -0 $D 2>/dev/null; do
  sleep 30
  log "$(tail -n1 $R/deidA.log | cut -c1-120)"
  log "$(tail -n1 $R/deepfake.log | cut -c1-160)"
  if [ "$DEV" = cuda ]; then nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; fi
done
wait $A; echo "deid A exit $?"
wait $B; echo "deid B exit $?"
wait $D; echo "deepfake exit $?"
tail -n 3 $R/deidA.log $R/deidB.log $R/deepfake.log

# Back: the exported models, logs, sample grids and metrics (no optimiser checkpoints), in
# 15 MiB pieces (a device call returns at most 8 files of 16 MiB).
tar cf - --exclude='ckpt.pt' --exclude='last.pt' --exclude='best.pt' \
  --exclude="$R/deidA/generator.pt" --exclude="$R/deidB/generator.pt" \
  $R/*.log $R/deidA $R/deidB $R/deepfake | split -b 15M - "$OUT/results.tar."
ls -la "$OUT"
