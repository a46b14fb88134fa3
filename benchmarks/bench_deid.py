#!/usr/bin/env python3
"""Acceptance of GAN de-identification (`anonymize --mode gan`), judged by dlib — a detector and a
face-recognition network vidgan does not use to generate.

For each clip (its first `--seconds`, cut to a temporary file so every run processes the same frames):

  * the clip is anonymized three times: gan mode with passcode A, gan mode with passcode B, blur mode
    (through the real Pipeline: MTCNN, tracker, operation, encoder); fps of each run;
  * every `--every`-th frame: dlib (HOG, upsample 1) finds the faces of the *original*; per face
      - identity leak: descriptor of the gan-A output at the original's 5 dlib landmarks within
        0.6 (dlib's same-person threshold) of the original's descriptor;
      - still a face: dlib finds a face on gan-A near the original face (IoU > 0.3);
      - the fake's descriptor (on the face dlib found there, else at the original's landmarks);
  * faces are linked into tracks over the sampled frames (IoU of the original dlib boxes); same
    passcode, same track: distance between the fakes of two sampled frames < 0.6 (all pairs, at most
    `--pairs` per track); different passcodes: A vs B fake of the same face >= 0.6;
  * flicker: warping error (vidgan.temporal, Farneback flow of the original) inside the dlib face
    boxes (dilated 1.5x) for original, gan-A and blur; the acceptance is gan <= 1.2x original.

    .venv/bin/python benchmarks/bench_deid.py --gan-model runs/deid-cpu/generator.pt \\
        --clip expressive_woman.mp4 --seconds 2

`--donors N` measures the *ceiling* of an interior mask instead of a trained model: the generator is
replaced by real people, N UTKFace chips of adults (training split) aligned exactly as the generator's
crops, one donor per track picked by the track's code (so one passcode keeps one donor per person and
another passcode picks another). A real, sharp, different face inside the mask is the best any
generator can paint there, so the leak it leaves is what the *context* outside the mask gives away.
`--interior CX,CY,AX,AY` sets that mask (centre and half-axes, fractions of the margin-0 crop; the
default is gan.deid's). Nothing of this is used by vidgan itself.

Prints a table and writes --json. Shared clips are read from ../shared/data/videos (never copied).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import av
import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", category=UserWarning)

from dlib_judge import Judge, iou  # noqa: E402

from vidgan.gan.deid_keys import passcode_key  # noqa: E402
from vidgan.keys import Passcode  # noqa: E402
from vidgan.media import VideoReader  # noqa: E402
from vidgan.pipeline import AnonymizeOptions, Pipeline  # noqa: E402
from vidgan.temporal import WarpingError  # noqa: E402

SAME = 0.6
VIDEOS = os.path.join(ROOT, "..", "shared", "data", "videos")


def cut(src: str, dst: str, seconds: float) -> int:
    """First `seconds` of `src` re-encoded near-losslessly (x264 CRF 8) to `dst`; frame count."""
    n = 0
    with av.open(src) as ic, av.open(dst, "w") as oc:
        s = ic.streams.video[0]
        rate = s.average_rate or 30
        os_ = oc.add_stream("libx264", rate=rate)
        os_.options = {"crf": "8", "preset": "veryfast"}
        os_.pix_fmt = "yuv420p"
        for f in ic.decode(s):
            if f.time is not None and f.time >= seconds:
                break
            img = f.to_ndarray(format="rgb24")
            k = (int(getattr(f, "rotation", 0) or 0) // 90) % 4
            img = np.ascontiguousarray(np.rot90(img, k)) if k else img
            h, w = img.shape[:2]
            img = img[: h - h % 2, : w - w % 2]
            if n == 0:
                os_.width, os_.height = img.shape[1], img.shape[0]
            for p in os_.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                oc.mux(p)
            n += 1
        for p in os_.encode(None):
            oc.mux(p)
    return n


def frames(path: str) -> list[np.ndarray]:
    with VideoReader(path) as r:
        return [np.ascontiguousarray(f.image) for f in r]  # rows may be padded (700 px wide); dlib needs contiguous


def run_mode(src: str, out: str, mode: str, model: str, key: bytes | None, device: str,
             gan_flow: float | None = None) -> float:
    from vidgan.faces import DetectorOptions

    extra = {} if gan_flow is None else {"gan_flow": gan_flow}
    pipe = Pipeline(AnonymizeOptions(mode=mode, gan_model=model, gan_key=key, detector=DetectorOptions(device=device),
                                     **extra))
    t0 = time.perf_counter()
    report = pipe.anonymize(src, out)
    dt = time.perf_counter() - t0
    return report.frames / dt


class DonorGenerator(torch.nn.Module):
    """Same interface as gan.deid.DeidGenerator (forward(x, heat, z) -> raw, composite), painting a
    real donor's aligned face inside the interior mask (see `--donors`)."""

    def __init__(self, n: int, interior: tuple[float, ...] | None, size: int = 128, margin: float = 0.1,
                 seed: int = 0) -> None:
        super().__init__()
        from vidgan.gan.data import is_val, list_images
        from vidgan.gan.deid import DeidArch, interior_masks
        from vidgan.gan.deid_train import DeidConfig, load_aligned

        kw = {"interior_center": tuple(interior[:2]), "interior_axes": tuple(interior[2:])} if interior else {}
        self.arch = arch = DeidArch(size=size, margin=margin, **kw)
        hard, soft = interior_masks(size, margin, arch.interior_center, arch.interior_axes)
        self.register_buffer("hard", torch.from_numpy(hard)[None, None])
        self.register_buffer("soft", torch.from_numpy(soft)[None, None])
        faces = os.path.join(ROOT, "..", "shared", "data", "faces", "utkface")
        adults = [f for f in list_images(faces) if int(f.name.split("_")[0]) >= 18 and not is_val(f.name, 0.05)]
        pick = np.random.default_rng(seed).choice(len(adults), size=min(n, len(adults)), replace=False)
        with tempfile.TemporaryDirectory() as tmp:  # load_aligned reads a folder: link the picked chips
            d = os.path.join(tmp, "utkface")  # same folder name: the landmark cache applies
            os.mkdir(d)
            for i in pick:
                os.symlink(adults[i], os.path.join(d, adults[i].name))
            cfg = DeidConfig(data=d, out=tmp, size=size, margin=margin, val_fraction=0.0, device="cpu",
                             cache=os.path.join(ROOT, "packed"))
            x, _ = load_aligned(cfg, "train", log=lambda *_: None)
        self.donors = x.float() / 127.5 - 1

    def forward(self, x, heat, z):
        bits = (z[:, :16] > 0).long().cpu() @ (2 ** torch.arange(16))
        raw = self.donors[bits % len(self.donors)].to(x.device, x.dtype)
        return raw, self.soft * raw + (1 - self.soft) * x


