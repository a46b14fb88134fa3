"""Shared test helpers: the real clips in ../shared/data and small synthetic media made with PyAV.

The real media live beside the checkout (`<repo>/../shared/data`, the same layout on CI) and are
never copied into the repository; tests that need them skip with a clear reason when the folder is
absent. Synthetic clips are written into the test's `tmp_path`.

Helpers are plain functions (importable as `from conftest import ...`) with fixtures wrapping them:
`shared_data` (Path of the folder), `video` (name -> path of a shared clip) and `make_clip`
(keyword arguments -> path of a fresh synthetic clip in tmp_path).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Generators converted for OpenVINO (vidgan/gan/ovgen.py) are kept in a folder of this test run, not
# in the user's ~/.cache (and every run converts afresh, so the conversion itself is tested);
# subprocesses the tests start inherit it.
if "VIDGAN_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["VIDGAN_CACHE"] = tempfile.mkdtemp(prefix="vidgan-test-cache-")
    atexit.register(shutil.rmtree, os.environ["VIDGAN_CACHE"], True)


# -- real clips -------------------------------------------------------------------------------------
def shared_data_dir() -> Path:
    """`<repo>/../shared/data`, or skip the calling test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} "
                    "(the real clips live in ../shared/data beside the checkout)")
    return SHARED_DATA


def video_path(name: str) -> str:
    """Path of `videos/<name>` in the shared data, or skip when the folder or the file is missing."""
    path = shared_data_dir() / "videos" / name
    if not path.is_file():
        pytest.skip(f"shared clip {name} not found in {path.parent}")
    return str(path)


@pytest.fixture
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture
def video():
    """`video("party_h264_aac.mp4")` -> path of that shared clip (skips when absent)."""
    return video_path


# -- synthetic media --------------------------------------------------------------------------------
MARKER = (0, 0, 255)  # colour of the block in the stored picture's top-left corner (blue)


