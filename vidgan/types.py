"""Primitive data types that flow between vidgan's stages.

Frames come out of the reader, detections out of the detector, tracks (and the per-frame boxes to
cover) out of the tracker; operations map a frame plus its boxes to a new frame. Everything here is a
small frozen dataclass so stages can pass them around without copying surprises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixel coordinates of the upright (display-oriented) frame."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def scaled(self, factor: float) -> "Box":
        """Grow (factor > 1) or shrink the box about its centre."""
        cx, cy = self.center
        hw, hh = self.width * factor / 2.0, self.height * factor / 2.0
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)

    def union(self, other: "Box") -> "Box":
        return Box(min(self.x1, other.x1), min(self.y1, other.y1),
                   max(self.x2, other.x2), max(self.y2, other.y2))

    def iou(self, other: "Box") -> float:
        ix1, iy1 = max(self.x1, other.x1), max(self.y1, other.y1)
        ix2, iy2 = min(self.x2, other.x2), min(self.y2, other.y2)
        inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_list(self) -> list[float]:
        return [round(self.x1, 2), round(self.y1, 2), round(self.x2, 2), round(self.y2, 2)]

    @staticmethod
    def from_list(values) -> "Box":
        x1, y1, x2, y2 = (float(v) for v in values)
        return Box(x1, y1, x2, y2)


@dataclass(frozen=True)
class VideoInfo:
    """What the reader learned about an input before decoding its frames."""

    path: str
    width: int  # upright (display) width
    height: int  # upright (display) height
    coded_width: int  # as stored in the stream
    coded_height: int
    rotation: int  # degrees counter-clockwise the display matrix rotates the stored picture: 0/90/180/270
    time_base: Fraction
    average_rate: Optional[Fraction]
    frame_count: Optional[int]  # from the container, may be missing or approximate
    duration: Optional[float]  # seconds
    codec: str
    pix_fmt: Optional[str]
    container_format: str
    is_image: bool = False
    audio_streams: int = 0
    subtitle_streams: int = 0
    # FFmpeg's colour tags of the video (AVColorSpace / AVColorRange / AVColorPrimaries /
    # AVColorTransferCharacteristic; 2, 0, 2, 2 = unspecified). The colorspace is also the matrix the
    # frames were converted to RGB with, so the writer converts back with the same one and tags the
    # output with it, its primaries and transfer (not its range: the output is limited range).
    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded picture, upright (rotation applied), RGB uint8 HxWx3, with its timing."""

    index: int  # 0-based decode order = presentation order for our purposes
    pts: Optional[int]  # presentation timestamp in VideoInfo.time_base units
    time: float  # seconds from stream start
    image: np.ndarray = field(repr=False)
    duration: Optional[int] = None  # in time_base units when the container knows it
    # The decoded picture itself when it was 8-bit YUV 4:2:0 of even size (range as VideoInfo says), as stored
    # (before the display rotation): planes Y, U, V row after row, (h * 3 / 2, w) uint8. The writer
    # passes the pixels an operation did not touch straight through (no RGB round trip), see
    # VideoWriter.write.
    yuv: Optional[np.ndarray] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Detection:
    """A face found by the detector in one frame."""

    box: Box
    score: float
    landmarks: Optional[tuple[tuple[float, float], ...]] = None  # 5 points: eyes, nose, mouth corners


@dataclass(frozen=True)
class TrackBox:
    """What to cover in one frame: a box that belongs to a track.

    `kind` says where the box came from: "detected" (the detector fired in this frame),
    "interpolated" (between two detections), "held" (extended before the first / after the last
    detection of the track), or "manual" (added by the user in a tracks file).
    """

    track_id: int
    box: Box
    score: float
    kind: str = "detected"
    landmarks: Optional[tuple[tuple[float, float], ...]] = None


@dataclass
class Track:
    """A face followed over time. Mutable while the tracker builds it."""

    track_id: int
    observations: dict[int, Detection] = field(default_factory=dict)  # frame index -> detection

    @property
    def first(self) -> int:
        return min(self.observations)

    @property
    def last(self) -> int:
        return max(self.observations)

    @property
    def max_score(self) -> float:
        return max((d.score for d in self.observations.values()), default=0.0)
