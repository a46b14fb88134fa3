"""Pseudo-fakes made from real faces, so a detector can learn without any deepfake dataset.

Face manipulations share one step whatever made the new face: a synthesised region is pasted into
the real frame inside a face-shaped mask and blended. That leaves traces a classifier can learn:
a blending boundary, colour and sharpness that change across it, a region resampled twice (its
JPEG/sensor noise no longer matches the rest), a slight misalignment of edges. Self-blended images
(Shiohara & Yamasaki, CVPR 2022) produce exactly those traces from one real picture: take the face,
make a slightly transformed copy (scale/shift, colour, sharpness, frequency content), and blend the
copy back into the original inside a mask around the landmarks. Because the "fake" differs from its
real source only by the blend, the network cannot cheat on identity or content.

Face swaps between two different real people (aligned on their 5 landmarks, colour-matched, blended
the same way) add the identity mismatch of a real swap. Two further kinds are options of the trainer:
self-blends from a copy that has lost its fine detail (`detail_loss`, a decoder's smooth output) and
blends of a shipped generator's rendering of the face (`gan_blend`, renderings from `ganfakes`).

`strength` in [0, 1] scales how visible the traces are: training starts with strong, easy artefacts
(large colour shifts, hard mask edges) and anneals towards subtle ones (a curriculum).

Everything is numpy/OpenCV on HxWx3 uint8 RGB crops; randomness comes from a `np.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np


@dataclass
class Blend:
    """A pseudo-fake and how it was made (`mask` float32 HxW in [0, 1], zero where untouched)."""

    image: np.ndarray
    mask: np.ndarray
    kind: str  # "self" | "swap"


# -- masks ------------------------------------------------------------------------------------------
def landmark_hull(landmarks: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Points of a face-shaped polygon from MTCNN's 5 landmarks (eyes, nose, mouth corners).

    Five points only cover eyes-to-mouth; brows and chin are added along the eye-to-mouth axis, and
    the hull is expanded around its centre by a random factor so masks vary in extent."""
    p = np.asarray(landmarks, np.float32).reshape(5, 2)
    eyes, nose, mouth = p[:2], p[2], p[3:]
    eye_c, mouth_c = eyes.mean(0), mouth.mean(0)
    down = mouth_c - eye_c  # eye line -> mouth line
    across = eyes[1] - eyes[0]
    brow = eyes - down * rng.uniform(0.3, 0.55)
    chin = mouth_c + down * rng.uniform(0.25, 0.5)
    cheeks = np.stack([eyes[0] - across * rng.uniform(0.1, 0.3) + down * 0.5,
                       eyes[1] + across * rng.uniform(0.1, 0.3) + down * 0.5])
    jaw = mouth + np.stack([-across, across]) * rng.uniform(0.0, 0.15) + down * 0.2
    pts = np.concatenate([brow, cheeks, jaw, chin[None], nose[None], mouth])
    centre = pts.mean(0)
    grow = scale * rng.uniform(0.9, 1.1, size=(len(pts), 1))  # a little irregularity per point
    return centre + (pts - centre) * grow


