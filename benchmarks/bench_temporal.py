"""Temporal consistency of `vidgan translate`: warping error of the original clip, of per-frame
translation and of translation with flow-guided smoothing, on shared clips.

Warping error (Lai et al. 2018) = mean |out_t - warp(out_{t-1})| over pixels the flow trusts
(forward-backward consistent, staying inside the frame), in 0..255 levels, averaged over frames. Flow
and occlusion come from the *input* frames, with an estimator (Farneback at 512 px) other than the
one the smoother blends along (DIS at 384 px). Also printed: how far smoothing moved the output from
the per-frame result (mean |smoothed - per-frame|), so a low error from washing everything out would
show. `flicker` = (smoothed - original) / (per-frame - original): the share of the flicker the
translation added that is left after smoothing. Faces-only models are measured inside the pasted
faces (elsewhere every version is the input); for x4 models "original" is the input upscaled bicubically.

    .venv/bin/python benchmarks/bench_temporal.py --model face-colorize
    .venv/bin/python benchmarks/bench_temporal.py --random unet --whole-frame   # untrained net

Shared clips are read from ../shared/data/videos (never copied). Timing is printed but this is not a
speed benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vidgan.gan.translator import Translator  # noqa: E402
from vidgan.media import VideoReader  # noqa: E402
from vidgan.pipeline import FileReport  # noqa: E402
from vidgan.temporal import SmoothOptions, TemporalSmoother, WarpingError  # noqa: E402
from vidgan.translate import TranslateOptions, Translation, open_translator  # noqa: E402

VIDEOS = os.path.join(ROOT, "..", "shared", "data", "videos")
DEFAULT_CLIPS = ["talking_woman.mp4", "interview_720p.mp4", "expressive_woman.mp4"]


def random_translator(arch: str, faces: bool) -> Translator:
    """An untrained generator (random init, seed 0): a real network with no learned mapping."""
    from vidgan.gan.nets import build_generator

    torch.manual_seed(0)
    kw = {"unet": {"size": 128, "ngf": 32}, "resnet": {"n_blocks": 6, "ngf": 32},
          "srresnet": {"n_blocks": 6, "nf": 32, "scale": 4}}[arch]
    net = build_generator(arch, **kw).eval()
    return Translator(net=net, name=f"random-{arch}", task="sr" if arch == "srresnet" else "pix2pix",
                      input_mode="rgb", scale=4 if arch == "srresnet" else 1, size=128, faces=faces,
                      device=torch.device("cpu"))


def measure(job: Translation, clip: str, seconds: float, alphas: list[float]) -> list[dict]:
    """Per-frame translation once (the job with smoothing off), then one TemporalSmoother per alpha
    fed exactly as `Translation.run` feeds its own, all measured with the same input flow."""
    smoothers = {a: TemporalSmoother(SmoothOptions(alpha=a), device=job.translator.device) for a in alphas}
    names = ["original", "per-frame"] + [f"alpha {a}" for a in alphas]
    we = WarpingError(names)
    moved: dict[float, list[float]] = {a: [] for a in alphas}
    report = FileReport(input=clip)
    stop = threading.Event()
    t0 = time.perf_counter()
    f = job.out_factor
    with VideoReader(clip) as reader:
        frames = job.run(reader, report, stop)
        try:
            for frame, per_frame, _, region in frames:
                if frame.time >= seconds:
                    break
                # x4 models: the input at the output size (bicubic) is the fair "original"
                original = frame.image if f == 1 else cv2.resize(
                    frame.image, (per_frame.shape[1], per_frame.shape[0]), interpolation=cv2.INTER_CUBIC)
                outs = {"original": original, "per-frame": per_frame}
                # faces-only: measure where faces were pasted (elsewhere every version is the input)
                mask = None if region is None else (region > 0.5).astype(np.float32)
                for a, sm in smoothers.items():
                    out = sm.step(frame.image, per_frame, region)
                    outs[f"alpha {a}"] = out
                    d = np.abs(out.astype(np.float32) - per_frame).mean(-1)
                    d = d if mask is None else d[mask > 0]
                    if d.size:
                        moved[a].append(float(d.mean()))
                we.update(frame.image, outs, mask=mask)
                report.frames += 1
        finally:
            frames.close()
            stop.set()
    err = we.mean()
    base = {"clip": os.path.basename(clip), "frames": report.frames, "faces": report.covered_boxes,
            "original": err["original"], "per_frame": err["per-frame"], "trusted": float(np.mean(we.trusted)),
            "seconds": round(time.perf_counter() - t0, 1)}
    rows = []
    for a in alphas:
        sm = err[f"alpha {a}"]
        excess = (sm - base["original"]) / (base["per_frame"] - base["original"]) \
            if base["per_frame"] > base["original"] else float("nan")
        rows.append(dict(base, alpha=a, smoothed=sm, ratio=sm / base["per_frame"], flicker_ratio=excess,
                         moved=float(np.mean(moved[a][1:])) if len(moved[a]) > 1 else 0.0))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="name in models/ or a generator .pt")
    src.add_argument("--random", choices=["unet", "resnet", "srresnet"], help="an untrained generator instead")
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--seconds", type=float, default=3.0, help="first N seconds of each clip (default 3)")
    ap.add_argument("--alphas", type=float, nargs="+", default=[TranslateOptions(model="-").temporal_alpha],
                    help="smoothing strengths to compare (default: translate's default)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--faces-only", dest="faces_only", action="store_true", default=None)
    mode.add_argument("--whole-frame", dest="faces_only", action="store_false")
    ap.add_argument("--keep-size", action="store_true", help="x4 models: measure at the input size")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="append the rows to this JSON-lines file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    opts = TranslateOptions(model=args.model or "-", faces_only=args.faces_only, temporal_alpha=0.0,
                            keep_size=args.keep_size, device=args.device)
    if args.model:
        translator = open_translator(args.model, args.device)
    else:
        translator = random_translator(args.random, faces=bool(args.faces_only))
    job = Translation(opts, translator=translator)
    what = "faces only" if job.faces_only else "whole frames"
    print(f"model {translator.name} ({translator.task}, {translator.input_mode}, x{translator.scale}, "
          f"size {translator.size}; {what}), first {args.seconds:g} s, "
          f"device {translator.device}, torch {torch.__version__}")
    print(f"{'clip':24} {'frames':>6} {'faces':>5} {'original':>9} {'per-frame':>9} {'alpha':>5} {'smoothed':>9} "
          f"{'ratio':>6} {'flicker':>7} {'trusted':>7} {'moved':>6} {'s':>6}")
    rows = []
    for name in args.clips:
        clip = os.path.join(VIDEOS, name)
        if not os.path.isfile(clip):
            print(f"{name}: not found in {VIDEOS}, skipped")
            continue
        for r in measure(job, clip, args.seconds, args.alphas):
            r.update(model=translator.name, mode=what)
            rows.append(r)
            print(f"{r['clip']:24} {r['frames']:6d} {r['faces']:5d} {r['original']:9.3f} {r['per_frame']:9.3f} "
                  f"{r['alpha']:5.2f} {r['smoothed']:9.3f} {r['ratio']:6.3f} {r['flicker_ratio']:7.3f} "
                  f"{r['trusted']:7.3f} {r['moved']:6.2f} {r['seconds']:6.1f}", flush=True)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
