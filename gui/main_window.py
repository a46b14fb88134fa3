"""The main window: open a file, look at it, choose who stays visible, export.

How the pieces use the library (nothing of the pipeline is re-implemented here):

- opening: `FrameSeeker` (player frames) and, in a worker, `Pipeline.detect()` once with the current
  `DetectorOptions`: the tracks document (ids, boxes per frame). It is written to a temporary JSON
  file and read back with `TrackSource`, so the preview shows exactly the boxes the export will use;
- preview: the current frame only, through `AnonymizeOptions.make_operation()` with the boxes of
  that frame minus the excluded tracks (cheap, on the GUI thread); detector changes re-run detection
  in the background;
- export: `Pipeline(AnonymizeOptions(tracks_file=..., keep_tracks=...)).anonymize()` in a worker with
  progress and a cancel Event (the pipeline writes to a temporary file and renames it only when
  complete, so Cancel leaves nothing behind);
- batch: `run_batch` (see `batch_panel.py`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Optional

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QPushButton, QScrollArea, QSplitter, QStyle,
                               QTabWidget, QVBoxLayout, QWidget)

from vidgan import __version__
from vidgan.batch import MEDIA_EXTENSIONS, plan_jobs
from vidgan.errors import VidganError
from vidgan.faces import DetectorOptions, warm_up
from vidgan.media.seek import FrameSeeker
from vidgan.pipeline import AnonymizeOptions, Pipeline, TrackSource
from vidgan.types import Frame

from . import features
from .batch_panel import BatchPanel
from .controls import ControlsPanel
from .deepfake_panel import DeepfakePanel
from .passcode import PasscodeBox, RestoreDialog
from .player import FrameLoader, PreviewView, TransportBar, fmt_left
from .tasks import Task, one_line
from .tracks_panel import TrackList

log = logging.getLogger(__name__)

VIEW_LABELS = {"original": "Original", "result": "Result", "split": "Before / after"}


def reason_of(exc: BaseException) -> str:
    """One line for a dialog: 'file.mp4: reason' (the folder left out) or the exception's line."""
    if isinstance(exc, VidganError):
        return f"{os.path.basename(exc.path)}: {exc.reason}" if exc.path else exc.reason
    return one_line(exc)


