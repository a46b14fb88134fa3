#!/usr/bin/env python3
"""Independent leak judge: do faces of the input survive in anonymized outputs? (dlib)

Runs in its own virtualenv (dlib-bin, face-recognition-models, av, numpy, opencv) built by
`bench_anonymize.py`, so its detector shares nothing with vidgan's (MTCNN) or deface's (CenterFace).

For every k-th input frame:
  * ground truth = faces dlib finds in the input frame (HOG, upsample 1; plus the CNN detector
    with --cnn, merged);
  * the output frame nearest in time is looked up (timestamps, not indices, so CFR outputs of VFR
    inputs line up), rotated upright like the input and resized to it when its size differs;
  * a ground-truth face is a *detect leak* when a detector still finds a face in the output whose box
    overlaps it (IoU > 0.3; searched in a window of 1.5 face sizes around it, which is what makes
    1080p affordable), and an *identity leak* when the dlib face descriptor computed on the output at
    the input's landmarks is within 0.6 (dlib's same-person threshold) of the input's.
Judging an input against itself must report every face as leaked (a self-check of the method).

Usage:  python dlib_judge.py INPUT --output vidgan=OUT1 --output deface=OUT2 [--every 3] [--cnn] [--jobs 2]
Prints one JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import warnings
from typing import Iterator, Optional

import av
import cv2
import dlib
import numpy as np

warnings.filterwarnings("ignore", category=UserWarning)  # face_recognition_models -> pkg_resources
try:
    import face_recognition_models as frm
except ImportError as exc:  # an environment problem, reported as JSON by main()
    frm = None
    _FRM_ERROR = str(exc)

IOU_LEAK = 0.3
SAME_PERSON = 0.6
IOU_SAME_FACE = 0.5  # HOG and CNN boxes of one face


# -- decoding ------------------------------------------------------------------------------------
def upright_frames(path: str) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, upright RGB image) for every decodable frame of the first video stream."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        for frame in container.decode(stream):
            t = frame.time if frame.time is not None else index / float(stream.average_rate or 30)
            img = frame.to_ndarray(format="rgb24")  # a strided view when rows are padded (700 px wide)
            k = (int(getattr(frame, "rotation", 0) or 0) // 90) % 4
            if k:
                img = np.rot90(img, k=k)
            yield t, np.ascontiguousarray(img)  # dlib only takes contiguous arrays
            index += 1


class NearestFrame:
    """Walks an output in step with the input: the output frame nearest in time to an input frame.

    Nearest rather than "on screen at": outputs re-timed to a constant rate (deface) carry
    timestamps a few milliseconds off the input's, which would otherwise pick the previous frame.
    """

    def __init__(self, path: str):
        self.frames = upright_frames(path)
        self.before: Optional[tuple[float, np.ndarray]] = None  # last frame at or before t
        self.after = next(self.frames, None)  # first frame after t

    def at(self, t: float) -> Optional[np.ndarray]:
        while self.after is not None and self.after[0] <= t:
            self.before = self.after
            self.after = next(self.frames, None)
        candidates = [f for f in (self.before, self.after) if f is not None]
        return min(candidates, key=lambda f: abs(f[0] - t))[1] if candidates else None


# -- dlib --------------------------------------------------------------------------------------
class Judge:
    def __init__(self, use_cnn: bool):
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location()) if use_cnn else None
        self.landmarks = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def detect(self, img: np.ndarray) -> list:
        """dlib rectangles from HOG (upsample 1), plus CNN ones that are new faces."""
        rects = list(self.hog(img, 1))
        if self.cnn is not None:
            for d in self.cnn(img, 1):
                if all(iou(d.rect, r) <= IOU_SAME_FACE for r in rects):
                    rects.append(d.rect)
        return rects

    def detect_near(self, img: np.ndarray, rect) -> list:
        """`detect` on a window around `rect` (1.5 face sizes of margin on every side), in full-frame
        coordinates. A face box with IoU > 0.3 against `rect` fits in that window, and the window is
        far cheaper than the whole frame at 1080p."""
        h, w = img.shape[:2]
        mx, my = int(1.5 * rect.width()), int(1.5 * rect.height())
        x0, y0 = max(0, rect.left() - mx), max(0, rect.top() - my)
        x1, y1 = min(w, rect.right() + mx), min(h, rect.bottom() + my)
        crop = np.ascontiguousarray(img[y0:y1, x0:x1])
        return [dlib.rectangle(r.left() + x0, r.top() + y0, r.right() + x0, r.bottom() + y0)
                for r in self.detect(crop)]

    def describe(self, img: np.ndarray, rect) -> tuple[object, np.ndarray]:
        shape = self.landmarks(img, rect)
        return shape, np.array(self.encoder.compute_face_descriptor(img, shape))

    def descriptor_at(self, img: np.ndarray, shape) -> np.ndarray:
        return np.array(self.encoder.compute_face_descriptor(img, shape))


def iou(a, b) -> float:
    ix = max(0, min(a.right(), b.right()) - max(a.left(), b.left()))
    iy = max(0, min(a.bottom(), b.bottom()) - max(a.top(), b.top()))
    inter = ix * iy
    union = a.width() * a.height() + b.width() * b.height() - inter
    return inter / union if union > 0 else 0.0


def box(rect) -> list[int]:
    return [rect.left(), rect.top(), rect.right(), rect.bottom()]


# -- judging -----------------------------------------------------------------------------------
def new_tally() -> dict:
    return {"frames_compared": 0, "frames_missing": 0, "resized_from": None, "det_leaks": 0,
            "id_leaks": 0, "any_leaks": 0, "examples": [], "distances": [], "diffs": []}


def judge_output(judge: Judge, t: float, index: int, faces: list, img_in: np.ndarray,
                 img_out: Optional[np.ndarray], tally: dict) -> None:
    if img_out is None:
        tally["frames_missing"] += 1
        return
    if img_out.shape != img_in.shape:
        tally["resized_from"] = list(img_out.shape[:2][::-1])
        img_out = cv2.resize(img_out, (img_in.shape[1], img_in.shape[0]), interpolation=cv2.INTER_AREA)
    tally["frames_compared"] += 1
    small = (slice(None, None, 4), slice(None, None, 4))
    tally["diffs"].append(float(np.abs(img_out[small].astype(np.int16) - img_in[small]).mean()))
    for rect, shape, desc in faces:
        detected = any(iou(rect, r) > IOU_LEAK for r in judge.detect_near(img_out, rect))
        dist = float(np.linalg.norm(judge.descriptor_at(img_out, shape) - desc))
        tally["distances"].append(dist)
        same = dist < SAME_PERSON
        tally["det_leaks"] += detected
        tally["id_leaks"] += same
        tally["any_leaks"] += detected or same
        if detected or same:
            tally["examples"].append({"frame": index, "time": round(t, 3), "box": box(rect),
                                      "detected": detected, "distance": round(dist, 3)})


def judge_shard(input_path: str, outputs: dict[str, str], every: int, use_cnn: bool,
                shard: int = 0, shards: int = 1) -> dict:
    """Judge the frames index = k * every with k % shards == shard (one process's share)."""
    judge = Judge(use_cnn)
    cursors, tallies, errors = {}, {}, {}
    for name, path in outputs.items():
        try:
            cursors[name] = NearestFrame(path)
            tallies[name] = new_tally()
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            errors[name] = f"cannot decode output: {exc}"
    part = {"frames_judged": 0, "frames_with_faces": 0, "gt_faces": 0}
    for index, (t, img_in) in enumerate(upright_frames(input_path)):
        if index % every or (index // every) % shards != shard:
            continue
        part["frames_judged"] += 1
        try:
            faces = [(rect, *judge.describe(img_in, rect)) for rect in judge.detect(img_in)]
        except (RuntimeError, TypeError, ValueError) as exc:
            errors.setdefault("input", f"frame {index} skipped: {exc.__class__.__name__}: {str(exc)[:200]}")
            continue
        part["gt_faces"] += len(faces)
        part["frames_with_faces"] += bool(faces)
        for name in list(cursors):
            try:
                judge_output(judge, t, index, faces, img_in, cursors[name].at(t), tallies[name])
            except (av.error.FFmpegError, RuntimeError, TypeError, ValueError) as exc:
                errors[name] = f"failed at frame {index}: {exc.__class__.__name__}: {str(exc)[:200]}"
                del cursors[name]
        if part["frames_judged"] % 10 == 0:
            print(f"  judge[{shard}]: frame {index}, {part['gt_faces']} faces so far", file=sys.stderr, flush=True)
    return {**part, "tools": tallies, "errors": errors}


def merge(parts: list[dict]) -> dict:
    """Sum the shards' counts; turn per-face distances and frame differences into summaries."""
    total = {key: sum(p[key] for p in parts) for key in ("frames_judged", "frames_with_faces", "gt_faces")}
    total["errors"] = {k: v for p in parts for k, v in p["errors"].items()}
    tools = {}
    for name in parts[0]["tools"]:
        tallies = [p["tools"][name] for p in parts if name in p["tools"]]
        merged = {key: sum(t[key] for t in tallies) for key in
                  ("frames_compared", "frames_missing", "det_leaks", "id_leaks", "any_leaks")}
        merged["resized_from"] = next((t["resized_from"] for t in tallies if t["resized_from"]), None)
        dist = [d for t in tallies for d in t["distances"]]
        diffs = [d for t in tallies for d in t["diffs"]]
        merged["min_distance"] = round(min(dist), 3) if dist else None
        merged["mean_distance"] = round(sum(dist) / len(dist), 3) if dist else None
        merged["mean_abs_diff"] = round(sum(diffs) / len(diffs), 2) if diffs else None
        merged["examples"] = sorted((e for t in tallies for e in t["examples"]), key=lambda e: e["frame"])[:20]
        tools[name] = merged
    total["tools"] = tools
    return total


def run(input_path: str, outputs: dict[str, str], every: int, use_cnn: bool, jobs: int = 1) -> dict:
    t0 = time.perf_counter()
    if jobs <= 1:
        parts = [judge_shard(input_path, outputs, every, use_cnn)]
    else:  # dlib's detectors are single-threaded: split the frames over processes
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            parts = pool.starmap(judge_shard, [(input_path, outputs, every, use_cnn, j, jobs)
                                               for j in range(jobs)])
    return {"input": input_path, "every": every, "cnn": use_cnn, **merge(parts),
            "seconds": round(time.perf_counter() - t0, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("--output", action="append", default=[], metavar="NAME=PATH",
                    help="an anonymized version of INPUT (repeatable)")
    ap.add_argument("--every", type=int, default=1, help="judge every k-th input frame")
    ap.add_argument("--cnn", action="store_true", help="also use dlib's CNN detector (slow)")
    ap.add_argument("--jobs", type=int, default=1, help="processes to split the frames over")
    args = ap.parse_args(argv)
    if frm is None:
        print(json.dumps({"error": f"face_recognition_models missing: {_FRM_ERROR}"}))
        return 1
    outputs = dict(item.split("=", 1) for item in args.output)
    try:
        result = run(args.input, outputs, max(1, args.every), args.cnn, max(1, args.jobs))
    except (av.error.FFmpegError, OSError, RuntimeError) as exc:
        print(json.dumps({"error": f"{exc.__class__.__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
