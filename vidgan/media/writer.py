"""Encode processed frames into a faithful copy of the input (PyAV), atomically.

Faithful means: the same frame count and timestamps (VFR stays VFR), the same stored size and display
rotation, every audio and subtitle stream copied packet for packet (transcoded with a warning only
when the output container cannot hold the original codec), and the container metadata copied.

The file is written to a temporary name beside the output and renamed only when complete, so the
output path never holds a half-written file.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

import av
import numpy as np

from ..errors import OutputError
from ..types import Frame, VideoInfo
from .reader import stored

log = logging.getLogger(__name__)

# Container keys the muxer writes itself; copying them would only be overwritten or be wrong.
_SKIP_METADATA = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration"}

_FORMAT_BY_EXT = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
    ".avi": "avi", ".ogg": "ogg", ".ogv": "ogg", ".gif": "gif", ".ts": "mpegts",
    ".mts": "mpegts", ".flv": "flv",
}
# Default video codec per container; "auto" picks from here.
# AVI stores no presentation timestamps and H.264 in AVI reads back shifted, so AVI gets MPEG-4
# Part 2 (what Xvid writes) with fixed quantiser.
_CODEC_BY_FORMAT = {"webm": "libvpx", "ogg": "libvpx", "gif": "gif", "avi": "mpeg4"}
# Audio codec to transcode to when a stream cannot be copied into the output container.
_AUDIO_FALLBACK = {"webm": "libopus", "ogg": "libopus"}


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode the video stream. Defaults favour speed at visually lossless quality."""

    codec: str = "auto"  # auto: libx264 (libvpx for webm/ogg, mpeg4 for avi, gif for GIF)
    crf: Optional[int] = None  # None: 20 for x264/x265, 10 for VP8/VP9
    preset: str = "veryfast"  # x264/x265 preset
    copy_audio: bool = True  # copy (or transcode) audio and subtitle streams
    copy_metadata: bool = True  # container and stream metadata (creation time, title, location...)
    threads: int = 0  # 0 = encoder decides

    def __post_init__(self):
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise ValueError("crf must be between 0 and 63")


def _yuv_frame(yuv: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame over the (h * 3 / 2, w) array's own memory, not a copy of it: FFmpeg holds a
    reference to the array for as long as the encoder keeps the frame (libx264 and libvpx copy it in
    at once), so the array must not change after it is written (the writer is handed a fresh one
    each frame: the reader's planes or the pasted copy). `from_ndarray`'s copy held the GIL ~0.5 ms
    a 1080p frame (0.007 ms this way), the encode thread's largest GIL item. Same bytes (test)."""
    if yuv.flags.c_contiguous:
        return av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def _gif_frame(rgb: np.ndarray) -> av.VideoFrame:
    """RGB -> 256-colour frame with its own palette (octree quantisation, no dithering).

    GIF allows a local colour table per frame; a fixed palette (FFmpeg's rgb8) dithers every frame
    (mean error 17 levels on walking_pause.gif) while a per-frame palette stays near 2."""
    from PIL import Image

    q = Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                             dither=Image.Dither.NONE)
    pal = np.zeros((256, 4), np.uint8)
    pal[:, 0] = 255  # ARGB, opaque
    colours = np.asarray(q.getpalette()[:768], np.uint8).reshape(-1, 3)
    pal[: len(colours), 1:] = colours
    return av.VideoFrame.from_ndarray((np.asarray(q, np.uint8), pal), format="pal8")


# (Kr, Kb) of each YUV matrix swscale knows, by AVColorSpace number; None: swscale's default, BT.601.
_KR_KB = {None: (0.299, 0.114), 1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114),
          7: (0.212, 0.087), 9: (0.2627, 0.0593)}


@functools.lru_cache(maxsize=None)
def _rgb_to_yuv_matrix(matrix: Optional[int], full: bool = False) -> np.ndarray:
    """3x4 RGB -> limited-range YCbCr (Y 16-235, Cb/Cr 16-240), or full-range (0-255) with `full`,
    for cv2.transform; once per matrix."""
    kr, kb = _KR_KB.get(matrix, _KR_KB[None])
    kg = 1.0 - kr - kb
    ys, cs = (1.0, 1.0) if full else (219.0 / 255.0, 224.0 / 255.0)
    m = np.array([[kr * ys, kg * ys, kb * ys, 0.0 if full else 16.0],
                  [-kr / (2 - 2 * kb) * cs, -kg / (2 - 2 * kb) * cs, 0.5 * cs, 128.0],
                  [0.5 * cs, -kg / (2 - 2 * kr) * cs, -kb / (2 - 2 * kr) * cs, 128.0]], np.float32)
    m.setflags(write=False)
    return m


