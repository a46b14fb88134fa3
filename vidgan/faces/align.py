"""Five-point face alignment: a similarity warp from MTCNN landmarks to a canonical square crop,
its inverse, and a feathered paste-back.

Why a similarity (rotation + uniform scale + shift) and not a full affine: five noisy landmarks
would let an affine shear the face; a similarity keeps its proportions, so what a network sees is the
face as photographed, only upright and at a fixed scale.

The canonical landmark positions are the mean MTCNN landmarks over 100 UTKFace chips (the crops the
face models are trained on), made left-right symmetric. So `margin=0` reproduces the framing of the
training data (a tight crop from the brows to the chin); a positive `margin` adds that fraction of
the crop side on every side (more context: hair, jaw, background).

Every function works on a 2x3 matrix `M` that maps frame pixels to crop pixels (OpenCV convention,
pixel centres at integer coordinates), so the same helpers serve GAN translation, GAN
de-identification and the deepfake detector's face crops.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from ..types import Box

# Mean MTCNN landmarks on UTKFace's aligned 200x200 chips, as fractions of the chip side:
# left eye, right eye, nose tip, left and right mouth corners (image left/right, MTCNN's order).
TEMPLATE = np.array([[0.268, 0.210], [0.732, 0.210], [0.500, 0.475], [0.296, 0.680], [0.704, 0.680]],
                    dtype=np.float64)

# Where those landmarks sit inside MTCNN's face box (fractions of the box), for boxes that carry no
# landmarks (hand-drawn boxes, tracks never seen with landmarks): same measurement, symmetrised.
BOX_TEMPLATE = np.array([[0.268, 0.380], [0.732, 0.380], [0.500, 0.588], [0.296, 0.750], [0.704, 0.750]],
                        dtype=np.float64)


def template_points(size: int, margin: float = 0.0) -> np.ndarray:
    """The 5 canonical landmark positions in a `size` x `size` crop with `margin` added per side."""
    return (TEMPLATE + margin) / (1.0 + 2.0 * margin) * size


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping points `src` onto `dst`; 2x3."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    # In 2-D, Umeyama's rotation times scale is the complex least-squares factor d ~ (a + ib) s:
    # closed form, no SVD (the same matrix; a few times faster per face).
    var_s = (s * s).sum()
    if var_s > 0:
        a = (s * d).sum() / var_s
        b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / var_s
    else:
        a, b = 1.0, 0.0
    m = np.empty((2, 3))
    m[:, :2] = ((a, -b), (b, a))
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def align_matrix(landmarks: Sequence[Sequence[float]], size: int, margin: float = 0.0) -> np.ndarray:
    """2x3 matrix taking frame pixels to a `size` x `size` canonical crop of the face whose 5 MTCNN
    landmarks are given (x, y in frame pixels)."""
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    return similarity(pts, template_points(size, margin))


def landmarks_from_box(box: Box) -> np.ndarray:
    """Stand-in landmarks for a face box without any (the average face placed in the box)."""
    return BOX_TEMPLATE * [box.width, box.height] + [box.x1, box.y1]


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop pixels -> frame pixels)."""
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def transform_points(points: Sequence[Sequence[float]], m: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def rescale(m: np.ndarray, crop_factor: float = 1.0, frame_factor: float = 1.0) -> np.ndarray:
    """The matrix for a crop `crop_factor` times larger taken from a frame `frame_factor` times
    larger (e.g. a x4 super-resolved crop pasted into a x4 upscaled frame)."""
    out = np.asarray(m, np.float64).copy()
    out[:, :2] *= crop_factor / frame_factor
    out[:, 2] *= crop_factor
    return out


def crop_scale(m: np.ndarray) -> float:
    """Crop pixels per frame pixel (the zoom of the similarity)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m)[:, :2]))))


def warp_crop(frame: np.ndarray, m: np.ndarray, size: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Cut the aligned `size` x `size` crop out of `frame` (any dtype/channels). Shrinking by more
    than 2x first blurs the frame a little (a cheap anti-alias) so small crops do not alias."""
    zoom = crop_scale(m)
    interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    if zoom < 0.5:
        sigma = 0.5 / zoom * 0.5
        x0, y0, x1, y1 = _frame_rect(m, size, frame.shape[1], frame.shape[0], pad=int(3 * sigma) + 2)
        if x1 > x0 and y1 > y0:  # else the crop lies wholly outside the frame: all border, nothing to blur
            roi = cv2.GaussianBlur(frame[y0:y1, x0:x1], (0, 0), sigma)
            shift = np.array([[1, 0, x0], [0, 1, y0]], np.float64)
            m = _compose(m, shift)
            frame = roi
        interp = cv2.INTER_LINEAR
    return cv2.warpAffine(frame, np.asarray(m, np.float64), (size, size), flags=interp, borderMode=border)


def _compose(m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """m applied after `shift` (both 2x3): x -> m(shift(x))."""
    a = np.vstack([m, [0, 0, 1]]) @ np.vstack([shift, [0, 0, 1]])
    return a[:2]


def _frame_rect(m: np.ndarray, size: int, width: int, height: int, pad: int = 1) -> tuple[int, int, int, int]:
    """Bounding rectangle (x0, y0, x1, y1) in the frame of the crop's footprint, clipped to it."""
    corners = transform_points([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], invert(m))
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - pad, 0, width))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - pad, 0, height))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + pad + 1, 0, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + pad + 1, 0, height))
    return x0, y0, x1, y1


