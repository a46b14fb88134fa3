"""Integration tests: the anonymize pipeline on the real shared clips.

Each clip is anonymized once (module-scoped cache) and then checked for faithfulness (frame count,
timestamps, audio copied bit-exact, rotation) and for privacy (MTCNN run on the output finds no
face where the input had a confident one).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import av
import numpy as np
import pytest

from vidgan.errors import MediaError, OutputError
from vidgan.faces import DetectorOptions, FaceDetector
from vidgan.media import VideoWriter
from vidgan.pipeline import AnonymizeOptions, Pipeline
from vidgan.types import Box, Detection

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "videos"))


def clip(name: str) -> str:
    path = os.path.join(SHARED, name)
    if not os.path.exists(path):
        pytest.skip(f"shared clip {name} not found at {SHARED} (../shared/data absent)")
    return path


def video_timestamps(path: str) -> tuple[list[float], int]:
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        rot = frames[0].rotation if frames else 0
        return [float(f.pts * s.time_base) for f in frames], rot


def audio_packets(path: str) -> list[list[bytes]]:
    with av.open(path) as c:
        streams = list(c.streams.audio)
        if not streams:
            return []
        by_stream: dict[int, list[bytes]] = {s.index: [] for s in streams}
        for p in c.demux(streams):
            if p.size:
                by_stream[p.stream.index].append(bytes(p))
        return [by_stream[s.index] for s in streams]


def decode_upright(path: str, indices: set[int]) -> dict[int, np.ndarray]:
    out = {}
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in indices:
                out[i] = np.ascontiguousarray(np.rot90(f.to_ndarray(format="rgb24"), (f.rotation // 90) % 4))
            if i > max(indices):
                break
    return out


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(AnonymizeOptions())


@pytest.fixture(scope="module")
def judge():
    # The same detector family, run at a finer scale than the pipeline, on every sampled frame.
    return FaceDetector(DetectorOptions(min_face=20, threshold=0.7))


_cache: dict[str, tuple[str, object]] = {}


@pytest.fixture(scope="module")
def anonymized(pipeline, tmp_path_factory):
    def run(name: str) -> tuple[str, str, object]:
        src = clip(name)
        if name not in _cache:
            out = str(tmp_path_factory.mktemp("anon") / name.replace(".", ".anonymized.", 1))
            report = pipeline.anonymize(src, out)
            _cache[name] = (out, report)
        out, report = _cache[name]
        return src, out, report
    return run


def assert_faithful(src: str, out: str, *, tolerance: float = 1e-6):
    ts_in, rot_in = video_timestamps(src)
    ts_out, rot_out = video_timestamps(out)
    assert len(ts_out) == len(ts_in), f"frame count {len(ts_out)} != {len(ts_in)}"
    diffs = np.abs(np.array(ts_in) - np.array(ts_out))
    assert diffs.max() <= tolerance, f"timestamps moved by up to {diffs.max():.6f} s"
    assert rot_out == rot_in
    a_in, a_out = audio_packets(src), audio_packets(out)
    assert len(a_out) == len(a_in)
    for pin, pout in zip(a_in, a_out):
        assert pin == pout, "audio packets are not a bit-exact copy"


def assert_faces_covered(src: str, out: str, judge: FaceDetector, step: int = 5, min_score: float = 0.95,
                         max_frames: int = 10_000):
    with av.open(src) as c:
        n = min(c.streams.video[0].frames or 60, max_frames)
    idx = set(range(0, max(n, 1), step))
    a, b = decode_upright(src, idx), decode_upright(out, idx)
    keys = sorted(set(a) & set(b))
    dets_in = judge.detect([a[k] for k in keys])
    dets_out = judge.detect([b[k] for k in keys])
    faces, leaks = 0, []
    for k, di, do in zip(keys, dets_in, dets_out):
        for d in di:
            if d.score < min_score:
                continue
            faces += 1
            for e in do:
                if e.box.iou(d.box) > 0.3:
                    leaks.append((k, d.box.as_list(), round(e.score, 3)))
    return faces, leaks


CODEC_ZOO = ["party_1s_h264_mp3.mp4", "party_1s_hevc_aac.mp4", "party_1s_mpeg4_aac.mp4",
             "party_1s_vp8_opus.webm", "party_1s_xvid_mp3.avi"]


@pytest.mark.parametrize("name", CODEC_ZOO)
def test_codec_zoo_faithful_and_covered(name, anonymized, judge):
    src, out, report = anonymized(name)
    assert report.frames > 0 and report.tracks >= 2
    assert_faithful(src, out)
    faces, leaks = assert_faces_covered(src, out, judge, step=3)
    assert faces > 0
    assert not leaks, f"faces still detected in the output: {leaks}"


def test_ogg_theora_opus(anonymized):
    src, out, report = anonymized("party_1s_theora_opus.ogg")
    # Ogg rebuilds VP8 timestamps from granule positions assuming one tick per packet, so a frame
    # next to the input's gap may move by one frame duration; the count and audio stay exact.
    assert_faithful(src, out, tolerance=0.034)


def test_party_full_clip(anonymized, judge):
    src, out, report = anonymized("party_h264_aac.mp4")
    assert_faithful(src, out)
    faces, leaks = assert_faces_covered(src, out, judge, step=3)
    assert faces >= 30
    assert not leaks, leaks
    with av.open(src) as a, av.open(out) as b:
        assert b.metadata.get("creation_time") == a.metadata.get("creation_time")


def test_vfr_pcm_mkv(anonymized):
    src, out, report = anonymized("marathon_vfr_pcm.mkv")
    assert_faithful(src, out)
    ts, _ = video_timestamps(out)
    steps = np.round(np.diff(ts), 3)
    assert len(set(steps.tolist())) > 1, "VFR input must stay VFR"
    with av.open(out) as c:
        assert c.streams.audio[0].codec_context.name == "pcm_s16le"


def test_vfr_talking_head(anonymized, judge):
    src, out, report = anonymized("talking_vfr.mp4")
    assert_faithful(src, out)
    assert report.tracks >= 1
    faces, leaks = assert_faces_covered(src, out, judge, step=10)
    assert faces > 5 and not leaks, leaks


def test_rotation_kept(pipeline, tmp_path, judge):
    src = clip("selfie_rotate-90.mp4")
    out = str(tmp_path / "selfie.mp4")
    # Only the first 3 s are processed to keep the test short; the rest is copied unchanged.
    Pipeline(AnonymizeOptions(end=3.0), detector=pipeline.detector).anonymize(src, out)
    assert_faithful(src, out)
    with av.open(out) as c:
        f = next(c.decode(video=0))
        assert f.rotation == -90 and (f.width, f.height) == (480, 640)
    faces, leaks = assert_faces_covered(src, out, judge, step=6, max_frames=85)
    assert faces > 0 and not leaks, leaks


def test_gif(anonymized, judge):
    src, out, report = anonymized("walking_pause.gif")
    assert_faithful(src, out)
    faces, leaks = assert_faces_covered(src, out, judge, step=2, min_score=0.97)
    assert not leaks, leaks


def test_no_face_clip_is_left_alone(pipeline, tmp_path):
    src = clip("no_face_walker.mp4")
    out = str(tmp_path / "walker.mp4")
    report = Pipeline(AnonymizeOptions(end=6.0), detector=pipeline.detector).anonymize(src, out)
    assert_faithful(src, out)
    assert report.covered_boxes <= 5  # at most a stray false positive, no real face


@pytest.mark.parametrize("name,reason", [("party_corrupt.mp4", "corrupt"),
                                          ("party_1s_theora_vorbis.ogg", "cannot decode")])
def test_bad_inputs(name, reason, pipeline, tmp_path):
    src = clip(name)
    before = open(src, "rb").read()
    out = tmp_path / ("out" + os.path.splitext(name)[1])
    with pytest.raises(MediaError) as err:
        pipeline.anonymize(src, str(out))
    assert reason in str(err.value) and "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.iterdir())
    assert open(src, "rb").read() == before


def test_output_equal_to_input_refused(pipeline):
    src = clip("party_1s_h264_mp3.mp4")
    with pytest.raises(OutputError, match="input"):
        pipeline.anonymize(src, src)


def test_time_range_keeps_outside_frames(pipeline, tmp_path):
    src = clip("party_h264_aac.mp4")
    out = str(tmp_path / "range.mp4")
    opts = AnonymizeOptions(start=1.0, end=2.0)
    Pipeline(opts, detector=pipeline.detector).anonymize(src, out)
    assert_faithful(src, out)
    ts, _ = video_timestamps(src)
    a = decode_upright(src, set(range(len(ts))))
    b = decode_upright(out, set(range(len(ts))))

    def largest_block_change(x, y):
        d = np.abs(x.astype(np.int16) - y.astype(np.int16)).mean(axis=2)
        h, w = (d.shape[0] // 16) * 16, (d.shape[1] // 16) * 16
        return float(d[:h, :w].reshape(h // 16, 16, w // 16, 16).mean(axis=(1, 3)).max())

    diff = [largest_block_change(a[i], b[i]) for i in range(len(ts))]
    inside = [d for d, t in zip(diff, ts) if 1.05 <= t < 1.95]
    outside = [d for d, t in zip(diff, ts) if t < 0.95 or t > 2.05]
    # Outside the range only re-encoding noise; inside, whole blocks of face are replaced.
    assert max(outside) < 12 and min(inside) > 20, (max(outside), min(inside))


def test_detect_export_edit_and_render(pipeline, tmp_path, judge):
    src = clip("party_1s_h264_mp3.mp4")
    doc = pipeline.detect(src)
    assert doc["frame_count"] == 31 and len(doc["frames"]) == 31
    assert doc["tracks"] and all(t["cover"] for t in doc["tracks"])
    # Keep the most confident track visible by editing the file.
    kept = max(doc["tracks"], key=lambda t: t["detections"])["id"]
    for t in doc["tracks"]:
        if t["id"] == kept:
            t["cover"] = False
    path = tmp_path / "tracks.json"
    path.write_text(json.dumps(doc))
    out = str(tmp_path / "edited.mp4")
    report = Pipeline(AnonymizeOptions(tracks_file=str(path)), detector=pipeline.detector).anonymize(src, out)
    assert report.frames == 31
    # The kept face is still found by the judge where the track was; the others are not.
    frame_idx = next(f["index"] for f in doc["frames"]
                     if any(x["track"] == kept and x["kind"] == "detected" for x in f["faces"]))
    kept_box = next(x["box"] for x in doc["frames"][frame_idx]["faces"] if x["track"] == kept)
    img = decode_upright(out, {frame_idx})[frame_idx]
    found = judge.detect([img])[0]
    from vidgan.types import Box
    assert any(d.box.iou(Box.from_list(kept_box)) > 0.3 for d in found)
    others = [x for x in doc["frames"][frame_idx]["faces"] if x["track"] != kept]
    for x in others:
        assert not any(d.box.iou(Box.from_list(x["box"])) > 0.3 and d.score > 0.95 for d in found)


def test_image_input(pipeline, tmp_path):
    from PIL import Image

    photos = os.path.join(os.path.dirname(SHARED), "faces", "photos")
    if not os.path.isdir(photos):
        pytest.skip("shared photos absent")
    name = sorted(f for f in os.listdir(photos) if f.lower().endswith((".jpg", ".png")))[0]
    src = os.path.join(photos, name)
    out = str(tmp_path / ("photo" + os.path.splitext(name)[1]))
    report = pipeline.anonymize(src, out)
    assert report.frames == 1
    assert Image.open(out).size == Image.open(src).size


class _CountingDetector:
    """Our own logic under test (the stages around the detector), so a stand-in detector: it finds
    one fixed face on every frame it is given, and fails on its `fail_on`-th call."""

    def __init__(self, fail_on: int = 0):
        from vidgan.types import Box, Detection

        self.calls, self.fail_on, self.seen = 0, fail_on, []
        self.face = Detection(box=Box(10, 10, 40, 40), score=0.99)

    def detect(self, images):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("detector broke")
        self.seen.extend(im.shape for im in images)
        return [[self.face] for _ in images]


def _vidgan_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("vidgan-") and t.is_alive()]


def test_detect_stage_keeps_every_frame(make_clip_in, tmp_path):
    """Detection runs in its own thread between decode and encode: every frame reaches the output
    (also the last, partial batch after the decoder has ended), each detected frame is covered."""
    src = make_clip_in("c.mp4", frames=37, width=64, height=48)
    out = str(tmp_path / "o.mp4")
    det = _CountingDetector()
    opts = AnonymizeOptions(detector=DetectorOptions(batch_size=8), detect_every=1)
    report = Pipeline(opts, detector=det).anonymize(src, out)
    assert report.frames == 37 and len(det.seen) == 37 and det.calls == 5  # 4 full batches + 1 of 5
    assert report.faces == 37 and report.covered_boxes >= 37
    with av.open(out) as c:
        assert sum(1 for _ in c.decode(video=0)) == 37
    assert not _vidgan_threads()


def test_detector_error_in_its_thread_reaches_the_caller(make_clip_in, tmp_path):
    src = make_clip_in("c.mp4", frames=40, width=64, height=48)
    out = str(tmp_path / "o.mp4")
    opts = AnonymizeOptions(detector=DetectorOptions(batch_size=8), detect_every=1)
    with pytest.raises(RuntimeError, match="detector broke"):
        Pipeline(opts, detector=_CountingDetector(fail_on=3)).anonymize(src, out)
    assert not os.path.exists(out)
    assert os.listdir(tmp_path) == ["c.mp4"]  # no temp file left either
    import time

    for _ in range(50):  # the stage threads wind down within their join timeouts
        if not _vidgan_threads():
            break
        time.sleep(0.1)
    assert not _vidgan_threads()


class _SlowWriter:
    """A writer stand-in (the encode thread is our own logic): records what it is handed, slowly,
    and fails on its `fail_on`-th frame."""

    def __init__(self, fail_on: int = 0):
        self.fail_on, self.written = fail_on, []

    def write(self, frame, image=None, regions=None):
        import time

        time.sleep(0.002)
        if len(self.written) + 1 == self.fail_on:
            raise OSError("disk full")
        self.written.append((frame, regions))


def test_encode_thread_writes_in_order_and_hands_errors_back():
    from vidgan.pipeline import EncodeThread

    writer = _SlowWriter()
    enc = EncodeThread(writer, size=2)
    for i in range(20):
        enc.put((i, None, [(0, 0, i, i)]))
    enc.close()
    assert writer.written == [(i, [(0, 0, i, i)]) for i in range(20)]
    assert not _vidgan_threads()

    # an error in the thread comes back from put (the queue full behind it) or close, never a hang
    enc = EncodeThread(_SlowWriter(fail_on=3), size=2)
    with pytest.raises(OSError, match="disk full"):
        for i in range(50):
            enc.put((i,))
        enc.close()
    enc.abort()
    assert not _vidgan_threads()
    enc = EncodeThread(_SlowWriter(fail_on=2), size=4)
    for i in range(4):
        enc.put((i,))
    import time

    time.sleep(0.1)  # frame 2 failed; the queue is full and nobody takes from it
    with pytest.raises(OSError, match="disk full"):
        enc.close()
    # abort with frames still queued ends the thread at once
    writer = _SlowWriter()
    enc = EncodeThread(writer, size=8)
    for i in range(8):
        enc.put((i,))
    enc.abort()
    assert not _vidgan_threads() and len(writer.written) < 8


def test_writer_error_at_the_end_is_reported_not_a_hang(make_clip_in, tmp_path, monkeypatch):
    """The writer fails while the encode queue is full and every frame has been handed over (a disk
    filling up near the end): the error comes back and nothing is left. The code before the
    EncodeThread waited forever to queue its end marker here."""
    import threading
    import time

    src = make_clip_in("c.mp4", frames=24, width=64, height=48)
    out = str(tmp_path / "o.mp4")
    real, calls = VideoWriter.write, []
    fail_at = 16  # the encode queue (8) then holds frames 17-24: all handed over

    def write(self, *args, **kwargs):
        calls.append(1)
        time.sleep(0.05)  # slower than the cover: the queue fills
        if len(calls) == fail_at:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(VideoWriter, "write", write)
    errors = []

    def run():
        try:
            Pipeline(AnonymizeOptions(mode="solid", detect_every=1), detector=_CountingDetector()).anonymize(src, out)
        except OSError as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "anonymize hung after the writer failed"
    assert [str(e) for e in errors] == ["disk full"]
    assert os.listdir(tmp_path) == ["c.mp4"]


class _LateFaceDetector(_CountingDetector):
    """A stand-in whose face shows up from its `first`-th searched frame on; region searches find it
    wherever they look and are recorded."""

    def __init__(self, first: int):
        super().__init__()
        self.first, self.regions = first, []

    def detect(self, images):
        start = len(self.seen)
        self.seen.extend(im.shape for im in images)
        return [[self.face] if start + k >= self.first else [] for k in range(len(images))]

    def search(self, images, regions):
        self.regions.extend(regions)
        return [[self.face] for _ in images]


def test_sparse_detection_searches_the_last_frame_and_follows_new_faces_back(make_clip_in, tmp_path):
    """With the detector on every 3rd frame, the last frame is searched too (a face that appears in
    the last frames is not left to chance), and a face first found at frame 12 is looked for in the
    skipped frames 11 and 10 (found there, so the search goes on no further)."""
    src = make_clip_in("c.mp4", frames=38, width=64, height=48)
    out = str(tmp_path / "o.mp4")
    det = _LateFaceDetector(first=4)  # searched frames 0, 3, 6, 9, 12, ...: the face from frame 12
    opts = AnonymizeOptions(detector=DetectorOptions(batch_size=8), detect_every=3)
    report = Pipeline(opts, detector=det).anonymize(src, out)
    assert report.frames == 38 and report.detect_every == 3
    assert len(det.seen) == 14  # frames 0, 3, ..., 36 and the last one, 37
    assert report.faces == 10 and report.region_faces == 2 and len(det.regions) == 2
    assert report.tracks == 1


def test_auto_stride_alternates_full_and_coarse_searches(make_clip_in, tmp_path):
    """The auto stride at 25 fps searches every 5th frame; every 2nd of those searches (0, 10, 20,
    ...) and the last frame run at full resolution, the others (5, 15, 25, ...) coarse. A stride the
    user chose runs every search at full resolution, and so does `full_res_every=1`; and so do the
    coarse slots of a block whose first search found a crowd of faces too small for them."""
    class Detector(_CountingDetector):
        def __init__(self):
            super().__init__()
            self.coarse, self.face = 0, [self.face]

        def detect(self, images, coarse=False):
            self.coarse += len(images) if coarse else 0
            self.seen.extend(im.shape for im in images)
            return [list(self.face) for _ in images]

        def coarse_pays(self, width, height):
            return True

        def smallest_face(self, width, height, coarse=False):
            return 60.0 if coarse else 20.0

    src = make_clip_in("c.mp4", frames=38, width=64, height=48, rate=25)
    for opts, searched, coarse in [(AnonymizeOptions(), 9, 4), (AnonymizeOptions(detect_every=5), 9, 0),
                                   (AnonymizeOptions(full_res_every=1), 9, 0)]:
        det = Detector()
        report = Pipeline(replace(opts, detector=DetectorOptions(batch_size=8)), detector=det).anonymize(
            src, str(tmp_path / "o.mp4"))
        assert report.frames == 38 and report.detect_every == 5
        assert (len(det.seen), det.coarse) == (searched, coarse)  # 0, 5, ..., 35 and 37
    assert AnonymizeOptions().tracker_options(25.0).max_gap >= 20  # two full-resolution strides
    # A crowd: the block's first search finds Pipeline.CROWD faces too small for a coarse search
    # (30 px < 60), so that block's coarse slots run at full resolution.
    for faces, coarse in [(Pipeline.CROWD, 0), (Pipeline.CROWD - 1, 4)]:
        det = Detector()
        det.face = [Detection(box=Box(10 + 2 * k, 10, 40 + 2 * k, 40), score=0.99) for k in range(faces)]
        report = Pipeline(replace(AnonymizeOptions(), detector=DetectorOptions(batch_size=8)), detector=det).anonymize(
            src, str(tmp_path / "o.mp4"))
        assert report.frames == 38 and (len(det.seen), det.coarse) == (9, coarse)


def test_per_frame_operations_cover_several_frames_at_once_in_order(make_clip_in, tmp_path, monkeypatch):
    """Blur has no state across frames, so on a machine with enough cores frames are covered in a
    thread pool; the output, the observers' order and the report are those of one frame at a time."""
    import threading

    from vidgan.hooks import FrameObserver

    class Seen(FrameObserver):
        def __init__(self):
            self.order = []

        def frame(self, frame, boxes, covered):
            self.order.append((frame.index, len(boxes), covered.tobytes()))

    src = make_clip_in("c.mp4", frames=30, width=64, height=48)
    results, original_write = {}, VideoWriter.write
    for cpus in (1, 10**6):  # COVER_MIN_CPUS: 1 = the pool on any machine; huge = never
        monkeypatch.setattr(Pipeline, "COVER_MIN_CPUS", cpus)
        pipe = Pipeline(AnonymizeOptions(detector=DetectorOptions(batch_size=8), detect_every=1),
                        detector=_CountingDetector())
        threads = set()
        apply = pipe.operation.apply

        def recording(*args, apply=apply, threads=threads):
            threads.add(threading.current_thread().name.split("_")[0])
            return apply(*args)

        monkeypatch.setattr(pipe.operation, "apply", recording)
        written = []  # what the writer is handed (libx264's own output is not bit-reproducible run to run)

        def keep(self, frame, image=None, regions=None, written=written, write=original_write):
            written.append((frame.index, image.tobytes(), regions))
            return write(self, frame, image, regions)

        monkeypatch.setattr(VideoWriter, "write", keep)
        seen, out = Seen(), str(tmp_path / f"o{cpus}.mp4")
        report = pipe.anonymize(src, out, observers=[seen])
        with av.open(out) as c:
            assert sum(1 for _ in c.decode(video=0)) == 30
        results[cpus] = (seen.order, written, report.frames, report.covered_boxes, threads)
    pooled, serial = results[1], results[10**6]
    assert pooled[4] == {"vidgan-cover"} and "vidgan-cover" not in serial[4]
    assert [o[0] for o in pooled[0]] == list(range(30))
    assert pooled[:4] == serial[:4]
    assert not _vidgan_threads()


def test_an_error_while_covering_in_the_pool_reaches_the_caller(make_clip_in, tmp_path, monkeypatch):
    monkeypatch.setattr(Pipeline, "COVER_MIN_CPUS", 1)
    src = make_clip_in("c.mp4", frames=30, width=64, height=48)
    out = str(tmp_path / "o.mp4")
    pipe = Pipeline(AnonymizeOptions(detector=DetectorOptions(batch_size=8), detect_every=1),
                    detector=_CountingDetector())
    apply = pipe.operation.apply

    def failing(image, boxes, frame):
        if frame.index == 7:
            raise RuntimeError("cover broke")
        return apply(image, boxes, frame)

    monkeypatch.setattr(pipe.operation, "apply", failing)
    with pytest.raises(RuntimeError, match="cover broke"):
        pipe.anonymize(src, out)
    assert os.listdir(tmp_path) == ["c.mp4"]
    import time

    for _ in range(50):
        if not _vidgan_threads():
            break
        time.sleep(0.1)
    assert not _vidgan_threads()
