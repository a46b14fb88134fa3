"""Cut one video into segments at key frames, process them apart, join them without re-encoding.

Used by the distributed batch (vidgan/distributed.py) to spread one long video over many workers:

1. `packet_table(path)`: demux the video packets once (no decoding) and keep every presentation
   timestamp (sorted, so frame index *i* is the *i*-th pts, as `VideoReader` counts) and the pts of
   the key frames.
2. `plan_segments(table, seconds)`: segments of about `seconds` that start at key frames. A segment
   *owns* the frames whose pts lies in [start_pts, end_pts).
3. `SegmentReader`: a reader (same interface as `VideoReader`: `info`, `path`, iterate for `Frame`s)
   over one segment *plus context* on both sides, so a tracker sees faces coming and going across
   the boundary. Frames are numbered from 0 at the first context frame; `own` says which local
   indices belong to the segment.
4. `encode_segment(...)`: encode the owned frames (their original pts) with `VideoWriter`, video
   only, into a part file in the output's container format.
5. `concat_segments(...)`: remux the parts' encoded video packets, in order, into the final file,
   and copy audio, subtitles and metadata once from the original (the `VideoWriter` machinery),
   so timestamps are exactly the input's and nothing is encoded twice.

Only formats that store real timestamps are split (MP4/MOV/Matroska/WebM): AVI, Ogg, GIF and
MPEG-TS outputs are processed whole. Every step checks the frame count against the table and
raises `MediaError` when something does not add up, so a caller can fall back to a whole-file run.
"""

from __future__ import annotations

import bisect
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator, Optional

import av

from ..errors import MediaError
from ..types import Frame, VideoInfo
from .reader import VideoReader, upright, yuv420p_planes
from .writer import EncodeOptions, VideoWriter, output_format_for

log = logging.getLogger(__name__)

# Output container formats whose video packets can be cut and concatenated with exact timestamps.
SEGMENTABLE_FORMATS = {"mp4", "mov", "matroska", "webm"}


@dataclass(frozen=True)
class PacketTable:
    """Every frame's pts (sorted: position = frame index) and the key frames' pts, from one demux."""

    pts: list[int]
    keyframes: list[int]
    time_base: Fraction

    @property
    def duration(self) -> float:
        if len(self.pts) < 2:
            return 0.0
        return float((self.pts[-1] - self.pts[0]) * self.time_base)

    def index_of(self, pts: int) -> int:
        """Index of the first frame whose pts is >= `pts`."""
        return bisect.bisect_left(self.pts, pts)


def packet_table(path: str) -> Optional[PacketTable]:
    """Demux the first video stream's packets (no decoding). None when the table cannot be trusted
    (a packet without pts, duplicate pts, no video): such files are processed whole."""
    try:
        container = av.open(path, mode="r")
    except av.error.FFmpegError:
        return None
    try:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        pts, keys = [], []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's flush packet
            if packet.pts is None:
                return None
            pts.append(int(packet.pts))
            if packet.is_keyframe:
                keys.append(int(packet.pts))
        pts.sort()
        if not pts or len(set(pts)) != len(pts):
            return None
        return PacketTable(pts=pts, keyframes=sorted(keys), time_base=Fraction(stream.time_base))
    except av.error.FFmpegError:
        return None
    finally:
        container.close()


def keyframe_times(path: str) -> list[float]:
    """Seconds of every key frame of the first video stream (empty when unknown)."""
    table = packet_table(path)
    return [float(p * table.time_base) for p in table.keyframes] if table else []


@dataclass(frozen=True)
class Segment:
    """Frames [first_frame, first_frame + frames) of a video; pts in [start_pts, end_pts)."""

    number: int
    first_frame: int
    frames: int
    start_pts: int
    end_pts: Optional[int]  # None: to the end of the video

    def owns(self, pts: int) -> bool:
        return pts >= self.start_pts and (self.end_pts is None or pts < self.end_pts)


def plan_segments(table: PacketTable, seconds: float) -> list[Segment]:
    """Split at the first key frame at least `seconds` after the current segment's start.

    A video no longer than 1.5 x `seconds` stays one segment, and so does a last piece shorter than
    half a segment (it joins the one before), so no worker gets a sliver."""
    if seconds <= 0:
        raise ValueError("segment length must be positive")
    pts, tb = table.pts, table.time_base
    if table.duration <= 1.5 * seconds:
        return [Segment(0, 0, len(pts), pts[0], None)]
    step = int(seconds / tb)
    cuts = [0]  # frame indices where segments start
    for k in table.keyframes:
        i = table.index_of(k)
        if i <= cuts[-1] or i >= len(pts):
            continue
        if k - pts[cuts[-1]] >= step:
            cuts.append(i)
    if len(cuts) > 1 and (pts[-1] - pts[cuts[-1]]) < step // 2:
        cuts.pop()
    segments = []
    for n, first in enumerate(cuts):
        last = cuts[n + 1] if n + 1 < len(cuts) else len(pts)
        segments.append(Segment(n, first, last - first, pts[first],
                                pts[last] if last < len(pts) else None))
    return segments


