"""Sparse detection: speed of detection + tracking against how many faces stay covered.

    python benchmarks/bench_stride.py [--strides 0 3 8] [--full-res-every 0 1] [--clips a.mp4 b.gif ...]
                                      [--no-search] [--ref-cache DIR]

The reference is MTCNN on every frame (`FaceDetector.detect`, the same settings). For each stride S
the pipeline's own frame loop (`Pipeline.frames_with_boxes`: decode, full-frame detection on every
S-th frame, tracking, and the region searches around tracks that start or end between two searched
frames) gives the boxes that `vidgan anonymize --detect-every S` would cover. A reference face
(score >= 0.9) counts as covered when its five landmarks (eyes, nose, mouth corners) inside the
frame all lie inside one cover ellipse (the default mask: the box grown by its margin), i.e. what
identifies a face is hidden. `--full-res-every` values (0: auto, 1: every whole-frame search at
full resolution, no coarse ones) are run for each stride. Printed per clip and stride: fps of that loop (no operation, no
encode), full-frame and region detections, and uncovered reference faces: those of at least the
detector's minimum face size (`--min-face`, what it is set to find), and apart those below it
(found by luck on some frames; in a crowd the held boxes of many short, broken tracks cover some
of them by chance). This is a proxy; the dlib leak judge (`bench_anonymize.py`) is the acceptance
test.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "videos"))
CLIPS = ["hall_1080p.mp4", "party_h264_aac.mp4", "hikers.mp4", "interview_720p.mp4", "talking_vfr.mp4",
         "marathon_vfr_pcm.mkv", "walking_pause.gif", "selfie_rotate-90.mp4"]

from vidgan.faces import DetectorOptions, FaceDetector  # noqa: E402
from vidgan.media import VideoReader  # noqa: E402
from vidgan.ops import MaskOptions  # noqa: E402
from vidgan.pipeline import AnonymizeOptions, FileReport, Pipeline  # noqa: E402


def reference(path: str, detector: FaceDetector) -> dict[int, list[tuple[np.ndarray, bool]]]:
    """Frame index -> (landmarks [5, 2], at least the detector's minimum face size) of every-frame
    detections with score >= 0.9."""
    out: dict[int, list] = {}
    batch: list = []

    def run():
        h, w = batch[0].image.shape[:2]
        min_face = detector.options.min_face_for(w, h)
        for f, dets in zip(batch, detector.detect([f.image for f in batch])):
            out[f.index] = [(np.array(d.landmarks, np.float32), min(d.box.width, d.box.height) >= min_face)
                            for d in dets if d.score >= 0.9 and d.landmarks]
        batch.clear()

    with VideoReader(path) as reader:
        for frame in reader:
            batch.append(frame)
            if len(batch) == 8:
                run()
    if batch:
        run()
    return out


def covered(points: np.ndarray, regions: list, width: int, height: int) -> bool:
    """All of the face's landmarks inside the frame lie inside one cover ellipse."""
    points = points[(points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)]
    for r in regions:
        cx, cy = r.center
        dx = (points[:, 0] - cx) / max(r.width / 2, 1e-6)
        dy = (points[:, 1] - cy) / max(r.height / 2, 1e-6)
        if np.all(dx * dx + dy * dy <= 1.0):
            return True
    return False


def cached_reference(path: str, detector: FaceDetector, cache: str | None) -> dict:
    """`reference`, kept in `cache` (a folder; the every-frame search is most of this script's time)."""
    if not cache:
        return reference(path, detector)
    import pickle

    os.makedirs(cache, exist_ok=True)
    file = os.path.join(cache, os.path.basename(path) + ".ref.pkl")
    if os.path.exists(file):
        with open(file, "rb") as fh:
            return pickle.load(fh)
    ref = reference(path, detector)
    with open(file, "wb") as fh:
        pickle.dump(ref, fh)
    return ref


def run_stride(path: str, stride: int, search: bool, ref: dict[int, np.ndarray], mask: MaskOptions,
               full_res_every: int = 0) -> dict:
    pipe = Pipeline(AnonymizeOptions(detect_every=stride, full_res_every=full_res_every))
    if not search:  # the session-8 behaviour: skipped frames are only interpolated / held
        pipe.detector.search = lambda images, regions: [[] for _ in images]
    report = FileReport(input=path)
    missed = small = faces = frames = 0
    t0 = time.perf_counter()
    with VideoReader(path) as reader:
        for frame, boxes in pipe.frames_with_boxes(reader, threading.Event(), report):
            frames += 1
            regions = [mask.region(b.box) for b in boxes]
            for pts, big in ref.get(frame.index, ()):
                faces += 1
                if not covered(pts, regions, frame.image.shape[1], frame.image.shape[0]):
                    missed += big
                    small += not big
    secs = time.perf_counter() - t0
    return dict(fps=frames / secs, detections=report.faces, region=report.region_faces, faces=faces, missed=missed,
                small=small,
                stride=report.detect_every, frames=frames)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strides", type=int, nargs="+", default=[0, 3, 8],
                    help="detect-every values; 0 = the automatic stride (shown as auto/N)")
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    ap.add_argument("--no-search", action="store_true", help="also run each stride without region searches")
    ap.add_argument("--full-res-every", type=int, nargs="+", default=[0],
                    help="full-res-every values (0: auto; 1: no coarse searches)")
    ap.add_argument("--ref-cache", default=None, help="folder to keep the every-frame references in")
    args = ap.parse_args()
    if not os.path.isdir(SHARED):
        print(f"skip: {SHARED} not found (../shared/data absent)")
        return 0
    mask = MaskOptions()
    detector = FaceDetector(DetectorOptions())
    print("| clip | stride | full res every | search | fps (decode+detect+track) | full-frame dets | region dets | ref faces | uncovered | "
          "uncovered below min face |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    totals: dict = {}
    for clip in args.clips:
        path = os.path.join(SHARED, clip)
        ref = cached_reference(path, detector, args.ref_cache)
        for stride, full, search in [(s, f, q) for s in args.strides for f in args.full_res_every
                                     for q in ([True, False] if args.no_search and s != 1 else [True])]:
            r = run_stride(path, stride, search, ref, mask, full)
            t = totals.setdefault((stride, full, search), dict(frames=0, secs=0.0, faces=0, missed=0, small=0, det=0, reg=0))
            t["frames"] += r["frames"]
            t["secs"] += r["frames"] / r["fps"] if r["fps"] else 0.0
            t["faces"] += r["faces"]
            t["missed"] += r["missed"]
            t["small"] += r["small"]
            t["det"] += r["detections"]
            t["reg"] += r["region"]
            shown = f"auto/{r['stride']}" if stride == 0 else str(stride)
            print(f"| {clip} | {shown} | {full or 'auto'} | {'yes' if search else 'no'} | {r['fps']:.1f} | {r['detections']} | "
                  f"{r['region']} | {r['faces']} | {r['missed']} | {r['small']} |", flush=True)
    for (stride, full, search), t in sorted(totals.items()):
        print(f"| **all** | {'auto' if stride == 0 else stride} | {full or 'auto'} | {'yes' if search else 'no'} | **{t['frames'] / max(t['secs'], 1e-9):.1f}** | "
              f"{t['det']} | {t['reg']} | {t['faces']} | **{t['missed']}** | {t['small']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