def link(tracks: list[list], rect, t: int) -> int:
    """Greedy IoU linking of dlib boxes over sampled frames; returns the track index."""
    best, best_iou = -1, 0.3
    for i, tr in enumerate(tracks):
        last_t, last_rect = tr[-1][0], tr[-1][1]
        if last_t != t and iou(last_rect, rect) > best_iou:
            best, best_iou = i, iou(last_rect, rect)
    if best < 0:
        tracks.append([])
        best = len(tracks) - 1
    return best


def bench_clip(name: str, args, judge: Judge) -> dict:
    src_full = name if os.path.isfile(name) else os.path.join(VIDEOS, name)
    tmp = tempfile.mkdtemp(prefix="bench_deid_")
    src = os.path.join(tmp, "clip.mp4")
    n = cut(src_full, src, args.seconds)
    ka = passcode_key(Passcode("bench passcode A"))
    kb = passcode_key(Passcode("bench passcode B"))
    outs = {m: os.path.join(tmp, f"{m}.mp4") for m in ("gan_a", "gan_b", "blur")}
    fps = {"gan": run_mode(src, outs["gan_a"], "gan", args.gan_model, ka, args.device, args.gan_flow)}
    run_mode(src, outs["gan_b"], "gan", args.gan_model, kb, args.device, args.gan_flow)
    fps["blur"] = run_mode(src, outs["blur"], "blur", args.gan_model, None, args.device)
    orig, ga, gb, bl = frames(src), frames(outs["gan_a"]), frames(outs["gan_b"]), frames(outs["blur"])
    faces = leaks = still = 0
    tracks: list[list] = []  # per track: (t, rect, fake A descriptor)
    cross = []
    we = WarpingError(["original", "gan", "blur"])
    for t in range(min(len(orig), len(ga), len(gb), len(bl))):
        o = orig[t]
        rects = judge.detect(o)  # every frame: the flicker mask needs the faces of each one
        mask = np.zeros(o.shape[:2], np.float32)
        for r in rects:
            cx, cy, hw, hh = r.center().x, r.center().y, 0.75 * r.width(), 0.75 * r.height()
            mask[max(0, int(cy - hh)):int(cy + hh), max(0, int(cx - hw)):int(cx + hw)] = 1
        if t % args.every == 0:
            for r in rects:
                shape, desc = judge.describe(o, r)
                faces += 1
                leaks += float(np.linalg.norm(judge.descriptor_at(ga[t], shape) - desc)) < SAME
                found = [x for x in judge.detect_near(ga[t], r) if iou(x, r) > 0.3]
                still += bool(found)
                fa = judge.describe(ga[t], found[0])[1] if found else judge.descriptor_at(ga[t], shape)
                found_b = [x for x in judge.detect_near(gb[t], r) if iou(x, r) > 0.3]
                fb = judge.describe(gb[t], found_b[0])[1] if found_b else judge.descriptor_at(gb[t], shape)
                cross.append(float(np.linalg.norm(fa - fb)))
                tracks[link(tracks, r, t)].append((t, r, fa))
        we.update(o, {"original": o, "gan": ga[t], "blur": bl[t]}, mask if mask.any() else None)
    same = []
    for tr in tracks:
        pairs = [(i, j) for i in range(len(tr)) for j in range(i + 1, len(tr))][: args.pairs]
        same += [float(np.linalg.norm(tr[i][2] - tr[j][2])) for i, j in pairs]
    w = we.mean()
    res = {
        "clip": os.path.basename(name), "frames": n, "faces_judged": faces,
        "identity_leak_rate": leaks / faces if faces else None,
        "still_a_face_rate": still / faces if faces else None,
        "same_passcode_same_track_below_0.6": float(np.mean(np.array(same) < SAME)) if same else None,
        "same_pairs": len(same), "median_same_distance": float(np.median(same)) if same else None,
        "different_passcode_at_least_0.6": float(np.mean(np.array(cross) >= SAME)) if cross else None,
        "median_cross_distance": float(np.median(cross)) if cross else None,
        "warping_error": {k: round(v, 3) for k, v in w.items()},
        "flicker_ratio": w["gan"] / w["original"] if w["original"] > 0 else None,
        "fps": {k: round(v, 2) for k, v in fps.items()},
    }
    if args.keep:
        res["outputs"] = outs
    if args.grid and tracks:  # the middle sampled frame of the longest track: original, A, B, blur
        longest = max(tracks, key=len)
        t, r, _ = longest[len(longest) // 2]
        c, half = r.center(), int(0.9 * max(r.width(), r.height()))
        x0, y0 = max(0, c.x - half), max(0, c.y - half)
        tiles = [im[t][y0:y0 + 2 * half, x0:x0 + 2 * half] for im in (orig, ga, gb, bl)]
        res["grid_row"] = [cv2.resize(tile, (192, 192), interpolation=cv2.INTER_AREA) for tile in tiles]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gan-model", default="deid", help="models/NAME or a generator.pt")
    ap.add_argument("--clip", action="append", help="clip in ../shared/data/videos or a path (repeatable)")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--every", type=int, default=3, help="judge every n-th frame")
    ap.add_argument("--pairs", type=int, default=50, help="same-track pairs per track at most")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--keep", action="store_true", help="keep the outputs (paths in the JSON)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--grid", help="write a before/after JPEG here: per clip one face, original | passcode A | "
                                   "passcode B | blur")
    ap.add_argument("--donors", type=int, default=0,
                    help="ceiling of the mask: paint N real UTKFace adults instead of a model (see above)")
    ap.add_argument("--interior", help="CX,CY,AX,AY: the interior mask for --donors (default: gan.deid's)")
    ap.add_argument("--gan-flow", type=float, default=None,
                    help="weight of the flow-guided steadiness in gan mode (AnonymizeOptions.gan_flow; 0: off)")
    ap.add_argument("--candidates", type=int, default=0,
                    help="prototypes a track's pick is made among, nearest context first (default: GanFace's)")
    args = ap.parse_args(argv)
    if args.donors:
        interior = tuple(float(v) for v in args.interior.split(",")) if args.interior else None
        args.gan_model = DonorGenerator(args.donors, interior)
    if args.candidates:
        from vidgan.ops.gan_face import GanFace

        GanFace.CANDIDATES = args.candidates
    judge = Judge(use_cnn=False)
    results = [bench_clip(c, args, judge) for c in (args.clip or ["expressive_woman.mp4"])]
    hdr = ("clip", "faces", "id leak", "still face", "same<0.6", "diff>=0.6", "WE orig", "WE gan", "flicker x",
           "fps gan", "fps blur")
    print(" | ".join(hdr))
    for r in results:
        def pct(v):
            return "-" if v is None else f"{100 * v:.0f} %"
        we = r["warping_error"]
        print(" | ".join([r["clip"], str(r["faces_judged"]), pct(r["identity_leak_rate"]), pct(r["still_a_face_rate"]),
                          pct(r["same_passcode_same_track_below_0.6"]), pct(r["different_passcode_at_least_0.6"]),
                          f"{we['original']:.2f}", f"{we['gan']:.2f}",
                          "-" if r["flicker_ratio"] is None else f"{r['flicker_ratio']:.2f}",
                          f"{r['fps']['gan']:.1f}", f"{r['fps']['blur']:.1f}"]))
    rows = [r.pop("grid_row") for r in results if "grid_row" in r]
    if args.grid and rows:
        cv2.imwrite(args.grid, np.concatenate([np.concatenate(row, 1) for row in rows], 0)[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 88])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
