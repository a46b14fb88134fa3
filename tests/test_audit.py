"""`vidgan audit`: the independent dlib judge finds leaks where there are some and none where the
anonymizer did its job; faithfulness mismatches (frame count, audio) are reported.

Real footage comes from ../shared/data (skipped when absent). To keep the file to a few minutes on
a busy 2-core machine, the real clips are cut to their first second or so (PyAV, in tmp) and some
audits sample frames.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from conftest import make_clip, video_path
from vidgan.audit import (AuditOptions, Auditor, Faithfulness, _Linker, _Tracks, audit_available,
                          changed_regions, load_dlib)
from vidgan.cli import main
from vidgan.errors import EXIT_LEAK, EXIT_OK, EXIT_USAGE
from vidgan.media import VideoReader, VideoWriter
from vidgan.types import Box

needs_dlib = pytest.mark.skipif(not audit_available(), reason="dlib / face_recognition_models not installed "
                                "(pip install vidgan[audit])")


# -- helpers ------------------------------------------------------------------------------------------
def cut(src: str, dst: str, seconds: float, audio: bool = True) -> str:
    """The first `seconds` of `src`: video re-encoded (x264, same timestamps), audio packets copied."""
    with av.open(src) as inp, av.open(dst, mode="w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.options = {"crf": "16", "preset": "veryfast"}
        ain = inp.streams.audio[0] if inp.streams.audio and audio else None
        aout = out.add_stream_from_template(ain) if ain is not None else None
        for frame in inp.decode(vin):
            if frame.time >= seconds:
                break
            out.mux(vout.encode(frame))
        out.mux(vout.encode(None))
        if ain is not None:
            inp.seek(0)
            for packet in inp.demux(ain):
                if packet.pts is None or packet.size == 0:
                    continue
                if packet.pts * packet.time_base >= seconds:
                    break
                packet.stream = aout
                out.mux(packet)
    return dst


def reencode(src: str, dst: str) -> str:
    """A plain, unanonymized re-encode through vidgan's own reader and writer (audio copied)."""
    with VideoReader(src) as reader:
        writer = VideoWriter(dst, reader.info, source=src)
        for frame in reader:
            writer.write(frame, frame.image)
        writer.finish()
        writer.commit()
    return dst


@pytest.fixture(scope="module")
def glasses(tmp_path_factory):
    """1.2 s (30 frames, 512x512, one large frontal face) of glasses_man.mp4 with its AAC audio."""
    folder = tmp_path_factory.mktemp("audit_glasses")
    return cut(video_path("glasses_man.mp4"), str(folder / "glasses.mp4"), 1.2)


@pytest.fixture(scope="module")
def auditor():
    if not audit_available():
        pytest.skip("dlib / face_recognition_models not installed (pip install vidgan[audit])")
    return Auditor(AuditOptions())


# -- without dlib -------------------------------------------------------------------------------------
def test_missing_dlib_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "dlib", None)  # `import dlib` now raises ImportError
    assert main(["audit", "a.mp4", "b.mp4", "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install vidgan[audit]" in err
    # anonymize --audit refuses before writing anything
    clip = make_clip(tmp_path / "c.mp4", frames=3)
    out = tmp_path / "o.mp4"
    assert main(["anonymize", clip, "-o", str(out), "--audit", "--quiet"]) == EXIT_USAGE
    assert not out.exists()
    assert "pip install vidgan[audit]" in capsys.readouterr().err
    with pytest.raises(Exception, match="pip install vidgan"):
        load_dlib()


def test_bad_options_are_usage_errors(capsys):
    assert main(["audit", "a.mp4", "b.mp4", "--every", "0"]) == EXIT_USAGE
    assert main(["audit", "a.mp4", "b.mp4", "--start", "3", "--end", "1"]) == EXIT_USAGE
    assert main(["audit", "a.mp4"]) == EXIT_USAGE


def test_changed_regions_find_the_covered_patch():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-4, 5, a.shape), 0, 255).astype(np.uint8)  # codec noise
    assert changed_regions(a, b) == []
    b[100:160, 200:260] = 128  # a covered face
    (reg,) = changed_regions(a, b)
    assert reg.x1 <= 200 and reg.y1 <= 100 and reg.x2 >= 260 and reg.y2 >= 160
    assert reg.width < 100 and reg.height < 100


def test_linker_keeps_ids_across_frames():
    link = _Linker()
    assert link.link(0, [Box(0, 0, 50, 50), Box(100, 0, 150, 50)]) == [1, 2]
    assert link.link(1, [Box(102, 2, 152, 52), Box(3, 1, 53, 51)]) == [2, 1]
    assert link.link(2, [Box(300, 300, 350, 350)]) == [3]


