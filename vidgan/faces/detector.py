"""Face detection with facenet-pytorch's MTCNN (its weights ship inside the wheel; on the CPU the same
weights run on OpenVINO or OpenCV's DNN module, see mtcnn.py, and PyTorch is never imported).

Frames are detected in batches at a working resolution derived from the smallest face the user wants
found: MTCNN's finest pyramid level looks for 12 px faces, so a frame can be shrunk by 12/min_face
without losing any face of at least `min_face` pixels. Boxes and landmarks come back in the
coordinates of the full frame.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from ..types import Box, Detection
from .mtcnn import Cascade, compile_openvino

log = logging.getLogger(__name__)


def _driver_sees_a_gpu() -> bool:
    """Whether the CUDA driver reports a device, asked through libcuda directly: importing PyTorch
    just to learn that a CPU-only machine has no GPU would cost seconds per run."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        return lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    return False


def cuda_available() -> bool:
    if "torch" not in sys.modules and not _driver_sees_a_gpu():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a CUDA GPU is usable, else "cpu"; "cuda..." is checked. A string, so the
    CPU path never needs PyTorch (torch.device(...) accepts it where a tensor needs it)."""
    device = str(device)
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        raise ValueError("--device cuda asked for, but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda") and device != "mps":
        raise ValueError(f"unknown device {device!r} (auto, cpu, cuda or cuda:N)")
    return device


@dataclass(frozen=True)
class DetectorOptions:
    """How faces are found. Lower thresholds and smaller `min_face` find more (and more false
    positives, which only cost a blurred patch: privacy first)."""

    threshold: float = 0.7  # MTCNN final-stage (O-Net) probability
    stage_thresholds: tuple[float, float] = (0.6, 0.7)  # P-Net, R-Net
    min_face: Optional[int] = None  # px in the original frame; None: max(20, short side / 36)
    max_side: int = 0  # extra cap on the working resolution's long side (0: no cap)
    device: str = "auto"
    batch_size: int = 8
    factor: float = 0.709  # pyramid scale step
    backend: str = "auto"  # networks on OpenVINO or OpenCV DNN (CPU), or PyTorch: "auto" | "openvino" | "opencv" | "torch"

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if self.min_face is not None and self.min_face < 8:
            raise ValueError("min_face must be at least 8 pixels")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def min_face_for(self, width: int, height: int) -> int:
        if self.min_face is not None:
            return int(self.min_face)
        return max(20, int(round(min(width, height) / 36)))


def warm_up(options: DetectorOptions = DetectorOptions()) -> Optional[threading.Thread]:
    """Start loading what `FaceDetector(options)` will need, so that it overlaps the caller's own
    start-up (imports, opening the input and the encoder): on OpenVINO, its import here (~50 ms) and
    compiling the three networks in a background thread, returned (~0.1 s a run on a 2-core
    machine, outside the GIL); the detector then finds them compiled. Nothing on the other backends;
    bad options are left for the detector to report."""
    try:
        backend = Cascade.resolve_backend(resolve_device(options.device), options.backend)
    except ValueError:
        return None
    return compile_openvino() if backend == "openvino" else None


class FaceDetector:
    """Batched MTCNN. `detect(images)` -> one list of `Detection` per image; `search(images, regions)`
    looks only inside one region of each image."""

    REGION_PX = 80  # a searched region is resized to this square
    REGION_MIN_FACE = 12  # smallest face looked for in it (px of the resized region)
    REGION_PNET_MARGIN = 0.1  # P-Net's threshold is this much higher in a region (half the time)
    COARSE = 2.0  # `detect(coarse=True)` looks for faces this many times the minimum size (at 1/COARSE the resolution)
    COARSE_MIN_SIDE = 160  # see coarse_pays

    def __init__(self, options: DetectorOptions = DetectorOptions()):
        self.options = options
        self.device = resolve_device(options.device)
        self.cascade = Cascade(self.device, options.backend)
        self._region_cascade: Optional[Cascade] = None
        self.thresholds = (options.stage_thresholds[0], options.stage_thresholds[1], options.threshold)

    def working_scale(self, width: int, height: int, coarse: bool = False) -> tuple[float, int]:
        """(scale applied to the frame, min face size in working pixels)."""
        min_face = self.options.min_face_for(width, height) * (self.COARSE if coarse else 1.0)
        scale = min(1.0, 12.0 / min_face)
        if self.options.max_side:
            scale = min(scale, self.options.max_side / max(width, height))
        return scale, max(12, int(round(min_face * scale)))

    def coarse_pays(self, width: int, height: int) -> bool:
        """Whether `detect(coarse=True)` is worth it for this frame size: not where the working image
        is under COARSE_MIN_SIDE px on its short side (a whole-frame search costs little there, and
        the half-size image is too small to place boxes well)."""
        scale, _ = self.working_scale(width, height)
        return min(width, height) * scale >= self.COARSE_MIN_SIDE

    def smallest_face(self, width: int, height: int, coarse: bool = False) -> float:
        """The smallest face (px of the frame) `detect` looks for."""
        scale, min_face = self.working_scale(width, height, coarse)
        return min_face / scale

    def detect(self, images: Sequence[np.ndarray], coarse: bool = False) -> list[list[Detection]]:
        """Faces in whole frames, down to the minimum face size; `coarse`: only faces of at least
        COARSE times that size, at 1/COARSE the working resolution (about a third of the time)."""
        if not images:
            return []
        h, w = images[0].shape[:2]
        scale, min_face = self.working_scale(w, h, coarse)
        results: list[list[Detection]] = []
        bs = self.options.batch_size
        for start in range(0, len(images), bs):
            chunk = images[start:start + bs]
            if scale < 1.0:
                size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
                chunk = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in chunk]
            results.extend(self._detect_batch(np.stack(chunk), min_face, scale))
        return results

    def search(self, images: Sequence[np.ndarray], regions: Sequence[Box]) -> list[list[Detection]]:
        """Look for faces inside one square region of each image: where the tracker expects a face it
        knows, on a frame the full-frame detector skipped. Each region is cut out (grey outside the
        frame), resized to REGION_PX and run through the same networks down to faces of
        REGION_MIN_FACE px (0.15 of the region's side); boxes and landmarks come back in frame
        coordinates. A region costs a small fraction of a full-frame search."""
        if not images:
            return []
        size = self.REGION_PX
        crops, frames = [], []
        for im, r in zip(images, regions):
            h, w = im.shape[:2]
            side = max(r.width, r.height, 12.0)
            cx, cy = r.center
            x1, y1 = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
            x2, y2 = x1 + int(np.ceil(side)), y1 + int(np.ceil(side))
            cut = im[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
            if cut.size == 0:
                cut = np.full((1, 1, 3), 128, np.uint8)
            else:
                cut = cv2.copyMakeBorder(cut, max(0, -y1), max(0, y2 - h), max(0, -x1), max(0, x2 - w),
                                         cv2.BORDER_CONSTANT, value=(128, 128, 128))
            interp = cv2.INTER_AREA if cut.shape[0] > size else cv2.INTER_LINEAR
            crops.append(cv2.resize(cut, (size, size), interpolation=interp))
            frames.append((x1, y1, (x2 - x1) / size, (y2 - y1) / size))
        thresholds = (min(0.95, self.thresholds[0] + self.REGION_PNET_MARGIN),) + self.thresholds[1:]
        if self._region_cascade is None:  # its own networks: searches run beside full-frame detection
            # Tighter NMS and P-Net threshold than a full frame: a region holds one face or a few,
            # and R-Net's crops are most of its time (on 177 faces of 4 shared clips, 171 found as
            # with the full-frame defaults, 174; 8 ms a region here instead of 20).
            self._region_cascade = Cascade(self.device, self.options.backend, pack_levels=True, nms=(0.5, 0.5))
        out: list[list[Detection]] = []
        for start in range(0, len(crops), 64):
            results = self._region_cascade(np.stack(crops[start:start + 64]), self.REGION_MIN_FACE,
                                           thresholds, self.options.factor)
            out.extend(_detections(b, p, x0, y0, sx, sy)
                       for (x0, y0, sx, sy), (b, p) in zip(frames[start:start + 64], results))
        return out

    def _detect_batch(self, batch: np.ndarray, min_face: int, scale: float) -> list[list[Detection]]:
        results = self.cascade(batch, min_face, self.thresholds, self.options.factor)
        inv = 1.0 / scale
        return [_detections(b, p, 0.0, 0.0, inv, inv) for b, p in results]


def _detections(boxes: np.ndarray, points: np.ndarray, x0: float, y0: float, sx: float,
                sy: float) -> list[Detection]:
    """The cascade's rows (x1, y1, x2, y2, score) and landmarks for one image, mapped to frame
    coordinates (x0 + x * sx, y0 + y * sy) as plain floats; boxes of 1 px or less dropped."""
    dets = []
    for row, pts in zip(boxes, points):
        x1, y1, x2, y2, score = (float(v) for v in row[:5])
        box = Box(x0 + x1 * sx, y0 + y1 * sy, x0 + x2 * sx, y0 + y2 * sy)
        if box.width > 1 and box.height > 1:
            lms = tuple((x0 + float(px) * sx, y0 + float(py) * sy) for px, py in pts)
            dets.append(Detection(box=box, score=score, landmarks=lms))
    return dets
