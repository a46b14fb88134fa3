"""The frame-observer interface: how stages beside the operation (the vault) see covered frames.

Lives below the pipeline so that stages can implement it without importing the job layer.
"""

from __future__ import annotations

import numpy as np

from .ops import Operation
from .types import Frame, TrackBox, VideoInfo


class FrameObserver:
    """Sees each frame as it is covered, and takes part in the output's atomic commit.

    The vault uses this to keep the original pixels of every covered region. Call order:
    `start` once, `frame` for every frame in order (`boxes` are the boxes actually covered, after
    `keep_tracks`), then `finish(temp_output)` when the output is complete under its temporary name,
    then `commit()` right after the output is moved into place — or `abort()` on any failure.
    """

    def start(self, info: VideoInfo, input_path: str, output_path: str, operation: Operation) -> None:
        pass

    def frame(self, frame: Frame, boxes: list[TrackBox], covered: np.ndarray) -> None:
        pass

    def finish(self, temp_output: str) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass
