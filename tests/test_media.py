"""Media layer: VideoReader / VideoWriter round trips, atomic writes, bad inputs and outputs.

The first part runs on small synthetic clips made with PyAV in tmp_path; the second part runs a
plain decode -> encode round trip (no face work) over every real clip in ../shared/data/videos and
skips when that folder is absent.
"""

from __future__ import annotations

import array
import fcntl
import os
import shutil
import stat
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import (MARKER, SHARED_DATA, audio_packets, make_audio_only, make_clip, video_path,
                      video_times)

from vidgan.errors import MediaError, OutputError  # noqa: E402
from vidgan.media import (EncodeOptions, VideoReader, VideoWriter, check_output_path,  # noqa: E402
                          output_format_for, probe, read_frame)

assert MARKER == (0, 0, 255)  # assert_marker_at looks for a pure blue block

# -- helpers -----------------------------------------------------------------------------------------


def round_trip(src: str, dst: str, limit: int | None = None, keep_images: int = 3,
               options: EncodeOptions = EncodeOptions()):
    """Decode `src` with VideoReader and encode every frame (or the first `limit`) unchanged to `dst`.

    Returns (info, writer, exact input times as Fractions, the first `keep_images` upright images).
    """
    times, images = [], []
    with VideoReader(src) as reader:
        info = reader.info
        with VideoWriter(dst, info, source=src, options=options) as writer:
            for frame in reader:
                if limit is not None and frame.index >= limit:
                    break
                assert frame.pts is not None
                times.append(Fraction(frame.pts) * info.time_base)
                if len(images) < keep_images:
                    images.append(frame.image)
                writer.write(frame)
    assert writer.frames_written == len(times)
    return info, writer, times, images


def upright_images(path: str, count: int) -> list[np.ndarray]:
    out = []
    with VideoReader(path) as reader:
        for frame in reader:
            out.append(frame.image)
            if len(out) >= count:
                break
    return out


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def raw_first_frame(path: str) -> av.VideoFrame:
    with av.open(path) as container:
        return next(container.decode(container.streams.video[0]))


# Keys the muxer writes itself (or that describe the old file, not the content).
MUXER_KEYS = {"encoder", "software", "major_brand", "minor_version", "compatible_brands", "duration"}


def content_metadata(path: str) -> dict[str, str]:
    with av.open(path) as container:
        return {k.lower(): v for k, v in container.metadata.items() if k.lower() not in MUXER_KEYS}


def assert_one_line_error(err: Exception, path: str) -> None:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    assert 0 < len(text) < 300
    assert os.path.basename(path) in text
    assert err.path == path  # type: ignore[attr-defined]
    assert err.reason and err.reason.strip() == err.reason  # type: ignore[attr-defined]


def leftovers(folder) -> list[str]:
    """Temporary files the writer may have left behind in `folder`."""
    return [n for n in os.listdir(folder) if "partial" in n or n.startswith(".")]


# -- synthetic round trips ---------------------------------------------------------------------------

META = {"title": "Synthetic clip", "creation_time": "2020-01-02T03:04:05.000000Z",
        "comment": "made by the tests"}
# 33/67 ms steps, like a phone recording that drops frames
VFR_PTS = [0, 33, 100, 133, 167, 234, 300, 333, 400, 433] + [500 + 33 * k for k in range(14)]

SYNTHETIC = {
    "aac.mp4": dict(audio="aac"),
    "mp3.mp4": dict(audio="libmp3lame"),
    "opus.webm": dict(audio="libopus"),
    "opus.mkv": dict(audio="libopus"),
    "pcm.mkv": dict(audio="pcm_s16le"),
    "flac.mkv": dict(audio="flac"),
    "mp3.avi": dict(audio="libmp3lame"),
    "vfr.mp4": dict(audio="aac", pts=VFR_PTS, frames=len(VFR_PTS)),
    "vfr.mkv": dict(audio="libopus", pts=VFR_PTS, frames=len(VFR_PTS)),
    "odd_size.mp4": dict(width=63, height=47, pix_fmt="yuv444p"),
    "no_audio.mkv": dict(),
}


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_round_trip(tmp_path, name):
    kw = dict(SYNTHETIC[name])
    kw.setdefault("frames", 30)
    audio_md = {"language": "fra"} if kw.get("audio") else None
    src = make_clip(tmp_path / f"in_{name}", metadata=META, audio_metadata=audio_md, **kw)
    dst = str(tmp_path / f"out_{name}")
    info, writer, times, images = round_trip(src, dst)

    assert len(times) == kw["frames"]
    if "pts" in kw:  # the clip really is VFR
        assert len({b - a for a, b in zip(times, times[1:])}) > 1
    assert video_times(dst) == times  # same frame count, same timestamps, exactly
    out_info = probe(dst)
    assert (out_info.width, out_info.height) == (info.width, info.height) == (kw.get("width", 64),
                                                                            kw.get("height", 48))
    assert out_info.rotation == 0
    for a, b in zip(images, upright_images(dst, len(images))):
        assert mean_abs_diff(a, b) < 6.0
    # audio copied packet for packet: same bytes at the same times
    src_audio = audio_packets(src)
    assert len(src_audio) == (1 if kw.get("audio") else 0)
    assert audio_packets(dst) == src_audio
    assert all(len(packets) > 10 for packets in src_audio)
    assert writer.warnings == []
    # container metadata (title, creation time, comment) and the audio language copied
    assert content_metadata(dst) == content_metadata(src)
    assert content_metadata(src)["title"] == META["title"]
    if audio_md and not name.endswith(".avi"):  # AVI has no stream language
        with av.open(dst) as c:
            assert c.streams.audio[0].metadata.get("language") == "fra"


