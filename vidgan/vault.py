"""Passcode vault: the original pixels of every covered region, encrypted, for `vidgan restore`.

`VaultWriter` is a `FrameObserver`: while the pipeline covers faces it keeps, for every frame, the
original pixels of each covered rectangle (the feathered mask patch), and writes them — with the
frame index, pts, box and mask — to an encrypted vault that is committed together with the
anonymized output. `restore` decrypts the vault, pastes the originals back into the anonymized video
(also after a user re-encoded it at the same frame rate) and re-encodes it faithfully.

Region stream. Each track's crops go into short segments (up to `max_segment` crops) encoded as a
small H.264 video: crops centred on a canvas of the segment's largest crop (rounded up to 16),
pixels outside the mask smoothed (they are never pasted back), edges replicated. Default: 10-bit
4:4:4 (full-range BT.601 done here, not by swscale) with a constant quantiser chosen per segment in a
closed loop — encode, decode, measure the PSNR of the masked pixels against the originals, lower the
quantiser until the segment reaches `target_psnr` — so every segment meets the target whatever the
content. `--lossless`: RGB H.264 (libx264rgb) at qp 0, bit-exact, checked by decoding.

Crypto: Argon2id (or scrypt) from the passcode and a random salt, HKDF to the chunk key, AES-256-GCM
over chunks with the STREAM construction (nonce = random prefix | chunk counter | last-chunk flag,
the clear header as associated data), so truncation, reordering, swapping chunks between vaults and
any flipped bit are detected. Everything but the header is encrypted. The byte layout, the binding to
the anonymized video and what the vault reveals are specified in docs/vault-format.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import math
import os
import struct
import threading
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, Callable, Iterator, Optional

import av
import cv2
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import __version__
from .errors import EXIT_FAILED, EXIT_PASSCODE, Cancelled, MediaError, OutputError, VidganError
from .keys import (DEFAULT_KDF, PACKED_KDF_BYTES, SALT_BYTES, KdfParams, Passcode, derive_key, new_salt,
                   subkey)
from .media import EncodeOptions, VideoReader, VideoWriter, check_output_path, write_image
from .media.background import EncodeThread, prefetch
from .media.writer import AtomicPath
from .hooks import FrameObserver
from .types import Box, Frame, TrackBox, VideoInfo

log = logging.getLogger(__name__)

# -- errors ---------------------------------------------------------------------------------------


class VaultError(VidganError):
    """Wrong passcode, or a vault that is damaged, truncated, tampered with or not a vault (exit 3)."""

    exit_code = EXIT_PASSCODE


class VaultMismatch(VidganError):
    """The vault is intact and the passcode right, but it belongs to another video (exit 1)."""

    exit_code = EXIT_FAILED


WRONG_PASSCODE = "wrong passcode or damaged vault"

# -- format constants (docs/vault-format.md) ------------------------------------------------------
MAGIC = b"VIDGANVT"
FORMAT_VERSION = 1
AEAD_AES256GCM = 1
NONCE_PREFIX_BYTES = 7
HEADER = struct.Struct(f">8sHB{PACKED_KDF_BYTES}s{SALT_BYTES}s{NONCE_PREFIX_BYTES}sB")
HEADER_BYTES = HEADER.size  # 48
CHUNK_LEN = struct.Struct(">I")
TAG_BYTES = 16
CHUNK_TARGET = 256 * 1024  # plaintext bytes after which the writer seals a chunk
MAX_CHUNK = 64 * 1024 * 1024  # largest plaintext chunk a reader accepts
AEAD_INFO = b"vidgan vault v1: AES-256-GCM chunk key"

# record types
R_META, R_FRAME, R_PATCH, R_SEGMENT, R_PACKET, R_SEGMENT_END, R_TRAILER = 1, 2, 3, 4, 5, 6, 7
RECORD_HEAD = struct.Struct(">BI")
FRAME_REC = struct.Struct(">IqBH")  # index, pts, flags (1 = thumbnail follows), patches
PATCH_REC = struct.Struct(">IIi4d4IB")  # segment, seq, track, box x1 y1 x2 y2, rect x0 y0 x1 y1, mask kind
SEGMENT_REC = struct.Struct(">IBHHI")  # segment, codec, canvas width, canvas height, crops
PACKET_REC = struct.Struct(">qqB")  # pts, dts, flags (1 pts set, 2 dts set, 4 keyframe); data follows
SEGMENT_END_REC = struct.Struct(">I")
MASK_LEN = struct.Struct(">I")

MASK_RECOMPUTE = 0  # the v1 ellipse/box mask from the box and the mask options in the metadata
MASK_EXPLICIT = 1  # zlib(np.packbits(alpha > 0)) follows

CODEC_H264_YUV444P10 = 1  # lossy: 10-bit 4:4:4, full-range BT.601 conversion done by vidgan
CODEC_H264_RGB = 2  # lossless: libx264rgb qp 0, planes G B R

THUMB_SIZE = 16
THUMB_BYTES = THUMB_SIZE * THUMB_SIZE
THUMB_EVERY = 30  # frames with index % THUMB_EVERY == 0 carry a thumbnail
THUMB_TOLERANCE = 10.0  # mean absolute difference (0-255 luma) still accepted as the same picture

MAX_DIM = 65535
SLOPE = 0.7  # dB of PSNR per H.264 quantiser step, roughly, at these qualities

# -- options and small helpers --------------------------------------------------------------------


@dataclass(frozen=True)
class VaultOptions:
    lossless: bool = False  # bit-exact regions (bigger)
    target_psnr: float = 45.5  # dB, per segment, over the masked pixels (lossy mode)
    kdf: KdfParams = DEFAULT_KDF
    max_segment: int = 48  # crops per segment (bounds memory and the restore's read-ahead)
    preset: str = "medium"  # x264 preset for the region stream

    def __post_init__(self):
        if not 30.0 <= self.target_psnr <= 60.0:
            raise ValueError("vault target PSNR must be between 30 and 60 dB")
        if not 1 <= self.max_segment <= 1000:
            raise ValueError("max_segment must be between 1 and 1000")


def default_vault_path(output_path: str) -> str:
    """`OUT.vault` beside the anonymized output."""
    return output_path + ".vault"


def _rup(x: int, m: int = 16) -> int:
    return -(-int(x) // m) * m


def _psnr(se: float, n: int) -> float:
    if n == 0 or se <= 0:
        return float("inf")
    return 10.0 * math.log10(255.0 ** 2 * n / se)


_M = np.array([[0.299, 0.587, 0.114],
               [-0.168736, -0.331264, 0.5],
               [0.5, -0.418688, -0.081312]], np.float64)
_M_INV = np.linalg.inv(_M)
_M32 = (_M * 4.0).astype(np.float32)  # straight to 10-bit
_M_INV32 = (_M_INV / 4.0).astype(np.float32)
_YUV_OFFSET = np.array([0.5, 512.5, 512.5], np.float32)  # chroma offset plus rounding


def rgb_to_yuv10(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 Y'CbCr, 10 bit, planar (3, h, w) uint16."""
    f = cv2.transform(rgb.astype(np.float32), _M32)
    f += _YUV_OFFSET
    np.clip(f, 0, 1023, out=f)
    return np.ascontiguousarray(f.astype(np.uint16).transpose(2, 0, 1))


def yuv10_to_rgb(planes: np.ndarray) -> np.ndarray:
    f = planes.transpose(1, 2, 0).astype(np.float32)
    f[..., 1:] -= 512.0
    return np.clip(f @ _M_INV32.T + 0.5, 0, 255).astype(np.uint8)


