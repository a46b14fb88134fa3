#!/usr/bin/env bash
# Train every model vidgan.gan ships, in dependency order, and export them into models/.
#
#   bash benchmarks/train_models.sh cpu   # what shipped today: small configs, 1 torch thread each
#   bash benchmarks/train_models.sh gpu   # larger configs for one CUDA GPU (sized for ~9 min on an H200)
#
# Every step resumes (--resume) from runs/<profile>/<name>/ckpt.pt, so rerunning the script after an
# interruption continues where it stopped; a finished run (metrics.json present) is skipped. Set
# ONLY="sr-mse srgan" to run a subset. Order: SR baseline first (it has a numeric target: +2 dB over
# bicubic), the face-attr loss network (SRGAN's perceptual loss and the face-age metric need it), SRGAN
# initialised from the MSE model, then the pix2pix and CycleGAN models.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-cpu}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
UTK=$DATA/faces/utkface
FACADES=$DATA/pairs/facades
RUNS=runs/$PROFILE
mkdir -p "$RUNS"

if [ "$PROFILE" = cpu ]; then
  # 2-core shared CPU: 1 thread per job, small nets, 64 px faces for the GANs, 128 px facades.
  DEV="--device cpu --threads 1"
  SR_MSE="--size 128 --crop 64 --limit 4000 --ngf 32 --n-blocks 6 --batch-size 16 --steps 500 --lr 4e-4"
  LOSSNET="--size 64 --epochs 2 --width 32 --batch-size 64"
  SRGAN="--size 128 --crop 64 --limit 4000 --ngf 32 --n-blocks 6 --batch-size 16 --steps 300 --lr 1e-4 --ndf 32"
  COLOR="--size 64 --limit 4000 --ngf 32 --ndf 32 --batch-size 4 --steps 800"
  FACADE="--size 128 --ngf 32 --ndf 32 --batch-size 4 --steps 400"
  AGE="--size 64 --ngf 32 --n-blocks 6 --ndf 32 --batch-size 2 --steps 500"
  EVERY="--ckpt-every 50 --sample-every 100"
  ADV=5e-3 PERC=0.05   # short CPU fine-tune: stronger than SRGAN's 1e-3 so the GAN visibly departs from MSE
elif [ "$PROFILE" = gpu ]; then
  # one H100/H200, bf16 autocast, wider nets and 256 px facades; budget ~9 min for all six runs
  # (estimated from FLOP counts: not yet run on a GPU).
  DEV="--device cuda"
  SR_MSE="--size 128 --ngf 64 --n-blocks 16 --batch-size 32 --steps 3000 --lr 2e-4"
  LOSSNET="--size 64 --epochs 12 --width 32 --batch-size 128"
  SRGAN="--size 128 --ngf 64 --n-blocks 16 --batch-size 32 --steps 1500 --lr 1e-4 --ndf 64"
  # U-Net widths keep the exported generators < 25 MB (float16 export above 24 MB of float32)
  COLOR="--size 128 --ngf 32 --ndf 64 --batch-size 16 --steps 2500"
  FACADE="--size 256 --ngf 24 --ndf 64 --batch-size 4 --steps 4000"
  AGE="--size 128 --ngf 64 --n-blocks 6 --ndf 64 --batch-size 4 --steps 3000"
  EVERY="--ckpt-every 500 --sample-every 500"
  ADV=1e-3 PERC=0.05   # SRGAN's adversarial weight
else
  echo "usage: $0 cpu|gpu" >&2
  exit 2
fi

want() {  # want NAME: true when NAME is selected and its run has not finished
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $1 "* ]]; then return 1; fi
  if [ -f "$RUNS/$1/metrics.json" ]; then echo "== $1: finished (delete $RUNS/$1 to retrain)"; return 1; fi
  echo "== $1: $(date -u +%H:%M:%S)"
}

want sr-mse && $PY -m vidgan train sr --data "$UTK" --faces $SR_MSE $DEV $EVERY \
  --out "$RUNS/sr-mse" --resume --export models/face-sr4x-mse

want lossnet && $PY -m vidgan train lossnet --data "$UTK" $LOSSNET $DEV \
  --out "$RUNS/lossnet" --export models/face-attr

want srgan && $PY -m vidgan train sr --data "$UTK" --faces $SRGAN $DEV $EVERY \
  --init-from models/face-sr4x-mse/generator.pt --adv-weight $ADV --content perceptual --perceptual-weight $PERC \
  --out "$RUNS/srgan" --resume --export models/face-sr4x

want facades && $PY -m vidgan train pix2pix --data "$FACADES" --pairs side-by-side --direction BtoA $FACADE $DEV \
  $EVERY --out "$RUNS/facades" --resume --export models/facades

want colorize && $PY -m vidgan train pix2pix --data "$UTK" --pairs gray --faces $COLOR $DEV $EVERY \
  --out "$RUNS/colorize" --resume --export models/face-colorize

want age && $PY -m vidgan train cyclegan --data "$UTK" --pairs age --faces $AGE $DEV $EVERY \
  --out "$RUNS/age" --resume --export models/face-age --export-reverse models/face-age-young

# ---- GAN de-identification (issue 5; section added by the deid helper) ----------------------------
# `anonymize --mode gan` needs models/deid. The face-attr loss network above is its perceptual loss
# (trained without it when absent). packed/deid_landmarks_utkface.npz (MTCNN landmarks of every
# UTKFace chip, made on first use) can be carried over to skip detection. gpu: ~8 min on an H200,
# bf16, 128 px, batch 64. Export to models/deid only if benchmarks/bench_deid.py passes; the cpu
# profile is a smoke run (64 px, 400 steps) that stays in runs/.
if [ "$PROFILE" = gpu ]; then
  # ngf 32 / n-res 4: 8.6 M params, 17 MB in float16 (ngf 64 would be 33.5 M, over the 25 MB limit).
  # On a lent GPU, benchmarks/device_train.sh runs this with a time budget (8 steps/s on an H200
  # shared with two other jobs, session 4).
  # --proto 1024: ~550 prototypes of 64 px kept, +6.8 MB in the file (~24 MB in all).
  DEID="--size 128 --ngf 32 --n-res 4 --ndf 64 --batch-size 64 --steps 6000 --lr 2e-4 --sample-every 500 --ckpt-every 500
        --proto 1024 --w-in 3 --w-ms 0.3"
  DEID_EXPORT="--export models/deid"
else
  DEID="--size 64 --limit 1500 --ngf 16 --n-down 3 --ndf 32 --batch-size 8 --steps 400 --sample-every 50 --ckpt-every 50"
  DEID_EXPORT=""
fi
want deid && $PY -m vidgan train deid --data "$UTK" $DEID $DEV --lossnet face-attr \
  --out "$RUNS/deid" --resume $DEID_EXPORT

echo "== done $(date -u +%H:%M:%S)"