def test_metadata_not_copied_when_disabled(tmp_path):
    src = make_clip(tmp_path / "in.mp4", audio="aac", metadata=META)
    dst = str(tmp_path / "out.mp4")
    round_trip(src, dst, options=EncodeOptions(copy_metadata=False))
    md = content_metadata(dst)
    assert "title" not in md and "comment" not in md
    assert len(audio_packets(dst)[0]) > 0  # audio still copied


def test_audio_not_copied_when_disabled(tmp_path):
    src = make_clip(tmp_path / "in.mkv", audio="libopus")
    dst = str(tmp_path / "out.mkv")
    round_trip(src, dst, options=EncodeOptions(copy_audio=False, copy_metadata=False))
    assert audio_packets(dst) == []
    assert len(video_times(dst)) == 30


def test_audio_that_cannot_be_copied_is_transcoded_with_a_warning(tmp_path):
    # PCM cannot go into WebM: the writer transcodes it (to Opus) and says so
    src = make_clip(tmp_path / "in.mkv", audio="pcm_s16le", codec="libvpx")
    dst = str(tmp_path / "out.webm")
    _, writer, times, _ = round_trip(src, dst)
    assert len(writer.warnings) == 1 and "transcoded" in writer.warnings[0]
    with av.open(dst) as c:
        assert c.streams.audio[0].codec_context.name in ("opus", "libopus")
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
    assert samples / 48000 == pytest.approx(1.0, abs=0.05)
    assert video_times(dst) == times


def test_pcm_audio_into_mp4_is_transcoded_not_lost(tmp_path):
    """FFmpeg's MP4 muxer takes PCM in the header and refuses it only when the file is finished:
    the copy probe writes a packet and the trailer too, so the audio is transcoded to AAC (from
    Matroska's unordered "2 channels" layout, which the AAC encoder refuses, to stereo) and the
    output is written; before, the whole output was lost ("finishing the file failed")."""
    src = make_clip(tmp_path / "in.mkv", audio="pcm_s16le")
    with av.open(src) as c:
        assert [ch.name for ch in c.streams.audio[0].codec_context.layout.channels] == ["NONE", "NONE"]
    dst = str(tmp_path / "out.mp4")
    _, writer, times, _ = round_trip(src, dst)
    assert len(writer.warnings) == 1 and "transcoded to aac" in writer.warnings[0]
    with av.open(dst) as c:
        a = c.streams.audio[0].codec_context
        assert a.name == "aac" and a.layout.name == "stereo"
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
    assert samples / 48000 == pytest.approx(1.0, abs=0.05)
    assert video_times(dst) == times


# Where the MARKER block (stored top-left) must appear once the display rotation is applied.
# FFmpeg's display matrix angle is counter-clockwise: ffmpeg itself plays an angle of 90 with
# transpose=cclock and -90 (= 270) with transpose=clock.
MARKER_CORNER = {0: "top-left", 90: "bottom-left", 180: "bottom-right", 270: "top-right"}


def corner(img: np.ndarray, which: str, size: int = 6) -> np.ndarray:
    h, w = img.shape[:2]
    ys = slice(0, size) if which.startswith("top") else slice(h - size, h)
    xs = slice(0, size) if which.endswith("left") else slice(w - size, w)
    return img[ys, xs].reshape(-1, 3).mean(axis=0)


def assert_marker_at(img: np.ndarray, where: str) -> None:
    for which in ("top-left", "top-right", "bottom-left", "bottom-right"):
        blue = corner(img, which)[2] - corner(img, which)[:2].max()
        if which == where:
            assert blue > 150, (which, corner(img, which))
        else:
            assert blue < 100, (which, corner(img, which))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clip_is_read_upright_and_written_back_rotated(tmp_path, rotation):
    src = make_clip(tmp_path / "in.mp4", rotation=rotation, audio="aac", width=64, height=48)
    stored_in = raw_first_frame(src)
    assert round(stored_in.rotation) % 360 == rotation  # the synthetic clip carries the matrix
    dst = str(tmp_path / "out.mp4")
    info, _, times, images = round_trip(src, dst)
    assert info.rotation == rotation
    assert (info.coded_width, info.coded_height) == (64, 48)
    expect = (48, 64) if rotation in (90, 270) else (64, 48)
    assert (info.width, info.height) == expect
    assert images[0].shape == (expect[1], expect[0], 3)
    assert_marker_at(images[0], MARKER_CORNER[rotation])
    assert_marker_at(stored_in.to_ndarray(format="rgb24"), "top-left")

    # the output keeps the display matrix and the stored orientation ...
    stored_out = raw_first_frame(dst)
    assert stored_out.rotation == stored_in.rotation
    assert (stored_out.width, stored_out.height) == (64, 48)
    assert mean_abs_diff(stored_out.to_ndarray(format="rgb24"), stored_in.to_ndarray(format="rgb24")) < 6
    # ... so it reads back upright, like the input
    out_images = upright_images(dst, len(images))
    for a, b in zip(images, out_images):
        assert mean_abs_diff(a, b) < 6
    assert_marker_at(out_images[0], MARKER_CORNER[rotation])
    assert video_times(dst) == times
    assert audio_packets(dst) == audio_packets(src)


