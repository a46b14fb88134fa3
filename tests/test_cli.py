"""The `vidgan` command line: exit codes, batch behaviour, reports, tracks round trip.

Inputs are made at run time (the demo clip generator: the public-domain astronaut portrait with a
moving camera) plus the shared bad files where present.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import av
import pytest

from vidgan.cli import main, parse_time
from vidgan.demo import make_demo_clip

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "videos"))


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return make_demo_clip(str(folder / "astro.mp4"), seconds=1.2, fps=10, size=(320, 180))


def frames_of(path):
    with av.open(path) as c:
        return sum(1 for _ in c.decode(video=0))


def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    assert main([]) == 2
    assert main(["anonymize"]) == 2  # missing INPUT
    assert main(["anonymize", "x.mp4", "--mode", "nope"]) == 2
    assert main(["anonymize", "x.mp4", "--margin", "7"]) == 2
    assert main(["anonymize", "x.mp4", "--start", "abc"]) == 2


def test_python_dash_m(demo_clip, tmp_path):
    """`python -m vidgan` and the `vidgan` script go through `cli.run`: main's exit code, a complete
    output (the collector is frozen only after main returns)."""
    out = subprocess.run([sys.executable, "-m", "vidgan", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "vidgan" in out.stdout
    dest = tmp_path / "o.mp4"
    runs = [subprocess.run([sys.executable, "-m", "vidgan", "anonymize", *args, "--quiet"], capture_output=True,
                           text=True) for args in ([demo_clip, "-o", str(dest)], [str(tmp_path / "none.mp4")],
                                                   [demo_clip, "--margin", "7"])]
    assert [r.returncode for r in runs] == [0, 1, 2], [r.stderr for r in runs]
    assert frames_of(str(dest)) == frames_of(demo_clip)


def test_parse_time():
    assert parse_time("12.5") == 12.5
    assert parse_time("1:02.5") == 62.5
    assert parse_time("01:00:01") == 3601


def test_single_file_and_json_report(demo_clip, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    report = tmp_path / "r.json"
    code = main(["anonymize", demo_clip, "-o", str(out), "--json-report", str(report), "--quiet"])
    assert code == 0
    assert frames_of(str(out)) == frames_of(demo_clip)
    doc = json.loads(report.read_text())
    f = doc["files"][0]
    assert f["status"] == "ok" and f["frames"] == 12 and f["tracks"] >= 1 and f["faces"] > 0
    assert f["fps"] > 0 and f["seconds"] > 0 and f["error"] is None
    assert doc["summary"] == {**doc["summary"], "total": 1, "ok": 1, "failed": 0}


def test_batch_keeps_going_past_bad_inputs(demo_clip, tmp_path, capsys):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    inputs = [demo_clip, str(tmp_path / "missing.mp4"), str(empty), str(text)]
    corrupt = os.path.join(SHARED, "party_corrupt.mp4")
    undecodable = os.path.join(SHARED, "party_1s_theora_vorbis.ogg")
    if os.path.exists(corrupt):
        inputs += [corrupt, undecodable]
    out_dir = tmp_path / "out"
    report = tmp_path / "r.json"
    code = main(["anonymize", *inputs, "--out-dir", str(out_dir), "--json-report", str(report), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    doc = json.loads(report.read_text())
    status = {os.path.basename(f["input"]): f for f in doc["files"]}
    assert status["astro.mp4"]["status"] == "ok"
    assert (out_dir / "astro.anonymized.mp4").exists()
    expected = {"missing.mp4": "no such file", "empty.mp4": "empty file", "notes.mp4": "not a video"}
    if os.path.exists(corrupt):
        expected.update({"party_corrupt.mp4": "corrupt", "party_1s_theora_vorbis.ogg": "cannot decode"})
    for name, reason in expected.items():
        assert status[name]["status"] == "failed"
        assert reason in status[name]["error"]
        lines = [ln for ln in err.splitlines() if name in ln]
        assert len(lines) == 1 and lines[0].startswith("vidgan: error:")
    # nothing half-written for the failures
    assert sorted(p.name for p in out_dir.iterdir()) == ["astro.anonymized.mp4"]


def test_output_path_problems(demo_clip, tmp_path, capsys):
    copy = tmp_path / "in.mp4"
    shutil.copy(demo_clip, copy)
    before = copy.read_bytes()
    assert main(["anonymize", str(copy), "-o", str(copy), "--quiet"]) == 1
    assert copy.read_bytes() == before
    assert "input" in capsys.readouterr().err
    assert main(["anonymize", str(copy), "-o", str(tmp_path / "nope" / "o.mp4"), "--quiet"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["anonymize", str(copy), "-o", str(tmp_path / "o.xyz"), "--quiet"]) == 1
    assert "extension" in capsys.readouterr().err
    assert main(["anonymize", str(copy), str(copy), "-o", str(tmp_path / "o.mp4")]) == 2


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: folder permissions do not stop root from writing")
def test_unwritable_folder(demo_clip, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["anonymize", demo_clip, "-o", str(ro / "o.mp4"), "--quiet"]) == 1
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_recursive_out_dir_and_skip_existing(demo_clip, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(demo_clip, src / "a.mp4")
    shutil.copy(demo_clip, src / "sub" / "b.mp4")
    (src / "readme.txt").write_text("not media")
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    assert main(["anonymize", str(src), "--recursive", "--out-dir", str(out), "--quiet"]) == 0
    assert (out / "a.anonymized.mp4").exists() and (out / "sub" / "b.anonymized.mp4").exists()
    assert main(["anonymize", str(src), "--recursive", "--out-dir", str(out), "--skip-existing",
                 "--json-report", str(report), "--quiet"]) == 0
    doc = json.loads(report.read_text())
    assert [f["status"] for f in doc["files"]] == ["skipped", "skipped"]
    # without --recursive only the top level is taken
    assert main(["anonymize", str(src), "--out-dir", str(tmp_path / "flat"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["a.anonymized.mp4"]


def test_detect_then_keep_track(demo_clip, tmp_path):
    tracks = tmp_path / "t.json"
    assert main(["detect", demo_clip, "--json", str(tracks), "--quiet"]) == 0
    doc = json.loads(tracks.read_text())
    assert doc["frame_count"] == 12 and doc["tracks"]
    first = doc["tracks"][0]["id"]
    out_all, out_keep, out_file = tmp_path / "all.mp4", tmp_path / "keep.mp4", tmp_path / "file.mp4"
    r1, r2 = tmp_path / "r1.json", tmp_path / "r2.json"
    assert main(["anonymize", demo_clip, "-o", str(out_all), "--json-report", str(r1), "--quiet"]) == 0
    assert main(["anonymize", demo_clip, "-o", str(out_keep), "--keep-track", str(first),
                 "--json-report", str(r2), "--quiet"]) == 0
    covered_all = json.loads(r1.read_text())["files"][0]["covered_boxes"]
    covered_keep = json.loads(r2.read_text())["files"][0]["covered_boxes"]
    kept_boxes = sum(1 for f in doc["frames"] for x in f["faces"] if x["track"] == first)
    assert covered_keep == covered_all - kept_boxes
    # Rendering from the exported file covers exactly what the detector found.
    r3 = tmp_path / "r3.json"
    assert main(["anonymize", demo_clip, "-o", str(out_file), "--tracks", str(tracks),
                 "--json-report", str(r3), "--quiet"]) == 0
    assert json.loads(r3.read_text())["files"][0]["covered_boxes"] == covered_all


def test_modes(demo_clip, tmp_path):
    for mode, extra in (("pixelate", ["--blocks", "6"]), ("solid", ["--color", "#ff0000", "--mask", "box"])):
        out = tmp_path / f"{mode}.mkv"
        assert main(["anonymize", demo_clip, "-o", str(out), "--mode", mode, *extra, "--quiet"]) == 0
        assert frames_of(str(out)) == 12


def test_detection_schedule_flags_reach_the_options():
    """--detect-every and --full-res-every become AnonymizeOptions fields (0 = auto); a negative value
    is a usage error (exit 2)."""
    from vidgan.cli import _anonymize_options, build_parser

    args = build_parser().parse_args(["anonymize", "in.mp4", "-o", "out.mp4", "--full-res-every", "1",
                                      "--detect-every", "3"])
    opts = _anonymize_options(args)
    assert (opts.detect_every, opts.full_res_every, opts.full_res_period()) == (3, 1, 1)
    opts = _anonymize_options(build_parser().parse_args(["anonymize", "in.mp4", "-o", "out.mp4"]))
    assert (opts.detect_every, opts.full_res_every, opts.full_res_period()) == (0, 0, 2)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["anonymize", "in.mp4", "-o", "o.mp4", "--full-res-every", "-1"])
    assert exc.value.code == 2


def test_gan_steady_flag_reaches_the_options():
    """--gan-steady W sets the weight of GAN mode's flow-guided steadiness (default 0: off); values
    outside [0, 0.95] are a usage error (exit 2)."""
    from vidgan.cli import _anonymize_options, build_parser

    parse = build_parser().parse_args
    assert _anonymize_options(parse(["anonymize", "in.mp4", "-o", "o.mp4"])).gan_flow == 0.0
    assert _anonymize_options(parse(["anonymize", "in.mp4", "-o", "o.mp4", "--gan-steady", "0.7"])).gan_flow == 0.7
    for bad in ("1", "-0.1"):
        with pytest.raises(SystemExit) as exc:
            parse(["anonymize", "in.mp4", "-o", "o.mp4", "--gan-steady", bad])
        assert exc.value.code == 2


def test_detecting_commands_warm_the_detector_up_first(monkeypatch):
    """`anonymize` and `detect` start compiling the detector's networks before the rest of the command
    loads (see vidgan.faces.warm_up), with the command's detector options; not where nothing is
    detected in this process (a tracks file, Ray's workers) or the options are bad (reported later)."""
    from vidgan.cli import _warm_up_detector, build_parser

    calls = []
    monkeypatch.setattr("vidgan.faces.warm_up", calls.append)
    parser = build_parser()
    _warm_up_detector(parser.parse_args(["anonymize", "in.mp4", "--threshold", "0.8", "--device", "cpu"]))
    _warm_up_detector(parser.parse_args(["detect", "in.mp4", "--json", "t.json", "--min-face", "30"]))
    assert [(c.threshold, c.device, c.min_face) for c in calls] == [(0.8, "cpu", None), (0.7, "auto", 30)]
    for args in (["anonymize", "in.mp4", "--tracks", "t.json"], ["anonymize", "in.mp4", "--ray"],
                 ["anonymize", "in.mp4", "--min-face", "4"]):
        _warm_up_detector(parser.parse_args(args))
    assert len(calls) == 2


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc (Linux)")
def test_the_command_line_keeps_numpy_blas_to_one_thread_unless_told_otherwise():
    """OpenBLAS's threads spin ~0.1 s after NumPy's import (0.14 CPU-s of a short run on 2 cores):
    the CLI asks for none before NumPy loads (the process has one thread after it); a user's own
    setting is kept."""
    code = ("import os, vidgan.cli, numpy\n"
            "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["1", "1"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OPENBLAS_NUM_THREADS": "2"})
    assert out.stdout.split()[0] == "2"
    if (os.cpu_count() or 1) >= 2:
        assert out.stdout.split()[1] == "2"  # without the setting, OpenBLAS's thread is there


def test_opencv_runs_in_the_calling_thread_on_two_cores_unless_told_otherwise():
    """On 1-2 cores OpenCV's pool only cost CPU beside the pipeline's stages (8 clips: -2 % CPU without
    it): the command asks for one thread before OpenCV loads; more cores keep OpenCV's default; a
    user's own setting wins."""
    from vidgan.threads import defaults

    assert defaults(2) == {"OPENBLAS_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}
    assert defaults(1)["OPENCV_FOR_THREADS_NUM"] == "1"
    assert "OPENCV_FOR_THREADS_NUM" not in defaults(16)
    code = "import vidgan.cli, cv2; print(cv2.getNumThreads())"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FOR_THREADS_NUM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["1" if (os.cpu_count() or 1) <= 2 else str(cv2_default_threads(env))]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OPENCV_FOR_THREADS_NUM": "3"})
    assert out.stdout.split() == ["3"]


def cv2_default_threads(env) -> int:
    out = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.getNumThreads())"], capture_output=True,
                         text=True, check=True, env=env)
    return int(out.stdout)
