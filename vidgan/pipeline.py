"""One input, end to end: reader -> detector -> tracker -> operation -> writer.

Decoding and encoding run in their own threads behind bounded queues, so memory stays flat however
long the video is and the slowest stage sets the pace. Detection runs in batches in a thread of its
own, one batch ahead of the calling thread, which tracks and covers (the detector's networks release
the GIL while they compute). The tracker holds a short lookahead window of
frames so it can fill gaps in both directions before a frame is covered and encoded.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .errors import Cancelled, UsageError
from .faces import DetectorOptions, FaceDetector, Tracker, TrackerOptions
from .hooks import FrameObserver
from .media import EncodeOptions, VideoReader, VideoWriter, check_output_path, write_image
from .media.background import EncodeThread, prefetch as _prefetch
from .ops import OPERATIONS, MaskOptions, Operation
from .types import Box, Detection, Frame, TrackBox, VideoInfo

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, Optional[int]], None]


@dataclass(frozen=True)
class AnonymizeOptions:
    """Everything that decides how one file is anonymized. Built by the CLI or the GUI."""

    mode: str = "blur"
    mask: MaskOptions = MaskOptions()
    detector: DetectorOptions = DetectorOptions()
    tracker: Optional[TrackerOptions] = None  # None: windows derived from the frame rate
    encode: EncodeOptions = EncodeOptions()
    blur_strength: float = 1.0
    pixel_blocks: int = 8
    color: tuple[int, int, int] = (0, 0, 0)
    start: Optional[float] = None  # seconds; frames before are copied unchanged
    end: Optional[float] = None  # seconds; frames from here on are copied unchanged
    keep_tracks: frozenset[int] = frozenset()  # track ids left visible
    tracks_file: Optional[str] = None  # render boxes from a `vidgan detect` JSON instead of detecting
    detect_every: int = 0  # run the detector on every n-th frame (tracking fills the rest); 0: auto
    full_res_every: int = 0  # of those, every n-th at the full working resolution, the rest at half; 0: auto
    gan_model: Any = "deid"  # gan mode: generator name in models/, a path (vidgan train deid), or a loaded generator
    gan_key: Optional[bytes] = field(default=None, repr=False)  # gan mode: gan.deid_keys.passcode_key; None: random
    gan_flow: float = 0.0  # gan mode: weight of the previous output warped along the flow (ops.GanFace); 0: off

    # `detect_every=0` picks the stride from the frame rate so the detector still searches whole
    # frames at least AUTO_DETECT_HZ times a second (every 5th frame at 25-29.97 fps, 6th at 30,
    # every 2nd at 10-14 fps, every frame below 10). Between them the tracker interpolates each
    # face's box; where a track starts or ends, the frames between are searched around it
    # (region searches), so a face is covered from its first frame to its last. The leak benchmark
    # (docs/benchmarks.md) checks this.
    AUTO_DETECT_HZ = 5.0
    # With the auto stride, every 2nd whole-frame search runs at the working resolution and the
    # others at half of it (`FaceDetector.detect(coarse=True)`: faces of at least twice the minimum
    # size, in about a third of the time). A smaller face is found by the next full-resolution
    # search and then followed back frame by frame through the frames since the previous one.
    AUTO_FULL_RES_EVERY = 2

    def __post_init__(self):
        if self.mode not in OPERATIONS:
            raise UsageError(f"unknown mode '{self.mode}' (choose from {', '.join(OPERATIONS)})")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("--end must be after --start")
        if self.detect_every < 0:
            raise UsageError("--detect-every must be at least 1 (or 0 for auto)")
        if self.full_res_every < 0:
            raise UsageError("--full-res-every must be at least 1 (or 0 for auto)")
        if not 0.0 <= self.gan_flow < 1.0:
            raise UsageError("the gan flow weight must be in [0, 1)")

    def detect_stride(self, fps: Optional[float]) -> int:
        """Run the detector on frames whose index is a multiple of this."""
        if self.detect_every >= 1:
            return self.detect_every
        if not fps or fps <= 0:
            return 1
        return max(1, int(fps // self.AUTO_DETECT_HZ))

    def full_res_period(self) -> int:
        """Every how many whole-frame searches one runs at the full working resolution (the others
        look for faces of at least twice the minimum size). Auto: AUTO_FULL_RES_EVERY with the auto
        stride, every one with a stride the user chose."""
        if self.full_res_every >= 1:
            return self.full_res_every
        return self.AUTO_FULL_RES_EVERY if self.detect_every == 0 else 1

    def search_block(self, fps: Optional[float]) -> int:
        """Frames in one block of the detection schedule: it starts with a detector batch and a
        full-resolution search, and repeats (a segment of a distributed run starts on one)."""
        return math.lcm(self.detect_stride(fps) * self.full_res_period(), self.detector.batch_size)

    def tracker_options(self, fps: Optional[float]) -> TrackerOptions:
        """The tracker's windows: the user's, or derived from the frame rate; never a `max_gap` under
        two full-resolution strides (one missed detection of a small face must not split its track)."""
        t = self.tracker or TrackerOptions.for_fps(fps or 30.0)
        gap = 2 * self.detect_stride(fps) * self.full_res_period()
        return t if t.max_gap >= gap else replace(t, max_gap=gap)

    def make_operation(self) -> Operation:
        if self.mode == "blur":
            return OPERATIONS["blur"](self.mask, strength=self.blur_strength)
        if self.mode == "pixelate":
            return OPERATIONS["pixelate"](self.mask, blocks=self.pixel_blocks)
        if self.mode == "solid":
            return OPERATIONS["solid"](self.mask, color=self.color)
        if self.mode == "gan":
            try:
                return OPERATIONS["gan"](self.mask, model=self.gan_model, key=self.gan_key, device=self.detector.device,
                                         flow_alpha=self.gan_flow)
            except (FileNotFoundError, ValueError) as exc:
                raise UsageError(str(exc)) from None
        return OPERATIONS[self.mode](self.mask)

    def in_range(self, t: float) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)


@dataclass
class FileReport:
    input: str
    output: Optional[str] = None
    status: str = "ok"  # ok | failed | skipped | cancelled
    frames: int = 0
    faces: int = 0  # detections
    region_faces: int = 0  # detections found by searching around a track in frames the detector skipped
    tracks: int = 0
    covered_boxes: int = 0  # boxes covered, summed over frames (incl. interpolated and held)
    detect_every: int = 1  # the detector ran on every n-th frame
    seconds: float = 0.0
    fps: float = 0.0
    error: Optional[str] = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["fps"] = round(self.fps, 2)
        return d


class TrackSource:
    """Boxes read from a tracks JSON (as written by `vidgan detect`), per frame index.

    Faces whose track has `"cover": false` in the `tracks` list are left visible; faces with a
    track id missing from that list, or none at all (boxes a user added), are covered.
    """

    def __init__(self, path: str):
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
            visible = {int(t["id"]) for t in doc.get("tracks", []) if t.get("cover", True) is False}
            self.boxes: dict[int, list[TrackBox]] = {}
            for fr in doc["frames"]:
                items = []
                for face in fr.get("faces", []):
                    tid = face.get("track")
                    tid = int(tid) if tid is not None else -1
                    if tid in visible:
                        continue
                    lms = face.get("landmarks")
                    items.append(TrackBox(tid, Box.from_list(face["box"]), float(face.get("score", 1.0)),
                                          face.get("kind", "manual"),
                                          tuple((float(x), float(y)) for x, y in lms) if lms else None))
                self.boxes[int(fr["index"])] = items
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read tracks file: {exc.__class__.__name__}: {exc}", path) from None

    def get(self, index: int) -> list[TrackBox]:
        return self.boxes.get(index, [])


class Pipeline:
    """Holds the loaded models and runs files one after another."""

    # A block whose first whole-frame search finds this many faces too small for a coarse search
    # searches every frame it searches at full resolution (a crowd of small faces, whose tracks the
    # coarse searches cannot update: ~10-15 on marathon_vfr_pcm.mkv, at most 4 on the other clips).
    CROWD = 6

    def __init__(self, options: AnonymizeOptions = AnonymizeOptions(), detector: Optional[FaceDetector] = None):
        self.options = options
        self.operation = options.make_operation()
        self._detector = detector

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector(self.options.detector)
        return self._detector

    # -- the frame loop shared by anonymize and detect ----------------------------------------
    def frames_with_boxes(self, reader: VideoReader, stop: threading.Event,
                          report: FileReport) -> Iterator[tuple[Frame, list[TrackBox]]]:
        """Yield (frame, boxes to cover) in frame order, boxes before `keep_tracks` filtering."""
        opts = self.options
        info = reader.info
        frames = _prefetch(iter(reader), stop)
        if opts.tracks_file:
            source = TrackSource(opts.tracks_file)
            for frame in frames:
                yield frame, (source.get(frame.index) if opts.in_range(frame.time) else [])
            return
        rate = float(info.average_rate) if info.average_rate else None
        report.detect_every = opts.detect_stride(rate)
        tracker = Tracker(opts.tracker_options(rate))
        pending: dict[int, Frame] = {}
        bs = opts.detector.batch_size
        # Detection runs in its own thread, one batch ahead of the tracker and the operation here
        # (the detector's networks and the GPU release the GIL), between the decode and encode threads.
        # Where a track starts or ends between two searched frames, the frames in between are
        # searched here around the track (Tracker.observe / FaceDetector.search): a face is followed
        # frame by frame into and out of view, not guessed from the nearest detection.
        for frame, dets, searched, min_face in _prefetch(self._detections(frames, rate), stop, bs,
                                                         "vidgan-detect"):
            if stop.is_set():
                raise Cancelled("cancelled", reader.path)
            pending[frame.index] = frame
            report.faces += len(dets)
            searches = tracker.observe(frame.index, dets, searched, min_face)
            if searches:
                report.region_faces += tracker.follow(searches, lambda i: pending[i].image, self.detector.search)
            for idx, boxes in tracker.ready():
                fr = pending.pop(idx)
                yield fr, (boxes if opts.in_range(fr.time) else [])
        for idx, boxes in tracker.flush():
            fr = pending.pop(idx)
            yield fr, (boxes if opts.in_range(fr.time) else [])
        report.tracks = len(tracker.summaries)
        self.last_track_summaries = list(tracker.summaries.values())

    def _detections(self, frames: Iterator[Frame],
                    rate: Optional[float]) -> Iterator[tuple[Frame, list[Detection], bool, float]]:
        """Every frame with its detections, whether it was searched and the smallest face its search
        looked for (0: down to the minimum face size), in order. Frames are batched by the detector's
        batch size; inside the time range every `detect_stride`-th frame is searched, every `full_res_period()`-th of those
        (and the last frame) at the full working resolution, the others coarse, except where that
        does not pay (`FaceDetector.coarse_pays`) and in a crowd: in each block of
        `search_block` frames (it starts with a full search), the coarse searches run at full
        resolution when that first search found CROWD faces too small for them. The blocks are
        those a distributed run's segments align to, so a segment makes the same choices."""
        opts = self.options
        bs, stride = opts.detector.batch_size, opts.detect_stride(rate)
        period, block = stride * opts.full_res_period(), opts.search_block(rate)
        batch: list[Frame] = []
        crowd = True  # until a block's first search says otherwise

        def flush(last: bool) -> list[tuple[Frame, list, bool, float]]:
            nonlocal period, crowd
            h, w = batch[0].image.shape[:2]
            if period != stride and not self.detector.coarse_pays(w, h):
                period = stride
            todo = [f for k, f in enumerate(batch)
                    if opts.in_range(f.time) and (f.index % stride == 0 or (last and k == len(batch) - 1))]
            full = [f for f in todo if f.index % period == 0 or (last and f is batch[-1])]
            slots = [f for f in todo if not any(f is g for g in full)]  # coarse ones, unless a crowd
            found = dict(zip((f.index for f in full), self.detector.detect([f.image for f in full]))) if full else {}
            smallest = {}
            if period != stride:
                least = self.detector.smallest_face(w, h, coarse=True)
                if batch[0].index % block == 0:  # a block starts: a crowd of small faces?
                    first = found.get(batch[0].index)
                    crowd = first is None or sum(max(d.box.width, d.box.height) < least for d in first) >= self.CROWD
                if slots:
                    found.update(zip((f.index for f in slots),
                                     self.detector.detect([f.image for f in slots], coarse=not crowd)))
                    if not crowd:
                        smallest = dict.fromkeys((f.index for f in slots), least)
            out = [(f, found.get(f.index, []), f.index in found, smallest.get(f.index, 0.0)) for f in batch]
            batch.clear()
            return out

        for frame in frames:
            if len(batch) >= bs:
                yield from flush(False)
            batch.append(frame)  # one frame is always held back, to know which one is the last
        if batch:
            yield from flush(True)

    # -- anonymize ----------------------------------------------------------------------------
    def anonymize(self, input_path: str, output_path: str, progress: Optional[ProgressFn] = None,
                  cancel: Optional[threading.Event] = None,
                  observers: Sequence[FrameObserver] = ()) -> FileReport:
        """Anonymize one file. Raises VidganError subclasses; the output path is untouched on error."""
        report = FileReport(input=input_path, output=output_path)
        t0 = time.perf_counter()
        stop = threading.Event()
        cancel = cancel or threading.Event()
        check_output_path(output_path, input_path)
        start_file = getattr(self.operation, "start_file", None)
        if start_file is not None:  # per-file state of the operation (gan mode: the video's salt)
            start_file(input_path)
        with VideoReader(input_path, keep_yuv=True) as reader:
            info = reader.info
            started: list[FrameObserver] = []
            try:
                for obs in observers:
                    obs.start(info, input_path, output_path, self.operation)
                    started.append(obs)
                if info.is_image:
                    self._anonymize_image(reader, output_path, report, stop, observers)
                else:
                    self._anonymize_video(reader, output_path, report, stop, cancel, progress, observers)
            except BaseException:
                for obs in started:
                    obs.abort()
                raise
            if reader.skipped_packets:
                report.warnings.append(f"{reader.skipped_packets} damaged packet(s) skipped while decoding")
        report.seconds = time.perf_counter() - t0
        report.fps = report.frames / report.seconds if report.seconds > 0 else 0.0
        return report

    def _select(self, boxes: list[TrackBox], report: FileReport) -> list[TrackBox]:
        """The boxes to cover (all but the tracks the user keeps), counted in the report."""
        keep = self.options.keep_tracks
        if keep:
            boxes = [b for b in boxes if b.track_id not in keep]
        report.covered_boxes += len(boxes)
        return boxes

    def _covered(self, frame: Frame, boxes: list[TrackBox], image: np.ndarray,
                 observers: Sequence[FrameObserver]) -> tuple[Frame, np.ndarray, Optional[list]]:
        """(frame, covered image, the rectangles it may differ from the frame in: the operation's
        `regions`, for the writer; None: anywhere), after the observers have seen it."""
        for obs in observers:
            obs.frame(frame, boxes, image)
        h, w = frame.image.shape[:2]
        return frame, image, self.operation.regions(boxes, w, h)

    def _cover(self, frame: Frame, boxes: list[TrackBox], report: FileReport,
               observers: Sequence[FrameObserver] = ()) -> tuple[Frame, np.ndarray, Optional[list]]:
        boxes = self._select(boxes, report)
        return self._covered(frame, boxes, self.operation.apply(frame.image, boxes, frame), observers)

    # Frames covered at once by an operation without state across frames (blur, pixelate, solid) on a
    # machine with at least COVER_MIN_CPUS cores (OpenCV releases the GIL). On an H200 with 16 cores
    # the covering thread was the busiest one on hall_1080p, 8 faces a frame (session 11 profile);
    # on 2 cores the other stages need the cores. Results stay in frame order.
    COVER_THREADS = 4
    COVER_MIN_CPUS = 6

    def _cover_all(self, items: Iterator[tuple[Frame, list[TrackBox]]], report: FileReport,
                   observers: Sequence[FrameObserver] = ()) -> Iterator[tuple[Frame, np.ndarray, Optional[list]]]:
        """`_cover` over (frame, boxes) items, in order; several frames at a time where that is safe."""
        op = self.operation
        if not op.per_frame or (os.cpu_count() or 1) < self.COVER_MIN_CPUS:
            for frame, boxes in items:
                yield self._cover(frame, boxes, report, observers)
            return
        pending: collections.deque = collections.deque()
        with ThreadPoolExecutor(self.COVER_THREADS, thread_name_prefix="vidgan-cover") as pool:
            try:
                for frame, boxes in items:
                    boxes = self._select(boxes, report)
                    pending.append((frame, boxes, pool.submit(op.apply, frame.image, boxes, frame)))
                    if len(pending) > 2 * self.COVER_THREADS:
                        frame, boxes, job = pending.popleft()
                        yield self._covered(frame, boxes, job.result(), observers)
                while pending:
                    frame, boxes, job = pending.popleft()
                    yield self._covered(frame, boxes, job.result(), observers)
            finally:
                for *_, job in pending:
                    job.cancel()

    def _anonymize_image(self, reader, output_path, report, stop, observers=()) -> None:
        for frame, boxes in self.frames_with_boxes(reader, stop, report):
            _, image, _ = self._cover(frame, boxes, report, observers)
            atomic = write_image(output_path, image, source=reader.path,
                                 copy_metadata=self.options.encode.copy_metadata, commit=False)
            try:
                for obs in observers:
                    obs.finish(atomic.temp)
                atomic.commit()
            except BaseException:
                atomic.abort()
                raise
            for obs in observers:
                obs.commit()
            report.frames += 1

    def _anonymize_video(self, reader, output_path, report, stop, cancel, progress, observers=()) -> None:
        info: VideoInfo = reader.info
        writer = VideoWriter(output_path, info, source=reader.path, options=self.options.encode)
        encoder = EncodeThread(writer)
        try:
            # Tracking and region searches run in their own thread, a few frames ahead of the cover
            # here: on a GPU both stages are CPU-bound Python and each would otherwise cap the other.
            boxed = _prefetch(self.frames_with_boxes(reader, stop, report), stop, 8, "vidgan-track")
            for item in self._cover_all(boxed, report, observers):
                if cancel.is_set():
                    raise Cancelled("cancelled; nothing was written", output_path)
                encoder.put(item)
                report.frames += 1
                if progress is not None:
                    progress(report.frames, info.frame_count)
            encoder.close()
            temp = writer.finish()
            for obs in observers:
                obs.finish(temp)
            writer.commit()
            for obs in observers:
                obs.commit()
            report.warnings.extend(writer.warnings)
        except BaseException:
            stop.set()
            encoder.abort()
            writer.abort()
            raise

    # -- detect only --------------------------------------------------------------------------
    def detect(self, input_path: str, progress: Optional[ProgressFn] = None,
               cancel: Optional[threading.Event] = None) -> dict:
        """Run detection and tracking only; return the tracks document (see docs/architecture.md)."""
        report = FileReport(input=input_path)
        stop = threading.Event()
        frames_out = []
        t0 = time.perf_counter()
        with VideoReader(input_path) as reader:
            info = reader.info
            for frame, boxes in self.frames_with_boxes(reader, stop, report):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled", input_path)
                frames_out.append({
                    "index": frame.index, "pts": frame.pts, "time": round(frame.time, 6),
                    "faces": [{"track": b.track_id, "box": b.box.as_list(), "score": round(b.score, 4),
                               "kind": b.kind,
                               **({"landmarks": [[round(x, 2), round(y, 2)] for x, y in b.landmarks]}
                                  if b.landmarks else {})} for b in boxes],
                })
                report.frames += 1
                if progress is not None:
                    progress(report.frames, info.frame_count)
        tracks = [dict(s, cover=True) for s in getattr(self, "last_track_summaries", [])]
        return {
            "version": 1, "input": os.path.abspath(input_path), "width": info.width,
            "height": info.height, "rotation": info.rotation, "frame_count": report.frames,
            "time_base": str(info.time_base), "detector": asdict(self.options.detector),
            "seconds": round(time.perf_counter() - t0, 3), "tracks": tracks, "frames": frames_out,
        }


def anonymize_file(input_path: str, output_path: str, options: AnonymizeOptions = AnonymizeOptions(),
                   progress: Optional[ProgressFn] = None, cancel: Optional[threading.Event] = None) -> FileReport:
    """Convenience: one file with fresh models."""
    return Pipeline(options).anonymize(input_path, output_path, progress=progress, cancel=cancel)
