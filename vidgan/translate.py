"""`vidgan translate`: one video or photo through a trained generator, end to end.

Two ways to apply an image-to-image network to footage:

- whole frame: the frame (cut into overlapping tiles when it is large, blended back with feathered
  weights so no seam shows) goes through the network;
- faces only (the default for models trained on face crops): each tracked face is aligned to the
  canonical crop the model was trained on (5-point similarity, `faces/align.py`), translated, and
  pasted back with a feathered mask; everything else stays as decoded.

Per-frame translation flickers, so for video the result is blended with the previous result warped
along the input's optical flow (`temporal.py`); in faces-only mode only inside the pasted faces.

Super-resolution models (scale 4) give a x4 output by default (faces-only: the frame is upscaled
bicubically and the faces super-resolved); `keep_size` resizes the result back to the input's size.

Timing, audio, rotation and metadata are kept exactly as `vidgan anonymize` keeps them (same reader,
writer and atomic rename); frames outside `start`/`end` are passed through (only resized for x4).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import cv2
import numpy as np
import torch

from .errors import Cancelled, UsageError
from .faces import DetectorOptions
from .faces.align import BOX_TEMPLATE, align_matrix, crop_mask, crop_scale, paste_back, rescale, warp_crop
from .gan.translator import Translator, load_translator, models_dir
from .media import EncodeOptions, VideoReader, VideoWriter, check_output_path, write_image
from .media.background import prefetch
from .pipeline import AnonymizeOptions, FileReport, Pipeline
from .temporal import SmoothOptions, TemporalSmoother, bbox
from .types import Frame, TrackBox

ProgressFn = Callable[[int, Optional[int]], None]
PASSED_THROUGH = np.zeros((0, 0), np.float32)  # region marker: frame outside --start/--end, untouched


@dataclass(frozen=True)
class TranslateOptions:
    """How one file is translated. Built by the CLI (or the GUI)."""

    model: str  # a name in models/ or a path to a generator.pt
    faces_only: Optional[bool] = None  # None: the model decides (trained on face crops -> faces only)
    temporal_alpha: float = 0.7  # weight of the warped previous output; 0 turns smoothing off
    tile: int = 512  # whole-frame tiles (input pixels, rounded up to what the net accepts); 0: no tiling
    tile_overlap: int = 32  # pixels shared by neighbouring tiles, blended with a linear ramp
    keep_size: bool = False  # x4 models: resize the result back to the input size
    margin: float = 0.0  # alignment: context added around the training framing (fraction per side)
    feather: float = 0.12  # paste-back: soft edge as a fraction of the crop side
    mask_shape: str = "ellipse"  # paste-back mask: ellipse (face only) or box (the whole crop)
    color_match: bool = False  # match each translated face's colours to the original face
    keep_luma: Optional[bool] = None  # faces: keep the frame's own brightness, take only the model's
    # colour (None: on for gray-input models, i.e. colourisation, whose crops are smaller than the face)
    device: str = "auto"  # where the generator and smoothing run: auto | cpu | cuda
    batch_size: int = 4  # tiles or faces per forward pass
    detector: DetectorOptions = DetectorOptions()
    encode: EncodeOptions = EncodeOptions()
    start: Optional[float] = None  # seconds; frames before are passed through
    end: Optional[float] = None  # seconds; frames from here on are passed through
    detect_every: int = 1

    def __post_init__(self):
        if not 0.0 <= self.temporal_alpha < 1.0:
            raise UsageError(f"--temporal-alpha must be in [0, 1), got {self.temporal_alpha}")
        if self.tile < 0 or self.tile_overlap < 0 or (self.tile and self.tile_overlap * 2 >= self.tile):
            raise UsageError("--tile must be 0 (off) or more than twice the overlap")
        if self.mask_shape not in ("ellipse", "box"):
            raise UsageError(f"mask shape must be ellipse or box, got {self.mask_shape!r}")
        if not 0.0 <= self.margin <= 1.0 or not 0.0 < self.feather <= 0.5:
            raise UsageError("margin must be in [0, 1] and feather in (0, 0.5]")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("--end must be after --start")
        if self.batch_size < 1 or self.detect_every < 1:
            raise UsageError("--batch-size and --detect-every must be at least 1")

    def in_range(self, t: float) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)


def open_translator(model: str, device: str = "auto") -> Translator:
    """Load a generator, turning every way it can fail into one usage error (exit 2)."""
    try:
        return load_translator(model, device)
    except FileNotFoundError:
        known = sorted(d.name for d in models_dir().glob("*") if (d / "generator.pt").is_file())
        raise UsageError(f"no model {model!r}: not a generator file and not in {models_dir()} "
                         f"(available: {', '.join(known) or 'none trained yet'})") from None
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise UsageError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None


def default_output(input_path: str, model_name: str) -> str:
    """NAME.MODEL.EXT beside the input."""
    stem, ext = os.path.splitext(input_path)
    return f"{stem}.{model_name}{ext or '.mp4'}"


# -- whole frames ---------------------------------------------------------------------------------


def _to_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def _to_images(y: torch.Tensor) -> list[np.ndarray]:
    arr = y.mul(255.0).add_(0.5).clamp_(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    return list(arr)


def _ramp(n: int, overlap: int) -> np.ndarray:
    """1 in the middle, rising linearly over `overlap` pixels at both ends (never exactly 0)."""
    r = np.ones(n, np.float32)
    if overlap > 0:
        edge = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        r[:overlap] = edge
        r[n - overlap:] = np.minimum(r[n - overlap:], edge[::-1])
    return r


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class FrameTranslator:
    """A Translator applied to whole frames of any size: padded to what the network accepts and,
    above `tile` pixels, cut into overlapping tiles whose outputs are blended with linear ramps."""

    def __init__(self, translator: Translator, tile: int = 512, overlap: int = 32, batch_size: int = 4):
        self.t = translator
        self.multiple = int(getattr(translator.net, "multiple", 0) or translator.size)
        self.tile = _round_up(tile, self.multiple) if tile else 0
        self.overlap = overlap
        self.batch_size = batch_size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        s = self.t.scale
        if not self.tile or (h <= self.tile and w <= self.tile):
            ph, pw = _round_up(h, self.multiple), _round_up(w, self.multiple)
            padded = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="symmetric")
            out = _to_images(self.t(_to_tensor([padded], self.t.device)))[0]
            return np.ascontiguousarray(out[:h * s, :w * s])
        t = self.tile
        ph, pw = max(h, t), max(w, t)
        padded = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="symmetric")
        ys, ny = self._weights(ph)
        xs, nx = self._weights(pw)
        dev = self.t.device
        ny, nx = torch.from_numpy(ny).to(dev), torch.from_numpy(nx).to(dev)
        # The tiles' outputs are blended where they are, on the network's device, in float (each
        # rounded once at the end): weight ramp(y) * ramp(x) over the sum of all tiles' weights
        # there, which, the tiles lying on a grid, is the product of two 1-D sums (`_weights`).
        acc = torch.zeros((3, ph * s, pw * s), device=dev)
        spots = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
        ts = t * s
        for k in range(0, len(spots), self.batch_size):
            chunk = spots[k:k + self.batch_size]
            out = self.t(_to_tensor([padded[ys[i]:ys[i] + t, xs[j]:xs[j] + t] for i, j in chunk], dev))
            for o, (i, j) in zip(out, chunk):
                y0, x0 = ys[i] * s, xs[j] * s
                acc[:, y0:y0 + ts, x0:x0 + ts].addcmul_(o * ny[i][None, :, None], nx[j][None, None, :])
        return np.ascontiguousarray(_to_images(acc[None, :, :h * s, :w * s])[0])

    def _weights(self, n: int) -> tuple[list[int], np.ndarray]:
        """Tile starts along a side of `n` input pixels, and each tile's blending weight along it
        (output pixels, one row per tile): its ramp divided by the sum of all tiles' ramps there."""
        t, s = self.tile, self.t.scale
        step = t - self.overlap
        starts = sorted(set(list(range(0, n - t, step)) + [n - t]))
        ramp = _ramp(t * s, self.overlap * s)
        total = np.zeros(n * s, np.float32)
        for a in starts:
            total[a * s:(a + t) * s] += ramp
        return starts, np.stack([ramp / total[a * s:(a + t) * s] for a in starts]).astype(np.float32)