def _frame_from_planes(planes: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    _, h, w = planes.shape
    vf = av.VideoFrame(w, h, pix_fmt)
    item = planes.dtype.itemsize
    for i, plane in enumerate(vf.planes):
        buf = np.zeros((plane.height, plane.line_size // item), planes.dtype)
        buf[:, :w] = planes[i]
        plane.update(buf.tobytes())
    return vf


def _planes_from_frame(vf: av.VideoFrame, dtype) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    out = []
    for plane in vf.planes:
        a = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // item)
        out.append(a[:, :plane.width])
    return np.stack(out)


def thumbnail(image: np.ndarray) -> bytes:
    """16x16 luma (area average): a coarse picture of the frame that survives re-encoding."""
    f = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    small = cv2.resize(f, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    return np.clip(small + 0.5, 0, 255).astype(np.uint8).tobytes()


def thumb_distance(a: bytes, b: bytes) -> float:
    return float(np.abs(np.frombuffer(a, np.uint8).astype(np.int16)
                        - np.frombuffer(b, np.uint8).astype(np.int16)).mean())


def mask_v1(box: Box, shape: str, margin: float, scale: float, feather: float, width: int, height: int):
    """Which pixels a v1 mask touches: (x0, y0, x1, y1, bool mask) or None.

    A frozen copy of the `alpha > 0` part of `ops.masks.mask_patch` as of vault format 1, so a vault
    keeps restoring exactly even if the live mask code changes. The writer stores an explicit mask
    whenever the operation's real patch differs from this."""
    # The same float operations, in the same order, as Box.scaled and mask_patch.
    factor = (1.0 + 2.0 * margin) * scale
    bcx, bcy = (box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0
    hw, hh = (box.x2 - box.x1) * factor / 2.0, (box.y2 - box.y1) * factor / 2.0
    rx1, ry1, rx2, ry2 = bcx - hw, bcy - hh, bcx + hw, bcy + hh
    cx, cy = (rx1 + rx2) / 2.0, (ry1 + ry2) / 2.0
    ax, ay = max((rx2 - rx1) / 2.0, 0.5), max((ry2 - ry1) / 2.0, 0.5)
    if feather > 0:
        ohw, ohh = (rx2 - rx1) * (1.0 + feather) / 2.0, (ry2 - ry1) * (1.0 + feather) / 2.0
        ox1, oy1, ox2, oy2 = cx - ohw, cy - ohh, cx + ohw, cy + ohh
    else:
        ox1, oy1, ox2, oy2 = rx1, ry1, rx2, ry2
    x0, y0 = max(0, int(np.floor(ox1))), max(0, int(np.floor(oy1)))
    x1, y1 = min(width, int(np.ceil(ox2)) + 1), min(height, int(np.ceil(oy2)) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / ax
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / ay
    if shape == "ellipse":
        r = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
    else:
        r = np.maximum(np.abs(xs)[None, :], np.abs(ys)[:, None])
    if feather > 0:
        f = feather
        mask = np.clip((1.0 + f - r) / f, 0.0, 1.0).astype(np.float32) > 0
    else:
        mask = r <= 1.0
    nx = np.maximum(np.abs(xs) - 0.5 / ax, 0.0)
    ny = np.maximum(np.abs(ys) - 0.5 / ay, 0.0)
    if shape == "ellipse":
        near = np.sqrt(nx[None, :] ** 2 + ny[:, None] ** 2)
    else:
        near = np.maximum(nx[None, :], ny[:, None])
    mask |= (r <= 1.0) | (near < 1.0)
    return x0, y0, x1, y1, mask


# -- region stream: encoding and decoding segments -------------------------------------------------
def _prepare_canvas(crop: np.ndarray, mask: np.ndarray, cw: int, ch: int) -> np.ndarray:
    """Crop centred on a (ch, cw) canvas; pixels outside the mask smoothed, borders replicated."""
    h, w = crop.shape[:2]
    if not mask.all():
        k = max(3, (min(h, w) // 8) | 1)
        crop = np.where(mask[..., None], crop, cv2.blur(crop, (k, k)))
    oy, ox = (ch - h) // 2, (cw - w) // 2
    if (h, w) == (ch, cw):
        return np.ascontiguousarray(crop)
    return np.pad(crop, ((oy, ch - h - oy), (ox, cw - w - ox), (0, 0)), mode="edge")


def _canvas_offset(h: int, w: int, ch: int, cw: int) -> tuple[int, int]:
    return (ch - h) // 2, (cw - w) // 2


def _new_encoder(codec: int, cw: int, ch: int, qp: int, preset: str):
    name, pix = ("libx264", "yuv444p10le") if codec == CODEC_H264_YUV444P10 else ("libx264rgb", "rgb24")
    cc = av.CodecContext.create(name, "w")
    cc.width, cc.height = cw, ch
    cc.pix_fmt = pix
    cc.time_base = Fraction(1, 25)
    opts = {"qp": str(qp), "preset": preset, "keyint": "1000"}
    if codec == CODEC_H264_YUV444P10:
        opts["tune"] = "psnr"
    cc.options = opts
    # Large canvases get two frame threads: the same bytes on every machine (x264 is deterministic
    # for a thread count), the same size and PSNR as one thread (interview_720p's segments: 2,295 KiB,
    # 46.22 dB either way) in ~0.7 of the time, and a long track's segments are encoded one after
    # the other. Small ones stay on one (party_h264_aac's, up to 34k pixels, were slower with two).
    cc.thread_count = 2 if cw * ch >= BIG_CANVAS else 1
    cc.thread_type = "FRAME"
    return cc


BIG_CANVAS = 100_000  # pixels


def _packet_tuple(p) -> tuple[bytes, Optional[int], Optional[int], bool]:
    return bytes(p), p.pts, p.dts, bool(p.is_keyframe)


class SegmentDecoder:
    """Decodes one segment's packets lazily, crop by crop, in order."""

    def __init__(self, codec: int, cw: int, ch: int, ncrops: int):
        self.codec, self.cw, self.ch, self.ncrops = codec, cw, ch, ncrops
        self.packets: deque = deque()
        self.out: deque = deque()
        self.taken = 0
        self._flushed = False
        self._dec = av.CodecContext.create("h264", "r")
        self._dec.thread_count = 1

    def add(self, data: bytes, pts: Optional[int], dts: Optional[int]) -> None:
        self.packets.append((data, pts, dts))

    def _decode(self, packet) -> None:
        try:
            frames = self._dec.decode(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            raise VaultError(f"damaged vault: region stream does not decode ({exc.__class__.__name__})") from None
        for f in frames:
            if f.width != self.cw or f.height != self.ch:
                raise VaultError("damaged vault: region stream has the wrong size")
            self.out.append(f)

    def drain(self) -> list[np.ndarray]:
        """Every remaining crop (used by the writer to measure what it stored)."""
        out = []
        while self.packets or not self._flushed or self.out:
            if not self.out:
                self._pump()
                continue
            out.append(self._convert(self.out.popleft()))
        return out

    def _pump(self) -> None:
        if self.packets:
            data, pts, dts = self.packets.popleft()
            pkt = av.Packet(data)
            if pts is not None:
                pkt.pts = pts
            if dts is not None:
                pkt.dts = dts
            self._decode(pkt)
        elif not self._flushed:
            self._flushed = True
            self._decode(None)
        else:
            raise VaultError("damaged vault: region stream ends early")

    def next_canvas(self) -> np.ndarray:
        """RGB (ch, cw, 3) uint8 of the next crop."""
        while not self.out:
            self._pump()
        self.taken += 1
        return self._convert(self.out.popleft())

    def _convert(self, vf) -> np.ndarray:
        if self.codec == CODEC_H264_YUV444P10:
            if vf.format.name != "yuv444p10le":
                raise VaultError("damaged vault: region stream has the wrong pixel format")
            return yuv10_to_rgb(_planes_from_frame(vf, np.uint16))
        if vf.format.name not in ("gbrp", "rgb24", "bgr24", "bgr0"):
            raise VaultError("damaged vault: region stream has the wrong pixel format")
        return vf.to_ndarray(format="rgb24")


def _decode_all(codec: int, cw: int, ch: int, packets: list) -> list[np.ndarray]:
    dec = SegmentDecoder(codec, cw, ch, 0)
    for data, pts, dts, _ in packets:
        dec.add(data, pts, dts)
    return dec.drain()


def _encode_once(crops, canvases, codec: int, cw: int, ch: int, qp: int, preset: str):
    """Encode the canvases at one quantiser; decode and measure the masked pixels.
    Returns (packets, squared error, values measured)."""
    enc = _new_encoder(codec, cw, ch, qp, preset)
    packets = []
    for i, canvas in enumerate(canvases):
        if codec == CODEC_H264_YUV444P10:
            vf = _frame_from_planes(rgb_to_yuv10(canvas), "yuv444p10le")
        else:
            vf = av.VideoFrame.from_ndarray(canvas, format="rgb24")
        vf.pts = i
        packets.extend(_packet_tuple(p) for p in enc.encode(vf))
    packets.extend(_packet_tuple(p) for p in enc.encode(None))
    decoded = _decode_all(codec, cw, ch, packets)
    if len(decoded) != len(crops):
        raise OutputError(f"vault: region stream decoded {len(decoded)} of {len(crops)} crops")
    se, n = 0.0, 0
    for (crop, mask), dec in zip(crops, decoded):
        h, w = crop.shape[:2]
        oy, ox = _canvas_offset(h, w, ch, cw)
        m8 = mask.view(np.uint8)
        se += cv2.norm(np.ascontiguousarray(dec[oy:oy + h, ox:ox + w]), np.ascontiguousarray(crop),
                       cv2.NORM_L2SQR, m8)
        n += 3 * int(np.count_nonzero(mask))
    return packets, se, n


@dataclass
class EncodedSegment:
    codec: int
    width: int  # canvas
    height: int
    packets: list  # [(bytes, pts, dts, keyframe)]
    qp: int
    squared_error: float  # over the masked pixel values
    values: int
    next_qp: int  # hint for the next segment of the same track
    passes: int  # encodes it took


def encode_segment(crops: list[tuple[np.ndarray, np.ndarray]], lossless: bool, qp_hint: int,
                   target_psnr: float, preset: str = "medium", search_up: bool = False):
    """Encode one segment. Lossy: closed loop over the quantiser until the masked pixels reach
    `target_psnr`."""
    ch = _rup(max(c.shape[0] for c, _ in crops))
    cw = _rup(max(c.shape[1] for c, _ in crops))
    canvases = [_prepare_canvas(c, m, cw, ch) for c, m in crops]

    passes = 0

    def run(codec: int, qp: int):
        nonlocal passes
        passes += 1
        return _encode_once(crops, canvases, codec, cw, ch, qp, preset)

    if lossless:
        packets, se, n = run(CODEC_H264_RGB, 0)
        if se != 0:
            raise OutputError("vault: the lossless region stream did not decode bit-exact")
        return EncodedSegment(CODEC_H264_RGB, cw, ch, packets, 0, 0.0, n, 0, passes)

    # Closed loop: encode at the hint; while the masked pixels miss the target, lower the quantiser
    # by the shortfall (about SLOPE dB per step) and encode again. With `search_up` (the first
    # segment of a vault, nothing to go by yet) also step up while the target is met; otherwise
    # once, when the first try beat the target by two steps or more.
    codec = CODEC_H264_YUV444P10
    qp = int(min(max(qp_hint, 0), 51))
    best = None
    pass_q, fail_q = -1, 52
    tried: dict[int, tuple] = {}
    # dB a quantiser step: SLOPE, or, searching the first segment, as measured by its last two tries
    # (0.40 on interview_720p, 0.55 on hall_1080p, 0.71 on party_h264_aac)
    slope, last = SLOPE, None
    for _attempt in range(6):
        packets, se, n = tried[qp] = run(codec, qp)
        p = _psnr(se, n)
        if search_up and last is not None and math.isfinite(p) and math.isfinite(last[1]) and qp != last[0]:
            slope = min(1.5, max(0.2, abs(last[1] - p) / abs(qp - last[0])))
        last = (qp, p)
        if p >= target_psnr:
            if qp > pass_q:
                pass_q, best = qp, (qp, packets, se, n, p)
            margin = (p - target_psnr) if math.isfinite(p) else 99.0
            # Step up only on the first segment (nothing to go by yet) or with clear room to spare;
            # not when a step, at that slope, would miss the target anyway.
            if not (search_up or (_attempt == 0 and margin >= 2 * SLOPE)) or margin < 0.8 * slope:
                break
            nq = qp + min(6, int(margin / slope))
        else:
            fail_q = min(fail_q, qp)
            nq = qp - min(12, max(1, math.ceil((target_psnr - p) / slope)))
        nq = max(pass_q + 1, min(fail_q - 1, nq, 51), 0)
        if nq in tried or fail_q - pass_q <= 1:
            break
        qp = nq
    if best is None:  # still short after every try: take the finest quantiser
        packets, se, n = tried.get(0) or run(codec, 0)
        best = (0, packets, se, n, _psnr(se, n))
    qp, packets, se, n, p = best
    # Next segment of this track: a step coarser when this one met the target with room to spare.
    if math.isfinite(p):
        next_qp = min(51, qp + max(0, min(2, int((p - target_psnr) / SLOPE - 0.5))))
    else:
        next_qp = min(51, qp + 2)
    return EncodedSegment(codec, cw, ch, packets, qp, se, n, next_qp, passes)


# -- records ---------------------------------------------------------------------------------------
def _record(rtype: int, body: bytes) -> bytes:
    return RECORD_HEAD.pack(rtype, len(body)) + body


@dataclass(frozen=True)
class FrameRec:
    index: int
    pts: int
    thumb: Optional[bytes]
    npatches: int


@dataclass(frozen=True)
class PatchRec:
    segment: int
    seq: int
    track: int
    box: Box
    rect: tuple[int, int, int, int]
    mask_kind: int
    mask_data: Optional[bytes]


@dataclass(frozen=True)
class SegmentRec:
    segment: int
    codec: int
    width: int
    height: int
    ncrops: int


@dataclass(frozen=True)
class PacketRec:
    pts: Optional[int]
    dts: Optional[int]
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class SegmentEndRec:
    segment: int


@dataclass(frozen=True)
class DocRec:  # META or TRAILER
    kind: int
    doc: dict


def _damaged(what: str) -> VaultError:
    return VaultError(f"damaged vault: {what}")


def _json_doc(body: bytes, what: str) -> dict:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _damaged(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise _damaged(f"{what} is not a JSON object")
    return doc


def parse_records(data: bytes) -> list:
    """Split one decrypted chunk into typed records. Raises VaultError for anything malformed."""
    out = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < RECORD_HEAD.size:
            raise _damaged("record header cut short")
        rtype, length = RECORD_HEAD.unpack_from(data, pos)
        pos += RECORD_HEAD.size
        if length > end - pos:
            raise _damaged("record runs past the end of its chunk")
        body = data[pos:pos + length]
        pos += length
        out.append(_parse_record(rtype, body))
    return out


def _parse_record(rtype: int, body: bytes):
    n = len(body)
    if rtype in (R_META, R_TRAILER):
        return DocRec(rtype, _json_doc(body, "metadata" if rtype == R_META else "trailer"))
    if rtype == R_FRAME:
        if n < FRAME_REC.size:
            raise _damaged("frame record too short")
        index, pts, flags, npatches = FRAME_REC.unpack_from(body)
        if flags & ~1:
            raise _damaged("frame record has unknown flags")
        want = FRAME_REC.size + (THUMB_BYTES if flags & 1 else 0)
        if n != want:
            raise _damaged("frame record has the wrong length")
        thumb = bytes(body[FRAME_REC.size:]) if flags & 1 else None
        return FrameRec(index, pts, thumb, npatches)
    if rtype == R_PATCH:
        if n < PATCH_REC.size:
            raise _damaged("patch record too short")
        seg, seq, track, bx1, by1, bx2, by2, x0, y0, x1, y1, kind = PATCH_REC.unpack_from(body)
        box = Box(bx1, by1, bx2, by2)
        if not all(math.isfinite(v) for v in (bx1, by1, bx2, by2)):
            raise _damaged("patch box is not finite")
        if not (x0 < x1 <= MAX_DIM and y0 < y1 <= MAX_DIM):
            raise _damaged("patch rectangle is empty or too large")
        mask_data = None
        if kind == MASK_RECOMPUTE:
            if n != PATCH_REC.size:
                raise _damaged("patch record has the wrong length")
        elif kind == MASK_EXPLICIT:
            if n < PATCH_REC.size + MASK_LEN.size:
                raise _damaged("patch mask cut short")
            (mlen,) = MASK_LEN.unpack_from(body, PATCH_REC.size)
            if n != PATCH_REC.size + MASK_LEN.size + mlen:
                raise _damaged("patch record has the wrong length")
            mask_data = bytes(body[PATCH_REC.size + MASK_LEN.size:])
        else:
            raise _damaged("patch has an unknown mask kind")
        return PatchRec(seg, seq, track, box, (x0, y0, x1, y1), kind, mask_data)
    if rtype == R_SEGMENT:
        if n != SEGMENT_REC.size:
            raise _damaged("segment record has the wrong length")
        seg, codec, w, h, ncrops = SEGMENT_REC.unpack(body)
        if codec not in (CODEC_H264_YUV444P10, CODEC_H264_RGB):
            raise _damaged("segment has an unknown codec")
        if w == 0 or h == 0 or w % 16 or h % 16 or ncrops == 0:
            raise _damaged("segment has a bad size")
        return SegmentRec(seg, codec, w, h, ncrops)
    if rtype == R_PACKET:
        if n < PACKET_REC.size:
            raise _damaged("packet record too short")
        pts, dts, flags = PACKET_REC.unpack_from(body)
        if flags & ~7:
            raise _damaged("packet record has unknown flags")
        return PacketRec(pts if flags & 1 else None, dts if flags & 2 else None, bool(flags & 4),
                         bytes(body[PACKET_REC.size:]))
    if rtype == R_SEGMENT_END:
        if n != SEGMENT_END_REC.size:
            raise _damaged("segment end record has the wrong length")
        return SegmentEndRec(SEGMENT_END_REC.unpack(body)[0])
    raise _damaged(f"unknown record type {rtype}")


def _pack_frame(index: int, pts: int, thumb: Optional[bytes], npatches: int) -> bytes:
    return _record(R_FRAME, FRAME_REC.pack(index, pts, 1 if thumb else 0, npatches) + (thumb or b""))


def _pack_patch(seg: int, seq: int, track: int, box: Box, rect, mask: Optional[np.ndarray]) -> bytes:
    track = max(-(1 << 31), min((1 << 31) - 1, int(track)))
    body = PATCH_REC.pack(seg, seq, track, box.x1, box.y1, box.x2, box.y2, *rect,
                          MASK_EXPLICIT if mask is not None else MASK_RECOMPUTE)
    if mask is not None:
        bits = zlib.compress(np.packbits(mask.ravel()).tobytes(), 9)
        body += MASK_LEN.pack(len(bits)) + bits
    return _record(R_PATCH, body)


def _pack_packet(data: bytes, pts: Optional[int], dts: Optional[int], key: bool) -> bytes:
    flags = (1 if pts is not None else 0) | (2 if dts is not None else 0) | (4 if key else 0)
    return _record(R_PACKET, PACKET_REC.pack(pts or 0, dts or 0, flags) + data)


def _pack_doc(kind: int, doc: dict) -> bytes:
    return _record(kind, json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8"))


# -- container: header and AEAD chunks ------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    version: int
    kdf: KdfParams
    salt: bytes
    nonce_prefix: bytes
    raw: bytes

    @staticmethod
    def new(kdf: KdfParams) -> "Header":
        salt, prefix = new_salt(), os.urandom(NONCE_PREFIX_BYTES)
        raw = HEADER.pack(MAGIC, FORMAT_VERSION, AEAD_AES256GCM, kdf.pack(), salt, prefix, 0)
        return Header(FORMAT_VERSION, kdf, salt, prefix, raw)

    @staticmethod
    def parse(raw: bytes) -> "Header":
        if len(raw) < HEADER_BYTES:
            if MAGIC.startswith(raw[:len(MAGIC)]) and raw:
                raise VaultError("vault is truncated (incomplete header)")
            raise VaultError("not a vidgan vault")
        magic, version, aead, kdf_raw, salt, prefix, flags = HEADER.unpack(raw[:HEADER_BYTES])
        if magic != MAGIC:
            raise VaultError("not a vidgan vault")
        if version != FORMAT_VERSION:
            raise VaultError(f"vault format version {version} is not supported (this vidgan reads "
                             f"version {FORMAT_VERSION})")
        if aead != AEAD_AES256GCM or flags != 0:
            raise _damaged("unknown cipher or header flags")
        kdf = KdfParams.unpack(kdf_raw)
        try:
            kdf.check()
        except ValueError as exc:
            raise _damaged(f"key derivation parameters refused ({exc})") from None
        return Header(version, kdf, salt, prefix, bytes(raw[:HEADER_BYTES]))

    def nonce(self, counter: int, last: bool) -> bytes:
        return self.nonce_prefix + struct.pack(">IB", counter, 1 if last else 0)


def chunk_key(passcode: Passcode, header: Header) -> bytes:
    return subkey(derive_key(passcode, header.salt, header.kdf), AEAD_INFO)


class ChunkWriter:
    def __init__(self, fh: BinaryIO, header: Header, key: bytes):
        self.fh, self.header = fh, header
        self.aead = AESGCM(key)
        self.counter = 0
        self.buf = bytearray()
        self.bytes_written = 0
        fh.write(header.raw)
        self.bytes_written += len(header.raw)

    def add(self, record: bytes) -> None:
        if len(record) > MAX_CHUNK:
            raise OutputError(f"vault: a record of {len(record)} bytes is larger than a chunk")
        if self.buf and len(self.buf) + len(record) > CHUNK_TARGET:
            self.seal(last=False)
        self.buf += record

    def seal(self, last: bool) -> None:
        if self.counter >= 0xFFFFFFFF:
            raise OutputError("vault: too many chunks")
        ct = self.aead.encrypt(self.header.nonce(self.counter, last), bytes(self.buf), self.header.raw)
        self.fh.write(CHUNK_LEN.pack(len(ct)))
        self.fh.write(ct)
        self.bytes_written += CHUNK_LEN.size + len(ct)
        self.counter += 1
        self.buf = bytearray()


class ChunkReader:
    """Yields decrypted chunks in order; VaultError for truncation, damage and trailing data."""

    def __init__(self, fh: BinaryIO, header: Header, key: bytes, source: str = ""):
        self.fh, self.header = fh, header
        self.aead = AESGCM(key)
        self.source = source

    def __iter__(self) -> Iterator[tuple[int, bool, bytes]]:
        fh = self.fh
        fh.seek(HEADER_BYTES)
        counter = 0
        while True:
            head = fh.read(CHUNK_LEN.size)
            if len(head) < CHUNK_LEN.size:
                raise VaultError("vault is truncated (its last chunk is missing)")
            (length,) = CHUNK_LEN.unpack(head)
            if not TAG_BYTES <= length <= MAX_CHUNK + TAG_BYTES:
                raise _damaged(f"chunk {counter} has an impossible length")
            ct = fh.read(length)
            if len(ct) < length:
                raise VaultError("vault is truncated (a chunk is cut short)")
            plain, last = None, False
            for flag in (False, True):
                try:
                    plain = self.aead.decrypt(self.header.nonce(counter, flag), ct, self.header.raw)
                    last = flag
                    break
                except InvalidTag:
                    continue
            if plain is None:
                if counter == 0:
                    raise VaultError(WRONG_PASSCODE)
                raise _damaged(f"chunk {counter} failed authentication (changed, reordered or from "
                               f"another vault)")
            if last and fh.read(1):
                raise _damaged("data after the final chunk")
            yield counter, last, plain
            if last:
                return
            counter += 1


# -- timing of the output as written ---------------------------------------------------------------
def _output_times(path: str, frames: int) -> Optional[dict]:
    """The video timestamps of the finished output (packets only, no decoding), for the binding:
    some containers move a frame's time on writing (Ogg rebuilds VP8 timestamps from granules).
    None when the container has no usable timestamps (AVI) or the count differs."""
    try:
        with av.open(path) as c:
            stream = c.streams.video[0]
            pts = []
            for packet in c.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
            tb = Fraction(stream.time_base)
    except (av.error.FFmpegError, IndexError, ValueError, TypeError):
        return None
    if len(pts) != frames or not pts:
        return None
    pts.sort()
    deltas = np.diff(np.array(pts, np.int64), prepend=np.int64(pts[0]))
    deltas[0] = pts[0]
    blob = zlib.compress(deltas.astype(">i8").tobytes(), 9)
    return {"time_base": str(tb), "pts": base64.b64encode(blob).decode("ascii")}


def _parse_output_times(doc, frames: int) -> Optional[list]:
    """Relative times (Fractions) from a trailer's `output_times`; VaultError when malformed."""
    if doc is None:
        return None
    try:
        tb = Fraction(doc["time_base"])
        raw = zlib.decompressobj().decompress(base64.b64decode(doc["pts"], validate=True), frames * 8 + 1)
        if tb <= 0 or len(raw) != frames * 8:
            raise ValueError("size")
        pts = np.cumsum(np.frombuffer(raw, ">i8").astype(np.int64))
    except (KeyError, TypeError, ValueError, ZeroDivisionError, zlib.error, binascii.Error, OverflowError):
        raise _damaged("trailer has malformed output times") from None
    return [Fraction(int(p - pts[0])) * tb for p in pts]


# -- the observer that writes a vault -------------------------------------------------------------
@dataclass
class VaultStats:
    path: str = ""
    frames: int = 0
    patches: int = 0
    segments: int = 0
    bytes: int = 0
    region_bytes: int = 0  # encoded region stream alone
    squared_error: float = 0.0
    values: int = 0  # masked pixel values (x3 channels) measured
    qps: list = field(default_factory=list)
    encodes: int = 0  # region-stream encodes, closed-loop retries included
    seconds: float = 0.0  # the pipeline's thread spent in the vault writer (key derivation, waits, writing)
    encode_seconds: float = 0.0  # the segment encodes themselves, in the writer's worker threads

    @property
    def psnr(self) -> float:
        return _psnr(self.squared_error, self.values)


@dataclass
class _OpenSegment:
    sid: int
    crops: list = field(default_factory=list)  # (crop, mask)
    nbytes: int = 0


class VaultWriter(FrameObserver):
    """Collects the original pixels of every covered region and writes the encrypted vault.

    Used through `Pipeline.anonymize(..., observers=[VaultWriter(path, passcode)])`: the vault is
    written beside the output under a temporary name and appears only when the output does."""

    MAX_SEGMENT_BYTES = 24 * 1024 * 1024

    def __init__(self, path: str, passcode: Passcode, options: VaultOptions = VaultOptions()):
        self.path = path
        self.passcode = passcode
        self.options = options
        self.stats = VaultStats(path=path)
        self._atomic: Optional[AtomicPath] = None
        self._fh = None
        self._chunks: Optional[ChunkWriter] = None
        self._open: dict[tuple[int, int], _OpenSegment] = {}
        self._next_sid = 0
        # A segment's first quantiser: its track's previous segment's `next_qp` (a number once that
        # segment is written, the future of its encode until then: the worker waits for it, so a
        # track's segments choose as if each was encoded at once), else, for a new track, the `qp`
        # of the latest segment encoded by then.
        self._track_hint: dict[tuple[int, int], object] = {}
        self._last_qp = 26  # first guess for 10-bit 4:4:4 at about 45 dB
        self._mask_opts = None
        # Records in file order, segment encodes among them as futures: a segment is encoded in a
        # worker thread while the pipeline goes on, and written where it would have been written
        # had it been encoded at once (the order docs/vault-format.md specifies).
        self._queue: deque = deque()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._submitted = 0  # segments handed to the pool
        self._pending = 0  # of them, not yet written

    # FrameObserver ------------------------------------------------------------------------------
    def start(self, info: VideoInfo, input_path: str, output_path: str, operation) -> None:
        t0 = time.perf_counter()
        try:
            self._start(info, input_path, output_path, operation)
        finally:
            self.stats.seconds += time.perf_counter() - t0

    def _start(self, info: VideoInfo, input_path: str, output_path: str, operation) -> None:
        vault = os.path.abspath(self.path)
        for other, what in ((output_path, "output"), (input_path, "input")):
            if vault == os.path.abspath(other):
                raise OutputError(f"the vault path is the {what} file", self.path)
        check_output_path(self.path)
        self.info = info
        self.operation = operation
        mask = getattr(operation, "mask", None)
        self._mask_opts = mask
        header = Header.new(self.options.kdf)
        key = chunk_key(self.passcode, header)
        try:
            self._atomic = AtomicPath(self.path)
            self._fh = open(self._atomic.temp, "wb")
            self._chunks = ChunkWriter(self._fh, header, key)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot create the vault: {exc.strerror or exc}", self.path) from None
        meta = {
            "format": FORMAT_VERSION,
            "created_by": f"vidgan {__version__}",
            "video": {
                "width": info.width, "height": info.height, "rotation": info.rotation,
                "is_image": bool(info.is_image), "time_base": str(info.time_base),
                "average_rate": str(info.average_rate) if info.average_rate else None,
            },
            "mode": getattr(operation, "name", "unknown"),
            "mask": ({"shape": mask.shape, "margin": mask.margin, "scale": mask.scale,
                      "feather": mask.feather} if mask is not None else None),
            "regions": {"lossless": self.options.lossless, "target_psnr": self.options.target_psnr,
                        "max_segment": self.options.max_segment},
            "thumbnails": {"size": THUMB_SIZE, "every": THUMB_EVERY},
        }
        self._chunks.add(_pack_doc(R_META, meta))
        self._chunks.seal(last=False)  # chunk 0 holds only the metadata: a fast passcode check

    def frame(self, frame: Frame, boxes: list[TrackBox], covered: np.ndarray) -> None:
        t0 = time.perf_counter()
        try:
            self._frame(frame, boxes, covered)
        finally:
            self.stats.seconds += time.perf_counter() - t0

    def _frame(self, frame: Frame, boxes: list[TrackBox], covered: np.ndarray) -> None:
        image = frame.image
        h, w = image.shape[:2]
        patches = self.operation.patches(boxes, w, h) if boxes else []
        keys, seen = [], {}
        for tb, _ in patches:
            n = seen.get(tb.track_id, 0)
            seen[tb.track_id] = n + 1
            keys.append((tb.track_id, n))
        # Tracks that are gone end their segment before this frame.
        for k in [k for k in self._open if k not in set(keys)]:
            self._close(k)
        records = []
        for (tb, patch), key in zip(patches, keys):
            crop = image[patch.slices]
            real = patch.alpha > 0
            explicit = None
            m = self._mask_opts
            v1 = (mask_v1(tb.box, m.shape, m.margin, m.scale, m.feather, w, h) if m is not None else None)
            if v1 is None or v1[:4] != (patch.x0, patch.y0, patch.x1, patch.y1) or not np.array_equal(v1[4], real):
                explicit = real
            seg = self._open.get(key)
            if seg is None:
                seg = self._open[key] = _OpenSegment(self._next_sid)
                self._next_sid += 1
            seq = len(seg.crops)
            seg.crops.append((crop.copy(), real))
            seg.nbytes += crop.nbytes
            records.append(_pack_patch(seg.sid, seq, tb.track_id, tb.box,
                                       (patch.x0, patch.y0, patch.x1, patch.y1), explicit))
        thumb = thumbnail(covered) if frame.index % THUMB_EVERY == 0 else None
        self._emit(_pack_frame(frame.index, frame.pts if frame.pts is not None else frame.index,
                               thumb, len(records)))
        for r in records:
            self._emit(r)
        self.stats.frames += 1
        self.stats.patches += len(records)
        for key in keys:
            seg = self._open.get(key)
            if seg is not None and (len(seg.crops) >= self.options.max_segment
                                    or seg.nbytes >= self.MAX_SEGMENT_BYTES):
                self._close(key)
        self._drain()

    def finish(self, temp_output: str) -> None:
        t0 = time.perf_counter()
        try:
            self._finish(temp_output)
        finally:
            self.stats.seconds += time.perf_counter() - t0

    def _finish(self, temp_output: str) -> None:
        for key in list(self._open):
            self._close(key)
        self._drain(wait=True)
        self._stop_pool()
        digest = hashlib.sha256()
        try:
            with open(temp_output, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise OutputError(f"cannot read the finished output: {exc.strerror or exc}", temp_output) from None
        trailer = {"frames": self.stats.frames, "patches": self.stats.patches,
                   "segments": self.stats.segments, "output_sha256": digest.hexdigest(),
                   "stored_psnr": (round(self.stats.psnr, 3) if math.isfinite(self.stats.psnr) else None)}
        times = None if self.info.is_image else _output_times(temp_output, self.stats.frames)
        if times is not None:
            trailer["output_times"] = times
        self._chunks.add(_pack_doc(R_TRAILER, trailer))
        self._chunks.seal(last=True)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        self.stats.bytes = self._chunks.bytes_written

    def commit(self) -> None:
        try:
            self._atomic.commit()
        except OSError as exc:
            raise OutputError(f"cannot move the vault into place: {exc.strerror}", self.path) from None

    def abort(self) -> None:
        self._open.clear()
        self._queue.clear()
        self._pending = 0
        self._stop_pool()
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        if self._atomic is not None:
            self._atomic.abort()

    # segments -----------------------------------------------------------------------------------
    @staticmethod
    def workers(cores: Optional[int] = None) -> int:
        """Threads that encode segments beside the pipeline (x264 and NumPy release the GIL): one a
        core, 2 to 4. On 2 cores two beat one (hall_1080p with a passcode: 15.4 -> 11.4 s)."""
        return max(2, min(4, (os.cpu_count() or 1) if cores is None else cores))

    def _emit(self, record: bytes) -> None:
        if self._queue:  # behind a segment still being encoded
            self._queue.append(record)
        else:
            self._chunks.add(record)

    def _close(self, key) -> None:
        seg = self._open.pop(key)
        if not seg.crops:
            return
        source = self._track_hint.get(key)
        if source is None:
            source = next((item[3].result()[0].qp for item in reversed(self._queue) if not isinstance(item, bytes)
                           and item[3].done() and item[3].exception() is None), self._last_qp)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers(), thread_name_prefix="vidgan-vault")
        job = self._pool.submit(self._encode, seg, source, self._submitted == 0)  # the first: search up too
        self._submitted += 1
        self._pending += 1
        self._track_hint[key] = job
        self._queue.append((key, seg.sid, len(seg.crops), job))

    def _encode(self, seg: _OpenSegment, source, first: bool) -> tuple[EncodedSegment, float]:
        # A future here (the track's previous segment) was submitted before this job: the pool
        # starts jobs in order, so it runs or has run, and waiting for it cannot deadlock.
        hint = source if isinstance(source, int) else source.result()[0].next_qp
        t0 = time.perf_counter()
        enc = encode_segment(seg.crops, self.options.lossless, hint, self.options.target_psnr,
                             self.options.preset, search_up=first)
        return enc, time.perf_counter() - t0

    MAX_PENDING = 4  # segments encoding or waiting per worker, before the pipeline waits for the oldest

    def _drain(self, wait: bool = False) -> None:
        """Write what is ready at the head of the queue; with `wait`, everything; otherwise wait
        only while more segments are pending than MAX_PENDING per worker (they hold their crops)."""
        q = self._queue
        while q:
            head = q[0]
            if isinstance(head, bytes):
                self._chunks.add(q.popleft())
                continue
            if not (wait or head[3].done() or self._pending > self.MAX_PENDING * self.workers()):
                return
            q.popleft()
            self._pending -= 1
            self._write_segment(*head)

    def _write_segment(self, key, sid: int, ncrops: int, job: Future) -> None:
        enc, seconds = job.result()  # an encode's error comes up here, on the pipeline's thread
        if self._track_hint.get(key) is job:  # numbers from now on: the future holds the packets
            self._track_hint[key] = enc.next_qp
        self._last_qp = enc.qp
        self._chunks.add(_record(R_SEGMENT, SEGMENT_REC.pack(sid, enc.codec, enc.width, enc.height, ncrops)))
        for data, pts, dts, kf in enc.packets:
            self._chunks.add(_pack_packet(data, pts, dts, kf))
            self.stats.region_bytes += len(data)
        self._chunks.add(_record(R_SEGMENT_END, SEGMENT_END_REC.pack(sid)))
        self.stats.segments += 1
        self.stats.squared_error += enc.squared_error
        self.stats.values += enc.values
        self.stats.qps.append(enc.qp)
        self.stats.encodes += enc.passes
        self.stats.encode_seconds += seconds

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)  # an encode under way ends within ~1 s
            self._pool = None


# -- reading a vault ------------------------------------------------------------------------------
def _check_meta(meta: dict) -> dict:
    """Validate the metadata document; VaultError when anything is missing or of the wrong type."""
    try:
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError("format")
        v = meta["video"]
        w, h = v["width"], v["height"]
        if type(w) is not int or type(h) is not int or not (0 < w <= MAX_DIM and 0 < h <= MAX_DIM):
            raise ValueError("size")
        tb = Fraction(v["time_base"])
        if tb <= 0:
            raise ValueError("time base")
        if not isinstance(v["is_image"], bool):
            raise ValueError("is_image")
        mask = meta.get("mask")
        if mask is not None:
            if mask["shape"] not in ("ellipse", "box"):
                raise ValueError("mask shape")
            for k in ("margin", "scale", "feather"):
                if not isinstance(mask[k], (int, float)) or isinstance(mask[k], bool) or not math.isfinite(mask[k]) \
                        or not 0 <= mask[k] <= 10:
                    raise ValueError(f"mask {k}")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
        raise _damaged(f"metadata is incomplete ({exc})") from None
    return meta


@dataclass
class VaultIndex:
    """What a full verification pass learned: per-frame timing and thumbnails, totals."""

    frames: int = 0
    pts: list = field(default_factory=list)
    thumbs: dict = field(default_factory=dict)  # frame index -> thumbnail bytes
    patches: int = 0
    segments: int = 0
    trailer: dict = field(default_factory=dict)
    times: Optional[list] = None  # relative times of the output as written, when the vault has them


class _Validator:
    """Checks the order and consistency of records across the whole vault (one pass)."""

    def __init__(self, meta: dict):
        self.meta = meta
        self.width, self.height = meta["video"]["width"], meta["video"]["height"]
        self.frames = 0
        self.patches_left = 0
        self.refs: dict[int, int] = {}  # segment id -> crops referenced so far (not yet written)
        self.next_sid = 0
        self.writing: Optional[SegmentRec] = None
        self.packets = 0
        self.segments = 0
        self.patch_total = 0
        self.done = False

    def feed(self, rec) -> None:
        if self.done:
            raise _damaged("records after the trailer")
        if isinstance(rec, DocRec):
            if rec.kind == R_META:
                raise _damaged("metadata record out of place")
            self._trailer(rec.doc)
            return
        if self.writing is not None and not isinstance(rec, (PacketRec, SegmentEndRec)):
            raise _damaged("segment data interrupted")
        if isinstance(rec, FrameRec):
            if self.patches_left:
                raise _damaged("frame is missing patches")
            if rec.index != self.frames:
                raise _damaged(f"frame {rec.index} where frame {self.frames} was expected")
            self.frames += 1
            self.patches_left = rec.npatches
        elif isinstance(rec, PatchRec):
            if not self.patches_left:
                raise _damaged("patch without a frame")
            self.patches_left -= 1
            x0, y0, x1, y1 = rec.rect
            if x1 > self.width or y1 > self.height:
                raise _damaged("patch outside the frame")
            if rec.mask_kind == MASK_RECOMPUTE and self.meta.get("mask") is None:
                raise _damaged("patch needs mask options the metadata lacks")
            if rec.segment in self.refs:
                if rec.seq != self.refs[rec.segment]:
                    raise _damaged("patch out of order in its segment")
                self.refs[rec.segment] += 1
            elif rec.segment == self.next_sid and rec.seq == 0:
                self.refs[rec.segment] = 1
                self.next_sid += 1
            else:
                raise _damaged("patch refers to an unknown segment")
            self.patch_total += 1
        elif isinstance(rec, SegmentRec):
            if self.patches_left:
                raise _damaged("frame is missing patches")
            if rec.segment not in self.refs or self.refs[rec.segment] != rec.ncrops:
                raise _damaged("segment does not match its patches")
            self.writing = rec
            self.packets = 0
        elif isinstance(rec, PacketRec):
            if self.writing is None:
                raise _damaged("packet outside a segment")
            self.packets += 1
        elif isinstance(rec, SegmentEndRec):
            if self.writing is None or rec.segment != self.writing.segment or not self.packets:
                raise _damaged("segment end does not match")
            del self.refs[rec.segment]
            self.writing = None
            self.segments += 1

    def _trailer(self, doc: dict) -> None:
        if self.patches_left or self.writing is not None or self.refs:
            raise _damaged("trailer before all regions were written")
        try:
            ok = (doc["frames"] == self.frames and doc["patches"] == self.patch_total
                  and doc["segments"] == self.segments)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise _damaged("trailer totals do not match the records")
        self.done = True


class VaultReader:
    """An opened vault: header parsed, key derived, metadata (chunk 0) decrypted and checked."""

    def __init__(self, source, passcode: Passcode, name: str = "vault"):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.fh: BinaryIO = io.BytesIO(bytes(source))
            self._own = True
        elif isinstance(source, str):
            self.path = source
            try:
                self.fh = open(source, "rb")
            except FileNotFoundError:
                raise MediaError("vault not found", source) from None
            except IsADirectoryError:
                raise MediaError("the vault path is a folder", source) from None
            except OSError as exc:
                raise MediaError(f"cannot read the vault: {exc.strerror or exc}", source) from None
            name = source
            self._own = True
        else:
            self.fh = source
            self._own = False
        self.name = name
        try:
            self.header = Header.parse(self.fh.read(HEADER_BYTES))
            self.key = chunk_key(passcode, self.header)
            chunks = iter(ChunkReader(self.fh, self.header, self.key))
            _, last, plain = next(chunks)
            recs = parse_records(plain)
            if last or len(recs) != 1 or not isinstance(recs[0], DocRec) or recs[0].kind != R_META:
                raise _damaged("first chunk is not the metadata")
            self.meta = _check_meta(recs[0].doc)
        except BaseException:
            self.close()
            raise
        self.index: Optional[VaultIndex] = None

    def close(self) -> None:
        if self._own and self.fh is not None:
            self.fh.close()
            self.fh = None

    def __enter__(self) -> "VaultReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def records(self) -> Iterator:
        """Every record after the metadata, in order, each chunk authenticated before it is parsed."""
        for counter, last, plain in ChunkReader(self.fh, self.header, self.key):
            if counter == 0:
                continue
            for rec in parse_records(plain):
                yield rec
            if last:
                return

    def verify(self) -> VaultIndex:
        """Authenticate and check the whole vault (no decoding); return its frame index."""
        v = _Validator(self.meta)
        idx = VaultIndex()
        for rec in self.records():
            v.feed(rec)
            if isinstance(rec, FrameRec):
                idx.pts.append(rec.pts)
                if rec.thumb is not None:
                    idx.thumbs[rec.index] = rec.thumb
            elif isinstance(rec, DocRec):
                idx.trailer = rec.doc
        if not v.done:
            raise _damaged("trailer missing")
        idx.frames, idx.patches, idx.segments = v.frames, v.patch_total, v.segments
        idx.times = _parse_output_times(idx.trailer.get("output_times"), idx.frames)
        self.index = idx
        return idx


def open_vault(path, passcode: Passcode) -> VaultReader:
    """Open and check the passcode (VaultError "wrong passcode or damaged vault" when it is wrong)."""
    return VaultReader(path, passcode)


# -- restoring --------------------------------------------------------------------------------------
@dataclass
class RestoreReport:
    input: str
    vault: str
    output: Optional[str] = None
    frames: int = 0
    patches: int = 0
    exact_file: bool = False  # the video is byte for byte the file the vault was written with
    seconds: float = 0.0
    warnings: list = field(default_factory=list)


class _Binding:
    """Checks that the video being restored is the anonymized video the vault belongs to."""

    def __init__(self, meta: dict, index: VaultIndex, info: VideoInfo, path: str):
        v = meta["video"]
        self.path = path
        if (info.width, info.height) != (v["width"], v["height"]):
            raise VaultMismatch(f"vault belongs to a different video ({v['width']}x{v['height']}, this one "
                                f"is {info.width}x{info.height})", path)
        if bool(info.is_image) != v["is_image"]:
            raise VaultMismatch("vault belongs to " + ("a photo" if v["is_image"] else "a video")
                                + ", not " + ("a photo" if info.is_image else "a video"), path)
        if info.frame_count and info.container_format.startswith("mov") and info.frame_count != index.frames:
            raise VaultMismatch(f"vault belongs to a different video ({index.frames} frames, this one "
                                f"has {info.frame_count})", path)
        self.index = index
        if index.times is not None:  # the output's own timestamps, as written
            self.times = index.times
        else:
            tb = Fraction(v["time_base"])
            self.times = [Fraction(p - index.pts[0]) * tb for p in index.pts] if index.pts else []
        deltas = sorted(float(b - a) for a, b in zip(self.times, self.times[1:]) if b > a)
        nominal = deltas[len(deltas) // 2] if deltas else 0.04
        self.tolerance = max(0.002, 0.4 * nominal)
        self.t0: Optional[float] = None

    def check(self, frame: Frame) -> None:
        i = frame.index
        if i >= self.index.frames:
            raise VaultMismatch(f"vault belongs to a different video (it has {self.index.frames} frames, "
                                f"this one has more)", self.path)
        if self.t0 is None:
            self.t0 = frame.time
        expected = float(self.times[i]) if self.times else 0.0
        got = frame.time - self.t0
        if abs(got - expected) > self.tolerance:
            raise VaultMismatch(f"vault belongs to a different video (frame {i} is at {got:.3f} s, the vault "
                                f"expects {expected:.3f} s; re-encode only at the same frame rate)", self.path)
        thumb = self.index.thumbs.get(i)
        if thumb is not None:
            d = thumb_distance(thumb, thumbnail(frame.image))
            if d > THUMB_TOLERANCE:
                raise VaultMismatch(f"vault belongs to a different video (frame {i} does not match: "
                                    f"difference {d:.1f})", self.path)

    def check_end(self, frames: int) -> None:
        if frames != self.index.frames:
            raise VaultMismatch(f"vault belongs to a different video ({self.index.frames} frames, this "
                                f"one has {frames})", self.path)


@dataclass
class RestoredFrame:
    frame: Frame  # the frame of the anonymized video as decoded
    image: np.ndarray  # restored pixels
    regions: list  # [(x0, y0, x1, y1, bool mask)] pasted from the vault


class _Paster:
    """Reads records ahead as needed and yields, per frame, its patches with their crops."""

    def __init__(self, vault: VaultReader):
        self.meta = vault.meta
        self.records = vault.records()
        self.validator = _Validator(vault.meta)  # the second pass is checked again, record by record
        self.pending: deque = deque()  # (FrameRec, [PatchRec])
        self.decoders: dict[int, SegmentDecoder] = {}
        self.complete: set[int] = set()
        self._writing: Optional[SegmentRec] = None
        self._exhausted = False

    def _read_one(self) -> bool:
        try:
            rec = next(self.records)
        except StopIteration:
            self._exhausted = True
            return False
        self.validator.feed(rec)
        if isinstance(rec, FrameRec):
            self.pending.append((rec, []))
        elif isinstance(rec, PatchRec):
            self.pending[-1][1].append(rec)
        elif isinstance(rec, SegmentRec):
            self._writing = rec
            self.decoders[rec.segment] = SegmentDecoder(rec.codec, rec.width, rec.height, rec.ncrops)
        elif isinstance(rec, PacketRec):
            self.decoders[self._writing.segment].add(rec.data, rec.pts, rec.dts)
        elif isinstance(rec, SegmentEndRec):
            self.complete.add(rec.segment)
            self._writing = None
        return True

    def next_frame(self):
        while not self.pending or any(p.segment not in self.complete for p in self.pending[0][1]) \
                or (self.pending and len(self.pending[0][1]) < self.pending[0][0].npatches):
            if not self._read_one():
                raise _damaged("regions missing at the end")
        rec, patches = self.pending.popleft()
        out = []
        for p in patches:
            dec = self.decoders[p.segment]
            canvas = dec.next_canvas()
            x0, y0, x1, y1 = p.rect
            h, w = y1 - y0, x1 - x0
            if h > dec.ch or w > dec.cw:
                raise _damaged("patch larger than its segment")
            oy, ox = _canvas_offset(h, w, dec.ch, dec.cw)
            crop = canvas[oy:oy + h, ox:ox + w]
            out.append((p, crop, self._mask(p, w, h)))
            if dec.taken >= dec.ncrops:
                del self.decoders[p.segment]
                self.complete.discard(p.segment)
        return rec, out

    def _mask(self, p: PatchRec, w: int, h: int) -> np.ndarray:
        if p.mask_kind == MASK_EXPLICIT:
            try:
                bits = np.frombuffer(zlib.decompressobj().decompress(p.mask_data, (w * h + 7) // 8 + 1),
                                     np.uint8)
            except zlib.error:
                raise _damaged("patch mask does not decompress") from None
            if bits.size != (w * h + 7) // 8:
                raise _damaged("patch mask has the wrong size")
            return np.unpackbits(bits)[:w * h].reshape(h, w).astype(bool)
        m = self.meta["mask"]
        v = self.meta["video"]
        got = mask_v1(p.box, m["shape"], float(m["margin"]), float(m["scale"]), float(m["feather"]),
                      v["width"], v["height"])
        if got is None or got[:4] != p.rect:
            raise _damaged("patch mask does not match its box")
        return got[4]


def restored_frames(anon_path: str, vault: VaultReader, index: Optional[VaultIndex] = None,
                    cancel: Optional[threading.Event] = None) -> Iterator[RestoredFrame]:
    """Decode `anon_path` and yield each frame with the vault's originals pasted back.

    The library core of `restore`; tests and benchmarks use it to compare pixels before the final
    encode. Raises VaultMismatch when the video is not the one the vault belongs to."""
    index = index or vault.index or vault.verify()
    with VideoReader(anon_path) as reader:
        binding = _Binding(vault.meta, index, reader.info, anon_path)
        yield from _restore_loop(iter(reader), anon_path, vault, binding, cancel)


def _restore_loop(frames: Iterator[Frame], path: str, vault: VaultReader, binding: _Binding,
                  cancel: Optional[threading.Event]) -> Iterator[RestoredFrame]:
    paster = _Paster(vault)
    count = 0
    for frame in frames:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled; nothing was written", path)
        binding.check(frame)
        rec, items = paster.next_frame()
        image = frame.image
        regions = []
        if items:
            image = image.copy()
            for p, crop, mask in items:
                x0, y0, x1, y1 = p.rect
                roi = image[y0:y1, x0:x1]
                roi[mask] = crop[mask]
                regions.append((x0, y0, x1, y1, mask))
        count += 1
        yield RestoredFrame(frame, image, regions)
    binding.check_end(count)


ProgressFn = Callable[[int, Optional[int]], None]


def restore(anon_path: str, vault_path: str, output_path: str, passcode: Passcode,
            encode: EncodeOptions = EncodeOptions(), progress: Optional[ProgressFn] = None,
            cancel: Optional[threading.Event] = None) -> RestoreReport:
    """Paste the vault's originals back into `anon_path` and write `output_path` atomically.

    Wrong passcode or a damaged vault: VaultError (exit 3). A vault for another video: VaultMismatch
    (exit 1). Either way nothing is written."""
    t0 = time.perf_counter()
    check_output_path(output_path, anon_path)
    if os.path.abspath(output_path) == os.path.abspath(vault_path):
        raise OutputError("output path is the vault; refusing to overwrite it", output_path)
    report = RestoreReport(input=anon_path, vault=vault_path, output=output_path)
    with open_vault(vault_path, passcode) as vault:
        index = vault.verify()
        digest = index.trailer.get("output_sha256")
        # The anonymized video's own YUV passes through outside the restored regions (only those are
        # converted from RGB: no generation lost elsewhere), decoded and encoded in threads of their own.
        with VideoReader(anon_path, keep_yuv=True) as reader:
            info = reader.info
            binding = _Binding(vault.meta, index, info, anon_path)
            stop = threading.Event()
            decoded = prefetch(iter(reader), stop)
            try:
                frames = _restore_loop(decoded, anon_path, vault, binding, cancel)
                if info.is_image:
                    for rf in list(frames):  # all checks pass before anything is written
                        report.patches += len(rf.regions)
                        report.frames += 1
                        write_image(output_path, rf.image, source=anon_path,
                                    copy_metadata=encode.copy_metadata)
                else:
                    writer = VideoWriter(output_path, info, source=anon_path, options=encode)
                    encoder = EncodeThread(writer)
                    try:
                        for rf in frames:
                            encoder.put((rf.frame, rf.image, [r[:4] for r in rf.regions]))
                            report.patches += len(rf.regions)
                            report.frames += 1
                            if progress is not None:
                                progress(report.frames, index.frames)
                        encoder.close()
                        writer.commit()
                    except BaseException:
                        encoder.abort()
                        writer.abort()
                        raise
                    report.warnings.extend(writer.warnings)
            finally:
                stop.set()
                decoded.close()
            if reader.skipped_packets:
                report.warnings.append(f"{reader.skipped_packets} damaged packet(s) skipped while decoding")
    if digest:
        report.exact_file = _sha256(anon_path) == digest
    report.seconds = time.perf_counter() - t0
    return report


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
