"""Masks: which pixels around a tracked face an operation replaces, and how softly.

A face box is dilated by `margin` (a fraction of its size added on each side), scaled by `scale`,
and turned into an ellipse or a box. Inside it alpha is exactly 1 (fully covered); the `feather`
band fades to 0 *outside* the region, so feathering never uncovers any of the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Box

SHAPES = ("ellipse", "box")


@dataclass(frozen=True)
class MaskOptions:
    shape: str = "ellipse"
    margin: float = 0.25  # fraction of the face box added on every side
    scale: float = 1.0  # extra scale of the region (after the margin)
    feather: float = 0.15  # width of the soft edge outside the region, as a fraction of its size

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"mask shape must be one of {SHAPES}")
        if not 0.0 <= self.margin <= 2.0:
            raise ValueError("margin must be between 0 and 2")
        if not 0.2 <= self.scale <= 5.0:
            raise ValueError("mask scale must be between 0.2 and 5")
        if not 0.0 <= self.feather <= 1.0:
            raise ValueError("feather must be between 0 and 1")

    def region(self, box: Box) -> Box:
        """The fully covered region for a face box."""
        return box.scaled((1.0 + 2.0 * self.margin) * self.scale)


@dataclass(frozen=True)
class MaskPatch:
    """Alpha for the rectangle [y0:y1, x0:x1] of the frame (float32 in [0, 1]). `inner`, when set,
    is a rectangle (x0, y0, x1, y1) relative to the patch where alpha is exactly 1 (`blend` copies it
    instead of blending it)."""

    x0: int
    y0: int
    x1: int
    y1: int
    alpha: np.ndarray
    inner: tuple[int, int, int, int] | None = None

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def patch_bounds(box: Box, options: MaskOptions, width: int,
                 height: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of `mask_patch`'s rectangle, the only pixels covering `box` may change;
    None when the face is outside the frame."""
    region = options.region(box)
    outer = region.scaled(1.0 + options.feather) if options.feather > 0 else region
    x0, y0 = max(0, int(np.floor(outer.x1))), max(0, int(np.floor(outer.y1)))
    x1, y1 = min(width, int(np.ceil(outer.x2)) + 1), min(height, int(np.ceil(outer.y2)) + 1)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def mask_patch(box: Box, options: MaskOptions, width: int, height: int) -> MaskPatch | None:
    """Alpha mask for one face, clipped to the frame; None when the face is outside the frame."""
    bounds = patch_bounds(box, options, width, height)
    if bounds is None:
        return None
    x0, y0, x1, y1 = bounds
    region = options.region(box)
    cx, cy = region.center
    ax, ay = max(region.width / 2.0, 0.5), max(region.height / 2.0, 0.5)
    f = options.feather
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / ax
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / ay
    # Pixels the region touches at all are fully covered (no half-covered rim inside the region):
    # measured from the point of each pixel nearest to the centre, not from the pixel centre. (Every
    # pixel whose centre lies inside the region is touched, so this alone decides alpha 1.)
    nx = np.maximum(np.abs(xs) - 0.5 / ax, 0.0)
    ny = np.maximum(np.abs(ys) - 0.5 / ay, 0.0)
    if options.shape == "ellipse":
        touched = (nx * nx)[None, :] + (ny * ny)[:, None] < 1.0
        # The largest rectangle inside an ellipse has its corners at nx^2 = ny^2 = 1/2.
        inner = _inner(nx * nx < 0.5, ny * ny < 0.5)
    else:
        touched = np.maximum(nx[None, :], ny[:, None]) < 1.0
        inner = _inner(nx < 1.0, ny < 1.0)
    if f <= 0:
        return MaskPatch(x0, y0, x1, y1, touched.astype(np.float32), inner)
    # The feather: alpha = (1 + f - r) / f clipped to [0, 1], r the normalised distance from the
    # centre (Euclidean for an ellipse, the larger axis for a box), computed in place: a face patch
    # has up to ~10^6 pixels, and a temporary array per step made this ~30 % slower on real faces.
    if options.shape == "ellipse":
        r = (xs * xs)[None, :] + (ys * ys)[:, None]
        np.sqrt(r, out=r)
    else:
        r = np.maximum(np.abs(xs)[None, :], np.abs(ys)[:, None])
    np.subtract(1.0 + f, r, out=r)
    np.divide(r, f, out=r)
    np.clip(r, 0.0, 1.0, out=r)
    alpha = r.astype(np.float32, copy=False)
    np.copyto(alpha, 1.0, where=touched)
    return MaskPatch(x0, y0, x1, y1, alpha, inner)


def _inner(cols: np.ndarray, rows: np.ndarray) -> tuple[int, int, int, int] | None:
    """The rectangle (patch-relative, half-open) of the columns and rows where `cols` and `rows` hold
    (each a contiguous run: the distance from the centre is monotone on either side); None if empty."""
    xs, ys = np.flatnonzero(cols), np.flatnonzero(rows)
    if not len(xs) or not len(ys):
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


_BANDED_MIN = 64 * 64  # below this many pixels five OpenCV calls cost more than they save


def blend(image: np.ndarray, patch: MaskPatch, replacement: np.ndarray) -> None:
    """In place: image[patch] = image * (1 - alpha) + replacement * alpha (rounded; alpha 1 copies
    the replacement exactly). OpenCV's blendLinear does it in one pass, ~5x faster than numpy; a
    large patch's `inner` rectangle (alpha 1, about half of an ellipse's patch) is copied instead,
    and only the four bands around it are blended: the same pixels, in ~70 % of the time."""
    a = patch.alpha
    roi = image[patch.slices]
    h, w = a.shape
    whole = (slice(0, h), slice(0, w))
    if patch.inner is None or a.size < _BANDED_MIN:
        parts = (whole,)
    else:
        ix0, iy0, ix1, iy1 = patch.inner
        roi[iy0:iy1, ix0:ix1] = replacement[iy0:iy1, ix0:ix1]
        parts = ((slice(0, iy0), slice(0, w)), (slice(iy1, h), slice(0, w)),
                 (slice(iy0, iy1), slice(0, ix0)), (slice(iy0, iy1), slice(ix1, w)))
    for part in parts:
        ap = a[part]
        if ap.size:
            roi[part] = cv2.blendLinear(np.ascontiguousarray(replacement[part]), np.ascontiguousarray(roi[part]),
                                        ap, 1.0 - ap)

