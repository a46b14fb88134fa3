"""The built-in example: a short clip made at run time from the public-domain NASA astronaut portrait
that scikit-image ships, with a moving, zooming camera and a tone on an AAC audio track, so the demo
exercises detection, tracking, covering, audio copy and encoding for real."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import cv2
import numpy as np


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # 512x512 RGB, public domain (NASA)


def make_demo_clip(path: str, seconds: float = 4.0, fps: int = 25, size: tuple[int, int] = (640, 360)) -> str:
    """Write the demo clip to `path` (mp4) and return it."""
    src = astronaut()
    w, h = size
    n = int(seconds * fps)
    canvas = np.zeros((720, 1280, 3), np.uint8)
    canvas[:] = (40, 44, 52)
    # Two copies of the portrait on a wide canvas: two "people" for the tracker.
    for x0, scale in ((120, 1.0), (760, 0.8)):
        s = cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y0 = 150
        canvas[y0:y0 + s.shape[0], x0:x0 + s.shape[1]] = s
    with av.open(path, "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv420p"
        vs.codec_context.options = {"crf": "20", "preset": "veryfast"}
        aus = out.add_stream("aac", rate=44100)
        out.metadata["title"] = "vidgan demo (NASA astronaut portrait, public domain)"
        for i in range(n):
            t = i / max(1, n - 1)
            # Camera: pan left to right and zoom in, with a little shake.
            zoom = 1.0 + 0.3 * t
            cw, ch = 800 / zoom, 450 / zoom
            cx = 400 + 500 * t + 6 * np.sin(i * 0.7)
            cy = 330 + 4 * np.cos(i * 0.9)
            m = np.array([[w / cw, 0, -(cx - cw / 2) * w / cw], [0, h / ch, -(cy - ch / 2) * h / ch]],
                         dtype=np.float32)
            frame = cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        sr, spf = 44100, 1024
        total = int(seconds * sr)
        for start in range(0, total, spf):
            k = np.arange(start, min(total, start + spf))
            tone = (0.2 * np.sin(2 * np.pi * 440 * k / sr)).astype(np.float32)[None, :]
            af = av.AudioFrame.from_ndarray(np.repeat(tone, 2, axis=0), format="fltp", layout="stereo")
            af.sample_rate = sr
            af.pts = start
            af.time_base = Fraction(1, sr)
            for p in aus.encode(af):
                out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
    return path


def side_by_side(original: str, anonymized: str, png: str, index: int = 50) -> str:
    """Save a before/after PNG of frame `index` of two videos."""
    from .media import read_frame

    a = read_frame(original, index).image
    b = read_frame(anonymized, index).image
    cv2.imwrite(png, cv2.cvtColor(np.concatenate([a, b], axis=1), cv2.COLOR_RGB2BGR))
    return png


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