def test_reader_frames_have_index_time_and_duration(tmp_path):
    src = make_clip(tmp_path / "vfr.mkv", pts=VFR_PTS, frames=len(VFR_PTS))
    with VideoReader(src) as reader:
        frames = list(reader)
        info = reader.info
    assert [f.index for f in frames] == list(range(len(VFR_PTS)))
    assert [f.pts for f in frames] == VFR_PTS
    assert [f.time for f in frames] == pytest.approx([p / 1000 for p in VFR_PTS])
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert info.time_base == Fraction(1, 1000) and info.codec == "h264" and not info.is_image
    assert read_frame(src, 3).pts == VFR_PTS[3]
    with pytest.raises(MediaError, match="past the end"):
        read_frame(src, len(VFR_PTS))


def test_decoder_threading_follows_the_cores_and_decodes_the_same_pixels(tmp_path, monkeypatch):
    """Slice threading on machines of 1-2 cores (frame threads' hand-offs only cost CPU there), frame
    threads above; either way, and with an explicit thread count, the same frames and timestamps."""
    from vidgan.media import reader as reader_module

    assert [reader_module.decoder_threading(n) for n in (1, 2, 3, 16)] == ["SLICE", "SLICE", "AUTO", "AUTO"]
    assert reader_module.decoder_threading() in ("SLICE", "AUTO")
    src = make_clip(tmp_path / "c.mp4", frames=40, width=320, height=240)

    def decoded(cores=None, threads=0):
        if cores is not None:
            monkeypatch.setattr(reader_module, "decoder_threading", lambda: "SLICE" if cores <= 2 else "AUTO")
        with VideoReader(src, threads=threads) as reader:
            used.append(reader._stream.thread_type.name)
            return [(f.pts, f.image.tobytes()) for f in reader]

    used: list = []
    slices, frames, explicit = decoded(2), decoded(16), decoded(threads=3)
    assert used == ["SLICE", "AUTO", "AUTO"]
    assert len(slices) == 40 and slices == frames == explicit


def test_reader_accepts_a_photo(tmp_path):
    from PIL import Image

    path = str(tmp_path / "photo.png")
    Image.fromarray(np.full((20, 30, 3), 77, np.uint8)).save(path)
    with VideoReader(path) as reader:
        frames = list(reader)
    assert reader.info.is_image and (reader.info.width, reader.info.height) == (30, 20)
    assert len(frames) == 1 and frames[0].image.shape == (20, 30, 3)
    assert np.all(frames[0].image == 77)


# -- atomic writing ------------------------------------------------------------------------------------


def _write_some(src: str, dst: str, count: int, fail: bool):
    before = Path(dst).read_bytes() if os.path.exists(dst) else None
    with VideoReader(src) as reader:
        with VideoWriter(dst, reader.info, source=src) as writer:
            for frame in reader:
                writer.write(frame)
                # the output path holds nothing new while writing (an older file stays as it was)
                if before is None:
                    assert not os.path.exists(dst)
                else:
                    assert Path(dst).read_bytes() == before
                if frame.index + 1 >= count:
                    if fail:
                        raise RuntimeError("boom")
                    break


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".webm"])
def test_exception_inside_writer_leaves_nothing(tmp_path, ext):
    src = make_clip(tmp_path / f"in{ext}", audio="libopus" if ext != ".mp4" else "aac")
    dst = str(tmp_path / f"out{ext}")
    with pytest.raises(RuntimeError, match="boom"):
        _write_some(src, dst, 5, fail=True)
    assert not os.path.exists(dst)
    assert leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == [f"in{ext}"]


