#!/usr/bin/env python3
"""Validate the deepfake detector: frame-level AUC on FaceForensics++ crops, video-level scores of
real shared clips.

1. Frame level: every image of ../shared/data/deepfake/ffpp_crops_256 (all splits; the detector
   never trains on them) is cut with the scoring recipe (MTCNN box, margin 1.15; cached in
   packed/deepfake_ffpp.npz) and scored. AUC overall, per manipulation type (df = Deepfakes,
   ff = Face2Face, fs = FaceSwap, nt = NeuralTextures; each type: its 20 real vs its 20 fake
   images), per split (best.pt is chosen on the *train* split's AUC during training, so the *test*
   split is the untouched number), and accuracy at the verdict threshold.
2. Video level: `Scorer.score` (32 sampled frames, the full pipeline) on real shared clips; they
   must come out "likely real". Clips marked held-out were not among the training faces.

    .venv/bin/python benchmarks/bench_deepfake.py                     # shipped model
    .venv/bin/python benchmarks/bench_deepfake.py --model runs/deepfake/best.pt --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vidgan.deepfake.dataset import FFPP_TYPES, HELD_OUT_VIDEOS, default_data_dir, pack_ffpp  # noqa: E402
from vidgan.deepfake.model import default_model_path, load  # noqa: E402
from vidgan.deepfake.score import ScoreOptions, Scorer  # noqa: E402
from vidgan.deepfake.train import auc, predict  # noqa: E402

REAL_CLIPS = ["talking_woman.mp4", "expressive_woman.mp4", "glasses_man.mp4", "interview_720p.mp4",
              "selfie_portrait_720x1280.mp4", "asl_again.mkv", "hall_1080p.mp4", "hikers.mp4",
              "carphone_qcif.mp4"]


def frame_level(model, data: Path, threshold: float) -> dict:
    ffpp = pack_ffpp(data / "deepfake" / "ffpp_crops_256", device=str(model.device),
                     cache=REPO / "packed" / "deepfake_ffpp.npz")
    p = predict(model.net, ffpp.images, model.size, model.device)
    split = np.array([f.split(os.sep)[1] for f in ffpp.files])
    out = {"n": int(len(p)), "auc": auc(p, ffpp.labels),
           "accuracy": float(((p >= threshold) == (ffpp.labels == 1)).mean()),
           "real_mean": float(p[ffpp.labels == 0].mean()), "fake_mean": float(p[ffpp.labels == 1].mean())}
    for s in ("train", "test"):
        out[f"auc_{s}_split"] = auc(p[split == s], ffpp.labels[split == s])
    for t in FFPP_TYPES:
        sel = ffpp.types == t
        out[f"auc_{t}"] = auc(p[sel], ffpp.labels[sel])
        out[f"fake_mean_{t}"] = float(p[sel & (ffpp.labels == 1)].mean())
    return out


def video_level(model_path: str, data: Path, frames: int, threshold: float, device: str) -> list[dict]:
    scorer = Scorer(ScoreOptions(frames=frames, model=model_path, device=device, threshold=threshold))
    rows = []
    for name in REAL_CLIPS:
        path = data / "videos" / name
        if not path.is_file():
            continue
        t = time.time()
        r = scorer.score(str(path)).result
        rows.append({"clip": name, "held_out": name in HELD_OUT_VIDEOS, "fake_probability": r["fake_probability"],
                     "verdict": r["verdict"], "faces": r["faces_scored"], "tracks": len(r["tracks"]),
                     "seconds": round(time.time() - t, 1)})
        print(f"  {name:32s} {str(r['fake_probability']):>7s} {r['verdict']:14s} faces {r['faces_scored']:3d} "
              f"tracks {len(r['tracks'])}{'  (held out)' if name in HELD_OUT_VIDEOS else ''}", flush=True)
    return rows


def sample_grid(model, data: Path, out: Path) -> None:
    """Model-card grid from the public-domain astronaut portrait: the real crop and self-blended
    pseudo-fakes at decreasing strength (top row) and their blend masks (bottom row), each labelled
    with the model's fake probability."""
    import cv2

    from vidgan.deepfake.crop import crop_face
    from vidgan.deepfake.pseudofake import self_blend
    from vidgan.faces import DetectorOptions, FaceDetector

    img = cv2.cvtColor(cv2.imread(str(data / "faces" / "photos" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    d = max(FaceDetector(DetectorOptions(device="cpu")).detect([img])[0], key=lambda d: d.score)
    crop, lms = crop_face(img, (d.box.x1, d.box.y1, d.box.x2, d.box.y2), 160, landmarks=np.array(d.landmarks))
    tiles, masks, labels = [crop], [np.zeros(crop.shape[:2], np.float32)], ["real"]
    for k, strength in enumerate((1.0, 1.0, 0.6, 0.6, 0.2, 0.2)):
        b = self_blend(crop, lms, np.random.default_rng(k), strength)
        tiles.append(b.image)
        masks.append(b.mask)
        labels.append(f"SBI s={strength}")
    probs = predict(model.net, np.stack(tiles), model.size, model.device)
    top, bottom = [], []
    for t, m, lab, p in zip(tiles, masks, labels, probs):
        t = t.copy()
        cv2.putText(t, lab, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(t, f"p={p:.2f}", (4, 154), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        top.append(t)
        bottom.append(np.repeat((m * 255).astype(np.uint8)[..., None], 3, 2))
    grid = np.vstack([np.hstack(top), np.hstack(bottom)])
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"sample grid: {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--data", default=str(default_data_dir()))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--threshold", type=float, default=None,
                    help="verdict threshold (default: the model's calibrated one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-videos", action="store_true")
    ap.add_argument("--json", help="write all numbers here")
    ap.add_argument("--grid", help="write the model-card sample grid (JPEG) here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    model = load(args.model, args.device)
    threshold = args.threshold if args.threshold is not None else float(model.meta.get("threshold", 0.5))
    print(f"model {args.model}: {model.net.arch} {model.size} px, trained step {model.meta.get('step')}, "
          f"verdict threshold {threshold:.3f}")
    fl = frame_level(model, data, threshold)
    print("frame level (ffpp_crops_256, 160 images):")
    print("  AUC all {auc:.3f} | train split {auc_train_split:.3f} | test split {auc_test_split:.3f} | "
          "accuracy@threshold {accuracy:.3f} | mean score real {real_mean:.3f} fake {fake_mean:.3f}".format(**fl))
    print("  " + " | ".join(f"{t} {fl['auc_' + t]:.3f}" for t in FFPP_TYPES))
    if args.grid:
        sample_grid(model, data, Path(args.grid))
    vl = [] if args.skip_videos else video_level(args.model, data, args.frames, threshold, args.device)
    if vl:
        ok = sum(r["verdict"] == "likely real" for r in vl)
        print(f"video level: {ok}/{len(vl)} real clips scored 'likely real'")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "meta_step": model.meta.get("step"),
                                               "machine": platform.processor() or platform.machine(),
                                               "threshold": threshold, "frame_level": fl, "video_level": vl}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
