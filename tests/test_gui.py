"""The desktop app (gui/), headless: pytest-qt on Qt's offscreen platform.

One shared real clip (party_1s_h264_mp3.mp4: 31 frames, several people) is opened once per module
(face detection on the CPU is the slow part); the tests then step through it, toggle who stays
visible, export and check the output pixels, cancel an export midway and show errors. Small clips
made at run time cover the controls, the batch queue and the vault wiring.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported anywhere

import importlib.machinery  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PySide6", reason="the desktop app needs PySide6 (pip install -e '.[dev]')")
pytest.importorskip("pytestqt", reason="GUI tests need pytest-qt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from conftest import video_path  # noqa: E402
from gui import features, screenshots  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from vidgan.cli import main as cli_main  # noqa: E402
from vidgan.demo import make_demo_clip  # noqa: E402
from vidgan.media import read_frame  # noqa: E402
from vidgan.pipeline import FrameObserver  # noqa: E402

CLIP = "party_1s_h264_mp3.mp4"
DETECT_TIMEOUT = 300  # s; detection of 31 VGA frames on 2 busy CPU cores


def wait_until(condition, timeout: float = 60.0) -> None:
    """Run Qt's event loop until `condition()` holds (usable outside qtbot, e.g. in module fixtures)."""
    screenshots.wait_until(condition, timeout)


