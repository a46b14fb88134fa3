"""Pixelate: a mosaic of `blocks` cells across the face region."""

from __future__ import annotations

import cv2
import numpy as np

from ..types import TrackBox
from .base import Operation
from .masks import MaskOptions, MaskPatch
from .resample import area_shrink


class Pixelate(Operation):
    name = "pixelate"
    per_frame = True

    def __init__(self, mask: MaskOptions = MaskOptions(), blocks: int = 8):
        super().__init__(mask)
        if not 2 <= blocks <= 64:
            raise ValueError("pixelate blocks must be between 2 and 64")
        self.blocks = blocks

    def replacement(self, roi: np.ndarray, patch: MaskPatch, box: TrackBox) -> np.ndarray:
        h, w = roi.shape[:2]
        # Block size from the face region (not the feathered patch) so every face gets ~`blocks` cells.
        region_w = max(1.0, box.box.width * self.mask.scale * (1 + 2 * self.mask.margin))
        cell = max(1.0, region_w / self.blocks)
        sw, sh = max(1, int(round(w / cell))), max(1, int(round(h / cell)))
        small = area_shrink(roi, sw, sh)  # each cell's average, within a few levels
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