def testsrc_image(i: int, width: int, height: int) -> np.ndarray:
    """A small testsrc-like picture (RGB uint8 HxWx3) for frame `i`.

    Horizontal red ramp, vertical green ramp, constant dim blue, a pure blue block (MARKER) in the
    top-left corner (so the orientation can be checked after rotation: nothing else is that blue)
    and a yellow square that moves with `i` (so frames differ from each other).
    """
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 0] = np.linspace(0, 200, width, dtype=np.float32)[None, :].astype(np.uint8)
    img[:, :, 1] = np.linspace(0, 200, height, dtype=np.float32)[:, None].astype(np.uint8)
    img[:, :, 2] = 60
    img[: height // 4, : width // 4] = MARKER
    s = max(2, min(width, height) // 6)
    x = (i * 3) % max(1, width - s)
    y = height - s - 1
    img[y:y + s, x:x + s] = (255, 255, 0)
    return img


def _audio_frames(stream, seconds: float, rate: int):
    """Yield a 440 Hz tone as AudioFrames in the encoder's sample format and layout."""
    cc = stream.codec_context
    frame_size = cc.frame_size or 1024
    layout = cc.layout.name
    channels = cc.layout.nb_channels
    resampler = av.AudioResampler(format=cc.codec.audio_formats[0].name, layout=layout, rate=rate)
    total = int(round(seconds * rate))
    t = 0
    while t < total:
        n = min(frame_size, total - t)
        tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(t, t + n) / rate)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.tile(tone, (channels, 1)), format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = t
        frame.time_base = Fraction(1, rate)
        yield from resampler.resample(frame)
        t += n
    yield from resampler.resample(None)


_DEFAULT_CODEC = {".webm": "libvpx", ".ogg": "libvpx", ".avi": "mpeg4"}


def make_clip(path, *, frames: int = 30, width: int = 64, height: int = 48, rate: int = 30,
              codec: Optional[str] = None, audio: Optional[str] = None, audio_rate: int = 48000,
              rotation: int = 0, pts: Optional[Sequence[int]] = None,
              time_base: Optional[Fraction] = None, metadata: Optional[dict] = None,
              audio_metadata: Optional[dict] = None, pix_fmt: str = "yuv420p",
              codec_options: Optional[dict] = None) -> str:
    """Write a small synthetic clip with PyAV and return its path.

    frames/width/height/rate: a `frames`-frame testsrc-like picture (default 1 s of 64x48 at 30 fps).
    codec: video encoder (default libx264; libvpx for .webm/.ogg, mpeg4 for .avi).
    audio: audio encoder ("aac", "libopus", "pcm_s16le", ...) for a tone as long as the video.
    rotation: display rotation in degrees (`stream.set_display_rotation`).
    pts/time_base: explicit (irregular, VFR) timestamps for every frame, in `time_base` units.
    metadata: container metadata (title, creation_time, comment, ...); audio_metadata: the audio
    stream's (language, title, ...).
    pix_fmt: stored pixel format (yuv444p allows odd sizes with libx264).
    codec_options: encoder options, e.g. {"g": "10"} for a key frame every 10 frames with libx264.
    """
    path = str(path)
    ext = os.path.splitext(path)[1].lower()
    codec = codec or _DEFAULT_CODEC.get(ext, "libx264")
    if pts is not None:
        assert len(pts) == frames, "one pts per frame"
        time_base = time_base or Fraction(1, 1000)
    else:
        time_base = time_base or Fraction(1, rate)
    with av.open(path, mode="w") as container:
        if metadata:
            for key, value in metadata.items():
                container.metadata[key] = value
        vs = container.add_stream(codec, rate=rate)
        vs.width, vs.height = width, height
        vs.pix_fmt = pix_fmt
        vs.codec_context.time_base = time_base
        vs.time_base = time_base
        if codec_options:
            vs.codec_context.options = dict(codec_options)
        if rotation:
            vs.set_display_rotation(rotation)
        aus = None
        if audio:
            aus = container.add_stream(audio, rate=audio_rate)
            aus.codec_context.layout = "stereo"
            for key, value in (audio_metadata or {}).items():
                aus.metadata[key] = value
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(testsrc_image(i, width, height), format="rgb24")
            vf.pts = pts[i] if pts is not None else int(round(i / rate / time_base))
            vf.time_base = time_base
            container.mux(vs.encode(vf))
        container.mux(vs.encode(None))
        if aus is not None:
            for af in _audio_frames(aus, frames / rate if pts is None
                                    else float((pts[-1] + pts[-1] - pts[-2]) * time_base), audio_rate):
                container.mux(aus.encode(af))
            container.mux(aus.encode(None))
    return path


@pytest.fixture
def make_clip_in(tmp_path):
    """`make_clip_in("name.mp4", **kw)` -> path of a synthetic clip written in tmp_path."""

    def factory(name: str, **kwargs) -> str:
        return make_clip(tmp_path / name, **kwargs)

    return factory


def make_audio_only(path, *, seconds: float = 0.5, codec: str = "pcm_s16le", rate: int = 48000) -> str:
    """A file with an audio stream and no video stream."""
    path = str(path)
    with av.open(path, mode="w") as container:
        aus = container.add_stream(codec, rate=rate)
        aus.codec_context.layout = "stereo"
        for af in _audio_frames(aus, seconds, rate):
            container.mux(aus.encode(af))
        container.mux(aus.encode(None))
    return path


# -- reading back -----------------------------------------------------------------------------------
def video_times(path: str, limit: Optional[int] = None) -> list[Fraction]:
    """Presentation times (exact, seconds as Fractions) of the decoded video frames, via PyAV."""
    out = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        tb = Fraction(stream.time_base)
        for frame in container.decode(stream):
            out.append(frame.pts * tb)
            if limit is not None and len(out) >= limit:
                break
    return out


def audio_packets(path: str) -> list[list[tuple[bytes, Optional[Fraction]]]]:
    """Per audio stream: (payload bytes, pts in seconds) of every non-empty packet, in demux order."""
    with av.open(path) as container:
        streams = list(container.streams.audio)
        out: dict[int, list] = {s.index: [] for s in streams}
        if streams:
            for packet in container.demux(streams):
                if packet.size:
                    t = None if packet.pts is None else packet.pts * Fraction(packet.time_base)
                    out[packet.stream.index].append((bytes(packet), t))
        return [out[s.index] for s in streams]
