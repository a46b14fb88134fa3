"""Identity codes for GAN de-identification: passcode + video + track -> a latent vector z.

Why a key-derivation function and not `random.seed(hash(...))`: the fake face of a person must be
stable (same passcode, same video, same track -> same z in every frame and every run), must change
completely with the passcode, and must not let anyone who sees the output work back to anything.
HKDF-SHA256 (from `cryptography`) gives that:

    passcode_key = HKDF(passcode, info="vidgan/deid/passcode")            # once per run (CLI)
    video_key    = HKDF(passcode_key, salt=video_salt, info="vidgan/deid/video")
    z(track)     = BoxMuller(HKDF(video_key, info="vidgan/deid/track" || id || attempt))

`video_salt` is a SHA-256 of the input file's size and first MiB, so one passcode gives different
fakes in different videos (track 1 is a different person in each) and the same fakes when the same
video is processed again (or in parallel segments). Without a passcode the passcode key is random.

Two tracks of one video must never share a fake identity, so a code closer than `min_distance` to a
code already issued in this video is re-derived with the next `attempt` (deterministic, because
tracks are issued in the order they first appear).
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Optional

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

Z_DIM = 64
SALT_PREFIX_BYTES = 1 << 20


def _hkdf(ikm: bytes, info: bytes, length: int = 32, salt: Optional[bytes] = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def passcode_key(passcode) -> bytes:
    """32-byte secret for de-identification from a `keys.Passcode` (or str/bytes). The passcode
    itself is never kept; the vault derives its own, unrelated key from the same passcode."""
    raw = passcode.encode() if hasattr(passcode, "encode") and not isinstance(passcode, bytes) else passcode
    if not raw:
        raise ValueError("empty passcode")
    return _hkdf(bytes(raw), b"vidgan/deid/passcode")


def random_key() -> bytes:
    return os.urandom(32)


def video_salt(path: str) -> bytes:
    """Per-video salt from the file content (size + first MiB), stable across runs and machines."""
    h = hashlib.sha256(b"vidgan/deid/salt")
    try:
        h.update(struct.pack(">Q", os.path.getsize(path)))
        with open(path, "rb") as fh:
            h.update(fh.read(SALT_PREFIX_BYTES))
    except OSError:
        h.update(os.path.basename(path).encode())
    return h.digest()


def _normal_from_bytes(data: bytes, dim: int) -> np.ndarray:
    """Box-Muller on 64-bit uniforms: a standard normal vector, fixed by `data` on any platform."""
    u = np.frombuffer(data, dtype=">u8").astype(np.float64)
    u = (u + 0.5) / 2.0 ** 64  # (0, 1), never 0
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])
    return z[:dim].astype(np.float32)


class TrackCodes:
    """The z of every track of one video. `code(track_id)` is deterministic for (key, salt, id,
    order of first appearance) and at least `min_distance` from every other track's code."""

    def __init__(self, key: bytes, salt: bytes = b"", dim: int = Z_DIM, min_distance: Optional[float] = None):
        self.dim = dim
        self.video_key = _hkdf(key, b"vidgan/deid/video", salt=salt or None)
        # Two independent N(0, I) codes are sqrt(2 dim) apart on average (11.3 for 64-d); refuse
        # anything closer than 70 % of that, which random draws almost never are.
        self.min_distance = 0.7 * np.sqrt(2.0 * dim) if min_distance is None else min_distance
        self.codes: dict[int, np.ndarray] = {}

    def derive(self, track_id: int, attempt: int = 0) -> np.ndarray:
        info = b"vidgan/deid/track" + struct.pack(">qI", int(track_id), attempt)
        n = self.dim + (self.dim % 2)
        return _normal_from_bytes(_hkdf(self.video_key, info, length=8 * n), self.dim)

    def code(self, track_id: int) -> np.ndarray:
        z = self.codes.get(track_id)
        if z is not None:
            return z
        for attempt in range(1000):
            z = self.derive(track_id, attempt)
            if all(np.linalg.norm(z - o) >= self.min_distance for o in self.codes.values()):
                break
        self.codes[track_id] = z
        return z