def lower_face_points(landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A polygon over the nose, mouth and chin only: where reenactment methods (Face2Face,
    NeuralTextures) re-render the face while the eyes and the face outline stay real."""
    p = np.asarray(landmarks, np.float32).reshape(5, 2)
    eyes, nose, mouth = p[:2], p[2], p[3:]
    down = mouth.mean(0) - eyes.mean(0)
    across = mouth[1] - mouth[0]
    top = nose - down * rng.uniform(0.1, 0.3)
    corners = mouth + np.stack([-across, across]) * rng.uniform(0.15, 0.4)
    chin = mouth.mean(0) + down * rng.uniform(0.3, 0.55)
    cheeks = nose + np.stack([-across, across]) * rng.uniform(0.5, 0.8)
    return np.concatenate([top[None], cheeks, corners, chin[None]])


def ellipse_points(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A face ellipse for a centred crop when no landmarks are known (the recipe crop centres the
    face, so the inner ellipse lies on it)."""
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cx, cy = w * rng.uniform(0.47, 0.53), h * rng.uniform(0.5, 0.56)
    ax, ay = w * rng.uniform(0.22, 0.3), h * rng.uniform(0.28, 0.36)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def face_mask(shape: tuple[int, int], landmarks: Optional[np.ndarray], rng: np.random.Generator,
              strength: float = 0.5, lower: bool = False) -> np.ndarray:
    """A soft blending mask, float32 HxW in [0, 1]: landmark hull (or face ellipse; with `lower` and
    landmarks, the nose-mouth-chin region only), randomly eroded or dilated, edges blurred by a random
    amount (sharper edges when `strength` is high), and a random overall opacity (lower only when the
    curriculum asks for subtle fakes)."""
    h, w = shape
    if landmarks is None:
        pts = ellipse_points(h, w, rng)
    else:
        pts = lower_face_points(landmarks, rng) if lower else landmark_hull(landmarks, rng)
    hard = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(hard, np.round(cv2.convexHull(pts.astype(np.float32))).astype(np.int32)
                       .reshape(-1, 2), 1)
    # Erode or dilate by up to ~4 % of the crop: the edge of the blend moves on and off the face.
    k = int(rng.integers(1, max(2, int(0.03 * h))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    hard = cv2.erode(hard, kernel) if rng.random() < 0.5 else cv2.dilate(hard, kernel)
    # Blur the edge: hard edges early in the curriculum, wide soft ones later.
    max_sigma = 0.5 + (1.0 - strength) * 0.04 * h
    sigma = rng.uniform(0.3, max_sigma)
    if sigma > 0.4:
        # Pull the edge in by 2 sigma first, so the blurred ramp ends at the hull rather than past it.
        r = int(np.ceil(2 * sigma))
        core = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        if core.sum() < 0.25 * hard.sum():
            core = hard
        mask = cv2.GaussianBlur(core.astype(np.float32), (0, 0), sigma)
    else:
        mask = hard.astype(np.float32)
    # Renormalise so the core is 1; cut the blur's faint tail so the mask ends near the face.
    mask = np.clip(mask / max(mask.max(), 1e-6), 0, 1)
    mask[mask < 0.02] = 0.0
    opacity = 1.0 if rng.random() < 0.5 + 0.5 * strength else rng.uniform(0.5, 1.0)
    return (mask * opacity).astype(np.float32)


# -- source transforms ------------------------------------------------------------------------------
def _colour(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Shift hue/saturation/brightness and per-channel gains: the colour mismatch of a pasted face."""
    out = img.astype(np.float32)
    amp = 0.03 + 0.12 * strength
    gains = 1.0 + rng.uniform(-amp, amp, size=3)
    bias = rng.uniform(-amp, amp, size=3) * 255 * 0.5
    out = out * gains + bias
    contrast = 1.0 + rng.uniform(-amp, amp)
    out = (out - out.mean()) * contrast + out.mean()
    return np.clip(out, 0, 255).astype(np.uint8)


def _sharpness(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Blur or sharpen: generated faces are often smoother (or over-sharpened) than their frame."""
    if rng.random() < 0.5:
        sigma = rng.uniform(0.4, 0.8 + 1.2 * strength)
        return cv2.GaussianBlur(img, (0, 0), sigma)
    blur = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.6))
    amount = rng.uniform(0.3, 0.6 + 1.0 * strength)
    return cv2.addWeighted(img, 1 + amount, blur, -amount, 0)


def _frequency(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Resample through a lower resolution (a generator's output size) and optionally re-JPEG:
    the pasted region's high frequencies and compression grid no longer match the frame's."""
    h, w = img.shape[:2]
    f = rng.uniform(0.45 - 0.15 * strength, 0.9)
    small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
    out = cv2.resize(small, (w, h), interpolation=[cv2.INTER_LINEAR, cv2.INTER_CUBIC][int(rng.integers(2))])
    if rng.random() < 0.5:
        q = int(rng.integers(40, 90))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


def _warp(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Small scale and shift: the pasted face's edges no longer line up with the frame's."""
    h, w = img.shape[:2]
    amp = 0.01 + 0.04 * strength
    s = 1.0 + rng.uniform(-amp, amp)
    tx, ty = rng.uniform(-amp, amp, size=2) * np.array([w, h])
    m = np.array([[s, 0, (1 - s) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]], np.float32)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def detail_loss(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """What a generator's decoder does to a face: the fine detail (skin texture, teeth, hair strands)
    is gone. An autoencoder or renderer trained with a pixel loss predicts the mean of the plausible
    faces, which is smooth (the reason SRGAN adds an adversarial term), and its 64-256 px output is
    then upscaled into the frame. One of: resampling through a low resolution, a Gaussian blur, or an
    edge-preserving (bilateral) smoothing, plus a mild colour drift half of the time. The amount
    shrinks with `strength` but never vanishes: a decoder's output is never as sharp as the frame."""
    h, w = img.shape[:2]
    r = rng.random()
    if r < 0.4:
        f = rng.uniform(0.3, 0.55 + 0.2 * (1 - strength))
        small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=[cv2.INTER_LINEAR, cv2.INTER_CUBIC][int(rng.integers(2))])
    elif r < 0.7:
        out = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.7, 1.0 + 1.5 * strength))
    else:
        out = cv2.bilateralFilter(img, int(rng.integers(5, 10)), rng.uniform(20, 40 + 40 * strength),
                                  rng.uniform(3, 8))
    if rng.random() < 0.5:
        out = _colour(out, rng, 0.3 * strength)
    return out


def transformed_copy(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """The copy that gets blended back: a random subset (at least one) of colour, sharpness,
    frequency and geometric jitter, in random order."""
    ops = [_colour, _sharpness, _frequency, _warp]
    chosen = [op for op in ops if rng.random() < 0.6] or [ops[int(rng.integers(len(ops)))]]
    rng.shuffle(chosen)
    out = img
    for op in chosen:
        out = op(out, rng, strength)
    return out


def blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """source inside the mask, target outside; pixels where mask == 0 are exactly the target's."""
    m = mask[..., None]
    out = source.astype(np.float32) * m + target.astype(np.float32) * (1.0 - m)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[mask == 0] = target[mask == 0]
    return out


# -- the pseudo-fakes -------------------------------------------------------------------------------
def self_blend(img: np.ndarray, landmarks: Optional[np.ndarray], rng: np.random.Generator,
               strength: float = 0.5, lower: bool = False, detail: bool = False) -> Blend:
    """A self-blended image: a transformed copy of the face blended into itself (with `lower`, into
    the nose-mouth-chin region only, like a reenactment; with `detail`, the copy is the face with its
    fine detail lost, `detail_loss`, instead of a random mix of transforms)."""
    mask = face_mask(img.shape[:2], landmarks, rng, strength, lower)
    source = detail_loss(img, rng, strength) if detail else transformed_copy(img, rng, strength)
    return Blend(blend(img, source, mask), mask, "self")


def _align(source: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray, shape) -> np.ndarray:
    """Warp `source` so its 5 landmarks land on `dst_lms` (similarity transform)."""
    m, _ = cv2.estimateAffinePartial2D(np.asarray(src_lms, np.float32), np.asarray(dst_lms, np.float32))
    if m is None:
        m = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    return cv2.warpAffine(source, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)


def _match_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray, amount: float) -> np.ndarray:
    """Move the source's mean/std (in Lab, inside the mask) towards the target's by `amount`."""
    sel = mask > 0.5
    if sel.sum() < 16:
        return source
    s = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    t = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    sm, ss = s[sel].mean(0), s[sel].std(0) + 1e-3
    tm, ts = t[sel].mean(0), t[sel].std(0) + 1e-3
    matched = (s - sm) / ss * ts + tm
    out = s + (matched - s) * amount
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def face_swap(target: np.ndarray, target_lms: np.ndarray, source: np.ndarray, source_lms: np.ndarray,
              rng: np.random.Generator, strength: float = 0.5) -> Blend:
    """Another person's face, aligned on the landmarks, colour-matched (partly) and blended in."""
    mask = face_mask(target.shape[:2], target_lms, rng, strength)
    aligned = _align(source, source_lms, target_lms, target.shape[:2])
    aligned = _match_colour(aligned, target, mask, rng.uniform(0.6 - 0.4 * strength, 1.0))
    if rng.random() < 0.5:
        aligned = transformed_copy(aligned, rng, strength * 0.5)
    return Blend(blend(target, aligned, mask), mask, "swap")


def gan_blend(target: np.ndarray, rendered: np.ndarray, landmarks: Optional[np.ndarray],
              rng: np.random.Generator, strength: float = 0.5, lower_prob: float = 0.3) -> Blend:
    """A generator's re-rendering of the same crop (`ganfakes`) blended into it: the whole face, or
    (with probability `lower_prob`, when landmarks are known) the nose-mouth-chin region, the way
    reenactment methods re-render only the lower face. The rendering's colour is pulled towards the
    target's (partly, less so early in the curriculum), so the network cannot rely on colour alone."""
    lower = landmarks is not None and rng.random() < lower_prob
    mask = face_mask(target.shape[:2], landmarks, rng, strength, lower)
    source = _match_colour(rendered, target, mask, rng.uniform(0.6 - 0.4 * strength, 1.0))
    return Blend(blend(target, source, mask), mask, "gan")
