"""Independent leak audit: does any face of the original still show in the anonymized copy?

The judge shares nothing with vidgan's own detector (MTCNN): it is dlib's HOG frontal face detector
(optionally also dlib's CNN face detector) and dlib's face-recognition network with its 5-point
shape predictor, weights from `face_recognition_models` (`pip install vidgan[audit]`).

For every judged frame (all by default, `every` to sample):

* ground truth = the faces the judge finds in the original frame;
* the anonymized frame shown at the same time is looked up (by timestamp, so a dropped or added
  frame does not shift everything after it);
* a ground-truth face is a **detect leak** when the judge still finds a face in the anonymized frame
  overlapping it (IoU > 0.3), and an **identity leak** when the face descriptor computed on the
  anonymized frame at the original's landmarks is within 0.6 of the original's (dlib's same-person
  threshold);
* faces the judge finds in the anonymized frame that match no ground-truth face are reported too
  (with a tracks file: whether a covered track was there, i.e. whether vidgan's detector saw it).

Faithfulness is checked alongside: frame counts, timestamps, size, rotation, duration and whether
every audio stream is a bit-exact packet copy.

Large frames are downscaled to `max_width` before the detector runs (HOG at 1080p costs four times
as much as at 960 px), so the smallest face the judge can find is about 80 / upsample-factor px of
the *downscaled* frame (~40 px with the default upsample 1); landmarks and descriptors are computed
at full resolution. See docs/audit.md for what this can and cannot prove.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Callable, Iterator, Optional

import numpy as np

from .errors import EXIT_LEAK, EXIT_OK, UsageError, VidganError
from .media import VideoReader
from .media.background import prefetch
from .types import Box, Frame

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, Optional[int]], None]

INSTALL_HINT = "install with pip install vidgan[audit]"
IOU_LEAK = 0.3  # a face in the anonymized frame overlapping a ground-truth face this much: detect leak
SAME_PERSON = 0.6  # dlib face-descriptor distance below which two faces are the same person
IOU_SAME_FACE = 0.5  # HOG and CNN boxes of one face
IOU_TRACK = 0.25  # a judge box belongs to a tracks-file box at this IoU (or when its centre is inside)
TIME_EPS = 0.0015  # seconds: frames closer than this are the same instant
HOG_WINDOW = 80  # px: dlib's frontal HOG detector scans an 80x80 window
NEAR_FACE = 160  # px: width a ground-truth face is resized to when the output is searched near it
# HOG score that counts near a ground-truth face in the output (full-frame detection uses 0). On the
# shared clips an unchanged face scores -0.2 or more there, a blurred one -0.7 or less.
NEAR_THRESHOLD = -0.4


class AuditUnavailable(UsageError):
    """dlib or face_recognition_models is not installed (exit code 2)."""


def load_dlib():
    """Import dlib and the model files; a one-line AuditUnavailable when either is missing."""
    import warnings

    try:
        import dlib
    except ImportError:
        raise AuditUnavailable(f"the audit needs dlib, which is not installed: {INSTALL_HINT}") from None
    with warnings.catch_warnings():  # face_recognition_models imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        try:
            import face_recognition_models as frm
        except ImportError as exc:
            raise AuditUnavailable(f"the audit needs face_recognition_models, which cannot be imported "
                                   f"({exc}): {INSTALL_HINT}") from None
    return dlib, frm


def audit_available() -> bool:
    try:
        load_dlib()
        return True
    except AuditUnavailable:
        return False


# -- options and results ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditOptions:
    every: int = 1  # judge every n-th frame of the original
    cnn: bool = False  # add dlib's CNN (MMOD) detector to HOG: finds more turned faces, 10-15x slower
    max_width: int = 960  # frames wider than this are downscaled before detection
    upsample: int = 1  # detector upsampling (each step halves the smallest findable face, 4x cost)
    iou_leak: float = IOU_LEAK
    same_person: float = SAME_PERSON
    start: Optional[float] = None  # seconds: judge frames from here on
    end: Optional[float] = None  # seconds: judge frames before this
    max_frames: Optional[int] = None  # judge at most this many frames (faithfulness still sees all)
    tracks_file: Optional[str] = None  # `vidgan detect` JSON: name the track of each face
    # Where to look for faces found only in the anonymized frame: "changed" (where its pixels
    # differ from the original's: a face anywhere else would also be in the original), "full"
    # (the whole frame: twice the detector time) or "off".
    scan_output: str = "changed"
    sheet_tile_width: int = 480
    sheet_columns: int = 4
    sheet_tiles: int = 24  # tiles per contact-sheet PNG

    def __post_init__(self):
        if self.every < 1:
            raise UsageError("--every must be at least 1")
        if self.max_width < 64:
            raise UsageError("--max-width must be at least 64")
        if not 0 <= self.upsample <= 3:
            raise UsageError("--upsample must be 0..3")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("--end must be after --start")
        if self.scan_output not in ("changed", "full", "off"):
            raise UsageError("scan_output must be changed, full or off")

    def in_range(self, t: float) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)


@dataclass
class FaceResult:
    """One ground-truth face (found by the judge in the original frame) and what became of it."""

    frame: int
    time: float
    box: list  # [x1, y1, x2, y2] in upright pixels of the original
    score: float  # the judge's detection score
    face_id: int  # the judge's own link of this face across frames
    track: Optional[int] = None  # vidgan track id from the tracks file (None: none there)
    detected: bool = False  # detect leak
    iou: float = 0.0  # best overlap of a face found in the anonymized frame
    distance: float = math.inf  # descriptor distance anonymized vs original at the same landmarks
    identity: bool = False  # identity leak

    @property
    def leaked(self) -> bool:
        return self.detected or self.identity

    def as_dict(self) -> dict:
        return {"frame": self.frame, "time": round(self.time, 4), "box": self.box,
                "score": round(self.score, 3), "face_id": self.face_id, "track": self.track,
                "detected": self.detected, "iou": round(self.iou, 3),
                "distance": round(self.distance, 4) if math.isfinite(self.distance) else None,
                "identity": self.identity, "leaked": self.leaked}


@dataclass
class OutputFace:
    """A face the judge found in the anonymized frame that matches no ground-truth face."""

    frame: int
    time: float
    box: list
    score: float
    track: Optional[int] = None  # tracks-file track whose box is there (None: none, or no tracks file)

    def as_dict(self) -> dict:
        return {"frame": self.frame, "time": round(self.time, 4), "box": self.box,
                "score": round(self.score, 3), "track": self.track}


@dataclass
class FrameResult:
    index: int
    time: float
    output_index: Optional[int]  # None: the anonymized video has no frame at this time
    output_time: Optional[float]
    faces: list[FaceResult] = field(default_factory=list)
    new_faces: list[OutputFace] = field(default_factory=list)

    @property
    def leaked(self) -> bool:
        return any(f.leaked for f in self.faces) or bool(self.new_faces)

    def as_dict(self) -> dict:
        return {"index": self.index, "time": round(self.time, 4), "output_index": self.output_index,
                "output_time": None if self.output_time is None else round(self.output_time, 4),
                "leaked": self.leaked, "faces": [f.as_dict() for f in self.faces],
                "new_faces": [f.as_dict() for f in self.new_faces]}


@dataclass
class GroupSummary:
    """Per face (the judge's own linking) or per vidgan track (with a tracks file)."""

    id: Optional[int]  # None: faces that no track of the tracks file covers
    first: int
    last: int
    faces: int = 0  # ground-truth face sightings
    detect_leaks: int = 0
    identity_leaks: int = 0
    leaked_frames: int = 0
    min_distance: float = math.inf

    @property
    def leaked(self) -> bool:
        return self.leaked_frames > 0

    def add(self, f: FaceResult) -> None:
        self.first, self.last = min(self.first, f.frame), max(self.last, f.frame)
        self.faces += 1
        self.detect_leaks += f.detected
        self.identity_leaks += f.identity
        self.leaked_frames += f.leaked
        self.min_distance = min(self.min_distance, f.distance)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["min_distance"] = round(self.min_distance, 4) if math.isfinite(self.min_distance) else None
        d["leaked"] = self.leaked
        return d


@dataclass
class AudioCheck:
    index: int  # 0-based among the audio streams
    codec_original: Optional[str]
    codec_anonymized: Optional[str]
    packets_original: int = 0
    packets_anonymized: int = 0
    bit_exact: bool = False  # same codec, same packet payloads in the same order
    max_pts_diff: Optional[float] = None  # seconds, over the common packets


@dataclass
class Faithfulness:
    frames_original: int = 0
    frames_anonymized: int = 0
    max_timestamp_diff: Optional[float] = None  # seconds, frame i vs frame i over the common frames
    size_original: Optional[list] = None
    size_anonymized: Optional[list] = None
    rotation_original: int = 0
    rotation_anonymized: int = 0
    duration_original: Optional[float] = None
    duration_anonymized: Optional[float] = None
    audio: list[AudioCheck] = field(default_factory=list)
    audio_streams_anonymized: int = 0
    issues: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


@dataclass
class AuditReport:
    original: str
    anonymized: str
    options: AuditOptions
    judge: str = ""  # one line: which models, at which resolution
    frames: list[FrameResult] = field(default_factory=list)  # judged frames
    faces: list[GroupSummary] = field(default_factory=list)  # per judge-linked face
    tracks: list[GroupSummary] = field(default_factory=list)  # per vidgan track (tracks file only)
    faithfulness: Faithfulness = field(default_factory=Faithfulness)
    sheets: list[str] = field(default_factory=list)  # contact-sheet PNGs
    json_path: Optional[str] = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    # -- counts -------------------------------------------------------------------------------
    @property
    def frames_judged(self) -> int:
        return len(self.frames)

    @property
    def gt_faces(self) -> int:
        return sum(len(f.faces) for f in self.frames)

    @property
    def detect_leaks(self) -> int:
        return sum(x.detected for f in self.frames for x in f.faces)

    @property
    def identity_leaks(self) -> int:
        return sum(x.identity for f in self.frames for x in f.faces)

    @property
    def leaked_faces(self) -> int:
        return sum(x.leaked for f in self.frames for x in f.faces)

    @property
    def new_faces(self) -> int:
        return sum(len(f.new_faces) for f in self.frames)

    @property
    def leaked_frames(self) -> int:
        return sum(f.leaked for f in self.frames)

    @property
    def untracked_faces(self) -> Optional[int]:
        """Ground-truth faces that no track of the tracks file covers (vidgan's detector missed)."""
        if not self.options.tracks_file:
            return None
        return sum(x.track is None for f in self.frames for x in f.faces)

    @property
    def leaked(self) -> bool:
        return self.leaked_faces > 0 or self.new_faces > 0

    @property
    def passed(self) -> bool:
        return not self.leaked

    @property
    def exit_code(self) -> int:
        return EXIT_LEAK if self.leaked else EXIT_OK

    @property
    def fps(self) -> float:
        return self.frames_judged / self.seconds if self.seconds > 0 else 0.0

    def leaked_tracks(self) -> list[Optional[int]]:
        return [t.id for t in self.tracks if t.leaked]

    def as_dict(self) -> dict:
        return {
            "version": 1, "original": os.path.abspath(self.original),
            "anonymized": os.path.abspath(self.anonymized), "verdict": "PASS" if self.passed else "FAIL",
            "judge": self.judge, "options": asdict(self.options),
            "summary": {"frames_judged": self.frames_judged, "frames_with_faces":
                        sum(bool(f.faces) for f in self.frames), "faces": self.gt_faces,
                        "leaked_faces": self.leaked_faces, "detect_leaks": self.detect_leaks,
                        "identity_leaks": self.identity_leaks, "new_faces_in_output": self.new_faces,
                        "leaked_frames": self.leaked_frames, "untracked_faces": self.untracked_faces,
                        "leaked_tracks": self.leaked_tracks() if self.options.tracks_file else None,
                        "seconds": round(self.seconds, 2), "fps": round(self.fps, 2)},
            "faithfulness": self.faithfulness.as_dict(),
            "faces": [g.as_dict() for g in self.faces],
            "tracks": [g.as_dict() for g in self.tracks],
            "sheets": self.sheets, "warnings": self.warnings,
            "frames": [f.as_dict() for f in self.frames],
        }

    def write_json(self, path: str) -> None:
        tmp = path + ".partial"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(self.as_dict(), fh, indent=1)
            os.replace(tmp, path)
        except OSError as exc:
            raise VidganError(f"cannot write the audit report: {exc.strerror or exc}", path) from None
        self.json_path = path

    def summary(self) -> str:
        """A one-screen summary for the terminal."""
        fa = self.faithfulness
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"audit {verdict}: {self.anonymized}  (original: {self.original})",
                 f"  judge: {self.judge}"]
        o = self.options
        rng = ""
        if o.start is not None or o.end is not None:
            rng = f", only {o.start or 0:g}s-{'end' if o.end is None else f'{o.end:g}s'}"
        lines.append(f"  frames judged: {self.frames_judged} of {fa.frames_original} (every {o.every}{rng}"
                     f"{f', at most {o.max_frames}' if o.max_frames else ''}), "
                     f"{sum(bool(f.faces) for f in self.frames)} with faces, {self.gt_faces} faces")
        lines.append(f"  leaked faces: {self.leaked_faces} in {self.leaked_frames} frames "
                     f"(detect {self.detect_leaks}, identity {self.identity_leaks}); "
                     f"faces found only in the output: {self.new_faces}")
        if self.options.tracks_file:
            kept = [str(t) if t is not None else "untracked" for t in self.leaked_tracks()]
            lines.append(f"  tracks with leaks: {', '.join(kept) if kept else 'none'}; faces no track "
                         f"covers (missed by vidgan's detector): {self.untracked_faces}")
        leaked_groups = [g for g in self.faces if g.leaked]
        if leaked_groups:
            shown = ", ".join(f"face {g.id} (frames {g.first}-{g.last}: {g.leaked_frames}/{g.faces} leaked, "
                              f"min distance {g.min_distance:.3f})" for g in leaked_groups[:4])
            more = f" and {len(leaked_groups) - 4} more" if len(leaked_groups) > 4 else ""
            lines.append(f"  leaking faces: {shown}{more}")
        audio = ", ".join(f"#{a.index} {a.codec_original}: {'bit-exact' if a.bit_exact else 'NOT bit-exact'}"
                          for a in fa.audio) or "none"
        ts = "n/a" if fa.max_timestamp_diff is None else f"{fa.max_timestamp_diff * 1000:.1f} ms"
        dur = "n/a" if fa.duration_original is None or fa.duration_anonymized is None else \
            f"{fa.duration_original:.3f}/{fa.duration_anonymized:.3f} s"
        lines.append(f"  faithfulness {'ok' if fa.ok else 'ISSUES'}: frames {fa.frames_original}/"
                     f"{fa.frames_anonymized}, timestamps max diff {ts}, rotation {fa.rotation_original}/"
                     f"{fa.rotation_anonymized}, duration {dur}, audio {audio}")
        for issue in fa.issues[:5]:
            lines.append(f"    - {issue}")
        for w in self.warnings[:3]:
            lines.append(f"  warning: {w}")
        where = []
        if self.json_path:
            where.append(self.json_path)
        if self.sheets:
            where.append(f"{len(self.sheets)} contact sheet(s) in {os.path.dirname(self.sheets[0]) or '.'}")
        if where:
            lines.append(f"  report: {'; '.join(where)}")
        lines.append(f"  {self.frames_judged} frames in {self.seconds:.1f} s ({self.fps:.1f} fps)")
        return "\n".join(lines)