# -- faithfulness (synthetic clips: no face, so only the checks run) -----------------------------------
@needs_dlib
def test_frame_count_and_audio_mismatches_are_reported(tmp_path, auditor):
    orig = make_clip(tmp_path / "orig.mp4", frames=30, width=96, height=64, audio="aac")
    same = make_clip(tmp_path / "same.mp4", frames=30, width=96, height=64, audio="aac")
    short = make_clip(tmp_path / "short.mp4", frames=20, width=96, height=64)  # truncated, no audio
    other_audio = make_clip(tmp_path / "resampled.mp4", frames=30, width=96, height=64, audio="aac",
                            audio_rate=44100)

    ok = auditor.audit(orig, same)
    assert ok.passed and ok.faithfulness.ok, ok.faithfulness.issues
    assert ok.frames_judged == 30 and ok.faithfulness.max_timestamp_diff == 0
    assert [a.bit_exact for a in ok.faithfulness.audio] == [True]

    bad = Auditor(AuditOptions(every=5), judge=auditor.judge).audit(orig, short)
    fa: Faithfulness = bad.faithfulness
    assert (fa.frames_original, fa.frames_anonymized) == (30, 20)
    assert any("frame count differs: 30" in i for i in fa.issues)
    assert any("audio stream #0 (aac) is missing" in i for i in fa.issues)
    assert any("duration differs" in i for i in fa.issues)
    assert [f.output_index for f in bad.frames] == [0, 5, 10, 15, None, None]
    assert bad.passed  # nothing leaked: the verdict is about faces, the issues are listed beside it
    assert "faithfulness ISSUES" in bad.summary()

    re = Auditor(AuditOptions(max_frames=1), judge=auditor.judge).audit(orig, other_audio)
    (a,) = re.faithfulness.audio
    assert not a.bit_exact and any("not a bit-exact copy" in i for i in re.faithfulness.issues)
    assert re.faithfulness.frames_anonymized == 30


# -- real clips ---------------------------------------------------------------------------------------
@needs_dlib
def test_unanonymized_copy_leaks_every_face(glasses, tmp_path, capsys):
    copy = reencode(glasses, str(tmp_path / "copy.mp4"))
    rep = tmp_path / "report"
    code = main(["audit", glasses, copy, "--every", "2", "--report", str(rep), "--quiet"])
    out = capsys.readouterr().out
    assert code == EXIT_LEAK and "audit FAIL" in out
    doc = json.loads((rep / "audit.json").read_text())
    faces = [f for fr in doc["frames"] for f in fr["faces"]]
    assert doc["verdict"] == "FAIL" and doc["summary"]["frames_judged"] == 15
    assert len(faces) >= 14  # one large frontal face per frame; the judge finds it
    assert all(f["detected"] and f["identity"] and f["distance"] < 0.3 for f in faces)
    assert doc["summary"]["leaked_faces"] == len(faces)
    assert doc["faithfulness"]["ok"], doc["faithfulness"]["issues"]
    assert doc["faces"] and all(g["leaked"] for g in doc["faces"])
    sheets = sorted(p.name for p in rep.glob("sheet_*.png"))
    assert sheets == ["sheet_001.png"]  # 15 leaking frames fit one sheet of 24 tiles
    import cv2

    assert cv2.imread(str(rep / sheets[0])) is not None


@needs_dlib
def test_anonymized_clip_passes(glasses, tmp_path, capsys, auditor):
    anon = str(tmp_path / "anon.mp4")
    # anonymize --audit judges every frame of the output it has just written
    assert main(["anonymize", glasses, "-o", anon, "--audit", "--quiet"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "audit PASS" in out and "frames judged: 30 of 30" in out
    report = Auditor(AuditOptions(every=5, scan_output="full"), judge=auditor.judge).audit(glasses, anon)
    assert report.passed and report.exit_code == EXIT_OK
    assert report.gt_faces >= 5 and report.leaked_faces == 0 and report.new_faces == 0
    faces = [f for fr in report.frames for f in fr.faces]
    assert min(f.distance for f in faces) > 0.6  # not the same person any more
    assert report.faithfulness.ok, report.faithfulness.issues
    assert [a.bit_exact for a in report.faithfulness.audio] == [True]


@needs_dlib
def test_kept_track_is_exactly_the_leak(tmp_path, auditor):
    party = cut(video_path("party_h264_aac.mp4"), str(tmp_path / "party.mp4"), 1.0)
    tracks = str(tmp_path / "tracks.json")
    assert main(["detect", party, "--json", tracks, "--quiet"]) == EXIT_OK
    # Which of vidgan's tracks the judge sees in the first frame (MTCNN finds more, smaller faces).
    with VideoReader(party) as reader:
        first = next(iter(reader)).image
    seen = {_Tracks(tracks).track_at(0, d.box): d.box.width for d in auditor.judge.detect(first, 1.0)}
    assert len(seen) >= 2 and None not in seen
    # Keep the smaller face (~40 px, which the judge still finds in every frame) and expect the larger
    # one (~64 px) to pass: blurred, it sits at descriptor distances of 0.72 and more, while a blurred
    # ~40 px face sits at 0.60-0.67, too close to dlib's 0.6 for an exact assertion (docs/audit.md).
    keep = min(seen, key=seen.get)
    anon = str(tmp_path / "anon.mp4")
    assert main(["anonymize", party, "-o", anon, "--tracks", tracks, "--keep-track", str(keep),
                 "--quiet"]) == EXIT_OK
    # The first half second: at frame 15 the judge takes a phone held in front of a face for a face.
    report = Auditor(AuditOptions(end=0.5, tracks_file=tracks), judge=auditor.judge).audit(party, anon)
    assert not report.passed and report.exit_code == EXIT_LEAK
    assert report.leaked_tracks() == [keep]
    (kept,) = [t for t in report.tracks if t.id == keep]
    assert kept.leaked_frames >= 0.8 * kept.faces and kept.identity_leaks >= 0.8 * kept.faces
    others = [t for t in report.tracks if t.id != keep]
    assert others and all(t.leaked_frames == 0 for t in others)
    assert report.new_faces == 0
    assert f"tracks with leaks: {keep};" in report.summary()


@needs_dlib
def test_unreadable_input_is_a_one_line_error(tmp_path, capsys):
    clip = make_clip(tmp_path / "c.mp4", frames=3)
    assert main(["audit", clip, str(tmp_path / "missing.mp4"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"vidgan: error: {tmp_path / 'missing.mp4'}: no such file"]
