"""Solid: fill the face region with one colour."""

from __future__ import annotations

import re

import numpy as np

from ..types import TrackBox
from .base import Operation
from .masks import MaskOptions, MaskPatch


def parse_color(value: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb', 'r,g,b' or a few names -> RGB tuple."""
    names = {"black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128),
             "grey": (128, 128, 128)}
    v = value.strip().lower()
    if v in names:
        return names[v]
    if "," in v:
        parts = [p.strip() for p in v.split(",")]
        if len(parts) == 3 and all(p.isdecimal() and 0 <= int(p) <= 255 for p in parts):
            return tuple(int(p) for p in parts)  # type: ignore[return-value]
    else:
        v = v.lstrip("#")
        if re.fullmatch(r"[0-9a-f]{6}", v):
            return tuple(int(v[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    raise ValueError(f"not a colour: {value!r} (use #rrggbb, r,g,b or black/white/gray)")


class Solid(Operation):
    name = "solid"
    per_frame = True

    def __init__(self, mask: MaskOptions = MaskOptions(), color: tuple[int, int, int] = (0, 0, 0)):
        super().__init__(mask)
        self.color = np.array(color, dtype=np.uint8)

    def replacement(self, roi: np.ndarray, patch: MaskPatch, box: TrackBox) -> np.ndarray:
        return np.broadcast_to(self.color, roi.shape)
