"""The one face-crop recipe shared by training, validation and scoring.

A detector box is turned into a square crop centred on the box, `margin` times its longer side
(1.15: the whole face and a little around it; MTCNN's box already spans brow to chin). Parts of the
square outside the picture are black, so a face at the frame edge still yields a full-size crop.
Training, `bench_deepfake.py` and `score_video` all go through
`crop_face`, so the classifier always sees faces framed the same way.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

MARGIN = 1.15


def crop_square(box: Sequence[float], margin: float = MARGIN) -> tuple[float, float, float]:
    """(x0, y0, side) of the square crop for an (x1, y1, x2, y2) box."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1) * margin
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return cx - side / 2, cy - side / 2, side


def crop_face(image: np.ndarray, box: Sequence[float], size: int, margin: float = MARGIN,
              landmarks: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Cut the recipe crop from an HxWx3 uint8 image and resize it to size x size.

    Returns the crop and, when given, the landmarks (N, 2) mapped into crop pixels."""
    x0, y0, side = crop_square(box, margin)
    s = size / side
    # One affine warp: translate the square's corner to the origin and scale to `size`.
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    lms = None
    if landmarks is not None:
        lms = (np.asarray(landmarks, np.float32) - [x0, y0]) * s
    return crop, lms
