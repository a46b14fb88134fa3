"""The operation interface: (frame pixels, boxes to cover) -> new frame pixels.

An operation only decides what replaces the masked pixels (`replacement`); masking, clipping and
feathered blending are shared here, so every mode covers exactly the same region. New modes (GAN
faces, translation) subclass `Operation` and register in `vidgan.ops.OPERATIONS`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..types import Frame, TrackBox
from .masks import MaskOptions, MaskPatch, blend, mask_patch, patch_bounds


class Operation:
    name = "base"
    # True: `apply` depends on its arguments only (no state carried from frame to frame), so the
    # pipeline may cover several frames at once, in threads.
    per_frame = False

    def __init__(self, mask: MaskOptions = MaskOptions()):
        self.mask = mask
        self._last_patches: Optional[tuple] = None  # (boxes, width, height, patches) of the latest call

    def patches(self, boxes: Sequence[TrackBox], width: int, height: int) -> list[tuple[TrackBox, MaskPatch]]:
        """Each box's mask patch (boxes outside the frame left out). The latest result is kept: an
        observer (the vault) asks again for the frame just covered, with the same list of boxes."""
        last = self._last_patches
        if last is not None and last[0] is boxes and last[1] == width and last[2] == height:
            return last[3]
        out = []
        for tb in boxes:
            p = mask_patch(tb.box, self.mask, width, height)
            if p is not None:
                out.append((tb, p))
        self._last_patches = (boxes, width, height, out)
        return out

    def regions(self, boxes: Sequence[TrackBox], width: int,
                height: int) -> Optional[list[tuple[int, int, int, int]]]:
        """The rectangles (x0, y0, x1, y1) outside which `apply` leaves every pixel as it was: the
        boxes' patches. None: anywhere (an operation that overrides `apply` to write outside its
        patches must override this too). The writer re-encodes only these from RGB."""
        return [b for tb in boxes for b in [patch_bounds(tb.box, self.mask, width, height)] if b is not None]

    def apply(self, image: np.ndarray, boxes: Sequence[TrackBox], frame: Optional[Frame] = None) -> np.ndarray:
        """Return a new image with every box covered; `image` is not modified."""
        if not boxes:
            return image
        h, w = image.shape[:2]
        out = image.copy()
        for tb, patch in self.patches(boxes, w, h):
            blend(out, patch, self.replacement(out[patch.slices], patch, tb))
        return out

    def replacement(self, roi: np.ndarray, patch: MaskPatch, box: TrackBox) -> np.ndarray:
        raise NotImplementedError
