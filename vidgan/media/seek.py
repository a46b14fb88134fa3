"""Random access to the frames of one input, by the same index the streaming reader gives them.

`VideoReader` streams frames front to back, which is what the pipeline wants. A player (the GUI's
preview) wants frame *i* now, then *i + 1*, then maybe *i - 30*. `FrameSeeker` serves that:

- at open it demuxes the video packets once (no decoding; fast) and sorts their timestamps, so
  frame index *i* maps to the *i*-th presentation timestamp, exactly as `VideoReader` counts;
- `frame(i)` continues decoding when *i* is the next frame, otherwise seeks to the key frame at or
  before that timestamp and decodes forward to it;
- recently decoded frames are kept in a cache of bounded size (`cache_mb`), so stepping back a
  frame or two is free;
- where the table cannot be trusted (a packet without timestamp, a container that cannot seek, a
  decoded timestamp missing from the table) it falls back to decoding from the start, which is slow
  but always agrees with `VideoReader`.

Frames are upright RGB `Frame`s with the same index, pts and time as `VideoReader` yields.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Iterator, Optional

import av

from ..errors import MediaError
from ..types import Frame
from .reader import VideoReader, upright

log = logging.getLogger(__name__)


class FrameSeeker:
    """`FrameSeeker(path).frame(i)` -> the `Frame` with index `i`. Not thread-safe: one user at a time."""

    def __init__(self, path: str, cache_mb: float = 128):
        self.path = path
        with VideoReader(path) as reader:  # one-line MediaError for bad inputs, and the VideoInfo
            self.info = reader.info
            self._image_frame = next(iter(reader)) if self.info.is_image else None
        self._cache: OrderedDict[int, Frame] = OrderedDict()
        frame_bytes = max(1, self.info.width * self.info.height * 3)
        self._cache_size = max(2, int(cache_mb * 2 ** 20) // frame_bytes)
        self._container = None
        self._decoder: Optional[Iterator[Frame]] = None
        self._next_index: Optional[int] = None  # index the running decoder yields next
        self._pts: Optional[list[int]] = None
        if self.info.is_image:
            self.frame_count = 1
            return
        self._container = av.open(path, mode="r")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._pts = self._packet_timestamps()
        self.frame_count = len(self._pts) if self._pts is not None else (self.info.frame_count or 0)
        self._index_of = {p: i for i, p in enumerate(self._pts)} if self._pts is not None else {}

    # -- the timestamp table ------------------------------------------------------------------
    def _packet_timestamps(self) -> Optional[list[int]]:
        pts = []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue  # the flush packet at the end
                if packet.pts is None:
                    return None
                pts.append(int(packet.pts))
        except av.error.FFmpegError:
            return None
        finally:
            self._rewind()
        pts.sort()
        if len(set(pts)) != len(pts):
            return None
        return pts

    def _rewind(self) -> None:
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False) \
            if self._seekable() else self._reopen()
        self._decoder = None
        self._next_index = None

    def _seekable(self) -> bool:
        return self._container.format.name not in ("gif",)

    def _reopen(self) -> None:
        self._container.close()
        self._container = av.open(self.path, mode="r")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    # -- decoding -----------------------------------------------------------------------------
    def _decode(self) -> Iterator[tuple[int, object]]:
        """Decoded frames from the current container position as (pts, av.VideoFrame)."""
        last_pts = None
        for packet in self._container.demux(self._stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for vf in frames:
                pts = vf.pts if vf.pts is not None else (last_pts + 1 if last_pts is not None else 0)
                last_pts = pts
                yield pts, vf

    def _to_frame(self, index: int, pts: int, vf) -> Frame:
        tb = self.info.time_base
        image = upright(vf.to_ndarray(format="rgb24"), self.info.rotation)
        return Frame(index=index, pts=pts, time=float(pts * tb), image=image, duration=vf.duration or None)

    def _remember(self, frame: Frame) -> None:
        self._cache[frame.index] = frame
        self._cache.move_to_end(frame.index)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _linear(self, index: int) -> Frame:
        """Decode from the start, counting frames like VideoReader does."""
        self._rewind()
        i = 0
        for pts, vf in self._decode():
            if i == index:
                frame = self._to_frame(i, pts, vf)
                self._remember(frame)
                return frame
            i += 1
        raise MediaError(f"frame {index} is past the end", self.path)

    def _indexed(self, source: Iterator[tuple[int, object]]) -> Iterator[Frame]:
        for pts, vf in source:
            i = self._index_of.get(pts)
            if i is None:
                raise LookupError(pts)
            yield self._to_frame(i, pts, vf)

    def frame(self, index: int) -> Frame:
        if index < 0 or (self.frame_count and index >= self.frame_count):
            raise MediaError(f"frame {index} is outside 0..{max(0, self.frame_count - 1)}", self.path)
        if self._image_frame is not None:
            return self._image_frame
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        if self._pts is None:
            return self._linear(index)
        try:
            if self._decoder is None or self._next_index is None or not (
                    self._next_index <= index <= self._next_index + 4):
                # Far from where the decoder is: jump to the key frame before the wanted timestamp.
                if self._seekable():
                    self._container.seek(self._pts[index], stream=self._stream, backward=True,
                                         any_frame=False)
                else:
                    self._reopen()
                self._decoder = self._indexed(self._decode())
            for frame in self._decoder:
                self._remember(frame)
                self._next_index = frame.index + 1
                if frame.index == index:
                    return frame
                if frame.index > index:  # the seek landed after the wanted frame: play safe
                    break
        except (LookupError, av.error.FFmpegError) as exc:
            log.debug("seek table does not match %s (%s); decoding from the start", self.path, exc)
            self._pts = None
        self._decoder = None
        self._next_index = None
        return self._linear(index)

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "FrameSeeker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
