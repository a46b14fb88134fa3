"""Score a video or a photo: how likely are its faces manipulated?

1. Sample `frames` frames evenly over the input (`vidgan.media.seek.FrameSeeker`: seeks, so a
   two-minute clip costs 32 decodes, not thousands); a photo is one frame.
2. Find faces with MTCNN (`vidgan.faces`), cut each with the training recipe (`crop.crop_face`),
   score each crop with the classifier.
3. Link faces across the sampled frames into tracks (greedy IoU / centre-distance matching; the
   sampled frames are far apart, so the frame-to-frame tracker of the anonymizer does not apply).
4. Aggregate robustly (`robust_score`): per track, drop the single highest frame score, then take
   the mean of the top quarter of the rest. One odd frame never flips a real video; a manipulation
   visible in a quarter of the frames does count, even when the other frames look clean (partial
   fakes, the detector missing some frames). The video's score is the highest track score among
   tracks seen often enough (a swap of one person in a group is a fake video).
5. No face in any sampled frame: `fake_probability` None, verdict "no face found", never a guess.

The result is a plain dict (JSON-ready; schema in `score_video`); `write_plot` draws the score over
time with example crops as a PNG.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np

from ..errors import Cancelled, MediaError
from .crop import crop_face

ProgressFn = Callable[[int, int], None]
SCORE_CROP = 160  # crops are cut at the packing size, then resized to the model's input (as in training)


@dataclass(frozen=True)
class ScoreOptions:
    frames: int = 32  # frames sampled per video, evenly spaced
    model: Optional[str] = None  # checkpoint path; default models/deepfake/deepfake.pt
    device: str = "auto"
    threshold: Optional[float] = None  # verdict "likely fake" from here; None: the model's calibrated one
    min_face: int = 32  # px; smaller faces carry too little detail to judge
    detection_threshold: float = 0.9  # MTCNN O-Net probability; stricter than for anonymizing

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError("frames must be at least 1")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")


# -- aggregation ------------------------------------------------------------------------------------
def robust_score(scores: Sequence[float]) -> Optional[float]:
    """Per-track aggregate: drop the highest score when there are at least 4, then average the top
    quarter (at least one) of what is left. None for no scores."""
    s = sorted((float(x) for x in scores), reverse=True)
    if not s:
        return None
    if len(s) >= 4:
        s = s[1:]
    k = max(1, math.ceil(len(s) / 4))
    return float(np.mean(s[:k]))


def video_score(tracks: Sequence[Sequence[float]], frames_sampled: int) -> Optional[float]:
    """Highest robust track score among tracks seen in at least min(3, 10 % of the sampled frames)
    frames; if no track is that long (a photo, a face glimpsed once), among all tracks."""
    if not tracks:
        return None
    need = max(1, min(3, math.ceil(0.1 * frames_sampled)))
    eligible = [t for t in tracks if len(t) >= need] or list(tracks)
    scores = [robust_score(t) for t in eligible]
    return max(s for s in scores if s is not None)


def verdict(prob: Optional[float], threshold: float) -> str:
    if prob is None:
        return "no face found"
    return "likely fake" if prob >= threshold else "likely real"


# -- tracks ----------------------------------------------------------------------------------------
def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(frames: Sequence[Sequence[Sequence[float]]]) -> list[list[int]]:
    """Greedy linking of boxes across frames: a box joins the track whose last box overlaps it most
    (IoU >= 0.2) or, failing that, whose last centre lies within half a box size of its centre.
    Returns, per frame, the track id of each box."""
    last: dict[int, Sequence[float]] = {}
    ids: list[list[int]] = []
    next_id = 0
    for boxes in frames:
        pairs = []
        for bi, b in enumerate(boxes):
            for tid, t in last.items():
                iou = _iou(b, t)
                size = max(b[2] - b[0], b[3] - b[1], 1.0)
                dist = math.hypot((b[0] + b[2] - t[0] - t[2]) / 2, (b[1] + b[3] - t[1] - t[3]) / 2) / size
                if iou >= 0.2 or dist <= 0.5:
                    pairs.append((iou - 0.1 * dist, bi, tid))
        pairs.sort(reverse=True)
        assigned: dict[int, int] = {}
        used = set()
        for _, bi, tid in pairs:
            if bi in assigned or tid in used:
                continue
            assigned[bi] = tid
            used.add(tid)
        row = []
        for bi, b in enumerate(boxes):
            if bi not in assigned:
                assigned[bi] = next_id
                next_id += 1
            last[assigned[bi]] = b
            row.append(assigned[bi])
        ids.append(row)
    return ids


# -- scoring ---------------------------------------------------------------------------------------
@dataclass
class Scored:
    """`result` is the JSON-ready dict; `crops` (frame index, track, score, crop) feed the plot."""

    result: dict[str, Any]
    crops: list[tuple[int, int, float, np.ndarray]] = field(default_factory=list)


class Scorer:
    """Loads the model and the detector once; `score(path)` per input."""

    def __init__(self, options: ScoreOptions = ScoreOptions()):
        import torch

        from ..faces import DetectorOptions, FaceDetector, resolve_device
        from .model import default_model_path, load

        self.options = options
        device = torch.device(resolve_device(options.device))
        self.model_path = str(options.model or default_model_path())
        self.model = load(self.model_path, device)
        # The model's own threshold: the score 99 % of held-out real faces stay under (set at export).
        self.threshold = float(options.threshold if options.threshold is not None
                               else self.model.meta.get("threshold", 0.5))
        self.detector = FaceDetector(DetectorOptions(threshold=options.detection_threshold,
                                                     min_face=options.min_face, device=str(device)))

    def _sample(self, path: str, cancel) -> tuple[Any, list]:
        from ..media.seek import FrameSeeker

        with FrameSeeker(path) as seeker:
            info = seeker.info
            n = seeker.frame_count
            if info.is_image:
                return info, [seeker.frame(0)]
            if n <= 0:
                raise MediaError("no video frames found", path)
            want = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(self.options.frames, n))})
            frames = []
            for i in want:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                frames.append(seeker.frame(i))
            return info, frames

    def score(self, path: str, progress: Optional[ProgressFn] = None,
              cancel: Optional[threading.Event] = None) -> Scored:
        from .train import predict

        info, frames = self._sample(path, cancel)
        total = len(frames)
        per_frame_boxes: list[list[tuple[float, ...]]] = []
        per_frame_crops: list[list[np.ndarray]] = []
        for k, frame in enumerate(frames):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            dets = self.detector.detect([frame.image])[0]
            boxes, crops = [], []
            for d in dets:
                box = (d.box.x1, d.box.y1, d.box.x2, d.box.y2)
                crop, _ = crop_face(frame.image, box, SCORE_CROP, self.model.margin)
                boxes.append(tuple(round(v, 1) for v in box) + (round(d.score, 4),))
                crops.append(crop)
            per_frame_boxes.append(boxes)
            per_frame_crops.append(crops)
            if progress is not None:
                progress(k + 1, total)
        flat = [c for cs in per_frame_crops for c in cs]
        probs = predict(self.model.net, np.stack(flat), self.model.size, self.model.device) if flat else []
        track_ids = link_tracks(per_frame_boxes)

        frame_rows, crops_out = [], []
        tracks: dict[int, list[tuple[int, float]]] = {}
        j = 0
        for frame, boxes, crops, tids in zip(frames, per_frame_boxes, per_frame_crops, track_ids):
            faces = []
            for box, crop, tid in zip(boxes, crops, tids):
                p = float(probs[j])
                j += 1
                faces.append({"track": tid, "box": list(box[:4]), "detection": box[4], "score": round(p, 4)})
                tracks.setdefault(tid, []).append((frame.index, p))
                crops_out.append((frame.index, tid, p, crop))
            frame_rows.append({"index": frame.index, "time": round(frame.time, 3),
                               "score": max((f["score"] for f in faces), default=None), "faces": faces})
        track_rows = []
        for tid, obs in sorted(tracks.items()):
            scores = [p for _, p in obs]
            track_rows.append({"id": tid, "frames": len(obs), "first_index": obs[0][0], "last_index": obs[-1][0],
                               "score": round(robust_score(scores), 4), "mean": round(float(np.mean(scores)), 4),
                               "max": round(max(scores), 4)})
        prob = video_score([[p for _, p in obs] for obs in tracks.values()], len(frames))
        result = {
            "input": path,
            "kind": "image" if info.is_image else "video",
            "fake_probability": None if prob is None else round(prob, 4),
            "verdict": verdict(prob, self.threshold),
            "threshold": round(self.threshold, 4),
            "frames_sampled": len(frames),
            "faces_scored": len(flat),
            "model": os.path.relpath(self.model_path) if os.path.isabs(self.model_path) else self.model_path,
            "aggregation": "per track: drop the top frame score (4+ frames), mean of the top quarter; "
                           "video: highest track score",
            "tracks": track_rows,
            "frames": frame_rows,
        }
        return Scored(result, crops_out)


_default_scorer: Optional[Scorer] = None
_default_lock = threading.Lock()


def score_video(path: str, progress: Optional[ProgressFn] = None, cancel: Optional[threading.Event] = None,
                options: Optional[ScoreOptions] = None) -> dict[str, Any]:
    """Score one video or photo with the shipped model; returns the result dict:

    {"input": str, "kind": "video"|"image", "fake_probability": float in [0, 1] | None,
     "verdict": "likely real"|"likely fake"|"no face found", "threshold": float,
     "frames_sampled": int, "faces_scored": int, "model": str, "aggregation": str,
     "tracks": [{"id", "frames", "first_index", "last_index", "score", "mean", "max"}],
     "frames": [{"index", "time" (s), "score" (highest face score or None),
                 "faces": [{"track", "box" [x1, y1, x2, y2], "detection", "score"}]}]}

    `progress(done, total)` counts sampled frames; `cancel` (a threading.Event) stops it with
    `vidgan.errors.Cancelled`. The default scorer (model + detector) is loaded once and reused."""
    global _default_scorer
    if options is not None:
        return Scorer(options).score(path, progress, cancel).result
    with _default_lock:
        if _default_scorer is None:
            _default_scorer = Scorer()
        return _default_scorer.score(path, progress, cancel).result


def score_image(path: str, options: Optional[ScoreOptions] = None) -> dict[str, Any]:
    """A photo is a one-frame video: same result dict, `kind` "image"."""
    return score_video(path, options=options)


# -- report plot -------------------------------------------------------------------------------------
_COLOURS = [(66, 135, 245), (245, 99, 66), (80, 200, 120), (200, 80, 200), (230, 200, 60), (60, 200, 220)]


def write_plot(scored: Scored, png_path: str | Path, examples: int = 6) -> Path:
    """PNG: fake score per face track against time (threshold dashed), and below it the crops with
    the highest and the lowest scores, each labelled. Written to a temp file, then renamed."""
    res = scored.result
    w, h, left, top, bottom = 900, 320, 50, 40, 40
    plot = np.full((h, w, 3), 250, np.uint8)
    title = f"{os.path.basename(res['input'])}: {res['verdict']}"
    if res["fake_probability"] is not None:
        title += f" (fake probability {res['fake_probability']:.2f})"
    cv2.putText(plot, title, (left, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    x0, x1, y0, y1 = left, w - 20, top, h - bottom
    cv2.rectangle(plot, (x0, y0), (x1, y1), (120, 120, 120), 1)
    for v in (0.0, 0.5, 1.0):
        y = int(y1 - v * (y1 - y0))
        cv2.putText(plot, f"{v:.1f}", (8, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    ty = int(y1 - res["threshold"] * (y1 - y0))
    for x in range(x0, x1, 12):
        cv2.line(plot, (x, ty), (min(x + 6, x1), ty), (150, 150, 150), 1)
    times = {f["index"]: f["time"] for f in res["frames"]}
    t_min = min(times.values(), default=0.0)
    t_max = max(times.values(), default=1.0)
    span = (t_max - t_min) or 1.0
    cv2.putText(plot, f"{t_min:.1f} s", (x0, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(plot, f"{t_max:.1f} s", (x1 - 45, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1,
                cv2.LINE_AA)
    by_track: dict[int, list[tuple[int, int]]] = {}
    for f in res["frames"]:
        for face in f["faces"]:
            x = int(x0 + (f["time"] - t_min) / span * (x1 - x0)) if len(times) > 1 else (x0 + x1) // 2
            y = int(y1 - face["score"] * (y1 - y0))
            by_track.setdefault(face["track"], []).append((x, y))
    for tid, pts in by_track.items():
        colour = _COLOURS[tid % len(_COLOURS)]
        for a, b in zip(pts, pts[1:]):
            cv2.line(plot, a, b, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(plot, p, 3, colour, -1, cv2.LINE_AA)
    if not by_track:
        cv2.putText(plot, "no face found", (w // 2 - 60, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 1,
                    cv2.LINE_AA)

    # Example crops: highest scores first, then lowest, labelled with track and score.
    ranked = sorted(scored.crops, key=lambda c: -c[2])
    picks = ranked[: examples // 2] + [c for c in ranked[::-1][: examples - examples // 2] if c not in ranked[: examples // 2]]
    tile = 140
    strip = np.full((tile + 24, w, 3), 250, np.uint8)
    for i, (index, tid, p, crop) in enumerate(picks[: w // (tile + 8)]):
        x = 8 + i * (tile + 8)
        strip[0:tile, x:x + tile] = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.rectangle(strip, (x, 0), (x + tile - 1, tile - 1), _COLOURS[tid % len(_COLOURS)], 2)
        cv2.putText(strip, f"t{tid} #{index}: {p:.2f}", (x + 2, tile + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (20, 20, 20), 1, cv2.LINE_AA)
    image = np.vstack([plot, strip]) if picks else plot
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = png_path.with_name(png_path.name + ".tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {png_path}")
    os.replace(tmp, png_path)
    return png_path