def test_failed_write_keeps_an_existing_output_and_success_replaces_it(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        _write_some(src, str(dst), 3, fail=True)
    assert dst.read_bytes() == b"previous result"
    _write_some(src, str(dst), 3, fail=False)
    assert len(video_times(str(dst))) == 3
    assert leftovers(tmp_path) == []


def test_abort_and_double_close(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    dst = str(tmp_path / "out.mp4")
    with VideoReader(src) as reader:
        writer = VideoWriter(dst, reader.info, source=src)
        for frame in reader:
            writer.write(frame)
        writer.abort()
        writer.close()  # no-op after abort
    assert not os.path.exists(dst) and leftovers(tmp_path) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_output_has_normal_permissions(tmp_path, umask, mode):
    src = make_clip(tmp_path / "in.mp4")
    dst = tmp_path / "out.mp4"
    old = os.umask(umask)
    try:
        _write_some(src, str(dst), 2, fail=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(dst.stat().st_mode) == mode  # not mkstemp's private 0600


def test_encoder_that_cannot_start_raises_output_error_and_leaves_nothing(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    info = probe(src)
    with pytest.raises(OutputError) as exc:
        VideoWriter(str(tmp_path / "out.mp4"), info, source=src,
                    options=EncodeOptions(codec="no_such_encoder"))
    assert_one_line_error(exc.value, str(tmp_path / "out.mp4"))
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_unknown_output_extension(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    with pytest.raises(OutputError, match="unknown output extension"):
        VideoWriter(str(tmp_path / "out.xyz"), probe(src), source=src)
    with pytest.raises(OutputError):
        output_format_for("noext")
    assert output_format_for("a/b.MKV") == "matroska"
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_writer_into_missing_folder_raises_output_error(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    out = str(tmp_path / "missing" / "out.mp4")
    with pytest.raises(OutputError) as exc:
        VideoWriter(out, probe(src), source=src)
    assert_one_line_error(exc.value, out)


# -- bad inputs ----------------------------------------------------------------------------------------


def _bad_input(tmp_path: Path, kind: str) -> str:
    if kind == "missing":
        return str(tmp_path / "nope.mp4")
    if kind == "empty":
        p = tmp_path / "empty.mp4"
        p.write_bytes(b"")
    elif kind == "text":
        p = tmp_path / "notes.mp4"
        p.write_text("this is not a video\n" * 50)
    elif kind == "folder":
        p = tmp_path / "clips.mp4"
        p.mkdir()
    elif kind == "audio_only":
        return make_audio_only(tmp_path / "sound.mkv")
    elif kind == "truncated":
        full = Path(make_clip(tmp_path / "full.mp4", frames=60, audio="aac"))
        p = tmp_path / "truncated.mp4"
        p.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # the index (moov) is at the end
    elif kind == "bad_image":
        p = tmp_path / "photo.jpg"
        p.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    else:
        raise AssertionError(kind)
    return str(p)


@pytest.mark.parametrize("kind, words", [
    ("missing", "no such file"), ("empty", "empty"), ("text", "not a video"),
    ("folder", "folder"), ("audio_only", "no video stream"), ("truncated", "not a video"),
    ("bad_image", "not an image"),
])
def test_bad_input_raises_media_error_with_one_line(tmp_path, kind, words):
    path = _bad_input(tmp_path, kind)
    with pytest.raises(MediaError) as exc:
        VideoReader(path)
    assert_one_line_error(exc.value, path)
    assert words in str(exc.value)
    with pytest.raises(MediaError):
        probe(path)


# -- output path checks --------------------------------------------------------------------------------


def test_output_path_same_as_input(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    for out in (src, str(tmp_path / "." / "in.mp4"), os.path.relpath(src)):
        with pytest.raises(OutputError, match="input") as exc:
            check_output_path(out, src)
        assert "\n" not in str(exc.value)
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    with pytest.raises(OutputError, match="input"):
        check_output_path(str(link), src)
    hard = tmp_path / "hard.mp4"
    os.link(src, hard)
    with pytest.raises(OutputError, match="input"):
        check_output_path(str(hard), src)


def test_output_path_fine_cases(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    check_output_path(str(tmp_path / "out.mp4"), src)
    check_output_path(str(tmp_path / "out.mp4"))
    (tmp_path / "old.mp4").write_bytes(b"x")
    check_output_path(str(tmp_path / "old.mp4"), src)  # an older output may be replaced


def test_output_folder_missing(tmp_path):
    out = str(tmp_path / "no" / "such" / "out.mp4")
    with pytest.raises(OutputError, match="does not exist") as exc:
        check_output_path(out, None)
    assert_one_line_error(exc.value, out)


def test_output_path_is_a_folder(tmp_path):
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(OutputError, match="folder"):
        check_output_path(str(tmp_path / "out.mp4"))


_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def _set_immutable(path: Path, on: bool) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        flags[0] = flags[0] | _FS_IMMUTABLE_FL if on else flags[0] & ~_FS_IMMUTABLE_FL
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
    finally:
        os.close(fd)


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder nobody can create files in, root included.

    Mode 0555 is enough for ordinary users; root ignores mode bits, so the folder is also made
    immutable (chattr +i, which binds root too) where the file system and our capabilities allow.
    """
    d = tmp_path / "readonly"
    d.mkdir()
    d.chmod(0o555)
    immutable = False
    if os.access(d, os.W_OK):
        try:
            _set_immutable(d, True)
            immutable = True
        except OSError as exc:
            d.chmod(0o755)
            pytest.skip(f"cannot make a folder unwritable for uid {os.geteuid()} here "
                        f"(mode bits do not bind root and chattr +i failed: {exc.strerror})")
    try:
        assert not os.access(d, os.W_OK)
        yield d
    finally:
        if immutable:
            _set_immutable(d, False)
        d.chmod(0o755)


def test_output_folder_not_writable(unwritable_dir, tmp_path):
    out = str(unwritable_dir / "out.mp4")
    with pytest.raises(OutputError, match="not writable") as exc:
        check_output_path(out, None)
    assert_one_line_error(exc.value, out)
    src = make_clip(tmp_path / "in.mp4")
    with pytest.raises(OutputError):
        VideoWriter(out, probe(src), source=src)
    assert os.listdir(unwritable_dir) == []


# -- real clips ----------------------------------------------------------------------------------------

# Every clip in ../shared/data/videos (DATA.md), plus whatever else is there now.
KNOWN_CLIPS = [
    "asl_again.mkv", "carphone_qcif.mp4", "expressive_woman.mp4", "glasses_man.mp4",
    "hall_1080p.mp4", "head_pose_pair.gif", "hikers.mp4", "interview_720p.mp4",
    "marathon_vfr_pcm.mkv", "moving_mugshot_mjpeg.avi", "no_face_walker.mp4",
    "party_1s_h264_mp3.mp4", "party_1s_hevc_aac.mp4", "party_1s_mpeg4_aac.mp4",
    "party_1s_theora_opus.ogg", "party_1s_theora_vorbis.ogg", "party_1s_vp8_opus.webm",
    "party_1s_xvid_mp3.avi", "party_corrupt.mp4", "party_h264_aac.mp4",
    "people_one_by_one_10fps.mp4", "selfie_portrait_720x1280.mp4", "selfie_rotate-90.mp4",
    "talking_vfr.mp4", "talking_woman.mp4", "walking_pause.gif",
]
BROKEN_CLIPS = {"party_corrupt.mp4": "not a video FFmpeg can read",
                "party_1s_theora_vorbis.ogg": "cannot decode video stream"}
_VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".avi", ".ogg", ".gif", ".mov", ".m4v", ".ts"}
_present = sorted(n for n in os.listdir(SHARED_DATA / "videos")
                  if os.path.splitext(n)[1].lower() in _VIDEO_EXTS) \
    if (SHARED_DATA / "videos").is_dir() else []
GOOD_CLIPS = sorted((set(KNOWN_CLIPS) | set(_present)) - set(BROKEN_CLIPS))

# Round trips cover the first DEFAULT_LIMIT frames (the whole of every short clip); big frames get
# fewer to keep the suite quick, and marathon_vfr_pcm is done whole: its 67 ms gap is at frame 137.
DEFAULT_LIMIT = 90
LIMITS = {"hall_1080p.mp4": 20, "selfie_portrait_720x1280.mp4": 20, "interview_720p.mp4": 45,
          "selfie_rotate-90.mp4": 60, "marathon_vfr_pcm.mkv": None}
# Clips with real gaps (a frame interval at least ~twice another) inside the tested range.
VFR_CLIPS = {"marathon_vfr_pcm.mkv", "talking_vfr.mp4", "party_1s_xvid_mp3.avi",
             "party_1s_theora_opus.ogg"}
CLIPS_WITH_AUDIO = {
    "expressive_woman.mp4", "glasses_man.mp4", "hall_1080p.mp4", "hikers.mp4",
    "interview_720p.mp4", "marathon_vfr_pcm.mkv", "no_face_walker.mp4", "party_1s_h264_mp3.mp4",
    "party_1s_hevc_aac.mp4", "party_1s_mpeg4_aac.mp4", "party_1s_theora_opus.ogg",
    "party_1s_vp8_opus.webm", "party_1s_xvid_mp3.avi", "party_h264_aac.mp4",
    "selfie_rotate-90.mp4", "talking_vfr.mp4", "talking_woman.mp4",
}


@pytest.mark.parametrize("name", GOOD_CLIPS)
def test_real_clip_round_trip(tmp_path, name):
    src = video_path(name)
    ext = os.path.splitext(name)[1].lower()
    dst = str(tmp_path / f"out{ext}")
    limit = LIMITS.get(name, DEFAULT_LIMIT)
    info, writer, times, images = round_trip(src, dst, limit=limit)
    assert len(times) > 0

    # frame count and timestamps
    if name in VFR_CLIPS:
        steps = [b - a for a, b in zip(times, times[1:])]
        assert max(steps) >= Fraction(18, 10) * min(steps)
    out_times = video_times(dst)
    assert len(out_times) == len(times)
    if ext in (".ogg", ".ogv"):
        # Ogg stores no timestamp per packet: each page carries one granule position and the
        # demuxer counts frame durations back from it, so a frame right next to a VFR gap can
        # come back one tick (one frame duration here) early. Allow that, nothing more.
        tick = (1 / info.average_rate) if info.average_rate else info.time_base
        assert all(abs(a - b) <= tick for a, b in zip(out_times, times)), (out_times, times)
        assert all(b > a for a, b in zip(out_times, out_times[1:]))
    else:
        assert out_times == times

    # geometry, rotation and pixels
    out_info = probe(dst)
    assert (out_info.width, out_info.height) == (info.width, info.height)
    assert (out_info.coded_width, out_info.coded_height) == (info.coded_width, info.coded_height)
    assert out_info.rotation == info.rotation
    budget = 6.0  # GIF output has a 256-colour palette per frame: as close as the video codecs
    for a, b in zip(images, upright_images(dst, len(images))):
        assert mean_abs_diff(a, b) < budget

    # audio bit-exact, metadata copied
    src_audio = audio_packets(src)
    if name in CLIPS_WITH_AUDIO:
        assert src_audio and all(src_audio)
    dst_audio = audio_packets(dst)
    assert len(dst_audio) == len(src_audio)
    for s, d in zip(src_audio, dst_audio):
        assert len(d) == len(s)
        assert [p for p, _ in d] == [p for p, _ in s]  # packet payloads byte for byte
        assert [t for _, t in d] == [t for _, t in s]
    assert writer.warnings == []
    assert content_metadata(dst) == content_metadata(src)


def test_real_rotated_clip_keeps_its_display_matrix(tmp_path):
    src = video_path("selfie_rotate-90.mp4")
    dst = str(tmp_path / "out.mp4")
    info, _, _, images = round_trip(src, dst, limit=20)
    raw_in, raw_out = raw_first_frame(src), raw_first_frame(dst)
    assert raw_in.rotation == -90 and raw_out.rotation == -90
    assert (raw_out.width, raw_out.height) == (raw_in.width, raw_in.height)
    assert info.rotation == 270 and (info.width, info.height) == (raw_in.height, raw_in.width)
    # stored the same way round as the input (not rotated twice) ...
    assert mean_abs_diff(raw_out.to_ndarray(format="rgb24"), raw_in.to_ndarray(format="rgb24")) < 6
    # ... and upright when read back
    assert images[0].shape == (raw_in.width, raw_in.height, 3)
    assert mean_abs_diff(upright_images(dst, 1)[0], images[0]) < 6


def test_real_pcm_in_mkv_is_copied_bit_exact(tmp_path):
    src = video_path("marathon_vfr_pcm.mkv")
    dst = str(tmp_path / "out.mkv")
    round_trip(src, dst, limit=10)
    with av.open(dst) as c:
        assert c.streams.audio[0].codec_context.name == "pcm_s16le"
    src_audio, dst_audio = audio_packets(src), audio_packets(dst)
    assert sum(len(p) for p, _ in src_audio[0]) > 400_000  # the whole 5 s track, not a piece
    assert dst_audio == src_audio


@pytest.mark.parametrize("name", sorted(BROKEN_CLIPS))
def test_real_broken_clips_raise_media_error(name):
    path = video_path(name)
    with pytest.raises(MediaError) as exc:
        with VideoReader(path) as reader:
            for _ in reader:
                pass
    assert_one_line_error(exc.value, path)
    assert BROKEN_CLIPS[name] in str(exc.value)


def test_shared_clips_are_not_copied_into_the_repository():
    # DATA.md: the real media must never be committed (no copies under tests/, examples/, ...)
    repo = Path(__file__).resolve().parent.parent
    names = set(KNOWN_CLIPS)
    found = []
    for folder, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv") and not d.startswith(".benchvenv")]
        found += [os.path.join(folder, f) for f in files if f in names]
    if found and (repo / ".git").exists() and shutil.which("git"):
        # git-ignored copies (the device check's packed/gpu/ carry) can never be committed
        ignored = subprocess.run(["git", "check-ignore", *found], cwd=repo, capture_output=True,
                                 text=True).stdout.split("\n")
        found = [f for f in found if f not in ignored]
    assert found == []


@pytest.mark.parametrize("colorspace", [1, 6])  # BT.709 (HD), SMPTE 170M (BT.601, SD)
def test_colours_and_colour_tags_survive_a_round_trip(tmp_path, colorspace):
    """The reader converts YUV -> RGB with the stream's own matrix; the writer must convert back with
    the same one (left unset, swscale uses BT.601 and a BT.709 clip's colours shift by 2-4 levels)
    and tag the output like the input."""
    src, dst = str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4")
    h, w = 64, 96
    planes = np.empty((h * 3 // 2, w), np.uint8)
    planes[:h] = np.linspace(70, 150, w, dtype=np.uint8)[None, :]  # luma ramp
    planes[h:h + h // 4] = 110  # U
    planes[h + h // 4:] = 150  # V: a skin-like tone, inside the RGB gamut under either matrix
    with av.open(src, "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.options = {"qp": "0"}
        for key, value in (("colorspace", colorspace), ("color_range", 1), ("color_primaries", 1 if colorspace == 1 else 6),
                           ("color_trc", 1 if colorspace == 1 else 6)):
            setattr(s.codec_context, key, value)
        for i in range(5):
            f = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            f.colorspace, f.color_range, f.pts = colorspace, 1, i
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    info, *_ = round_trip(src, dst, options=EncodeOptions(crf=0))
    assert info.colorspace == colorspace
    with av.open(src) as a, av.open(dst) as b:
        ca, cb = a.streams.video[0].codec_context, b.streams.video[0].codec_context
        assert (cb.colorspace, cb.color_primaries, cb.color_trc) == (ca.colorspace, ca.color_primaries, ca.color_trc)
        assert cb.color_range in (0, 1)  # limited (tagged or not), as the input
        ya = next(a.decode(video=0)).to_ndarray(format="yuv420p").astype(float)
        yb = next(b.decode(video=0)).to_ndarray(format="yuv420p").astype(float)
    # With the wrong matrix U moves by 2 and V by 1 on BT.709; swscale's RGB -> YUV itself darkens Y by
    # 0.6-1.2 levels on average whatever the matrix (its rounding), which this does not judge.
    for name, sl, tol in (("Y", slice(0, h), 1.5), ("U", slice(h, h + h // 4), 0.5),
                          ("V", slice(h + h // 4, None), 0.5)):
        assert abs((ya[sl] - yb[sl]).mean()) < tol, name


@pytest.mark.parametrize("pix_fmt,colorspace,expect", [
    ("yuv420p", 1, 1), ("yuvj420p", 5, 5), ("yuv420p10le", 9, 9), ("yuv420p", 2, None),
    ("bgra", 2, None), ("gbrp", 0, None), ("pal8", 1, None), ("yuv444p", 8, None), (None, 1, None)])
def test_only_yuv_inputs_pass_their_matrix_on(tmp_path, pix_fmt, colorspace, expect):
    """An RGB or palette input (GIF, PNG video) has no YUV matrix to keep: tagging its YUV output
    with AVCOL_SPC_RGB would make players show wrong colours."""
    from dataclasses import replace

    from vidgan.media.writer import yuv_matrix

    info = probe(make_clip(tmp_path / "in.mp4", width=32, height=32, frames=2))
    assert yuv_matrix(replace(info, pix_fmt=pix_fmt, colorspace=colorspace)) == expect


@pytest.mark.parametrize("matrix", [None, 1, 6, 9])
def test_fast_rgb_to_yuv420p_matches_swscale(matrix):
    """The writer's own RGB -> YUV 4:2:0 (OpenCV) gives swscale's planes within rounding: luma within
    one level everywhere, chroma within 3 levels (a different 2x2 downsampling filter), and no bias."""
    from vidgan.media.writer import rgb_to_yuv420p

    rng = np.random.default_rng(0)
    h, w = 96, 128
    ramp = np.linspace(0, 255, w)[None, :, None] * np.array([1.0, 0.6, 0.3])[None, None, :]
    img = np.clip(ramp + np.linspace(-40, 40, h)[:, None, None] + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    vf = av.VideoFrame.from_ndarray(img, format="rgb24")
    if matrix is not None:
        vf.colorspace = matrix
    ref = vf.reformat(format="yuv420p").to_ndarray().astype(int)
    out = rgb_to_yuv420p(img, matrix)
    assert out.shape == (h * 3 // 2, w) and out.dtype == np.uint8
    d = out.astype(int) - ref
    assert np.abs(d[:h]).max() <= 1 and abs(d[:h].mean()) < 0.15
    assert np.abs(d[h:]).max() <= 3 and abs(d[h:].mean()) < 0.15


def test_upright_and_stored_rotate_like_numpy():
    """The OpenCV rotation is np.rot90 exactly, for every quarter turn, and `stored` undoes `upright`."""
    from vidgan.media.reader import stored, upright

    rng = np.random.default_rng(0)
    for shape in ((5, 7, 3), (5, 7), (4, 6, 4)):
        im = rng.integers(0, 256, shape, dtype=np.uint8)
        for rotation in (0, 90, 180, 270, -90):
            up = upright(im, rotation)
            assert up.flags.c_contiguous and np.array_equal(up, np.rot90(im, (rotation // 90) % 4))
            assert np.array_equal(stored(up, rotation), im)
    f = rng.random((5, 7, 3)).astype(np.float32)  # other types go through NumPy
    assert np.array_equal(upright(f, 90), np.rot90(f, 1))


def _yuv_planes(path: str) -> list[np.ndarray]:
    with av.open(path) as c:
        return [f.to_ndarray() for f in c.decode(video=0)]


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_untouched_pixels_pass_through_bit_exact(tmp_path, rotation):
    """A yuv420p input's decoded planes travel with each frame (`Frame.yuv`, as stored); the writer
    keeps them outside the regions an operation changed (upright coordinates, mapped to the stored
    picture and widened to even bounds there) and converts only those from RGB. Lossless FFV1 both
    ways, so every sample can be compared: outside the region the output is the input bit for bit
    (the RGB round trip of the whole frame is not: checked too), inside it is what the whole-frame
    conversion writes."""
    from vidgan.media.writer import rot90_rect

    src = make_clip(tmp_path / "in.mkv", codec="ffv1", frames=3, width=96, height=64, rotation=rotation)
    k = (-(rotation // 90)) % 4  # stored = np.rot90(upright, k)
    uw, uh = (64, 96) if k % 2 else (96, 64)
    region = (21, 9, 47, 31)  # upright; odd bounds, so the stored one is widened
    sx0, sy0, sx1, sy1 = rot90_rect(region, k, uw, uh)
    x0, y0, x1, y1 = sx0 & ~1, sy0 & ~1, sx1 + (sx1 & 1), sy1 + (sy1 & 1)  # stored, even
    outs = {}
    for name, regions in (("pass", [region]), ("whole", None)):
        out = str(tmp_path / f"{name}.mkv")
        with VideoReader(src, keep_yuv=True) as r:
            w = VideoWriter(out, r.info, options=EncodeOptions(codec="ffv1"))
            for f in r:
                assert f.yuv is not None and f.yuv.shape == (96, 96) and f.image.shape[:2] == (uh, uw)
                img = f.image.copy()
                img[region[1] + 1:region[3] - 1, region[0] + 1:region[2] - 1] = (200, 30, 90)
                w.write(f, img, regions)
            w.commit()
        outs[name] = _yuv_planes(out)
    ins = _yuv_planes(src)
    for a, b, c in zip(ins, outs["pass"], outs["whole"]):
        inside = np.zeros((64, 96), bool)
        inside[y0:y1, x0:x1] = True
        chroma = np.zeros((32, 48), bool)
        chroma[y0 // 2:y1 // 2, x0 // 2:x1 // 2] = True
        mask = np.concatenate([inside, np.concatenate([chroma.ravel(), chroma.ravel()]).reshape(32, 96)])  # Y, U, V
        assert np.array_equal(a[~mask], b[~mask])  # untouched: the input's own samples
        assert not np.array_equal(a[~mask], c[~mask])  # a whole-frame RGB round trip changes them
        assert not np.array_equal(a[mask], b[mask])  # the changed region is written
        assert np.array_equal(b[mask], c[mask])  # ... as the whole-frame conversion writes it


@pytest.mark.parametrize("ext", ["avi", "mkv"])
def test_yuv_frames_handed_over_without_a_copy_encode_the_same(tmp_path, ext, monkeypatch):
    """The writer hands the encoder its YUV arrays' own memory (`_yuv_frame`): the bytes written are
    those of the copying `from_ndarray` (mpeg4 in AVI, which keeps a reference to the frames it is
    handed, and FFV1 in MKV; libx264 copies pictures in, but its output here differs from run to run
    either way), and a frame's array released right after `write` does not disturb the encoder."""
    import hashlib

    from vidgan.media import writer as writer_module

    src = make_clip(tmp_path / "in.mp4", frames=24, width=96, height=64)
    digests = {}
    for name, make in (("copy", lambda yuv: av.VideoFrame.from_ndarray(yuv, format="yuv420p")),
                       ("view", writer_module._yuv_frame)):
        monkeypatch.setattr(writer_module, "_yuv_frame", make)
        out = tmp_path / f"{name}.{ext}"
        with VideoReader(src, keep_yuv=True) as r:
            w = VideoWriter(str(out), r.info, options=EncodeOptions(codec="ffv1" if ext == "mkv" else "auto"))
            for f in r:
                img = f.image.copy()
                img[10:30, 20:50] = (200, 30, 90)
                w.write(f, img, [(20, 10, 50, 30)])
                del f, img
            w.commit()
        with av.open(str(out)) as c:
            digests[name] = hashlib.md5(b"".join(bytes(p) for p in c.demux(video=0))).hexdigest()
    assert digests["copy"] == digests["view"]


def test_rot90_rect_follows_np_rot90():
    from vidgan.media.writer import rot90_rect

    rng = np.random.default_rng(1)
    for k in range(-3, 5):
        for _ in range(20):
            h, w = rng.integers(3, 12, 2)
            x0, x1 = sorted(rng.choice(w + 1, 2, replace=False))
            y0, y1 = sorted(rng.choice(h + 1, 2, replace=False))
            img = np.zeros((h, w), bool)
            img[y0:y1, x0:x1] = True
            rx0, ry0, rx1, ry1 = rot90_rect((x0, y0, x1, y1), k, w, h)
            want = np.zeros_like(np.rot90(img, k))
            want[ry0:ry1, rx0:rx1] = True
            assert np.array_equal(np.rot90(img, k), want), (k, h, w, x0, y0, x1, y1)


def test_frames_carry_yuv_only_where_it_can_pass_through(tmp_path):
    """Odd-sized or non-4:2:0 inputs give no `Frame.yuv` (the writer converts them whole); rotated
    ones carry it as stored, full-range ones too."""
    for name, kw, has in (("plain.mp4", {}, True), ("rot.mp4", {"rotation": 90}, True),
                          ("full.mp4", {"pix_fmt": "yuvj420p"}, True),
                          ("odd.mp4", {"width": 63, "pix_fmt": "yuv444p"}, False)):
        with VideoReader(make_clip(tmp_path / name, frames=2, **kw), keep_yuv=True) as r:
            assert all((f.yuv is not None) == has for f in r), name
    with VideoReader(str(tmp_path / "plain.mp4")) as r:  # readers that only look at pixels skip the copy
        assert all(f.yuv is None for f in r)


def test_full_range_input_stays_full_range(tmp_path):
    """A full-range (JPEG-range) input is written full range where the codec stores the range: the
    untouched samples pass through bit for bit (lossless H.264 in, FFV1 out), the output is tagged
    full range, and a covered region converted from RGB decodes back to its RGB colours (the full-range
    coefficients: a limited-range conversion would be off by ~10 levels at the extremes)."""
    src = make_clip(tmp_path / "in.mp4", frames=3, width=96, height=64, pix_fmt="yuvj420p",
                    codec_options={"qp": "0"})
    with VideoReader(src, keep_yuv=True) as r:
        assert r.info.color_range == 2
        out = str(tmp_path / "out.mkv")
        w = VideoWriter(out, r.info, options=EncodeOptions(codec="ffv1"))
        frames = []
        for f in r:
            assert f.yuv is not None
            img = f.image.copy()
            img[10:30, 20:50] = (250, 5, 128)  # near the ends of the range
            frames.append(img)
            w.write(f, img, [(20, 10, 50, 30)])
        w.commit()
    with av.open(src) as a, av.open(out) as b:
        assert b.streams.video[0].codec_context.color_range == 2
        for fa, fb, img in zip(a.decode(video=0), b.decode(video=0), frames):
            ya, yb = fa.to_ndarray(), fb.to_ndarray()
            keep = np.ones(ya.shape, bool)  # Y, then U and V: all but the region (even bounds already)
            keep[10:30, 20:50] = False
            chroma = np.zeros((32, 48), bool)
            chroma[5:15, 10:25] = True
            keep[64:] = ~np.concatenate([chroma.ravel(), chroma.ravel()]).reshape(32, 96)
            assert np.array_equal(ya[keep], yb[keep])
            rgb = fb.to_ndarray(format="rgb24").astype(int)
            assert np.abs(rgb[12:28, 22:48] - np.array([250, 5, 128])).mean() < 3