def rgb_to_yuv420p(rgb: np.ndarray, matrix: Optional[int], full: bool = False) -> np.ndarray:
    """RGB uint8 (even height and width) -> limited-range (`full`: full-range) YUV 4:2:0 planes as one
    (h * 3 / 2, w) array, the layout `VideoFrame.from_ndarray(..., format="yuv420p")` takes.

    What swscale does for the encoder, with `matrix`'s coefficients, in a third of its time (1080p
    on this project's 2-core machine: ~5 ms against ~15 ms for swscale's RGB24 -> YUV420P, plus
    PyAV's copy of the RGB frame): OpenCV's vectorised `transform` for the luma at full size and for
    the chroma from a 2x2 average of the RGB (chroma is linear in RGB, so averaging first is the
    same up to rounding; swscale's chroma filter differs by up to 3 levels at sharp edges)."""
    import cv2

    m = _rgb_to_yuv_matrix(matrix, full)
    h, w = rgb.shape[:2]
    out = np.empty((h * 3 // 2, w), np.uint8)
    rgb = np.ascontiguousarray(rgb)
    # 3 channels in, 3 out is OpenCV's fast path (one or two output channels take 2-15x longer)
    cv2.extractChannel(cv2.transform(rgb, m), 0, out[:h])
    uv = cv2.transform(cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA), m)
    planes = out[h:].reshape(2, h // 2, w // 2)  # U then V, each (h/2) x (w/2), packed row after row
    cv2.extractChannel(uv, 1, planes[0])
    cv2.extractChannel(uv, 2, planes[1])
    return out


def rot90_rect(rect: tuple[int, int, int, int], k: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Where the rectangle (x0, y0, x1, y1, half-open) of a `width` x `height` image lands after
    `np.rot90(image, k)` (k quarter turns counter-clockwise)."""
    x0, y0, x1, y1 = rect
    k %= 4
    if k == 1:
        return y0, width - x1, y1, width - x0
    if k == 2:
        return width - x1, height - y1, width - x0, height - y0
    if k == 3:
        return height - y1, x0, height - y0, x1
    return rect


def paste_yuv420p(yuv: np.ndarray, rgb: np.ndarray, regions: Sequence[tuple[int, int, int, int]],
                  matrix: Optional[int], rotation: int = 0, full: bool = False) -> np.ndarray:
    """`yuv` (the stored picture as `rgb_to_yuv420p` lays it out; not modified) with each region
    (x0, y0, x1, y1) of the upright `rgb` converted into it; `rotation` is the display rotation that
    turns the stored picture into `rgb`. The regions are widened to even bounds in the stored picture
    (a chroma sample covers 2x2 pixels). Returns `yuv` itself when there is nothing to paste."""
    if not regions:
        return yuv
    k = (-(rotation // 90)) % 4  # stored = np.rot90(upright, k)
    uh, uw = rgb.shape[:2]
    h, w = (uw, uh) if k % 2 else (uh, uw)  # the stored picture
    out = yuv.copy()
    planes = out[h:].reshape(2, h // 2, w // 2)
    for rect in regions:
        x0, y0, x1, y1 = rot90_rect(rect, k, uw, uh)
        x0, y0 = max(0, x0) & ~1, max(0, y0) & ~1
        x1, y1 = min(w, x1 + (x1 & 1)), min(h, y1 + (y1 & 1))
        if x1 <= x0 or y1 <= y0:
            continue
        ux0, uy0, ux1, uy1 = rot90_rect((x0, y0, x1, y1), -k, w, h)  # the same pixels, upright
        part = rgb_to_yuv420p(stored(rgb[uy0:uy1, ux0:ux1], rotation), matrix, full)
        ph = y1 - y0
        out[y0:y1, x0:x1] = part[:ph]
        uv = part[ph:].reshape(2, ph // 2, (x1 - x0) // 2)
        planes[:, y0 // 2:y1 // 2, x0 // 2:x1 // 2] = uv
    return out


def output_format_for(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in _FORMAT_BY_EXT:
        return _FORMAT_BY_EXT[ext]
    raise OutputError(f"unknown output extension '{ext or '(none)'}' "
                      f"(use one of {', '.join(sorted(_FORMAT_BY_EXT))})", path)


def check_output_path(out_path: str, input_path: Optional[str] = None) -> None:
    """One-line errors for outputs that cannot work, before any decoding starts."""
    if input_path is not None and os.path.exists(out_path) and os.path.samefile(out_path, input_path):
        raise OutputError("output path is the input file; refusing to overwrite the input", out_path)
    if input_path is not None and os.path.abspath(out_path) == os.path.abspath(input_path):
        raise OutputError("output path is the input file; refusing to overwrite the input", out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise OutputError(f"output folder does not exist: {folder}", out_path)
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}", out_path)
    if os.path.isdir(out_path):
        raise OutputError("output path is a folder", out_path)


class AtomicPath:
    """A temporary file beside `final` that becomes `final` on commit, or vanishes on abort."""

    def __init__(self, final: str):
        self.final = final
        folder = os.path.dirname(os.path.abspath(final)) or "."
        base, ext = os.path.splitext(os.path.basename(final))
        fd, self.temp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".partial{ext}", dir=folder)
        os.close(fd)

    def commit(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp, 0o666 & ~umask)  # mkstemp made it private; give it normal rights
        os.replace(self.temp, self.final)

    def abort(self) -> None:
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass


def _can_copy(fmt: str, template) -> bool:
    """Whether `fmt` accepts a stream copied from `template` (tried for real on a scratch file).

    PCM audio also gets one packet of silence and the trailer: FFmpeg's MP4 muxer takes a
    pcm_s16le stream in the header and refuses it only when the file is finished (EINVAL), which
    lost the whole output of an MKV with PCM audio written as .mp4."""
    fd, scratch = tempfile.mkstemp(suffix=".probe")
    os.close(fd)
    try:
        with av.open(scratch, mode="w", format=fmt) as probe:
            out = probe.add_stream_from_template(template)
            probe.start_encoding()
            cc = template.codec_context
            if template.type == "audio" and cc.name.startswith("pcm_"):
                channels = cc.layout.nb_channels if cc.layout else 2
                width = max(1, (cc.format.bits if cc.format else 16) // 8)
                packet = av.Packet(bytes(1024 * channels * width))
                packet.stream = out
                packet.pts = packet.dts = 0
                packet.duration = 1024
                packet.time_base = Fraction(1, cc.sample_rate or 48000)
                probe.mux(packet)
        return True
    except (av.error.FFmpegError, ValueError, NotImplementedError):
        return False
    finally:
        try:
            os.unlink(scratch)
        except FileNotFoundError:
            pass


# The usual layout for a channel count, for sources whose layout names no channels ("2 channels":
# PCM in Matroska, WAV): encoders such as AAC refuse an unordered layout.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _encodable_layout(layout) -> str:
    """The source's channel layout when it names its channels, else the usual one for its count."""
    if layout is None:
        return "stereo"
    if all(c.name != "NONE" for c in layout.channels):
        return layout.name
    return _DEFAULT_LAYOUTS.get(layout.nb_channels, "stereo")


# AVColorSpace values that are YUV matrices swscale knows (BT.709, FCC, BT.470BG, SMPTE 170M,
# SMPTE 240M, BT.2020 NCL); it indexes its coefficient table by the same numbers.
_YUV_MATRICES = (1, 4, 5, 6, 7, 9)


def yuv_matrix(info: VideoInfo) -> Optional[int]:
    """The input's YUV matrix when it is tagged with one and decoded from YUV; None: swscale's default
    (BT.601) both ways, and no tag (RGB, palette and untagged inputs)."""
    yuv = (info.pix_fmt or "").startswith(("yuv", "nv"))
    return info.colorspace if yuv and info.colorspace in _YUV_MATRICES else None


class VideoWriter:
    """Encode upright RGB frames to `path` with the input's timing, rotation, audio and metadata.

    `source` is the input file: its audio/subtitle streams are read (a second, packet-only pass over
    the file) and interleaved with the new video as it is written.
    """

    def __init__(self, path: str, info: VideoInfo, source: Optional[str] = None,
                 options: EncodeOptions = EncodeOptions()):
        self.path = path
        self.info = info
        self.options = options
        self.warnings: list[str] = []
        self.frames_written = 0
        self._last_pts: Optional[int] = None
        self._closed = False
        self._finished = False
        fmt = output_format_for(path)
        self.format = fmt
        try:
            self._atomic = AtomicPath(path)
        except OSError as exc:  # folder missing or read-only: a one-line error, not a traceback
            raise OutputError(f"cannot create the output file: {exc.strerror or exc}", path) from None
        try:
            container_options = {}
            if fmt in ("mp4", "mov"):
                # The movie timescale defaults to 1000; edit lists in it round the start offset.
                container_options["movie_timescale"] = str(info.time_base.denominator)
            self._out = av.open(self._atomic.temp, mode="w", format=fmt, options=container_options)
            self._setup_video(fmt)
            self._source = None
            self._copies: dict[int, tuple] = {}
            if source is not None and (options.copy_audio or options.copy_metadata):
                self._setup_copies(source, fmt)
        except av.error.FFmpegError as exc:
            self._cleanup()
            raise OutputError(f"cannot set up the encoder: {exc.strerror or exc}", path) from None
        except Exception:
            self._cleanup()
            raise

    # -- setup -------------------------------------------------------------------------------
    def _setup_video(self, fmt: str) -> None:
        info, opts = self.info, self.options
        codec = opts.codec
        if codec == "auto":
            codec = _CODEC_BY_FORMAT.get(fmt, "libx264")
        rate = info.average_rate or Fraction(30, 1)
        try:
            stream = self._out.add_stream(codec, rate=rate)
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"encoder '{codec}' not available: {exc}", self.path) from None
        cc = stream.codec_context
        stream.width, stream.height = info.coded_width, info.coded_height
        cc.time_base = info.time_base
        stream.time_base = info.time_base
        odd = info.coded_width % 2 or info.coded_height % 2
        if codec == "gif":
            cc.pix_fmt = "pal8"  # a palette of its own for every frame (see _gif_frame)
        elif codec in ("libx264", "libx265"):
            cc.pix_fmt = "yuv444p" if (odd or (info.pix_fmt or "").startswith("yuv444")) else "yuv420p"
            crf = 20 if opts.crf is None else opts.crf
            x_opts = {"crf": str(crf), "preset": opts.preset}
            if fmt == "avi":
                # AVI stores no presentation timestamps: B-frame reordering would scramble them.
                x_opts["bf"] = "0"
                cc.max_b_frames = 0
            cc.options = x_opts
        elif codec in ("libvpx", "libvpx-vp9"):
            cc.pix_fmt = "yuv420p"
            crf = 10 if opts.crf is None else opts.crf
            cc.bit_rate = 8_000_000
            cc.options = {"crf": str(crf), "deadline": "realtime", "cpu-used": "8",
                          "row-mt": "1", "auto-alt-ref": "0"}
        elif codec == "mpeg4":
            cc.pix_fmt = "yuv420p"
            crf = 20 if opts.crf is None else opts.crf
            cc.qscale = True  # fixed quantiser, the MPEG-4 analogue of CRF
            cc.global_quality = max(2, min(31, round(crf / 7))) * 118  # FF_QP2LAMBDA
            cc.max_b_frames = 0
        elif codec == "ffv1":
            cc.pix_fmt = "yuv444p" if odd else "yuv420p"
        else:
            cc.pix_fmt = "yuv420p"
        self._matrix = yuv_matrix(info)
        # RGB -> YUV 4:2:0 by OpenCV rather than by the encoder's swscale (~3x faster; luma within a
        # level, see rgb_to_yuv420p); odd sizes and other formats go through swscale.
        self._fast_yuv = cc.pix_fmt == "yuv420p" and not odd
        # A full-range YUV input stays full range where the codec stores the range (H.264/HEVC VUI,
        # VP9, FFV1's container tags): no 256 -> 220 levels squeeze. Elsewhere the encoder gets
        # limited range, which is also what untagged YUV means.
        yuv_in = (info.pix_fmt or "").startswith(("yuv", "nv"))
        self._full = (self._fast_yuv and yuv_in and info.color_range == 2
                      and codec in ("libx264", "libx265", "libvpx-vp9", "ffv1"))
        if self._full:
            cc.color_range = 2
        # Frames that come with their decoded YUV 4:2:0 (Frame.yuv, stored orientation) keep it
        # outside the regions an operation changed (write(regions=...)): those pixels are the input's,
        # bit for bit, and need no conversion. Only where the output has the input's layout and range.
        self._passthrough = self._fast_yuv and self._full == (info.color_range == 2)
        if cc.pix_fmt != "pal8" and self._matrix is not None:
            # Carry the colour tags over (a player needs them to show the same colours); the range as
            # decided above.
            cc.colorspace = self._matrix
            for key in ("color_primaries", "color_trc"):
                if getattr(info, key) != 2:
                    setattr(cc, key, getattr(info, key))
        if opts.threads:
            cc.thread_count = opts.threads
        cc.thread_type = "AUTO"
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        self.codec = codec
        self._video = stream

    def _setup_copies(self, source: str, fmt: str) -> None:
        src = av.open(source, mode="r")
        self._source = src
        if self.options.copy_metadata:
            for key, value in src.metadata.items():
                if key.lower() not in _SKIP_METADATA:
                    self._out.metadata[key] = value
            if src.streams.video:
                for key in ("language", "handler_name", "title"):
                    if key in src.streams.video[0].metadata:
                        self._video.metadata[key] = src.streams.video[0].metadata[key]
        if not self.options.copy_audio:
            return
        for s in list(src.streams.audio) + list(src.streams.subtitles):
            if _can_copy(fmt, s):
                out = self._out.add_stream_from_template(s)
                self._copies[s.index] = (s, out, None, None)
            elif s.type == "audio":
                target = _AUDIO_FALLBACK.get(fmt, "aac")
                out = self._out.add_stream(target, rate=s.codec_context.sample_rate)
                layout = _encodable_layout(s.codec_context.layout)
                try:
                    out.codec_context.layout = layout
                except Exception:  # noqa: BLE001 - keep the encoder's default layout
                    pass
                if target == "libopus":
                    out.codec_context.sample_rate = 48000
                resampler = av.AudioResampler(format=out.codec_context.codec.audio_formats[0].name,
                                              layout=out.codec_context.layout.name,
                                              rate=out.codec_context.sample_rate)
                self._copies[s.index] = (s, out, resampler, target)
                self.warnings.append(f"audio stream #{s.index} ({s.codec_context.name}) cannot be "
                                     f"copied into {fmt}; transcoded to {target}")
            else:
                self.warnings.append(f"subtitle stream #{s.index} ({s.codec_context.name}) cannot be "
                                     f"stored in {fmt}; dropped")
            if s.index in self._copies:
                for key in ("language", "handler_name", "title"):
                    if key in s.metadata:
                        self._copies[s.index][1].metadata[key] = s.metadata[key]
        for w in self.warnings:
            log.warning("%s: %s", self.path, w)
        if self._copies:
            streams = [c[0] for c in self._copies.values()]
            self._packets = src.demux(streams)
            self._pending = None
        else:
            self._packets = None

    # -- copying the other streams -----------------------------------------------------------
    def _pump(self, until: Optional[float]) -> None:
        """Mux copied/transcoded packets whose time is <= `until` seconds (all when None)."""
        if not getattr(self, "_packets", None):
            return
        while True:
            packet = self._pending
            if packet is None:
                try:
                    packet = next(self._packets)
                except StopIteration:
                    self._packets = None
                    self._flush_transcoders()
                    return
                except av.error.FFmpegError:
                    continue
            ts = packet.dts if packet.dts is not None else packet.pts
            if until is not None and ts is not None and float(ts * packet.time_base) > until:
                self._pending = packet
                return
            self._pending = None
            self._mux_copy(packet)

    def _mux_copy(self, packet) -> None:
        src, out, resampler, _ = self._copies[packet.stream.index]
        if resampler is None:
            if packet.size == 0:  # demuxer's flush packet
                return
            packet.stream = out
            self._out.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            return
        for frame in frames:
            frame.pts = None
            for rf in resampler.resample(frame):
                self._out.mux(out.encode(rf))

    def _flush_transcoders(self) -> None:
        for src, out, resampler, _ in self._copies.values():
            if resampler is not None:
                for rf in resampler.resample(None):
                    self._out.mux(out.encode(rf))
                self._out.mux(out.encode(None))

    # -- writing -----------------------------------------------------------------------------
    def write(self, frame: Frame, image: Optional[np.ndarray] = None,
              regions: Optional[Sequence[tuple[int, int, int, int]]] = None) -> None:
        """Encode `image` (default `frame.image`), upright RGB, at `frame.pts`. `regions`: the
        rectangles (x0, y0, x1, y1) outside which `image` equals `frame.image` (an operation's
        `regions`); where the frame carries its decoded YUV (`Frame.yuv`), only those are converted
        from RGB and the rest of the picture is the input's own YUV. None: the whole image."""
        img = frame.image if image is None else image
        if self._video.codec_context.pix_fmt == "pal8":
            vf = _gif_frame(stored(img, self.info.rotation))
        elif self._fast_yuv:
            yuv, rot = frame.yuv, self.info.rotation
            h, w = img.shape[1::-1] if (rot // 90) % 2 else img.shape[:2]  # the stored picture's size
            if regions is not None and self._passthrough and yuv is not None and yuv.shape == (h * 3 // 2, w):
                yuv = paste_yuv420p(yuv, img, regions, self._matrix, rot, self._full)
            else:
                yuv = rgb_to_yuv420p(stored(img, self.info.rotation), self._matrix, self._full)
            vf = _yuv_frame(yuv)
            if self._matrix is not None:
                vf.colorspace = self._matrix
            vf.color_range = 2 if self._full else 1  # JPEG (full) or MPEG (limited): what was written
        else:
            vf = av.VideoFrame.from_ndarray(stored(img, self.info.rotation), format="rgb24")
            if self._matrix is not None:
                # RGB -> YUV with the matrix the reader used for YUV -> RGB (BT.709 for most HD video;
                # left unset, swscale would use BT.601 and shift every colour by a few levels).
                vf.colorspace = self._matrix
        pts = frame.pts if frame.pts is not None else self.frames_written
        if self._last_pts is not None and pts <= self._last_pts:
            # Encoders need strictly increasing timestamps; nudge duplicates by one tick.
            pts = self._last_pts + 1
        self._last_pts = pts
        vf.pts = pts
        vf.time_base = self.info.time_base
        if frame.duration:
            vf.duration = frame.duration
        try:
            packets = self._video.encode(vf)
        except av.error.FFmpegError as exc:
            raise OutputError(f"encoding failed at frame {frame.index}: {exc.strerror or exc}",
                              self.path) from None
        self._mux_video(packets)
        self.frames_written += 1

    def _mux_video(self, packets) -> None:
        for p in packets:
            ts = p.dts if p.dts is not None else p.pts
            if ts is not None:
                self._pump(float(ts * p.time_base) + 0.2)
            self._out.mux(p)

    def finish(self) -> str:
        """Flush the encoder and complete the file under its temporary name; return that name.

        Call `commit()` afterwards to move it to the output path (or `abort()`). Lets a caller write
        companion files (a vault) that must refer to the finished video before either appears."""
        if self._finished:
            return self._atomic.temp
        try:
            self._mux_video(self._video.encode(None))
            self._pump(None)
            self._out.close()
            self._out = None
            if self._source is not None:
                self._source.close()
                self._source = None
        except av.error.FFmpegError as exc:
            self.abort()
            raise OutputError(f"finishing the file failed: {exc.strerror or exc}", self.path) from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return self._atomic.temp

    @property
    def temp_path(self) -> str:
        return self._atomic.temp

    def commit(self) -> None:
        if self._closed:
            return
        self.finish()
        try:
            self._atomic.commit()
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot move the finished file into place: {exc.strerror}", self.path) from None
        self._closed = True

    def close(self) -> None:
        """Flush, finish the file and move it to the output path."""
        self.commit()

    def abort(self) -> None:
        """Stop and remove everything written; the output path is left as it was."""
        self._closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        for attr in ("_out", "_source"):
            c = getattr(self, attr, None)
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - already failing; the temp file goes anyway
                    pass
                setattr(self, attr, None)
        self._atomic.abort()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_image(path: str, image: np.ndarray, source: Optional[str] = None,
                copy_metadata: bool = True, commit: bool = True) -> "AtomicPath":
    """Save an upright RGB image atomically; keeps EXIF (minus orientation) unless told not to.

    With `commit=False` the image stays under its temporary name; the caller commits or aborts the
    returned `AtomicPath`."""
    from PIL import Image

    atomic = AtomicPath(path)
    try:
        img = Image.fromarray(image)
        kwargs = {}
        ext = os.path.splitext(path)[1].lower()
        if copy_metadata and source is not None:
            try:
                with Image.open(source) as src:
                    exif = src.getexif()
                    if exif:
                        exif[0x0112] = 1  # pixels are upright now
                        kwargs["exif"] = exif.tobytes()
            except OSError:
                pass
        if ext in (".jpg", ".jpeg"):
            kwargs["quality"] = 95
        fmt = Image.registered_extensions().get(ext)
        if fmt is None:
            raise OutputError(f"unknown image extension '{ext}'", path)
        img.save(atomic.temp, format=fmt, **kwargs)
        if commit:
            atomic.commit()
    except BaseException:
        atomic.abort()
        raise
    return atomic