def decoded_frames(path):
    with av.open(path) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def inner(box, image, shrink=0.25):
    """The central part of a face box (away from the mask's edge)."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * shrink, (y2 - y1) * shrink
    return image[int(y1 + dy):int(y2 - dy), int(x1 + dx):int(x2 - dx)].astype(np.float32)


@pytest.fixture(scope="module")
def party(qapp):
    """A window with the shared party clip open and its faces found (shared by the tests below)."""
    path = video_path(CLIP)
    window = MainWindow()
    window.resize(1200, 740)
    window.show()
    assert window.open_path(path)
    wait_until(lambda: window.doc is not None, DETECT_TIMEOUT)
    wait_until(lambda: window.current_index == 0)
    yield window
    window.close()


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1000, 640)
    w.show()
    yield w
    w.shutdown()


@pytest.fixture
def errors(monkeypatch):
    """QMessageBox.critical captured instead of blocking: a list of (title, text)."""
    shown = []

    def critical(parent, title, text, *args, **kwargs):
        shown.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", critical)
    return shown


@pytest.fixture(scope="module")
def astro(tmp_path_factory):
    """The demo clip (astronaut portrait, one face, moving camera): 12 small frames."""
    folder = tmp_path_factory.mktemp("astro")
    return make_demo_clip(str(folder / "astro.mp4"), seconds=1.2, fps=10, size=(320, 180))


def show(window, index: int) -> None:
    """Seek and wait until that frame is on screen (no other frame still on its way)."""
    window.seek(index)
    wait_until(lambda: window.current_index == index and not window._awaiting)


def biggest_track(window) -> int:
    """The track of the biggest face the detector found in the current frame (held boxes grow with
    their distance from a detection, so they are not the biggest face)."""
    boxes = [b for b in window.current_boxes() if b.kind == "detected"] or window.current_boxes()
    return max(boxes, key=lambda b: b.box.area).track_id


# -- entry points -------------------------------------------------------------------------------------
def test_vidgan_gui_without_pyside6_exits_2_with_a_clear_message(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "PySide6" else real(name, *a))
    assert cli_main(["gui"]) == 2
    err = capsys.readouterr().err
    assert "PySide6" in err and "vidgan[gui]" in err and len(err.strip().splitlines()) == 1


def test_vidgan_gui_help():
    with pytest.raises(SystemExit) as exc:
        from gui.app import main

        main(["--help"])
    assert exc.value.code == 0


# -- empty window -------------------------------------------------------------------------------------
def test_empty_window_offers_only_what_works(window):
    assert window.path is None
    assert not window.export_button.isEnabled()
    assert not window.transport.slider.isEnabled()
    vault = features.vault()
    assert window.passcode.isEnabled() == vault.available
    assert window.restore_action.isVisible() == vault.available
    if not vault.available:
        assert "not available" in window.passcode.toolTip()
    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert tabs[:3] == ["Faces", "Settings", "Batch"]
    assert ("Deepfake" in tabs) == features.deepfake().available


# -- the shared clip ----------------------------------------------------------------------------------
def test_open_finds_faces_and_fills_the_track_list(party):
    assert party.frame_count == 31
    assert party.doc["frame_count"] == 31
    ids = party.tracks.track_ids()
    assert len(ids) >= 3 and ids == sorted(t["id"] for t in party.doc["tracks"])
    assert party.export_button.isEnabled()
    assert len(party.current_boxes()) >= 3
    assert "frame 1/31" in party.transport.time_label.text()


def test_step_frames_and_scrub(party, qtbot):
    show(party, 0)
    for expected in (1, 2, 3):
        with qtbot.waitSignal(party.frameShown, timeout=10000, check_params_cb=lambda i, e=expected: i == e):
            qtbot.mouseClick(party.transport.forward_button, Qt.MouseButton.LeftButton)
        assert party.current_index == expected
    with qtbot.waitSignal(party.frameShown, timeout=10000, check_params_cb=lambda i: i == 2):
        qtbot.mouseClick(party.transport.back_button, Qt.MouseButton.LeftButton)
    assert party.current_index == 2
    # the player shows the same pixels the pipeline reads for that index
    assert np.array_equal(party.frame.image, read_frame(party.path, 2).image)
    party.transport.slider.setValue(20)  # scrubbing
    wait_until(lambda: party.current_index == 20)
    assert "frame 21/31" in party.transport.time_label.text()
    assert party.transport.time_label.text().startswith("0:00.6")  # 20 / 29.97 fps
    party.step(100)  # clamped at the last frame
    wait_until(lambda: party.current_index == 30)
    party.toggle_play()  # at the end: plays from the start, stops at the last frame
    wait_until(lambda: party.current_index > 0 and not party._playing, 60)
    assert party.current_index == 30


def test_click_a_face_or_its_row_to_keep_it_visible(party, qtbot):
    party.cover_all()
    party.set_view_mode("result")
    show(party, 0)
    tid = biggest_track(party)
    box = next(b for b in party.current_boxes() if b.track_id == tid).box
    original = party.view.original_array
    covered = inner(box.as_list(), party.view.result_array)
    assert np.abs(covered - inner(box.as_list(), original)).mean() > 3  # blurred in the preview

    # click the face in the picture
    cx, cy = box.center
    pos = party.view.to_widget(cx, cy).toPoint()
    qtbot.mouseClick(party.view, Qt.MouseButton.LeftButton, pos=pos)
    assert party.kept == {tid}
    assert party.tracks.item(tid).checkState(0) == Qt.CheckState.Unchecked
    assert party.tracks.item(tid).text(1) == "visible"
    assert np.array_equal(inner(box.as_list(), party.view.result_array), inner(box.as_list(), original))
    qtbot.mouseClick(party.view, Qt.MouseButton.LeftButton, pos=pos)  # and back
    assert party.kept == set()

    # the row's check box in the track list
    party.tracks.item(tid).setCheckState(0, Qt.CheckState.Unchecked)
    assert party.kept == {tid}
    party.tracks.item(tid).setCheckState(0, Qt.CheckState.Checked)
    assert party.kept == set()
    # a click outside every face changes nothing
    qtbot.mouseClick(party.view, Qt.MouseButton.LeftButton, pos=QPoint(2, 2))
    assert party.kept == set()


def test_export_keeps_the_chosen_face_and_covers_the_others(party, qtbot, tmp_path):
    party.cover_all()
    show(party, 0)
    kept = biggest_track(party)
    party.set_track_kept(kept, True)
    controls = party.controls
    controls.mode.setCurrentIndex(controls.mode.findData("solid"))  # black: easy to tell covered
    try:
        out = tmp_path / "party_anon.mp4"
        with qtbot.waitSignal(party.exportFinished, timeout=120000) as done:
            assert party.export_to(str(out))
            assert party.is_exporting() and not party.export_button.isEnabled()
        assert done.args == ["ok"]
    finally:
        controls.mode.setCurrentIndex(controls.mode.findData("blur"))
    assert sorted(os.listdir(tmp_path)) == ["party_anon.mp4"]  # no temp files left
    result = decoded_frames(str(out))
    assert len(result) == 31
    checked_kept = checked_covered = 0
    for fr in party.doc["frames"]:  # faces the detector found (kind "detected"), on any frame
        orig = read_frame(party.path, fr["index"]).image
        for face in fr["faces"]:
            x1, y1, x2, y2 = face["box"]
            if min(x2 - x1, y2 - y1) < 20 or face["kind"] != "detected":
                continue
            a, b = inner(face["box"], orig), inner(face["box"], result[fr["index"]])
            if face["track"] == kept:
                assert np.abs(a - b).mean() < 8, f"kept face {kept} changed in frame {fr['index']}"
                checked_kept += 1
            elif all(not (o["track"] == kept and _overlap(o["box"], face["box"])) for o in fr["faces"]):
                assert b.mean() < 40, f"face {face['track']} not covered in frame {fr['index']}"
                assert np.abs(a - b).mean() > 30
                checked_covered += 1
    assert checked_kept >= 5 and checked_covered >= 10
    assert party.last_report.frames == 31
    assert "Exported 31 frames" in party.statusBar().currentMessage()


def _overlap(a, b) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def test_cancel_an_export_midway_leaves_nothing(party, qtbot, tmp_path, monkeypatch):
    from vidgan.ops.base import Operation

    real_apply = Operation.apply

    def slow_apply(self, image, boxes, frame=None):  # ~0.1 s a frame, so Cancel lands midway
        time.sleep(0.1)
        return real_apply(self, image, boxes, frame)

    monkeypatch.setattr(Operation, "apply", slow_apply)
    seen = []
    party.exportProgress.connect(lambda done, total: seen.append(done))
    out = tmp_path / "cancelled.mp4"
    with qtbot.waitSignal(party.exportFinished, timeout=120000) as done:
        assert party.export_to(str(out))
        wait_until(lambda: seen and seen[-1] >= 3)
        assert party.task_cancel.isVisible()
        qtbot.mouseClick(party.task_cancel, Qt.MouseButton.LeftButton)
    assert done.args == ["cancelled"]
    assert max(seen) < 31
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # no partial or temporary file either
    assert "nothing was written" in party.statusBar().currentMessage()
    assert not party.is_exporting() and party.export_button.isEnabled()


def test_export_error_is_one_line_in_a_dialog(party, qtbot, errors, tmp_path):
    with qtbot.waitSignal(party.exportFinished, timeout=60000) as done:
        assert party.export_to(str(tmp_path / "missing" / "out.mp4"))
    assert done.args == ["failed"]
    (title, text), = errors
    assert title == "Export failed" and "output folder does not exist" in text and "\n" not in text


def test_saved_tracks_carry_the_choices_for_the_cli(party, tmp_path):
    from vidgan.pipeline import TrackSource

    party.cover_all()
    tid = party.tracks.track_ids()[0]
    party.set_track_kept(tid, True)
    path = tmp_path / "tracks.json"
    party.save_tracks(str(path))
    doc = json.loads(path.read_text())
    assert {t["id"]: t["cover"] for t in doc["tracks"]} == {t: t != tid for t in party.tracks.track_ids()}
    source = TrackSource(str(path))  # what `vidgan anonymize --tracks` reads
    assert all(b.track_id != tid for boxes in source.boxes.values() for b in boxes)
    party.cover_all()


def test_screenshot_of_a_window_state(party, tmp_path):
    path = screenshots.save_window(party, str(tmp_path / "s.png"), max_width=600)
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG" and im.width == 600


# -- errors -------------------------------------------------------------------------------------------
def test_corrupt_file_shows_the_one_line_reason(window, errors):
    path = video_path("party_corrupt.mp4")
    assert window.open_path(path) is False
    (title, text), = errors
    assert title == "Cannot open"
    assert text.startswith("party_corrupt.mp4: ") and "corrupt" in text and "\n" not in text
    assert window.path is None and not window.export_button.isEnabled()


def test_missing_file_shows_an_error(window, errors, tmp_path):
    assert window.open_path(str(tmp_path / "nope.mp4")) is False
    assert errors == [("Cannot open", "nope.mp4: no such file")]


# -- controls, detection in the background ------------------------------------------------------------
def test_controls_update_the_preview_and_detector_changes_redetect(window, qtbot, astro):
    with qtbot.waitSignal(window.tracksReady, timeout=120000):
        assert window.open_path(astro)
    wait_until(lambda: window.current_index == 0)
    assert window.current_boxes(), "the astronaut's face is found"
    box = window.current_boxes()[0].box.as_list()
    c = window.controls
    c.mode.setCurrentIndex(c.mode.findData("solid"))
    assert inner(box, window.view.result_array).max() == 0  # black at once, no re-detection
    c.set_color((255, 255, 255))
    assert inner(box, window.view.result_array).min() == 255
    c.margin.setValue(2.0)
    c.start.setValue(0.5)  # frame 0 is before the range: left unchanged
    assert np.array_equal(window.view.result_array, window.view.original_array)
    c.start.setValue(0.0)
    c.end.setValue(0.05)
    c.start.setValue(0.1)  # end before start: an inline error, no crash
    assert not c.error.isHidden() and "end" in c.error.text()
    c.end.setValue(0.0)
    assert c.error.isHidden()

    # a detector option: faces are found again in the background; the window keeps responding
    ticks = []
    timer = window.startTimer(20)
    window.timerEvent = lambda event: ticks.append(time.monotonic())
    with qtbot.waitSignal(window.tracksReady, timeout=120000):
        c.threshold.setValue(0.8)
        assert window.doc is not None  # debounced: not yet
    window.killTimer(timer)
    gaps = np.diff(ticks)
    assert len(ticks) > 5 and gaps.max() < 1.0, f"GUI thread stalled for {gaps.max():.2f} s"
    assert window.doc["detector"]["threshold"] == pytest.approx(0.8)


def test_batch_queue_runs_every_file_and_reports_each(window, qtbot, tmp_path, make_clip_in):
    a = make_clip_in("a.mp4", frames=8)
    b = make_clip_in("b.mkv", frames=6)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    out = tmp_path / "out"
    panel = window.batch
    mime = QMimeData()  # dropping several files queues them
    mime.setUrls([QUrl.fromLocalFile(p) for p in (a, b, str(bad))])
    window.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert window.tabs.currentWidget() is panel
    assert panel.table.rowCount() == 3
    panel.set_out_dir(str(out))
    assert panel.table.item(0, 2).text() == "a.anonymized.mp4"
    panel.run_all()
    wait_until(lambda: not panel.is_running(), 180)
    statuses = [panel.status(r) for r in range(3)]
    assert statuses[0] == "ok" and statuses[1] == "ok", statuses
    assert statuses[2].startswith("failed: ") and "not a video" in statuses[2]
    assert (out / "a.anonymized.mp4").is_file() and (out / "b.anonymized.mkv").is_file()
    assert not (out / "bad.anonymized.mp4").exists()
    assert "2 ok, 1 failed" in panel.summary.text()


# -- the vault, when the library has one ---------------------------------------------------------------
def test_passcode_goes_to_the_vault_observer_when_the_vault_exists(qtbot, monkeypatch, tmp_path, astro, errors):
    calls = {}

    class FakeVaultWriter(FrameObserver):
        def __init__(self, vault_path, passcode):
            calls["init"] = (vault_path, passcode)
            calls["frames"] = 0

        def frame(self, frame, boxes, covered):
            calls["frames"] += 1

        def commit(self):
            calls["committed"] = True

    fake = types.ModuleType("vidgan.vault")
    fake.__spec__ = importlib.machinery.ModuleSpec("vidgan.vault", None)
    fake.VaultWriter = FakeVaultWriter
    fake.restore = lambda *a, **k: None
    monkeypatch.setitem(sys.modules, "vidgan.vault", fake)
    assert features.vault().available

    w = MainWindow()
    qtbot.addWidget(w)
    try:
        assert w.passcode.isEnabled() and w.restore_action.isVisible()
        with qtbot.waitSignal(w.tracksReady, timeout=120000):
            w.open_path(astro)
        w.passcode.setChecked(True)
        w.passcode.passcode.setText("correct horse battery")
        w.passcode.confirm.setText("correct horse batterx")
        assert not w.export_to(str(tmp_path / "o.mp4"))
        assert errors and "differ" in errors[-1][1]
        w.passcode.confirm.setText("correct horse battery")
        out = str(tmp_path / "o.mp4")
        if not isinstance(features.passcode("correct horse battery"), str):  # vidgan.keys: 8+ characters
            w.passcode.passcode.setText("short")
            w.passcode.confirm.setText("short")
            assert not w.export_to(out)
            assert "too short" in errors[-1][1]
            w.passcode.passcode.setText("correct horse battery")
            w.passcode.confirm.setText("correct horse battery")
        with qtbot.waitSignal(w.exportFinished, timeout=120000) as done:
            assert w.export_to(out)
        assert done.args == ["ok"]
        vault_path, code = calls["init"]
        assert vault_path == out + ".vault"
        assert code == features.passcode("correct horse battery")  # a keys.Passcode once that exists
        assert calls["frames"] == 12 and calls.get("committed")
        assert w.passcode.passcode.text() == ""  # not kept around after use
    finally:
        w.shutdown()


def test_app_main_opens_a_file_given_on_the_command_line(qtbot, monkeypatch, astro):
    from gui import app as app_module

    opened = {}
    monkeypatch.setattr(QApplication, "exec", lambda self: 0)
    monkeypatch.setattr(MainWindow, "open_paths", lambda self, paths: opened.setdefault("paths", paths))
    assert app_module.main([astro]) == 0
    assert opened["paths"] == [astro]


def test_real_vault_round_trip_through_the_window(qtbot, tmp_path, astro, errors):
    """Export with a passcode, then the restore dialog brings the faces back (the library's vault)."""
    if not features.vault().available:
        pytest.skip(f"no vault in this vidgan: {features.vault().reason}")
    from gui.passcode import RestoreDialog

    w = MainWindow()
    qtbot.addWidget(w)
    try:
        with qtbot.waitSignal(w.tracksReady, timeout=120000):
            w.open_path(astro)
        wait_until(lambda: w.current_index == 0)
        box = w.current_boxes()[0].box.as_list()
        w.passcode.setChecked(True)
        for field in (w.passcode.passcode, w.passcode.confirm):
            field.setText("correct horse battery")
        out = str(tmp_path / "anon.mp4")
        with qtbot.waitSignal(w.exportFinished, timeout=300000) as done:
            assert w.export_to(out)
        assert done.args == ["ok"], errors
        assert os.path.isfile(features.vault_path_for(out))

        dialog = RestoreDialog(w, video=out)
        qtbot.addWidget(dialog)
        assert dialog.vault.text() == features.vault_path_for(out)
        dialog.output.setText(str(tmp_path / "restored.mp4"))
        dialog.passcode.setText("wrong passcode!")
        with qtbot.waitSignal(dialog.task_done, timeout=300000):
            qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
        assert errors and errors[-1][0] == "Restore failed" and "passcode" in errors[-1][1]
        assert not (tmp_path / "restored.mp4").exists()
        dialog.passcode.setText("correct horse battery")
        with qtbot.waitSignal(dialog.task_done, timeout=300000):
            qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
        assert dialog.result() == dialog.DialogCode.Accepted
        original = decoded_frames(astro)
        anon = decoded_frames(out)
        restored = decoded_frames(str(tmp_path / "restored.mp4"))
        assert len(restored) == len(original) == 12
        assert np.abs(inner(box, anon[0]) - inner(box, original[0])).mean() > 5  # covered
        assert np.abs(inner(box, restored[0]) - inner(box, original[0])).mean() < 3  # back
    finally:
        w.shutdown()