# -- the judge ------------------------------------------------------------------------------------
@dataclass
class _Det:
    box: Box
    score: float


class Judge:
    """dlib's detectors and face-recognition network, loaded once, reused for many files."""

    def __init__(self, options: AuditOptions = AuditOptions()):
        dlib, frm = load_dlib()
        self.dlib = dlib
        self.options = options
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location()) \
            if options.cnn else None
        self.predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def scale_for(self, width: int) -> float:
        return min(1.0, self.options.max_width / float(width))

    def describe(self, width: int) -> str:
        o = self.options
        s = self.scale_for(width)
        det = "dlib HOG" + (" + CNN (MMOD)" if o.cnn else "")
        size = f"frames downscaled x{s:.2f} to {round(width * s)} px wide" if s < 1 else "full-resolution frames"
        smallest = HOG_WINDOW / (2 ** o.upsample) / s
        return (f"{det} on {size}, upsample {o.upsample} (smallest findable face ~{smallest:.0f} px); "
                f"dlib face recognition at full resolution, same person below {o.same_person}")

    def detect(self, image: np.ndarray, scale: float, upsample: Optional[int] = None,
               threshold: float = 0.0) -> list[_Det]:
        """Faces in `image` (RGB), boxes in its own pixel coordinates; detection runs on the image
        resized by `scale`, upsampled `upsample` times (default: the options'); HOG detections
        scoring above `threshold` count (dlib's own default is 0)."""
        import cv2

        if scale != 1.0:
            h, w = image.shape[:2]
            small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        else:
            small = np.ascontiguousarray(image)
        up = self.options.upsample if upsample is None else upsample
        rects, scores, _ = self.hog.run(small, up, threshold)
        dets = [_Det(self._box(r, scale), float(s)) for r, s in zip(rects, scores)]
        if self.cnn is not None:
            for d in self.cnn(small, up):
                b = self._box(d.rect, scale)
                if all(b.iou(x.box) <= IOU_SAME_FACE for x in dets):
                    dets.append(_Det(b, float(d.confidence)))
        return dets

    def detect_near(self, image: np.ndarray, box: Box, scale: float) -> list[_Det]:
        """Faces of about `box`'s size near it: any face box with IoU > 0.3 against `box`.

        The window (one face size of margin on every side) is scanned at the full-frame detection's
        effective scale (`scale` x 2^upsample), so a face found there in the original is found the
        same way here; faces larger than NEAR_FACE px at that scale are shrunk to NEAR_FACE px (the
        detector still finds faces from half their size up, at a fraction of the cost). HOG's threshold
        is lowered to NEAR_THRESHOLD: a window shifted against the full frame's cell grid scores a
        weakly detected face a little lower, and what the detector *nearly* calls a face is a leak."""
        h, w = image.shape[:2]
        x0, y0 = max(0, int(box.x1 - box.width)), max(0, int(box.y1 - box.height))
        x1, y1 = min(w, int(math.ceil(box.x2 + box.width))), min(h, int(math.ceil(box.y2 + box.height)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        crop = image[y0:y1, x0:x1]
        up = self.options.upsample
        if box.width * scale * 2 ** up <= NEAR_FACE:  # the very same resize and upsampling as the original's
            dets = self.detect(crop, scale, upsample=up, threshold=NEAR_THRESHOLD)
        else:
            dets = self.detect(crop, NEAR_FACE / box.width, upsample=0, threshold=NEAR_THRESHOLD)
        return [_Det(Box(d.box.x1 + x0, d.box.y1 + y0, d.box.x2 + x0, d.box.y2 + y0), d.score)
                for d in dets]

    def detect_in(self, image: np.ndarray, regions: list[Box], scale: float) -> list[_Det]:
        """`detect` at the full-frame `scale` inside each region (plus half its size of margin),
        boxes merged across regions."""
        h, w = image.shape[:2]
        found: list[_Det] = []
        for reg in regions:
            mx, my = max(reg.width / 2, 40 / scale), max(reg.height / 2, 40 / scale)
            x0, y0 = max(0, int(reg.x1 - mx)), max(0, int(reg.y1 - my))
            x1, y1 = min(w, int(math.ceil(reg.x2 + mx))), min(h, int(math.ceil(reg.y2 + my)))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            for d in self.detect(image[y0:y1, x0:x1], scale):
                b = Box(d.box.x1 + x0, d.box.y1 + y0, d.box.x2 + x0, d.box.y2 + y0)
                if all(b.iou(f.box) <= IOU_SAME_FACE for f in found):
                    found.append(_Det(b, d.score))
        return found

    @staticmethod
    def _box(rect, scale: float) -> Box:
        return Box(rect.left() / scale, rect.top() / scale, (rect.right() + 1) / scale,
                   (rect.bottom() + 1) / scale)

    def landmarks(self, image: np.ndarray, box: Box):
        rect = self.dlib.rectangle(int(round(box.x1)), int(round(box.y1)), int(round(box.x2)) - 1,
                                   int(round(box.y2)) - 1)
        return self.predictor(image, rect)

    def descriptor(self, image: np.ndarray, shape) -> np.ndarray:
        return np.asarray(self.encoder.compute_face_descriptor(image, shape))


# -- decoding -------------------------------------------------------------------------------------
class _ShownAt:
    """Walks the anonymized video in step with the original: the frame on screen at time t."""

    def __init__(self, frames: Iterator[Frame]):
        self.frames = frames
        self.times: list[float] = []
        self.current: Optional[Frame] = None
        self.next: Optional[Frame] = self._advance()

    def _advance(self) -> Optional[Frame]:
        f = next(self.frames, None)
        if f is not None:
            self.times.append(f.time)
        return f

    def at(self, t: float) -> Optional[Frame]:
        while self.next is not None and self.next.time <= t + TIME_EPS:
            self.current = self.next
            self.next = self._advance()
        if self.current is None:  # the output starts later than the original
            return None
        if self.next is None:  # past the output's last frame: it would be on screen for about one
            gap = self.times[-1] - self.times[-2] if len(self.times) > 1 else 0.04  # frame duration
            if t > self.current.time + 0.5 * max(gap, 1e-3) + TIME_EPS:
                return None
        return self.current

    def drain(self) -> None:
        self.current = None
        while self.next is not None:
            self.next = self._advance()


# -- tracks file ----------------------------------------------------------------------------------
class _Tracks:
    def __init__(self, path: str):
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
            self.boxes: dict[int, list[tuple[Optional[int], Box]]] = {}
            for fr in doc["frames"]:
                items = []
                for face in fr.get("faces", []):
                    tid = face.get("track")
                    items.append((int(tid) if tid is not None else None, Box.from_list(face["box"])))
                self.boxes[int(fr["index"])] = items
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read tracks file: {exc.__class__.__name__}: {exc}", path) from None

    def track_at(self, index: int, box: Box) -> Optional[int]:
        best, best_iou = None, 0.0
        cx, cy = box.center
        for tid, tb in self.boxes.get(index, []):
            iou = box.iou(tb)
            inside = tb.x1 <= cx <= tb.x2 and tb.y1 <= cy <= tb.y2
            if (iou >= IOU_TRACK or inside) and iou >= best_iou:
                best, best_iou = (tid if tid is not None else -1), iou
        return best


# -- contact sheets -------------------------------------------------------------------------------
class ContactSheets:
    """Tiles of every leaking frame (the anonymized picture, leaks outlined), written in pages."""

    RED = (255, 0, 0)  # identity leak (RGB)
    ORANGE = (255, 150, 0)  # detect leak only
    MAGENTA = (255, 0, 255)  # a face found only in the anonymized frame

    def __init__(self, folder: str, options: AuditOptions, stem: str = "sheet"):
        self.folder = folder
        self.options = options
        self.stem = stem
        self.tiles: list[np.ndarray] = []
        self.paths: list[str] = []

    def add(self, result: FrameResult, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        tw = min(self.options.sheet_tile_width, w)
        s = tw / w
        tile = cv2.resize(image, (tw, max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        thick = 2

        def outline(box, color, label):
            x1, y1, x2, y2 = (int(round(v * s)) for v in box)
            cv2.rectangle(tile, (x1, y1), (x2, y2), color, thick)
            (lw, lh), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            ly = y1 - 3 if y1 - lh - 6 >= 0 else y2 + lh + 3
            cv2.rectangle(tile, (x1, ly - lh - 3), (x1 + lw + 4, ly + 3), color, -1)
            cv2.putText(tile, label, (x1 + 2, ly), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)

        for f in result.faces:
            if f.leaked:
                label = (f"id {f.distance:.3f}" if f.identity else "det") + \
                        (f" t{f.track}" if f.track is not None else f" f{f.face_id}")
                outline(f.box, self.RED if f.identity else self.ORANGE, label)
        for f in result.new_faces:
            outline(f.box, self.MAGENTA, "new" + (f" t{f.track}" if f.track is not None else ""))
        header = f"frame {result.index}  t={result.time:.2f}s"
        cv2.rectangle(tile, (0, 0), (8 * len(header) + 6, 16), (0, 0, 0), -1)
        cv2.putText(tile, header, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        self.tiles.append(tile)
        if len(self.tiles) >= self.options.sheet_tiles:
            self.flush()

    def flush(self) -> None:
        import cv2

        if not self.tiles:
            return
        cols = min(self.options.sheet_columns, len(self.tiles))
        th = max(t.shape[0] for t in self.tiles)
        tw = max(t.shape[1] for t in self.tiles)
        rows = math.ceil(len(self.tiles) / cols)
        pad = 4
        sheet = np.full((rows * (th + pad) + pad, cols * (tw + pad) + pad, 3), 40, np.uint8)
        for i, tile in enumerate(self.tiles):
            r, c = divmod(i, cols)
            y, x = pad + r * (th + pad), pad + c * (tw + pad)
            sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
        path = os.path.join(self.folder, f"{self.stem}_{len(self.paths) + 1:03d}.png")
        if not cv2.imwrite(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise VidganError("cannot write the contact sheet", path)
        self.paths.append(path)
        self.tiles.clear()


# -- faithfulness -------------------------------------------------------------------------------
def _audio_packets(path: str) -> list[tuple[Optional[str], list[tuple[bytes, Optional[float]]]]]:
    """Per audio stream: (codec name, [(payload, pts seconds)] of the non-empty packets)."""
    import av

    if not os.path.exists(path):
        return []
    try:
        with av.open(path) as container:
            streams = list(container.streams.audio)
            out = {s.index: [] for s in streams}
            if streams:
                for packet in container.demux(streams):
                    if packet.size:
                        t = None if packet.pts is None else float(packet.pts * Fraction(packet.time_base))
                        out[packet.stream.index].append((bytes(packet), t))
            return [(s.codec_context.name, out[s.index]) for s in streams]
    except av.error.FFmpegError:
        return []


def check_audio(original: str, anonymized: str) -> tuple[list[AudioCheck], int]:
    a = _audio_packets(original)
    b = _audio_packets(anonymized)
    checks = []
    for i, (codec, packets) in enumerate(a):
        codec_b, packets_b = b[i] if i < len(b) else (None, [])
        check = AudioCheck(index=i, codec_original=codec, codec_anonymized=codec_b,
                           packets_original=len(packets), packets_anonymized=len(packets_b))
        check.bit_exact = (codec == codec_b and len(packets) == len(packets_b)
                           and all(p[0] == q[0] for p, q in zip(packets, packets_b)))
        diffs = [abs(p[1] - q[1]) for p, q in zip(packets, packets_b) if p[1] is not None and q[1] is not None]
        check.max_pts_diff = max(diffs) if diffs else None
        checks.append(check)
    return checks, len(b)


def _faithfulness(info_a, info_b, times_a: list[float], times_b: list[float], original: str,
                  anonymized: str) -> Faithfulness:
    fa = Faithfulness(frames_original=len(times_a), frames_anonymized=len(times_b),
                      size_original=[info_a.width, info_a.height], size_anonymized=[info_b.width, info_b.height],
                      rotation_original=info_a.rotation, rotation_anonymized=info_b.rotation,
                      duration_original=info_a.duration, duration_anonymized=info_b.duration)
    issues = fa.issues
    if fa.frames_original != fa.frames_anonymized:
        issues.append(f"frame count differs: {fa.frames_original} in the original, "
                      f"{fa.frames_anonymized} in the anonymized video")
    common = min(len(times_a), len(times_b))
    if common:
        fa.max_timestamp_diff = max(abs(times_a[i] - times_b[i]) for i in range(common))
        if fa.max_timestamp_diff > TIME_EPS:
            worst = max(range(common), key=lambda i: abs(times_a[i] - times_b[i]))
            issues.append(f"timestamps differ by up to {fa.max_timestamp_diff * 1000:.1f} ms "
                          f"(frame {worst}: {times_a[worst]:.4f} s vs {times_b[worst]:.4f} s)")
    if fa.size_original != fa.size_anonymized:
        issues.append(f"size differs: {info_a.width}x{info_a.height} vs {info_b.width}x{info_b.height} "
                      "(the anonymized frames were resized to the original's to be judged)")
    if fa.rotation_original != fa.rotation_anonymized:
        issues.append(f"rotation differs: {fa.rotation_original} vs {fa.rotation_anonymized} degrees")
    if info_a.is_image or info_b.is_image:
        return fa
    if fa.duration_original is not None and fa.duration_anonymized is not None:
        frame_dur = (1 / float(info_a.average_rate)) if info_a.average_rate else 0.04
        if abs(fa.duration_original - fa.duration_anonymized) > max(0.05, 1.5 * frame_dur):
            issues.append(f"duration differs: {fa.duration_original:.3f} s vs {fa.duration_anonymized:.3f} s")
    fa.audio, fa.audio_streams_anonymized = check_audio(original, anonymized)
    for a in fa.audio:
        if a.codec_anonymized is None:
            issues.append(f"audio stream #{a.index} ({a.codec_original}) is missing from the anonymized video")
        elif not a.bit_exact:
            what = (f"re-encoded as {a.codec_anonymized}" if a.codec_anonymized != a.codec_original
                    else f"{a.packets_original} vs {a.packets_anonymized} packets, payloads differ")
            issues.append(f"audio stream #{a.index} ({a.codec_original}) is not a bit-exact copy: {what}")
    if fa.audio_streams_anonymized > len(fa.audio):
        issues.append(f"the anonymized video has {fa.audio_streams_anonymized} audio streams, "
                      f"the original {len(fa.audio)}")
    return fa


# -- the audit ------------------------------------------------------------------------------------
def _box_list(b: Box) -> list:
    return [round(b.x1, 1), round(b.y1, 1), round(b.x2, 1), round(b.y2, 1)]


class Auditor:
    """Runs audits with one loaded judge. `audit(original, anonymized)` -> AuditReport."""

    def __init__(self, options: AuditOptions = AuditOptions(), judge: Optional[Judge] = None):
        self.options = options
        self.judge = judge or Judge(options)

    def audit(self, original: str, anonymized: str, report_dir: Optional[str] = None,
              json_path: Optional[str] = None, progress: Optional[ProgressFn] = None,
              cancel: Optional[threading.Event] = None) -> AuditReport:
        o = self.options
        t0 = time.perf_counter()
        if report_dir:
            try:
                os.makedirs(report_dir, exist_ok=True)
            except OSError as exc:
                raise VidganError(f"cannot create the report folder: {exc.strerror or exc}", report_dir) from None
        tracks = _Tracks(o.tracks_file) if o.tracks_file else None
        report = AuditReport(original=original, anonymized=anonymized, options=o)
        sheets = ContactSheets(report_dir, o) if report_dir else None
        with VideoReader(original) as ra, VideoReader(anonymized) as rb:
            info_a, info_b = ra.info, rb.info
            report.judge = self.judge.describe(info_a.width)
            scale = self.judge.scale_for(info_a.width)
            stop = threading.Event()  # each decoded in its own thread (PyAV releases the GIL)
            pa, pb = (prefetch(iter(r), stop, 6, "vidgan-audit-decode") for r in (ra, rb))
            try:
                shown = _ShownAt(iter(pb))
                times_a: list[float] = []
                links = _Linker()
                judged = 0
                for frame in pa:
                    times_a.append(frame.time)
                    if cancel is not None and cancel.is_set():
                        raise VidganError("audit cancelled", anonymized)
                    out = shown.at(frame.time)
                    if progress is not None:
                        progress(frame.index + 1, info_a.frame_count)
                    if frame.index % o.every or not o.in_range(frame.time) or \
                            (o.max_frames is not None and judged >= o.max_frames):
                        continue
                    judged += 1
                    result, out_image = self._judge_frame(frame, out, scale, tracks, links)
                    report.frames.append(result)
                    if result.leaked and sheets is not None:
                        sheets.add(result, out_image if out_image is not None else frame.image)
                shown.drain()
                times_b = shown.times
            finally:
                stop.set()
                pa.close()
                pb.close()
            for r, name in ((ra, "original"), (rb, "anonymized")):
                if r.skipped_packets:
                    report.warnings.append(f"{r.skipped_packets} damaged packet(s) skipped in the {name} video")
        report.faithfulness = _faithfulness(info_a, info_b, times_a, times_b, original, anonymized)
        missing = sum(f.output_index is None for f in report.frames)
        if missing:
            report.warnings.append(f"{missing} judged frame(s) have no anonymized frame at their time")
        report.faces = links.summaries(report.frames, lambda f: f.face_id)
        if tracks is not None:
            report.tracks = links.summaries(report.frames, lambda f: f.track)
        if sheets is not None:
            sheets.flush()
            report.sheets = sheets.paths
        report.seconds = time.perf_counter() - t0
        if report_dir and not json_path:
            json_path = os.path.join(report_dir, "audit.json")
        if json_path:
            report.write_json(json_path)
        return report

    def _judge_frame(self, frame: Frame, out: Optional[Frame], scale: float, tracks: Optional[_Tracks],
                     links: "_Linker") -> tuple[FrameResult, Optional[np.ndarray]]:
        o, judge = self.options, self.judge
        img_a = np.ascontiguousarray(frame.image)
        img_b = None
        if out is not None:
            img_b = out.image
            if img_b.shape != img_a.shape:
                import cv2

                img_b = cv2.resize(img_b, (img_a.shape[1], img_a.shape[0]), interpolation=cv2.INTER_AREA)
            img_b = np.ascontiguousarray(img_b)
        result = FrameResult(index=frame.index, time=frame.time,
                             output_index=None if out is None else out.index,
                             output_time=None if out is None else out.time)
        gt = judge.detect(img_a, scale)
        ids = links.link(frame.index, [d.box for d in gt])
        for det, face_id in zip(gt, ids):
            face = FaceResult(frame=frame.index, time=frame.time, box=_box_list(det.box), score=det.score,
                              face_id=face_id)
            if tracks is not None:
                face.track = tracks.track_at(frame.index, det.box)
            if img_b is not None:
                near = judge.detect_near(img_b, det.box, scale)
                face.iou = max((det.box.iou(d.box) for d in near), default=0.0)
                face.detected = face.iou > o.iou_leak
                shape = judge.landmarks(img_a, det.box)
                d_a = judge.descriptor(img_a, shape)
                d_b = judge.descriptor(img_b, shape)
                face.distance = float(np.linalg.norm(d_a - d_b))
                face.identity = face.distance < o.same_person
            result.faces.append(face)
        if img_b is not None and o.scan_output != "off":
            if o.scan_output == "full":
                found = judge.detect(img_b, scale)
            else:  # only faces lying mostly where the pixels changed: elsewhere the original is the same
                regions = changed_regions(img_a, img_b)
                found = [d for d in judge.detect_in(img_b, regions, scale)
                         if _covered_fraction(d.box, regions) >= 0.25]
            for d in found:
                if all(d.box.iou(g.box) <= o.iou_leak for g in gt):
                    result.new_faces.append(OutputFace(
                        frame=frame.index, time=frame.time, box=_box_list(d.box), score=d.score,
                        track=tracks.track_at(frame.index, d.box) if tracks is not None else None))
        return result, img_b


def _covered_fraction(box: Box, regions: list[Box]) -> float:
    """Fraction of `box` inside the union of `regions` (their overlaps counted once, approximately)."""
    if box.area <= 0:
        return 0.0
    inside = 0.0
    for r in regions:
        ix = max(0.0, min(box.x2, r.x2) - max(box.x1, r.x1))
        iy = max(0.0, min(box.y2, r.y2) - max(box.y1, r.y1))
        inside += ix * iy
    return min(1.0, inside / box.area)


CELL = 8  # px: changed regions are found on a grid of CELL x CELL blocks
CHANGED = 10.0  # mean absolute difference (0-255) over a block that counts as changed, not codec noise


def changed_regions(a: np.ndarray, b: np.ndarray, min_cells: int = 4) -> list[Box]:
    """Boxes around the regions where `b` differs from `a` beyond compression noise (the covered
    faces, in an anonymized copy)."""
    import cv2

    h, w = a.shape[:2]
    gw, gh = max(1, w // CELL), max(1, h // CELL)
    diff = cv2.absdiff(a, b).max(axis=2)
    blocks = cv2.resize(diff, (gw, gh), interpolation=cv2.INTER_AREA)
    mask = (blocks > CHANGED).astype(np.uint8)
    if not mask.any():
        return []
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sx, sy = w / gw, h / gh
    out = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area >= min_cells:
            out.append(Box(x * sx, y * sy, (x + bw) * sx, (y + bh) * sy))
    return out


class _Linker:
    """Links the judge's faces across judged frames (greedy IoU), so the report can speak per face."""

    def __init__(self, max_gap: int = 5):
        self.max_gap = max_gap
        self.active: dict[int, tuple[int, Box]] = {}  # id -> (judged-frame counter, last box)
        self.counter = 0
        self.next_id = 1

    def link(self, index: int, boxes: list[Box]) -> list[int]:
        self.counter += 1
        self.active = {k: v for k, v in self.active.items() if self.counter - v[0] <= self.max_gap}
        pairs = sorted(((b.iou(last), i, k) for i, b in enumerate(boxes)
                        for k, (_, last) in self.active.items()), reverse=True)
        ids: list[Optional[int]] = [None] * len(boxes)
        used = set()
        for iou, i, k in pairs:
            if iou < 0.2:
                break
            if ids[i] is None and k not in used:
                ids[i] = k
                used.add(k)
        for i, b in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
            self.active[ids[i]] = (self.counter, b)
        return ids  # type: ignore[return-value]

    @staticmethod
    def summaries(frames: list[FrameResult], key) -> list[GroupSummary]:
        groups: dict = {}
        for fr in frames:
            for f in fr.faces:
                k = key(f)
                g = groups.get(k)
                if g is None:
                    g = groups[k] = GroupSummary(id=k, first=f.frame, last=f.frame)
                g.add(f)
        return sorted(groups.values(), key=lambda g: (g.id is None, g.id if g.id is not None else 0))


def audit(original: str, anonymized: str, options: AuditOptions = AuditOptions(),
          report_dir: Optional[str] = None, json_path: Optional[str] = None,
          progress: Optional[ProgressFn] = None) -> AuditReport:
    """Convenience: one audit with a freshly loaded judge."""
    return Auditor(options).audit(original, anonymized, report_dir=report_dir, json_path=json_path,
                                  progress=progress)