def crop_mask(size: int, feather: float = 0.12, shape: str = "ellipse", inset: float = 0.0) -> np.ndarray:
    """Float32 alpha in crop coordinates: 1 in the middle, fading to 0 at the crop border over
    `feather` (fraction of the side), so a pasted crop never shows a seam. `shape` "ellipse" keeps
    the corners (hair, background) from the frame; "box" pastes the whole square."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1  # -1..1 across the crop
    ax = 1.0 - 2.0 * inset
    if shape == "ellipse":
        r = np.sqrt(c[None, :] ** 2 + c[:, None] ** 2) / ax
    elif shape == "box":
        r = np.maximum(np.abs(c)[None, :], np.abs(c)[:, None]) / ax
    else:
        raise ValueError(f"mask shape must be ellipse or box, got {shape!r}")
    f = max(feather, 1e-6) * 2
    return np.clip((1.0 - r) / f, 0.0, 1.0).astype(np.float32)


def match_color(crop: np.ndarray, reference: np.ndarray, mask: Optional[np.ndarray] = None,
                source: Optional[np.ndarray] = None) -> np.ndarray:
    """Reinhard colour transfer: give `crop` the per-channel mean and spread (in Lab) of `reference`
    over `mask` (float weights, or uint8/bool: the nonzero pixels, equally weighted). Hides a colour
    cast of a generated face against the original skin and light.

    `source`: measure the cast on this image instead of `crop` (same size), then apply it to `crop`:
    e.g. the generator's raw output around the face against the original there, so the face's own
    pixels are never consulted."""
    a = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)
    s = a if source is None else cv2.cvtColor(source, cv2.COLOR_RGB2LAB)
    b = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB)
    if mask is not None and mask.dtype in (np.uint8, np.bool_):  # a selection: OpenCV's masked statistics
        sel8 = np.ascontiguousarray(mask, np.uint8)

        def mean_sd(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mu, sd = cv2.meanStdDev(lab, mask=sel8)
            return mu.ravel().astype(np.float32), sd.ravel().astype(np.float32) + np.float32(1e-3)
    else:
        # The statistics read only the pixels the mask weighs (a face crop's context ring is a small
        # part of it): weighted sums as dot products over those pixels, not over whole float copies.
        w = np.ones(a.shape[0] * a.shape[1], np.float32) if mask is None else mask.reshape(-1).astype(np.float32)
        sel = np.flatnonzero(w)
        w = w[sel] / max(float(w[sel].sum()), 1e-6)

        def mean_sd(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = lab.reshape(-1, 3)[sel].astype(np.float32)
            mu = w @ x
            return mu, np.sqrt(w @ (x - mu) ** 2) + 1e-3

    (mu_a, sd_a), (mu_b, sd_b) = mean_sd(s), mean_sd(b)
    # The transfer is one affine map per Lab channel of 8-bit values: as a 256-entry table per channel
    # (the values the float formula gives, truncated), applied by cv2.LUT in one pass.
    levels = np.arange(256, dtype=np.float32)[:, None]
    lut = np.clip((levels - mu_a) * (sd_b / sd_a) + mu_b, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.LUT(a, lut[None]), cv2.COLOR_LAB2RGB)


def warp_back(crop: np.ndarray, m: np.ndarray, width: int, height: int, mask: Optional[np.ndarray] = None,
              offset: tuple[int, int] = (0, 0)):
    """The first half of `paste_back`: `crop` (aligned by `m`, frame -> crop) and its `mask` warped
    into a `width` x `height` window of the frame starting at `offset`. Returns (x0, y0, x1, y1) in
    the window, the warped crop and its alpha there, or None when the footprint misses the window.
    Separate so that the warps of several faces can run side by side and blend in order after."""
    size = crop.shape[0]
    if mask is None:
        mask = crop_mask(size)
    if offset != (0, 0):
        m = _compose(np.asarray(m, np.float64), np.array([[1, 0, offset[0]], [0, 1, offset[1]]], np.float64))
    x0, y0, x1, y1 = _frame_rect(m, size, width, height)
    if x1 <= x0 or y1 <= y0:
        return None
    # frame pixel (x0 + i, y0 + j) -> crop pixel: m applied after shifting by (x0, y0)
    mr = _compose(np.asarray(m, np.float64), np.array([[1, 0, x0], [0, 1, y0]], np.float64))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    patch = cv2.warpAffine(crop, mr, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, mr, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    return (x0, y0, x1, y1), patch, alpha


def blend_warped(frame: np.ndarray, warped, out_alpha: Optional[np.ndarray] = None) -> np.ndarray:
    """The second half of `paste_back`: a copy of `frame` with `warp_back`'s result blended in."""
    out = frame.copy()
    if warped is None:
        return out
    (x0, y0, x1, y1), patch, alpha = warped
    region = out[y0:y1, x0:x1].astype(np.float32)
    a = alpha[..., None] if region.ndim == 3 else alpha
    blended = region + (patch.astype(np.float32) - region) * a
    if frame.dtype == np.uint8:
        blended = np.clip(blended + 0.5, 0, 255)
    out[y0:y1, x0:x1] = blended.astype(frame.dtype)
    if out_alpha is not None:
        np.maximum(out_alpha[y0:y1, x0:x1], alpha, out=out_alpha[y0:y1, x0:x1])
    return out


def paste_back(frame: np.ndarray, crop: np.ndarray, m: np.ndarray, mask: Optional[np.ndarray] = None,
               color_reference: Optional[np.ndarray] = None, out_alpha: Optional[np.ndarray] = None,
               offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Warp `crop` (aligned by `m`, frame -> crop) back into a copy of `frame` and blend it in with
    `mask` (crop coordinates; default: `crop_mask`). Only the crop's footprint is touched.

    `color_reference`: a crop of the original face (same alignment) whose colours the new crop is
    matched to first. `out_alpha`: a frame-sized float32 array that receives max(alpha) of this
    paste (to know later which pixels a face touched). `offset` (x, y): `frame` is a window of the
    image `m` refers to, starting there (e.g. one face's patch: no copy of the whole frame)."""
    if mask is None:
        mask = crop_mask(crop.shape[0])
    if color_reference is not None:
        crop = match_color(crop, color_reference, mask)
    h, w = frame.shape[:2]
    return blend_warped(frame, warp_back(crop, m, w, h, mask, offset), out_alpha)
