"""The batch on a real local Ray instance, and the segment split/join it relies on.

- Segments (no Ray): a synthetic clip with known key frames (x264 with B-frames, AAC; and a VFR
  one) is planned, read back segment by segment with context, encoded and joined: every frame
  exactly once, pixels equal to a straight decode, timestamps and audio exactly the input's, and
  the joined video packets are the parts' packets byte for byte (no re-encode at the join).
- Ray (`ray.init(num_cpus=2)`, once for the module): a batch over real clips — two processed
  whole, one forced into four segments, one corrupt — against the same batch run locally: same
  report, same frame count and timestamps, audio bit-exact, and MTCNN finds no face in the outputs
  where the input had one. A worker killed on its first attempt (whole file and one segment) is
  retried; one that always dies is reported failed; --skip-existing skips finished outputs; the
  CLI's `--ray` runs on the same instance.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import audio_packets, make_clip, video_path, video_times

ray = pytest.importorskip("ray")

from vidgan.batch import Job, run_batch  # noqa: E402
from vidgan.cli import main  # noqa: E402
from vidgan.errors import MediaError  # noqa: E402
from vidgan.distributed import AnonymizeWork, RayOptions, run_distributed, task_resources  # noqa: E402
from vidgan.faces import DetectorOptions, FaceDetector  # noqa: E402
from vidgan.media.reader import VideoReader  # noqa: E402
from vidgan.media.segments import (SegmentReader, concat_segments, encode_segment,  # noqa: E402
                                   packet_table, part_path, plan_segments)
from vidgan.pipeline import AnonymizeOptions, FileReport  # noqa: E402

# Classes below (workers that crash on purpose) travel to the Ray workers by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def keyframe_indices(path: str) -> list[int]:
    table = packet_table(path)
    return [table.index_of(k) for k in table.keyframes]


def video_packets(path: str) -> list[bytes]:
    with av.open(path) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def decoded_yuv(path: str) -> list[np.ndarray]:
    with av.open(path) as c:
        return [f.to_ndarray().astype(np.float32) for f in c.decode(video=0)]


# -- segments, no Ray ---------------------------------------------------------------------------------
VFR_PTS = [sum(33 if i % 3 else 67 for i in range(n)) for n in range(75)]


@pytest.mark.parametrize("kind", ["cfr_bframes_aac", "vfr"])
def test_split_and_join_synthetic(kind, tmp_path):
    if kind == "vfr":
        src = make_clip(tmp_path / "in.mkv", frames=75, pts=VFR_PTS, time_base=Fraction(1, 1000),
                        codec_options={"g": "12", "keyint_min": "12", "sc_threshold": "0"})
    else:
        src = make_clip(tmp_path / "in.mp4", frames=90, rate=30, audio="aac",
                        codec_options={"g": "15", "keyint_min": "15", "sc_threshold": "0"})
    table = packet_table(src)
    n = len(table.pts)
    step = 12 if kind == "vfr" else 15
    assert keyframe_indices(src) == list(range(0, n, step))
    segments = plan_segments(table, 0.5)
    assert [s.first_frame for s in segments] == list(range(0, n, step))[: len(segments)]
    assert len(segments) >= 4 and sum(s.frames for s in segments) == n

    with VideoReader(src) as reader:
        straight = list(reader)
    out = str(tmp_path / f"out{os.path.splitext(src)[1]}")
    parts, seen = [], []
    for seg in segments:
        reader = SegmentReader(src, table, seg, before=0.2, after=0.2, align=4)
        frames = list(reader)
        assert reader.first_index % 4 == 0
        assert [f.index for f in frames] == list(range(len(frames)))
        own = [f for f in frames if f.index in reader.own]
        assert [f.pts for f in own] == table.pts[seg.first_frame: seg.first_frame + seg.frames]
        if seg.number > 0:
            assert reader.own.start > 0  # context before the cut
        if seg.end_pts is not None:
            assert reader.own.stop < len(frames)  # context after the cut
        for f in frames:  # decoding from a key frame gives the same pictures as a straight decode
            g = straight[reader.first_index + f.index]
            assert f.pts == g.pts and np.array_equal(f.image, g.image)
        seen += [reader.first_index + f.index for f in own]
        part = part_path(str(tmp_path), out, seg.number)
        assert encode_segment(part, reader.info, ((f, f.image) for f in own)) == seg.frames
        parts.append(part)
    assert seen == list(range(n)), "every frame in exactly one segment"

    concat_segments(parts, out, reader.info, src, expected_frames=n)
    assert video_times(out) == video_times(src)
    assert audio_packets(out) == audio_packets(src)
    assert video_packets(out) == [p for part in parts for p in video_packets(part)], "join re-encoded"
    assert keyframe_indices(out)[: len(segments)] == [s.first_frame for s in segments]


def test_plan_keeps_short_videos_whole(tmp_path):
    src = make_clip(tmp_path / "one_key.mp4", frames=60, rate=30)  # x264 default: one key frame
    table = packet_table(src)
    assert keyframe_indices(src) == [0]
    assert len(plan_segments(table, 0.5)) == 1
    src = make_clip(tmp_path / "short.mp4", frames=20, rate=30, codec_options={"g": "5"})
    assert len(plan_segments(packet_table(src), 1.0)) == 1  # 0.63 s is not worth splitting


def test_gpus_requested_only_when_there_are_some():
    opts = RayOptions(gpus_per_task=0.5)
    auto = AnonymizeWork(AnonymizeOptions())
    cpu = AnonymizeWork(AnonymizeOptions(detector=DetectorOptions(device="cpu")))
    assert task_resources(auto, opts, {"CPU": 16.0, "GPU": 2.0}) == {"num_cpus": 1.0, "num_gpus": 0.5}
    assert task_resources(auto, opts, {"CPU": 16.0})["num_gpus"] == 0
    assert task_resources(cpu, opts, {"CPU": 16.0, "GPU": 2.0})["num_gpus"] == 0


def test_segment_boxes_equal_whole_file(inputs):
    """A cut drops no face: with its context, each segment's own frames get exactly the boxes
    a whole-file run gives them (same detector batches, same tracker decisions)."""
    src = inputs["carphone_kf"]
    work = AnonymizeWork(OPTIONS)
    pipe = work.pipeline()

    def boxes_of(pairs, offset=0, own=None):
        return {offset + f.index: [(b.kind, b.box.as_list()) for b in boxes]
                for f, boxes in pairs if own is None or f.index in own}

    with VideoReader(src) as reader:
        whole = boxes_of(pipe.frames_with_boxes(reader, threading.Event(), FileReport(input=src)))
    table = packet_table(src)
    segments = plan_segments(table, SEGMENT_SECONDS)
    assert len(segments) == 4
    joined: dict = {}
    for seg in segments:
        reader = work.segment_reader(src, table, seg)
        joined.update(boxes_of(pipe.frames_with_boxes(reader, threading.Event(), FileReport(input=src)),
                               reader.first_index, reader.own))
    assert sum(map(len, whole.values())) > 100  # the face is covered in (nearly) every frame
    assert joined == whole


# -- on Ray -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def reencode(src: str, dst: str, gop: int) -> str:
    """A copy of a real clip with a key frame every `gop` frames (same pts, B-frames kept)."""
    with av.open(src) as inp, av.open(dst, "w") as out:
        s = inp.streams.video[0]
        vs = out.add_stream("libx264", rate=s.average_rate)
        vs.width, vs.height, vs.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        vs.time_base = vs.codec_context.time_base = s.time_base
        vs.codec_context.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                                    "preset": "veryfast", "crf": "18"}
        for frame in inp.decode(s):
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return dst


OPTIONS = AnonymizeOptions()
SEGMENT_SECONDS = 1.0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    carphone = video_path("carphone_qcif.mp4")
    return {
        "party": video_path("party_1s_h264_mp3.mp4"),
        "carphone": carphone,
        "carphone_kf": reencode(carphone, str(folder / "carphone_kf.mp4"), 30),  # 4 s, 4 segments
        "corrupt": video_path("party_corrupt.mp4"),
    }


def make_jobs(inputs: dict, folder) -> list[Job]:
    return [Job(path, str(folder / f"{name}.mp4")) for name, path in inputs.items()]


@pytest.fixture(scope="module")
def runs(ray_session, inputs, tmp_path_factory):
    """The batch on Ray, and locally without the (slow) party clip that test_pipeline already
    checks: (local jobs, local report, ray jobs, ray report); files in the order of `inputs`."""
    local_jobs = make_jobs({k: v for k, v in inputs.items() if k != "party"}, tmp_path_factory.mktemp("local"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray task with num_cpus=1: the same arithmetic, the same faces
    try:
        local = run_batch(local_jobs, OPTIONS)
    finally:
        torch.set_num_threads(threads)
    ray_jobs = make_jobs(inputs, tmp_path_factory.mktemp("ray"))
    frames_seen: list[int] = []
    done: list[int] = []
    report = run_distributed(ray_jobs, AnonymizeWork(OPTIONS), RayOptions(segment_seconds=SEGMENT_SECONDS),
                             on_done=lambda i, job, r: done.append(i), on_frames=frames_seen.append)
    assert sorted(done) == [0, 1, 2, 3]
    assert frames_seen and frames_seen[-1] == sum(f.frames for f in report.files)
    return local_jobs, local, ray_jobs, report


def leaking_frames(src: str, out: str, judge, min_leak_score: float = 0.0) -> tuple[int, set[int]]:
    """(faces the judge finds in the input, frames where it finds one of them in the output)."""
    from test_pipeline import assert_faces_covered

    faces, leaks = assert_faces_covered(src, out, judge, step=2)
    return faces, {k for k, _box, score in leaks if score >= min_leak_score}


def test_report_same_as_local(runs, tmp_path):
    local_jobs, local, ray_jobs, report = runs
    assert [f.status for f in report.files] == ["ok", "ok", "ok", "failed"]
    assert [f.status for f in local.files] == ["ok", "ok", "failed"]
    assert [f.frames for f in report.files[1:]] == [f.frames for f in local.files]
    assert [f.input for f in report.files] == [j.input for j in ray_jobs]
    assert report.files[3].error == local.files[2].error
    assert "not a video" in report.files[3].error
    # Processed whole: the same pipeline on the same frames.
    assert (report.files[1].tracks, report.files[1].faces) == (local.files[0].tracks, local.files[0].faces)
    # Segmented: each segment saw the same detector batches and enough tracker context, so every
    # box the local run covered is covered (no face dropped at a cut).
    assert report.files[2].covered_boxes >= local.files[1].covered_boxes > 0
    path = tmp_path / "report.json"
    report.write_json(str(path))
    doc = json.loads(path.read_text())
    assert doc["summary"] == {**doc["summary"], "total": 4, "ok": 3, "failed": 1, "skipped": 0,
                              "frames": 31 + sum(f.frames for f in local.files)}
    assert set(doc["files"][0]) == set(local.as_dict()["files"][0])


def test_outputs_faithful_and_covered(runs):
    local_jobs, _local, ray_jobs, _report = runs
    for rj in ray_jobs[:3]:
        assert video_times(rj.output) == video_times(rj.input)
        assert audio_packets(rj.output) == audio_packets(rj.input)
    assert audio_packets(ray_jobs[0].output)[0], "party has mp3 audio, copied bit-exact"
    for lj, rj in zip(local_jobs[:2], ray_jobs[1:3]):
        assert video_times(rj.output) == video_times(lj.output)
    # Processed whole on Ray: the same frames as the local run. Compared decoded, within encoder noise,
    # not packet for packet: libx264 through FFmpeg/PyAV does not give bit-identical files run to run
    # even for identical input frames, single-threaded too (20 encodes of one 30-frame clip: 2-8
    # different files), so equal packets would fail now and then for a reason that is not ours.
    # The same detections are checked exactly (tracks, faces) in test_report_same_as_local; here a
    # frame may differ by encoder noise only. Session 14: identical (0.0) in 10 runs of this module
    # alone, but 1.05 levels on one frame in one of four full CI runs (under load; not reproduced);
    # a face left uncovered differs by 4.6-5.7 levels a frame on this QCIF clip (output vs input).
    a, b = decoded_yuv(ray_jobs[1].output), decoded_yuv(local_jobs[0].output)
    assert len(a) == len(b) and max(np.abs(x - y).mean() for x, y in zip(a, b)) < 2.0
    # Segmented: the output is the parts joined (a key frame at each cut); the local run has one.
    cuts = [s.first_frame for s in plan_segments(packet_table(ray_jobs[2].input), SEGMENT_SECONDS)]
    assert len(cuts) == 4
    assert keyframe_indices(ray_jobs[2].output) == cuts
    assert keyframe_indices(local_jobs[1].output) == [0]
    # Privacy: no face the judge finds in the input (score >= 0.95) is still found as a face in the
    # output. A blurred face can still read as a face-shaped blob to the same detector, at scores
    # 0.75-0.9 depending on encoder noise (the ~50 px faces of the 176x144 clip, the 21 px face at
    # the back of the party at frame 26; all fully blurred when looked at), while an uncovered face
    # scores what it scores in the input, >= 0.95 for the faces judged: a leak is a hit at >= 0.95.
    # test_segment_boxes_equal_whole_file checks the boxes themselves.
    judge = FaceDetector(DetectorOptions(min_face=20, threshold=0.7))
    for rj in (ray_jobs[0], ray_jobs[2]):
        faces, leaks = leaking_frames(rj.input, rj.output, judge, min_leak_score=0.95)
        assert faces > 0 and not leaks, rj.input
    assert leaking_frames(ray_jobs[2].input, ray_jobs[2].input, judge, min_leak_score=0.95)[1], \
        "an uncovered video must count as leaking"
    # No parts folder left behind.
    assert not [n for n in os.listdir(os.path.dirname(ray_jobs[2].output)) if n.startswith(".")]


def test_skip_existing(runs):
    _lj, _l, ray_jobs, _r = runs
    before = {j.output: os.stat(j.output).st_mtime_ns for j in ray_jobs[:3]}
    report = run_distributed(ray_jobs, AnonymizeWork(OPTIONS), RayOptions(segment_seconds=SEGMENT_SECONDS),
                             skip_existing=True)
    assert [f.status for f in report.files] == ["skipped", "skipped", "skipped", "failed"]
    assert before == {j.output: os.stat(j.output).st_mtime_ns for j in ray_jobs[:3]}


class Flaky(AnonymizeWork):
    """Fails on purpose, by output name: "crash_whole" kills its worker once halfway through the
    file (its temporary output exists by then), "crash_segment" kills it once in segment 2,
    "bad_segment" raises a MediaError in segment 1 every time, "dies" kills it on every attempt.
    Marker files remember the crashes that already happened."""

    def __init__(self, options, marker_dir: str):
        super().__init__(options)
        self.marker_dir = marker_dir

    def _crash_once(self, name: str) -> None:
        marker = os.path.join(self.marker_dir, name)
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)

    def run_file(self, job, progress):
        name = os.path.basename(job.output)
        if name == "dies.mp4":
            os._exit(1)

        def crash_midway(done):
            if done >= 30 and name == "crash_whole.mp4":
                self._crash_once(name)
            progress(done)

        return super().run_file(job, crash_midway)

    def run_segment(self, job, table, segment, part, context, progress):
        name = os.path.basename(job.output)
        if name == "crash_segment.mp4" and segment.number == 2:
            self._crash_once(name)
        if name == "bad_segment.mp4" and segment.number == 1:
            raise MediaError("segment decode out of step (on purpose)", job.input)
        return super().run_segment(job, table, segment, part, context, progress)


def test_failures_retried_redone_whole_or_reported(ray_session, inputs, tmp_path):
    markers, out = tmp_path / "markers", tmp_path / "out"
    markers.mkdir()
    out.mkdir()
    jobs = [Job(inputs["carphone"], str(out / "crash_whole.mp4")),
            Job(inputs["carphone_kf"], str(out / "crash_segment.mp4")),
            Job(inputs["carphone_kf"], str(out / "bad_segment.mp4")),
            Job(inputs["carphone"], str(out / "dies.mp4")),
            Job(inputs["corrupt"], str(out / "corrupt.mp4"))]
    frames: list[int] = []
    report = run_distributed(jobs, Flaky(OPTIONS, str(markers)),
                             RayOptions(segment_seconds=SEGMENT_SECONDS, max_retries=1), on_frames=frames.append)
    assert [f.status for f in report.files] == ["ok", "ok", "ok", "failed", "failed"]
    # A killed worker's file (whole, or one segment) is retried and completes.
    assert sorted(os.listdir(markers)) == ["crash_segment.mp4", "crash_whole.mp4"]
    # A segment that fails for a reason of its own: the file is processed whole instead.
    assert keyframe_indices(jobs[2].output) == [0] and keyframe_indices(jobs[1].output) == [0, 30, 60, 90]
    for job in jobs[:3]:
        assert video_times(job.output) == video_times(job.input)
    # A worker that dies on every attempt, then a bad input (not retried): reported, batch goes on.
    assert "died" in report.files[3].error and "after 2 attempts" in report.files[3].error
    assert "not a video" in report.files[4].error
    assert frames[-1] == 3 * 120  # crashed attempts and abandoned segments are not counted twice
    # Only the finished outputs are left: no temp file of the killed attempt, no parts folder.
    assert sorted(os.listdir(out)) == ["bad_segment.mp4", "crash_segment.mp4", "crash_whole.mp4"]


def test_cli_ray(ray_session, runs, inputs, tmp_path):
    """`--ray` in the CLI, on the module's Ray instance: an output that exists is skipped, a bad
    input fails (exit 1), the JSON report says so. A vault is refused (exit 2)."""
    out_dir, json_path = tmp_path / "out", tmp_path / "report.json"
    out_dir.mkdir()
    done = runs[2][1].output  # carphone, anonymized on Ray by the module's batch
    os.link(done, out_dir / "carphone_qcif.anonymized.mp4")
    code = main(["anonymize", inputs["carphone"], inputs["corrupt"], "--out-dir", str(out_dir),
                 "--skip-existing", "--json-report", str(json_path), "-q", "--ray"])
    assert code == 1
    doc = json.loads(json_path.read_text())
    assert [f["status"] for f in doc["files"]] == ["skipped", "failed"]
    assert doc["summary"]["total"] == 2 and "not a video" in doc["files"][1]["error"]
    key = tmp_path / "pass.txt"
    key.write_text("correct horse battery")
    assert main(["anonymize", inputs["carphone"], "--out-dir", str(out_dir), "-q", "--ray",
                 "--passcode-file", str(key)]) == 2


# -- translate and deepfake on Ray ---------------------------------------------------------------------
def test_translate_on_ray_equals_local(ray_session, tmp_path):
    """`vidgan translate --ray`: one task per file, the same frames as the local loop."""
    from vidgan.gan.nets import build_generator
    from vidgan.gan.translator import save_translator

    torch.manual_seed(0)
    model = tmp_path / "tiny.pt"
    save_translator(model, build_generator("unet", size=128, ngf=8), "unet", {"size": 128, "ngf": 8},
                    {"name": "tiny", "task": "pix2pix", "input_mode": "rgb", "scale": 1, "size": 128,
                     "faces": False})
    clips = [make_clip(tmp_path / "a.mp4", frames=6, width=128, height=128),
             make_clip(tmp_path / "b.mkv", frames=5, width=128, height=128)]
    outs = {}
    for mode, extra in (("local", []), ("ray", ["--ray"])):
        folder = tmp_path / mode
        assert main(["translate", *map(str, clips), "--model", str(model), "--whole-frame", "--no-temporal",
                     "--device", "cpu", "--out-dir", str(folder), "-q", *extra]) == 0
        outs[mode] = sorted(str(p) for p in folder.iterdir())
    assert [os.path.basename(p) for p in outs["local"]] == [os.path.basename(p) for p in outs["ray"]]
    for a, b in zip(outs["local"], outs["ray"]):
        assert video_times(a) == video_times(b)
        with av.open(a) as ca, av.open(b) as cb:
            fa = [f.to_ndarray(format="rgb24") for f in ca.decode(video=0)]
            fb = [f.to_ndarray(format="rgb24") for f in cb.decode(video=0)]
        assert len(fa) == len(fb) > 0 and all(np.array_equal(x, y) for x, y in zip(fa, fb))


def test_deepfake_on_ray_equals_local(ray_session, tmp_path):
    """`vidgan deepfake --ray`: the same JSON as the local loop, errors reported per input."""
    from vidgan.deepfake.model import Detector, export

    torch.manual_seed(0)
    model = export(Detector("resnet18"), 128, tmp_path / "m" / "deepfake.pt", {"note": "untrained, for tests"})
    missing = str(tmp_path / "missing.mp4")
    inputs = [video_path("party_1s_h264_mp3.mp4"), missing]
    results = {}
    for mode, extra in (("local", []), ("ray", ["--ray"])):
        out = tmp_path / f"{mode}.json"
        assert main(["deepfake", *inputs, "--frames", "3", "--json", str(out), "--model", str(model),
                     "--device", "cpu", "-q", *extra]) == 1  # the missing file fails, the clip is scored
        results[mode] = json.loads(out.read_text())
    local, remote = results["local"], results["ray"]
    assert [r["input"] for r in remote] == inputs and [r["verdict"] for r in remote][1] == "error"
    assert remote[0]["fake_probability"] == pytest.approx(local[0]["fake_probability"], abs=1e-5)
    assert remote[0]["verdict"] == local[0]["verdict"]
