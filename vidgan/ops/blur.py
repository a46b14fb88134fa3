"""Blur: a Gaussian blur whose strength follows the face size.

Blurring a large face with a fixed kernel leaves it recognisable, and a huge kernel is slow, so the
region is shrunk to about `cells` pixels across, blurred there and enlarged again: the same look
(sigma ~ face size / cells) at a cost independent of the face size.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..types import TrackBox
from .base import Operation
from .masks import MaskOptions, MaskPatch
from .resample import area_shrink


class Blur(Operation):
    name = "blur"
    per_frame = True
    UP = 6  # pixels per cell of the intermediate image

    def __init__(self, mask: MaskOptions = MaskOptions(), strength: float = 1.0):
        super().__init__(mask)
        if not 0.1 <= strength <= 10:
            raise ValueError("blur strength must be between 0.1 and 10")
        self.cells = 10.0 / strength  # resolvable cells across the face region

    def replacement(self, roi: np.ndarray, patch: MaskPatch, box: TrackBox) -> np.ndarray:
        h, w = roi.shape[:2]
        k = min(1.0, self.cells / max(w, h))
        sw, sh = max(2, int(round(w * k))), max(2, int(round(h * k)))
        small = area_shrink(roi, sw, sh)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=1.0, borderType=cv2.BORDER_REPLICATE)
        # Smooth the enlargement at UP pixels per cell (sigma half a cell), then enlarge bilinearly:
        # looks like a Gaussian of sigma = half a cell at full size, at a cost that does not grow
        # with the face (a full-size Gaussian of that sigma took ~80 ms per 1080p face).
        mw, mh = min(w, sw * self.UP), min(h, sh * self.UP)
        mid = cv2.resize(small, (mw, mh), interpolation=cv2.INTER_CUBIC)
        mid = cv2.GaussianBlur(mid, (0, 0), sigmaX=max(1.0, 0.5 * max(mw, mh) / self.cells),
                               borderType=cv2.BORDER_REPLICATE)
        if (mw, mh) == (w, h):
            return mid
        return cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)
