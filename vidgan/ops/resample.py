"""Resampling shared by the operations."""

from __future__ import annotations

import cv2
import numpy as np

INTERMEDIATE = 8  # see area_shrink


def area_shrink(image: np.ndarray, sw: int, sh: int) -> np.ndarray:
    """`image` averaged down to (sw, sh), as OpenCV's area resize does, in two steps. A blur or a
    pixelation shrinks each face region to ~10 cells, and OpenCV's area resize has a fast path only
    for whole-number factors (a 600x640 face to 9x10: 1.25 ms, 0.32 ms in two steps). So the image
    first shrinks by the largest whole factor that leaves at least INTERMEDIATE times the target on
    each side (its right and bottom edges replicated up to a multiple of the factor: under an
    eighth of a target pixel), then to the target: within a few levels of the one-step average
    (under 5 on average on harsh random blocks)."""
    h, w = image.shape[:2]
    f = min(w // (INTERMEDIATE * sw), h // (INTERMEDIATE * sh))
    if f >= 2:
        pw, ph = -w % f, -h % f
        if pw or ph:
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        image = cv2.resize(image, ((w + pw) // f, (h + ph) // f), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