class SegmentReader:
    """Frames of one segment with `before`/`after` seconds of context, numbered from 0.

    Same interface as `VideoReader` where the pipeline needs it (`info`, `path`, iteration,
    `skipped_packets`). `own` is the range of local indices that belong to the segment itself;
    `first_index` is the global index of local frame 0. With `align` > 1 the context starts on a
    global index that is a multiple of `align` (so `detect_every` picks the same frames as a
    whole-file run)."""

    def __init__(self, path: str, table: PacketTable, segment: Segment, before: float = 1.0,
                 after: float = 1.0, align: int = 1, keep_yuv: bool = False):
        self.path = path
        self.keep_yuv = keep_yuv  # as VideoReader's
        self.skipped_packets = 0
        with VideoReader(path) as reader:
            self.info: VideoInfo = reader.info
        pts, tb = table.pts, table.time_base
        lo = table.index_of(segment.start_pts - int(before / tb))
        lo -= lo % max(1, align)
        own_end = segment.first_frame + segment.frames
        hi = len(pts) if segment.end_pts is None else min(
            len(pts), table.index_of(segment.end_pts + int(after / tb) + 1))
        self.first_index = lo
        self.own = range(segment.first_frame - lo, own_end - lo)
        self._pts = pts[lo:hi]
        self._local = {p: i for i, p in enumerate(self._pts)}

    def __len__(self) -> int:
        return len(self._pts)

    def _decode_from(self, container, stream, seek: bool) -> Iterator:
        if seek:
            container.seek(self._pts[0], stream=stream, backward=True, any_frame=False)
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                self.skipped_packets += 1

    def __iter__(self) -> Iterator[Frame]:
        container = av.open(self.path, mode="r")
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = self._decode_from(container, stream, seek=True)
            first = next(frames, None)
            if first is None or first.pts is None or first.pts > self._pts[0]:
                # The seek landed past the first wanted frame: decode from the start instead.
                container.close()
                container = av.open(self.path, mode="r")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                frames = self._decode_from(container, stream, seek=False)
                first = next(frames, None)
            expected = 0
            vf = first
            while vf is not None and expected < len(self._pts):
                if vf.pts is not None and vf.pts >= self._pts[0]:
                    local = self._local.get(vf.pts)
                    if local != expected:
                        raise MediaError(f"segment decode out of step: frame pts {vf.pts} is not the "
                                         f"expected {self._pts[expected]}", self.path)
                    image = upright(vf.to_ndarray(format="rgb24"), self.info.rotation)
                    yield Frame(index=local, pts=int(vf.pts), time=float(vf.pts * self.info.time_base),
                                image=image, duration=vf.duration or None,
                                yuv=yuv420p_planes(vf) if self.keep_yuv else None)
                    expected += 1
                vf = next(frames, None)
            if expected != len(self._pts):
                raise MediaError(f"segment decode gave {expected} of {len(self._pts)} frames", self.path)
        except av.error.FFmpegError as exc:
            raise MediaError(f"segment decode failed: {exc.strerror or exc}", self.path) from None
        finally:
            container.close()

    def close(self) -> None:
        pass

    def __enter__(self) -> "SegmentReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def part_path(folder: str, output: str, number: int) -> str:
    """Where segment `number` of `output` is encoded (same extension: same container format)."""
    return os.path.join(folder, f"part{number:05d}{os.path.splitext(output)[1].lower()}")


def encode_segment(path: str, info: VideoInfo, items: Iterable[tuple],
                   options: EncodeOptions = EncodeOptions()) -> int:
    """Encode (frame, upright image[, changed regions]) items at their own pts into `path`, video
    only (`VideoWriter.write`'s arguments). Returns the number of frames written."""
    writer = VideoWriter(path, info, source=None, options=options)
    try:
        for item in items:
            writer.write(*item)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return writer.frames_written