class MainWindow(QMainWindow):
    tracksReady = Signal()  # the tracks document of the open file is there
    frameShown = Signal(int)  # a frame was drawn
    exportProgress = Signal(int, int)  # frames done, total
    exportFinished = Signal(str)  # "ok" | "cancelled" | "failed"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("vidgan")
        self.setAcceptDrops(True)
        self.resize(1280, 780)
        self.path: Optional[str] = None
        self.seeker: Optional[FrameSeeker] = None
        self.loader: Optional[FrameLoader] = None
        self.frame: Optional[Frame] = None
        self.frame_count = 0
        self.doc: Optional[dict] = None  # tracks document of the open file
        self.tracks_path: Optional[str] = None  # ... as a JSON file for TrackSource / export
        self.source: Optional[TrackSource] = None
        self.kept: set[int] = set()  # track ids left visible
        self.last_report = None
        self._tmp = tempfile.mkdtemp(prefix="vidgan-gui-")
        self._generation = 0
        self._detect_task: Optional[Task] = None
        self._export_task: Optional[Task] = None
        self._old_tasks: list[Task] = []
        self._detector = None  # (DetectorOptions, FaceDetector) kept between detections
        self._want_index = 0
        self._awaiting = False
        self._playing = False

        self._build_widgets()
        self._build_actions()
        self._build_layout()
        self._wire()
        self._update_state()
        warm_up(self.controls.detector_options())  # the first detection finds the networks compiled

    # == construction ===================================================================================
    def _build_widgets(self) -> None:
        self.view = PreviewView()
        self.transport = TransportBar()
        self.tracks = TrackList()
        self.controls = ControlsPanel()
        self.passcode = PasscodeBox()
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("primary")
        self.export_button.setToolTip("Write the anonymized copy (Ctrl+E)")
        self.batch = BatchPanel(self._batch_options)
        self.deepfake = DeepfakePanel() if DeepfakePanel.available() else None
        self.task_label = QLabel("")
        self.task_progress = QProgressBar()
        self.task_progress.setFixedWidth(260)
        self.task_cancel = QPushButton("Cancel")
        self.task_cancel.setToolTip("Stop; nothing half-written is left behind")
        self.play_timer = QTimer(self)
        self.redetect_timer = QTimer(self)
        self.redetect_timer.setSingleShot(True)
        self.redetect_timer.setInterval(700)

    def _build_actions(self) -> None:
        style = self.style()
        self.open_action = QAction(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton), "&Open…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.export_action = QAction(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "&Export…", self)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.save_tracks_action = QAction("Save face &tracks…", self)
        self.save_tracks_action.setToolTip("The tracks JSON with your choices, for `vidgan anonymize --tracks`")
        self.restore_action = QAction("&Restore from vault…", self)
        self.restore_action.setVisible(features.vault().available)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.view_group = QActionGroup(self)
        self.view_actions: dict[str, QAction] = {}
        for key, mode in (("1", "original"), ("2", "result"), ("3", "split")):
            a = QAction(VIEW_LABELS[mode], self, checkable=True)
            a.setShortcut(QKeySequence(key))
            a.setData(mode)
            self.view_group.addAction(a)
            self.view_actions[mode] = a
        self.view_actions[self.view.mode].setChecked(True)
        self.boxes_action = QAction("Face boxes", self, checkable=True)
        self.boxes_action.setChecked(True)
        self.boxes_action.setShortcut(QKeySequence("B"))
        self.play_action = QAction("Play / pause", self)
        self.play_action.setShortcut(QKeySequence(Qt.Key.Key_Space))
        self.next_action = QAction("Next frame", self)
        self.next_action.setShortcut(QKeySequence(Qt.Key.Key_Right))
        self.prev_action = QAction("Previous frame", self)
        self.prev_action.setShortcut(QKeySequence(Qt.Key.Key_Left))
        self.about_action = QAction("&About vidgan", self)

        file_menu = self.menuBar().addMenu("&File")
        for a in (self.open_action, self.export_action, self.save_tracks_action, self.restore_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = self.menuBar().addMenu("&View")
        for a in self.view_actions.values():
            view_menu.addAction(a)
        view_menu.addSeparator()
        view_menu.addAction(self.boxes_action)
        play_menu = self.menuBar().addMenu("&Playback")
        for a in (self.play_action, self.prev_action, self.next_action):
            play_menu.addAction(a)
        self.menuBar().addMenu("&Help").addAction(self.about_action)

        tb = self.addToolBar("Main")
        tb.setMovable(False)
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.open_action)
        tb.addAction(self.export_action)
        tb.addSeparator()
        tb.addWidget(QLabel("  View: "))
        for a in self.view_actions.values():
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.boxes_action)

    def _build_layout(self) -> None:
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.setSpacing(0)
        lv.addWidget(self.view, 1)
        lv.addWidget(self.transport)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.tracks, "Faces")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.controls)
        self.tabs.addTab(scroll, "Settings")
        self.tabs.addTab(self.batch, "Batch")
        if self.deepfake is not None:
            self.tabs.addTab(self.deepfake, "Deepfake")
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(6, 6, 6, 6)
        rv.addWidget(self.tabs, 1)
        rv.addWidget(self.passcode)
        rv.addWidget(self.export_button)
        right.setMinimumWidth(340)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setSizes([880, 400])
        self.setCentralWidget(split)

        sb = self.statusBar()
        task = QWidget()
        th = QHBoxLayout(task)
        th.setContentsMargins(0, 0, 4, 0)
        th.addWidget(self.task_label)
        th.addWidget(self.task_progress)
        th.addWidget(self.task_cancel)
        sb.addPermanentWidget(task)
        self._task_widgets = (self.task_label, self.task_progress, self.task_cancel)
        self._show_task(None)

    def _wire(self) -> None:
        self.open_action.triggered.connect(self.choose_open)
        self.export_action.triggered.connect(self.choose_export)
        self.export_button.clicked.connect(self.choose_export)
        self.save_tracks_action.triggered.connect(self.choose_save_tracks)
        self.restore_action.triggered.connect(self.open_restore)
        self.quit_action.triggered.connect(self.close)
        self.about_action.triggered.connect(self._about)
        self.view_group.triggered.connect(lambda a: self.set_view_mode(a.data()))
        self.boxes_action.toggled.connect(self.view.set_show_boxes)
        self.play_action.triggered.connect(self.toggle_play)
        self.next_action.triggered.connect(lambda: self.step(1))
        self.prev_action.triggered.connect(lambda: self.step(-1))
        self.transport.playToggled.connect(self.toggle_play)
        self.transport.stepRequested.connect(self.step)
        self.transport.seekRequested.connect(self.seek)
        self.view.faceClicked.connect(self.toggle_track)
        self.tracks.keptChanged.connect(self.set_track_kept)
        self.tracks.trackSelected.connect(self._track_selected)
        self.tracks.coverAllRequested.connect(self.cover_all)
        self.tracks.redetectRequested.connect(self.start_detection)
        self.controls.renderChanged.connect(self._render)
        self.controls.detectorChanged.connect(self._detector_changed)
        self.controls.startFromPlayhead.connect(lambda: self._range_from_playhead(self.controls.start))
        self.controls.endFromPlayhead.connect(lambda: self._range_from_playhead(self.controls.end))
        self.task_cancel.clicked.connect(self.cancel_task)
        self.play_timer.timeout.connect(self._play_tick)
        self.redetect_timer.timeout.connect(self.start_detection)
        self.batch.busyChanged.connect(lambda _busy: self._update_state())

    # == opening ========================================================================================
    def choose_open(self) -> None:
        exts = " ".join(f"*{e}" for e in sorted(MEDIA_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Open a video or photo", self._last_folder(),
                                              f"Videos and photos ({exts});;All files (*)")
        if path:
            self.open_path(path)

    def _last_folder(self) -> str:
        return os.path.dirname(self.path) if self.path else os.path.expanduser("~")

    def open_path(self, path: str) -> bool:
        """Open a video or photo in the player and start finding faces. False (and a dialog) on error."""
        if self.is_exporting():
            self.statusBar().showMessage("Wait for the export to finish (or cancel it) first", 5000)
            return False
        try:
            seeker = FrameSeeker(path)
        except Exception as exc:  # noqa: BLE001 - every failure is one line in a dialog
            self.show_error("Cannot open", reason_of(exc))
            return False
        self._close_file()
        self.path = path
        self.seeker = seeker
        self.frame_count = max(1, seeker.frame_count)
        self.loader = FrameLoader(seeker)
        self.loader.loaded.connect(self._frame_loaded)
        self.loader.failed.connect(self._frame_failed)
        self.loader.start()
        info = seeker.info
        self.controls.set_duration(None if info.is_image else info.duration)
        self.transport.set_length(self.frame_count)
        self.transport.set_enabled(self.frame_count > 1)
        fps = float(info.average_rate) if info.average_rate else 0.0
        self.play_timer.setInterval(int(1000 / fps) if fps > 0 else 40)
        self.setWindowTitle(f"{os.path.basename(path)} — vidgan")
        kind = "photo" if info.is_image else f"{fps:.2f} fps · {self.frame_count} frames · {info.codec}"
        self.file_label = f"{os.path.basename(path)} · {info.width}×{info.height} · {kind}"
        self.statusBar().showMessage(self.file_label)
        if self.deepfake is not None:
            self.deepfake.set_path(path)
        self.seek(0)
        self.start_detection()
        self._update_state()
        return True

    def _close_file(self) -> None:
        self.stop_playing()
        self._cancel_detection()
        if self.loader is not None:
            self.loader.stop()
            self.loader = None
        self.seeker = None
        self.path = None
        self.frame = None
        self.doc = self.source = None
        self.kept = set()
        self.view.clear()
        self.tracks.set_tracks(None, set())

    # == detection ======================================================================================
    def _detector_changed(self) -> None:
        if self.path is not None:
            self.redetect_timer.start()

    def _cancel_detection(self) -> None:
        task = self._detect_task
        if task is not None and task.is_running():
            task.cancel()
            self._old_tasks.append(task)  # keep it alive until its thread ends
        self._detect_task = None
        self._old_tasks = [t for t in self._old_tasks if t.is_running()]

    def start_detection(self) -> None:
        """Find and track faces of the open file in the background (again, when settings changed)."""
        if self.path is None or self.is_exporting():
            return
        self.redetect_timer.stop()
        self._cancel_detection()
        try:
            det = self.controls.detector_options()
        except ValueError as exc:
            self.controls.show_error(str(exc))
            return
        self._generation += 1
        gen = self._generation
        if self.kept:
            self.statusBar().showMessage("Finding faces again: track ids change, so everyone is covered "
                                         "again until you choose", 8000)
        self.doc = self.source = self.tracks_path = None
        self.kept = set()
        self.tracks.set_tracks(None, set())
        self.tracks.set_status("Finding faces…")
        detector = None
        if self._detector is not None and self._detector[0] == det and not self._old_tasks:
            detector = self._detector[1]  # reuse the loaded networks (not shared with a running task)
        pipe = Pipeline(AnonymizeOptions(detector=det), detector=detector)
        path = self.path

        def work(progress, cancel):
            doc = pipe.detect(path, progress=progress, cancel=cancel)
            return doc, pipe.detector

        task = Task("detect", work)
        task.progress.connect(lambda d, t, left: self._detect_progress(gen, d, t, left))
        task.succeeded.connect(lambda result: self._detected(gen, det, result))
        task.failed.connect(lambda reason: self._detect_failed(gen, reason))
        task.cancelled.connect(lambda: self._detect_cancelled(gen))
        task.finished.connect(self._update_state)
        self._detect_task = task
        self._show_task("Finding faces", 0, self.frame_count)
        self.view.set_banner("Finding faces… nothing is covered yet")
        task.start()
        self._update_state()

    def _detect_progress(self, gen: int, done: int, total: int, left: float) -> None:
        if gen != self._generation:
            return
        total = total or self.frame_count
        self._show_task("Finding faces", done, total, left)
        pct = f" {100 * done // total}%" if total else ""
        self.view.set_banner(f"Finding faces…{pct} — nothing is covered yet")

    def _detected(self, gen: int, det: DetectorOptions, result) -> None:
        doc, detector = result
        self._detector = (det, detector)
        if gen != self._generation:
            return
        path = os.path.join(self._tmp, f"tracks-{gen}.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        self.doc, self.tracks_path, self.source = doc, path, TrackSource(path)
        if doc.get("frame_count") and doc["frame_count"] != self.frame_count:
            log.info("player counted %d frames, detection %d", self.frame_count, doc["frame_count"])
        self.kept = set()
        self.tracks.set_tracks(doc["tracks"], self.kept)
        if not doc["tracks"]:
            self.tracks.set_status("No face found with these settings (lower the threshold or the "
                                   "smallest face size in Settings)")
        self.view.set_banner("")
        self._show_task(None)
        self.statusBar().showMessage(f"{len(doc['tracks'])} face track(s) in {doc['frame_count']} frames "
                                     f"({doc.get('seconds', 0):.1f} s)", 8000)
        self._render()
        self._update_state()
        self.tracksReady.emit()

    def _detect_failed(self, gen: int, reason: str) -> None:
        if gen != self._generation:
            return
        self._show_task(None)
        self.view.set_banner("Face detection failed")
        self.tracks.set_status(f"Detection failed: {reason}")
        self.show_error("Face detection failed", reason)

    def _detect_cancelled(self, gen: int) -> None:
        if gen != self._generation:
            return
        self._show_task(None)
        self.view.set_banner("Face detection cancelled — use “Detect again” in Faces")
        self.tracks.set_tracks([], set())
        self.tracks.set_status("Detection cancelled")

    # == player =========================================================================================
    @property
    def current_index(self) -> int:
        return self.frame.index if self.frame is not None else -1

    def seek(self, index: int) -> None:
        if self.loader is None:
            return
        index = max(0, min(self.frame_count - 1, int(index)))
        self._want_index = index
        if index == self.current_index and not self._awaiting:
            return  # already shown
        self._awaiting = True
        self.loader.request(index)

    def step(self, delta: int) -> None:
        self.stop_playing()
        base = self._want_index if self._awaiting else max(0, self.current_index)
        self.seek(base + delta)

    def toggle_play(self) -> None:
        if self._playing:
            self.stop_playing()
        elif self.loader is not None and self.frame_count > 1:
            if self.current_index >= self.frame_count - 1:
                self.seek(0)
            self._playing = True
            self.transport.set_playing(True)
            self.play_timer.start()

    def stop_playing(self) -> None:
        self._playing = False
        self.play_timer.stop()
        self.transport.set_playing(False)

    def _play_tick(self) -> None:
        if self._awaiting:
            return  # decoding is slower than the frame rate: skip a tick rather than pile up
        if self.current_index >= self.frame_count - 1:
            self.stop_playing()
            return
        self.seek(self.current_index + 1)

    def _frame_loaded(self, frame: Frame) -> None:
        if self.path is None or frame is None:
            return
        self.frame = frame
        if frame.index == self._want_index:
            self._awaiting = False
        self._render()
        info = self.seeker.info if self.seeker else None
        self.transport.show_position(frame.index, self.frame_count, None if info and info.is_image else frame.time,
                                     info.duration if info else None)
        self.frameShown.emit(frame.index)

    def _frame_failed(self, reason: str) -> None:
        self._awaiting = False
        self.statusBar().showMessage(reason, 8000)

    def set_view_mode(self, mode: str) -> None:
        self.view.set_mode(mode)
        self.view_actions[mode].setChecked(True)

    # == preview ========================================================================================
    def current_boxes(self):
        if self.frame is None or self.source is None:
            return []
        return self.source.get(self.frame.index)

    def _render(self) -> None:
        """Redraw the current frame with the current settings and choices (current frame only)."""
        frame = self.frame
        if frame is None:
            return
        boxes = self.current_boxes()
        result = frame.image
        try:
            options = self.controls.anonymize_options(keep_tracks=frozenset(self.kept))
        except (ValueError, VidganError) as exc:
            self.controls.show_error(one_line(exc))
        else:
            self.controls.show_error("")
            if options.in_range(frame.time):
                covered = [b for b in boxes if b.track_id not in options.keep_tracks]
                result = options.make_operation().apply(frame.image, covered, frame)
        self.view.set_frame(frame.image, result, boxes, self.kept)

    def _range_from_playhead(self, spin) -> None:
        if self.frame is not None:
            spin.setValue(self.frame.time)

    # == choosing who stays visible =====================================================================
    def toggle_track(self, track_id: int) -> None:
        self.set_track_kept(track_id, track_id not in self.kept)

    def set_track_kept(self, track_id: int, keep: bool) -> None:
        if self.doc is None or self.is_exporting():
            return
        if keep:
            self.kept.add(track_id)
        else:
            self.kept.discard(track_id)
        self.tracks.set_kept(self.kept)
        self.statusBar().showMessage(f"Face {track_id} will be {'left visible' if keep else 'covered'}", 4000)
        self._render()

    def cover_all(self) -> None:
        self.kept = set()
        self.tracks.set_kept(self.kept)
        self._render()

    def _track_selected(self, track_id: int) -> None:
        if any(b.track_id == track_id for b in self.current_boxes()) or self.doc is None:
            return
        t = self.tracks.track(track_id)
        self.stop_playing()
        self.seek(int(t["first"]))

    # == export =========================================================================================
    def default_output(self) -> str:
        return plan_jobs([(self.path, "")])[0].output

    def choose_export(self) -> None:
        if not self.can_export():
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the anonymized copy", self.default_output())
        if path:
            self.export_to(path)

    def can_export(self) -> bool:
        return self.path is not None and self.doc is not None and not self.is_exporting()

    def is_exporting(self) -> bool:
        return self._export_task is not None and self._export_task.is_running()

    def export_to(self, output: str) -> bool:
        """Start exporting the open file to `output` with the current settings and choices."""
        if not self.can_export():
            return False
        try:
            options = self.controls.anonymize_options(tracks_file=self.tracks_path,
                                                      keep_tracks=frozenset(self.kept))
            text = self.passcode.value()
            passcode = features.passcode(text) if text is not None else None
        except (ValueError, VidganError) as exc:
            self.show_error("Cannot export", reason_of(exc))
            return False
        self.stop_playing()
        path = self.path
        lossless = self.passcode.lossless.isChecked()

        def work(progress, cancel):
            observers = [features.vault_observer(output, passcode, lossless=lossless)] \
                if passcode is not None else []
            return Pipeline(options).anonymize(path, output, progress=progress, cancel=cancel,
                                               observers=observers)

        task = Task("export", work)
        task.progress.connect(self._export_progress)
        task.succeeded.connect(lambda report: self._exported(output, report))
        task.failed.connect(self._export_failed)
        task.cancelled.connect(self._export_cancelled)
        task.finished.connect(self._export_done)
        self._export_task = task
        self._export_outcome = "failed"
        self._show_task("Exporting", 0, self.frame_count)
        task.start()
        self._update_state()
        return True

    def _export_progress(self, done: int, total: int, left: float) -> None:
        self._show_task("Exporting", done, total or self.frame_count, left)
        self.exportProgress.emit(done, total or self.frame_count)

    def _exported(self, output: str, report) -> None:
        self.last_report = report
        self.passcode.clear()
        visible = len(self.kept)
        extra = f"; {'; '.join(report.warnings)}" if report.warnings else ""
        self.statusBar().showMessage(
            f"Exported {report.frames} frames to {output} ({report.covered_boxes} face boxes covered, "
            f"{visible} face track(s) left visible, {report.seconds:.1f} s){extra}")
        self._export_outcome = "ok"

    def _export_failed(self, reason: str) -> None:
        self._export_outcome = "failed"
        self.show_error("Export failed", reason)

    def _export_cancelled(self) -> None:
        self.statusBar().showMessage("Export cancelled; nothing was written", 8000)
        self._export_outcome = "cancelled"

    def _export_done(self) -> None:
        self._show_task(None)
        self._update_state()
        self.exportFinished.emit(self._export_outcome)

    def choose_save_tracks(self) -> None:
        if self.doc is None:
            return
        stem = os.path.splitext(self.path)[0]
        path, _ = QFileDialog.getSaveFileName(self, "Save face tracks", f"{stem}.tracks.json",
                                              "Tracks (*.json)")
        if path:
            self.save_tracks(path)

    def save_tracks(self, path: str) -> None:
        """The tracks document with `"cover": false` on the tracks left visible (`anonymize --tracks`)."""
        doc = dict(self.doc, tracks=[dict(t, cover=int(t["id"]) not in self.kept) for t in self.doc["tracks"]])
        tmp = f"{path}.partial"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
            os.replace(tmp, path)
        except OSError as exc:
            self.show_error("Cannot save tracks", f"{os.path.basename(path)}: {exc.strerror or exc}")
            return
        self.statusBar().showMessage(f"Saved tracks to {path}", 6000)

    # == tasks, state, errors ===========================================================================
    def cancel_task(self) -> None:
        """The status bar's Cancel: stops the export, or else the face detection."""
        if self.is_exporting():
            self._export_task.cancel()
            self.task_label.setText("Cancelling…")
        elif self._detect_task is not None and self._detect_task.is_running():
            self._detect_task.cancel()
            self.task_label.setText("Cancelling…")

    def _show_task(self, label: Optional[str], done: int = 0, total: int = 0, left: float = -1.0) -> None:
        if label is None:
            for w in self._task_widgets:
                w.hide()
            return
        for w in self._task_widgets:
            w.show()
        eta = f" · {fmt_left(left)} left" if left >= 0 else ""
        self.task_label.setText(f"{label} {done}/{total}{eta}" if total else f"{label}…")
        self.task_progress.setRange(0, max(total, 0))
        self.task_progress.setValue(min(done, total) if total else 0)

    def _update_state(self) -> None:
        exporting = self.is_exporting()
        has_file = self.path is not None
        ready = self.can_export()
        self.export_button.setEnabled(ready)
        self.export_action.setEnabled(ready)
        self.save_tracks_action.setEnabled(self.doc is not None)
        self.open_action.setEnabled(not exporting)
        self.controls.setEnabled(not exporting)
        self.tracks.setEnabled(not exporting)
        self.passcode.setEnabled(not exporting and self.passcode.feature.available)
        if not has_file:
            self.export_button.setToolTip("Open a video or photo first")
        elif self.doc is None:
            self.export_button.setToolTip("Wait until faces are found")
        else:
            self.export_button.setToolTip("Write the anonymized copy (Ctrl+E)")

    def show_error(self, title: str, text: str) -> None:
        """Errors are one line, in a dialog."""
        log.info("%s: %s", title, text)
        QMessageBox.critical(self, title, text)

    def open_restore(self) -> None:
        RestoreDialog(self, video=self.path or "").exec()

    def _about(self) -> None:
        QMessageBox.about(self, "About vidgan",
                          f"vidgan {__version__}\nAnonymize faces in recorded video.\n\n"
                          "Every face is covered unless you choose to keep it visible.")

    def _batch_options(self) -> AnonymizeOptions:
        return self.controls.anonymize_options()

    # == drag and drop ==================================================================================
    def dragEnterEvent(self, event):
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        self.open_paths(paths)
        event.acceptProposedAction()

    def open_paths(self, paths) -> None:
        """One file: open it in the player. Several, or a folder: queue them in Batch."""
        if len(paths) == 1 and os.path.isfile(paths[0]):
            self.open_path(paths[0])
        elif paths:
            self.batch.add_paths(paths)
            self.tabs.setCurrentWidget(self.batch)

    # == shutdown =======================================================================================
    def shutdown(self) -> None:
        """Cancel and wait for every worker; remove temporary files."""
        self.stop_playing()
        self.redetect_timer.stop()
        for task in [self._export_task, self._detect_task, *self._old_tasks]:
            if task is not None and task.is_running():
                task.cancel()
        for task in [self._export_task, self._detect_task, *self._old_tasks]:
            if task is not None:
                task.wait()
        self.batch.shutdown()
        if self.deepfake is not None:
            self.deepfake.shutdown()
        if self.loader is not None:
            self.loader.stop()
            self.loader = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def closeEvent(self, event):
        self.shutdown()
        super().closeEvent(event)