# -- faces ------------------------------------------------------------------------------------------


class _Landmarks:
    """Per-track landmarks relative to the (tracker-smoothed) box, averaged over time so the crop
    does not jitter with MTCNN's landmark noise, and carried over frames without a detection."""

    def __init__(self, keep: float = 0.5):
        self.keep = keep
        self.state: dict[int, np.ndarray] = {}

    def __call__(self, b: TrackBox) -> np.ndarray:
        bw, bh = max(b.box.width, 1.0), max(b.box.height, 1.0)
        origin, size = np.array([b.box.x1, b.box.y1]), np.array([bw, bh])
        prev = self.state.get(b.track_id)
        if b.landmarks:
            rel = (np.asarray(b.landmarks, np.float64) - origin) / size
            rel = rel if prev is None else self.keep * prev + (1 - self.keep) * rel
        else:
            rel = prev if prev is not None else BOX_TEMPLATE
        if b.track_id >= 0:
            self.state[b.track_id] = rel
        return rel * size + origin


class FaceTranslator:
    """Aligned face crops through a Translator, pasted back into the frame (x4 frame for SR)."""

    def __init__(self, translator: Translator, options: TranslateOptions, out_factor: int):
        self.t = translator
        self.o = options
        self.out_factor = out_factor  # output frame size / input frame size
        self.multiple = int(getattr(translator.net, "multiple", 0) or translator.size)
        self.landmarks = _Landmarks()
        self._masks: dict[int, np.ndarray] = {}
        self.keep_luma = translator.input_mode == "gray" if options.keep_luma is None else options.keep_luma

    def _mask(self, size: int) -> np.ndarray:
        if size not in self._masks:
            self._masks[size] = crop_mask(size, self.o.feather, self.o.mask_shape)
        return self._masks[size]

    def _crop_size(self, lms: np.ndarray) -> int:
        """Model input side. Fixed-size nets: the training size. x4 SR nets (any size): the face's
        own resolution, clamped to [size/4, size], so a big face is not shrunk before upscaling."""
        t = self.t
        if t.scale == 1 or self.multiple > 8:
            return t.size if t.scale == 1 else max(self.multiple, t.size // t.scale)
        native = 1.0 / crop_scale(align_matrix(lms, 1, self.o.margin))
        side = int(np.clip(round(native), t.size // t.scale, t.size))
        return _round_up(side, self.multiple)

    def __call__(self, image: np.ndarray, base: np.ndarray, boxes: list[TrackBox]) -> tuple[np.ndarray, np.ndarray]:
        """(output frame, alpha of the pasted faces on the output grid)."""
        region = np.zeros(base.shape[:2], np.float32)
        jobs = []
        for b in boxes:
            lms = self.landmarks(b)
            size = self._crop_size(lms)
            m = align_matrix(lms, size, self.o.margin)
            jobs.append((size, m, warp_crop(image, m, size)))
        out = base
        for size in sorted({j[0] for j in jobs}):
            same = [j for j in jobs if j[0] == size]
            for i in range(0, len(same), self.o.batch_size):
                chunk = same[i:i + self.o.batch_size]
                results = _to_images(self.t(_to_tensor([c for _, _, c in chunk], self.t.device)))
                for (_, m, _), face in zip(chunk, results):
                    m_out = rescale(m, self.t.scale, self.out_factor)
                    side = face.shape[0]
                    ref = warp_crop(base, m_out, side) if self.o.color_match else None
                    out = paste_back(out, face, m_out, self._mask(side), color_reference=ref, out_alpha=region)
        if self.keep_luma and jobs:
            out = _with_luma_of(out, base, region)
        return out, region


def _with_luma_of(out: np.ndarray, base: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`out` with the lightness (Lab L) of `base` inside `region`, blended by it: a colourising model
    gives its colour at crop resolution while the face keeps the frame's full-resolution detail."""
    ys, xs = np.nonzero(region > 0)
    if ys.size == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    lab = cv2.cvtColor(out[y0:y1, x0:x1], cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.cvtColor(base[y0:y1, x0:x1], cv2.COLOR_RGB2LAB)[..., 0]
    mixed = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32)
    b = base[y0:y1, x0:x1].astype(np.float32)
    a = region[y0:y1, x0:x1, None]
    result = out.copy()
    result[y0:y1, x0:x1] = np.clip(b + (mixed - b) * a + 0.5, 0, 255).astype(np.uint8)
    return result


# -- the job ----------------------------------------------------------------------------------------


class Translation:
    """Holds the loaded generator (and face detector) and translates files one after another."""

    def __init__(self, options: TranslateOptions, translator: Optional[Translator] = None):
        self.options = options
        self.translator = translator or open_translator(options.model, options.device)
        t = self.translator
        self.faces_only = t.faces if options.faces_only is None else options.faces_only
        self.out_factor = 1 if (t.scale == 1 or options.keep_size) else t.scale
        self.frames = FrameTranslator(t, options.tile, options.tile_overlap, options.batch_size)
        self._pipeline: Optional[Pipeline] = None

    @property
    def pipeline(self) -> Pipeline:
        """Detection + tracking, exactly as `vidgan anonymize` runs them."""
        if self._pipeline is None:
            o = self.options
            self._pipeline = Pipeline(AnonymizeOptions(detector=o.detector, start=o.start, end=o.end,
                                                       detect_every=o.detect_every))
        return self._pipeline

    def _upscale(self, image: np.ndarray, interp=cv2.INTER_CUBIC) -> np.ndarray:
        if self.out_factor == 1:
            return image
        h, w = image.shape[:2]
        return cv2.resize(image, (w * self.out_factor, h * self.out_factor), interpolation=interp)

    def _frames(self, reader: VideoReader, stop: threading.Event,
                report: FileReport) -> Iterator[tuple[Frame, Optional[list[TrackBox]]]]:
        if self.faces_only:
            yield from self.pipeline.frames_with_boxes(reader, stop, report)
        else:
            for frame in prefetch(iter(reader), stop):
                yield frame, None

    def process(self, frame: Frame, boxes: Optional[list[TrackBox]], faces: Optional[FaceTranslator],
                report: FileReport) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(translated frame, region the smoother may blend: None = everywhere)."""
        image = frame.image
        if not self.options.in_range(frame.time):
            return self._upscale(image), PASSED_THROUGH
        if faces is None:
            out = self.frames(image)
            if self.translator.scale != self.out_factor:
                out = cv2.resize(out, (image.shape[1] * self.out_factor, image.shape[0] * self.out_factor),
                                 interpolation=cv2.INTER_AREA)
            return out, None
        report.covered_boxes += len(boxes)
        return faces(image, self._upscale(image), boxes)

    def translate(self, input_path: str, output_path: str, progress: Optional[ProgressFn] = None,
                  cancel: Optional[threading.Event] = None) -> FileReport:
        """Translate one file. Raises VidganError subclasses; the output path is untouched on error."""
        report = FileReport(input=input_path, output=output_path)
        t0 = time.perf_counter()
        stop = threading.Event()
        cancel = cancel or threading.Event()
        check_output_path(output_path, input_path)
        with VideoReader(input_path, keep_yuv=True) as reader:  # see _changed
            if reader.info.is_image:
                for _, _, image, _ in self.run(reader, report, stop, cancel):
                    write_image(output_path, image, source=input_path,
                                copy_metadata=self.options.encode.copy_metadata)
                    report.frames += 1
            else:
                self._video(reader, output_path, report, stop, cancel, progress)
            if reader.skipped_packets:
                report.warnings.append(f"{reader.skipped_packets} damaged packet(s) skipped while decoding")
        report.seconds = time.perf_counter() - t0
        report.fps = report.frames / report.seconds if report.seconds > 0 else 0.0
        return report

    AHEAD = 3  # frames translated ahead of the smoothing

    def run(self, reader: VideoReader, report: FileReport, stop: threading.Event,
            cancel: Optional[threading.Event] = None
            ) -> Iterator[tuple[Frame, np.ndarray, np.ndarray, Optional[np.ndarray]]]:
        """The frame loop: yields (frame, per-frame translation, temporally smoothed translation,
        region) in order. The two images are the same array when smoothing is off; region is the
        alpha of the pasted faces (faces-only), an empty array for frames passed through, or None
        (whole frame translated)."""
        faces = FaceTranslator(self.translator, self.options, self.out_factor) if self.faces_only else None
        smoother = None
        if self.options.temporal_alpha > 0 and not reader.info.is_image:
            smoother = TemporalSmoother(SmoothOptions(alpha=self.options.temporal_alpha),
                                        device=self.translator.device)

        def translated() -> Iterator[tuple[Frame, np.ndarray, Optional[np.ndarray]]]:
            for frame, boxes in self._frames(reader, stop, report):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled; nothing was written", report.output)
                image, region = self.process(frame, boxes, faces, report)
                yield frame, image, region

        # The network and the paste run in their own thread, a few frames ahead of the smoothing
        # (its flows, warp and blend: as much CPU as a face model's network) and the encode on
        # this one. Smoothing needs only the frames translated before, in order, as they come.
        for frame, image, region in prefetch(translated(), stop, self.AHEAD, "vidgan-translate"):
            if cancel is not None and cancel.is_set():  # frames translated ahead are not written
                raise Cancelled("cancelled; nothing was written", report.output)
            smoothed = image
            if smoother is not None:
                if region is PASSED_THROUGH:
                    smoother.reset()  # outside --start/--end: passed through; start afresh after
                else:
                    smoothed = smoother.step(frame.image, image, region)
            yield frame, image, smoothed, region
        if smoother is not None and smoother.cuts:
            report.warnings.append(f"temporal smoothing restarted at {smoother.cuts} scene cut(s)")

    def _video(self, reader, output_path, report, stop, cancel, progress) -> None:
        info = reader.info
        f = self.out_factor
        out_info = dataclasses.replace(info, width=info.width * f, height=info.height * f,
                                       coded_width=info.coded_width * f, coded_height=info.coded_height * f)
        writer = VideoWriter(output_path, out_info, source=reader.path, options=self.options.encode)
        try:
            for frame, _, image, region in self.run(reader, report, stop, cancel):
                writer.write(frame, image, regions=_changed(region))
                report.frames += 1
                if progress is not None:
                    progress(report.frames, info.frame_count)
            writer.commit()
            report.warnings.extend(writer.warnings)
        except BaseException:
            stop.set()
            writer.abort()
            raise


def _changed(region: Optional[np.ndarray]) -> Optional[list[tuple[int, int, int, int]]]:
    """The rectangle outside which a frame's output is its input frame, for the writer (which then
    converts only that part from RGB and keeps the input's own YUV elsewhere, as anonymize does): in
    faces-only mode the pastes, the colourisers' lightness and the smoothing change only pixels of
    the region (alpha > 0), and a frame passed through changes none; None: the whole frame."""
    if region is None:
        return None
    box = bbox(region > 0) if region.size else None
    return [] if box is None else [box]


def translate_file(input_path: str, output_path: str, options: TranslateOptions,
                   progress: Optional[ProgressFn] = None, cancel: Optional[threading.Event] = None) -> FileReport:
    """Convenience: one file with a freshly loaded model."""
    return Translation(options).translate(input_path, output_path, progress=progress, cancel=cancel)
