"""FrameSeeker (random access for the GUI's player) agrees with VideoReader frame for frame."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from conftest import make_clip, video_path
from vidgan.errors import MediaError
from vidgan.media import VideoReader
from vidgan.media.seek import FrameSeeker


def reference(path):
    with VideoReader(path) as reader:
        return [(f.index, f.pts, f.time, f.image) for f in reader]


def check_random_access(path, count=None):
    ref = reference(path)
    with FrameSeeker(path, cache_mb=0.1) as seeker:  # a few frames: seeks really happen
        assert seeker.frame_count == len(ref)
        n = len(ref)
        rng = random.Random(1)
        order = rng.sample(range(n), min(count or n, n)) + [0, 1, 2, n - 1, n - 2, 3, 2, 1, 0]
        for i in order:
            f = seeker.frame(i)
            index, pts, time, image = ref[i]
            assert (f.index, f.pts) == (index, pts), f"frame {i}"
            assert f.time == pytest.approx(time)
            assert np.array_equal(f.image, image), f"pixels of frame {i}"
        with pytest.raises(MediaError):
            seeker.frame(n)
        with pytest.raises(MediaError):
            seeker.frame(-1)


@pytest.mark.parametrize("name,kwargs", [
    ("cfr.mp4", dict(frames=60, width=96, height=64)),
    ("vfr.mkv", dict(frames=20, pts=[0, 33, 100, 133, 167, 300, 333, 367, 400, 433,
                                     467, 500, 600, 633, 667, 700, 733, 767, 800, 833],
                     time_base=Fraction(1, 1000))),
    ("rotated.mp4", dict(frames=12, width=64, height=48, rotation=90)),
    ("clip.webm", dict(frames=15)),
    ("clip.avi", dict(frames=15)),
])
def test_random_access_matches_the_streaming_reader(tmp_path, name, kwargs):
    check_random_access(make_clip(tmp_path / name, **kwargs))


@pytest.mark.parametrize("name", ["party_1s_h264_mp3.mp4", "party_1s_vp8_opus.webm",
                                  "party_1s_xvid_mp3.avi", "walking_pause.gif"])
def test_random_access_on_real_clips(name):
    check_random_access(video_path(name), count=12)


def test_photo_has_one_frame(tmp_path):
    path = str(tmp_path / "p.png")
    Image.fromarray(np.full((20, 30, 3), 77, np.uint8)).save(path)
    with FrameSeeker(path) as seeker:
        assert seeker.frame_count == 1 and seeker.info.is_image
        assert seeker.frame(0).image.shape == (20, 30, 3)


def test_bad_input_is_a_media_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError):
        FrameSeeker(str(bad))