class _PacketWriter(VideoWriter):
    """A `VideoWriter` whose video stream takes packets already encoded (from the part files)
    instead of pictures; audio, subtitles and metadata are copied from the source as usual."""

    def __init__(self, path: str, info: VideoInfo, template, source: Optional[str],
                 options: EncodeOptions):
        self._template = template
        self._last_dts: Optional[int] = None  # over the whole output
        self._part_dts: Optional[int] = None  # within the part being written
        super().__init__(path, info, source=source, options=options)

    def _setup_video(self, fmt: str) -> None:
        stream = self._out.add_stream_from_template(self._template)
        stream.time_base = self.info.time_base
        if self.info.rotation:
            stream.set_display_rotation(self.info.rotation)
        self.codec = stream.codec_context.name
        self._video = stream

    def write_part(self, packets: Iterable, time_base: Fraction) -> None:
        """Mux the encoded video packets of one part (timestamps in `time_base`) after the last.

        Decode timestamps get two repairs, neither of which touches pts or the packet order:
        - a demuxer that stores no dts (Matroska) reports none for the first packets of a part
          (the decoder delay); they are filled backwards from the first known dts;
        - each part's encoder started its decode clock before its first frame, so at a join that
          clock can overlap the previous part's last packets (variable frame rate); overlapping
          dts are moved up, never past the packet's pts."""
        tb = self.info.time_base
        head: list = []  # leading packets without dts, waiting for the first known one
        for packet in packets:
            if packet.size == 0:
                continue
            pts = packet.pts if time_base == tb else _rescale(packet.pts, time_base, tb)
            dts = packet.dts if time_base == tb else _rescale(packet.dts, time_base, tb)
            if dts is None and (head or self._part_dts is None):
                head.append((packet, pts))
                continue
            if head:
                self._flush_head(head, dts)
                head = []
            self._mux_part_packet(packet, pts, dts)
        if head:
            self._flush_head(head, None)
        self._part_dts = None

    def _flush_head(self, head: list, next_dts: Optional[int]) -> None:
        dts_list: list[int] = []
        upper = next_dts
        for _packet, pts in reversed(head):
            d = pts if upper is None else min(pts, upper - 1)
            dts_list.append(d)
            upper = d
        for (packet, pts), dts in zip(head, reversed(dts_list)):
            self._mux_part_packet(packet, pts, dts)

    def _mux_part_packet(self, packet, pts: Optional[int], dts: Optional[int]) -> None:
        if dts is None:
            dts = (self._last_dts + 1) if self._last_dts is not None else pts
        if self._last_dts is not None and dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1
        if pts is not None and dts is not None and dts > pts:
            raise MediaError("cannot join segments: decode timestamps overlap", self.path)
        packet.stream = self._video
        packet.time_base = self.info.time_base
        packet.pts, packet.dts = pts, dts
        self._last_dts = self._part_dts = dts
        self._mux_video([packet])
        self.frames_written += 1


def _rescale(value: Optional[int], src: Fraction, dst: Fraction) -> Optional[int]:
    return None if value is None else int(round(value * src / dst))


def concat_segments(parts: list[str], output: str, info: VideoInfo, source: str,
                    options: EncodeOptions = EncodeOptions(), expected_frames: Optional[int] = None,
                    commit: bool = True) -> _PacketWriter:
    """Join the part files' video packets (no re-encode) into `output`, with the audio, subtitle
    streams and metadata of `source`. Raises MediaError when the parts do not fit together
    (different codec settings, frame count off). Returns the writer (committed unless
    `commit=False`, for a caller that writes companion files first)."""
    if not parts:
        raise MediaError("no segments to join", output)
    output_format_for(output)  # one-line error for an unknown extension
    first = av.open(parts[0], mode="r")
    try:
        template = first.streams.video[0]
        extradata = bytes(template.codec_context.extradata or b"")
        writer = _PacketWriter(output, info, template, source, options)
    finally:
        first.close()
    try:
        for part in parts:
            with av.open(part, mode="r") as container:
                stream = container.streams.video[0]
                if bytes(stream.codec_context.extradata or b"") != extradata:
                    raise MediaError(f"segment {os.path.basename(part)} was encoded with other "
                                     "codec headers; cannot join without re-encoding", output)
                writer.write_part(container.demux(stream), Fraction(stream.time_base))
        if expected_frames is not None and writer.frames_written != expected_frames:
            raise MediaError(f"joined {writer.frames_written} frames, expected {expected_frames}", output)
        writer.finish()
        if commit:
            writer.commit()
    except BaseException:
        writer.abort()
        raise
    return writer
