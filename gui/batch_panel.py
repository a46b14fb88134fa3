"""The batch queue: add files and folders, run them all with the current settings, see each status.

It runs `vidgan.batch.run_batch` in a worker: the same planning (`collect_inputs`, `plan_jobs`:
NAME.anonymized.EXT beside each input, or in an output folder), the same per-file reports, and a
failure in one file never stops the others. Every face in a queued file is covered (exclusions
belong to the file open in the player).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from vidgan.batch import collect_inputs, plan_jobs, run_batch
from vidgan.errors import VidganError
from vidgan.pipeline import AnonymizeOptions

from .player import fmt_left, fmt_time
from .tasks import Task, one_line

STATUS_COLORS = {"ok": "#3ddc84", "failed": "#ff5c5c", "cancelled": "#c0c4cc", "skipped": "#c0c4cc",
                 "running": "#5aa9ff"}


class BatchTask(Task):
    """A Task that also reports when each file starts and ends."""

    fileStarted = Signal(int)  # row
    fileDone = Signal(int, object)  # row, FileReport


class BatchPanel(QWidget):
    busyChanged = Signal(bool)
    COLUMNS = ("File", "Status", "Output")

    def __init__(self, options: Callable[[], AnonymizeOptions], parent=None):
        super().__init__(parent)
        self._options = options
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        h = self.table.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        h.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(1, 130)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.add_files_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        self.clear_button = QPushButton("Clear")
        self.recursive = QCheckBox("Include sub-folders")
        self.skip_existing = QCheckBox("Skip files already done")
        self.out_dir_button = QPushButton("Beside each input")
        self.out_dir_button.setToolTip("Where outputs go (NAME.anonymized.EXT)")
        self.run_button = QPushButton("Run all")
        self.run_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v/%m files")
        self.progress.hide()
        self.summary = QLabel("Queue files or folders; they are anonymized with the current settings.")
        self.summary.setObjectName("hint")
        self.summary.setWordWrap(True)

        top = QHBoxLayout()
        for b in (self.add_files_button, self.add_folder_button, self.remove_button, self.clear_button):
            top.addWidget(b)
        top.addStretch(1)
        opts = QHBoxLayout()
        opts.addWidget(self.recursive)
        opts.addWidget(self.skip_existing)
        opts.addStretch(1)
        out = QHBoxLayout()
        out.addWidget(QLabel("Outputs:"))
        out.addWidget(self.out_dir_button, 1)
        run = QHBoxLayout()
        run.addWidget(self.progress, 1)
        run.addWidget(self.cancel_button)
        run.addWidget(self.run_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(top)
        lay.addLayout(opts)
        lay.addWidget(self.table, 1)
        lay.addLayout(out)
        lay.addWidget(self.summary)
        lay.addLayout(run)

        self.out_dir: Optional[str] = None
        self._paths: list[str] = []  # queued files and folders, as added
        self._rows: list[tuple[str, str]] = []  # (file, base folder) per table row
        self.task: Optional[Task] = None
        self.last_report = None
        self.add_files_button.clicked.connect(self._pick_files)
        self.add_folder_button.clicked.connect(self._pick_folder)
        self.remove_button.clicked.connect(self._remove_selected)
        self.clear_button.clicked.connect(self.clear)
        self.out_dir_button.clicked.connect(self._pick_out_dir)
        self.run_button.clicked.connect(self.run_all)
        self.cancel_button.clicked.connect(self.cancel)
        self.recursive.toggled.connect(self._refresh)
        self._update_buttons()

    # -- queue ---------------------------------------------------------------------------------------
    def add_paths(self, paths) -> None:
        for p in paths:
            if p not in self._paths:
                self._paths.append(p)
        self._refresh()

    def clear(self) -> None:
        self._paths.clear()
        self._refresh()

    def _refresh(self) -> None:
        self._rows = collect_inputs(self._paths, recursive=self.recursive.isChecked())
        self.table.setRowCount(len(self._rows))
        try:
            jobs = plan_jobs(self._rows, out_dir=self.out_dir)
        except VidganError as exc:
            jobs = None
            self.summary.setText(one_line(exc))
        for row, (path, _base) in enumerate(self._rows):
            self._set(row, 0, os.path.basename(path), tip=path)
            self._set(row, 1, "queued")
            self._set(row, 2, os.path.basename(jobs[row].output) if jobs else "", tip=jobs[row].output if jobs else "")
        if jobs is not None:
            n = len(self._rows)
            self.summary.setText(f"{n} file{'s' if n != 1 else ''} queued" if n else
                                 "Queue files or folders; they are anonymized with the current settings.")
        self._update_buttons()

    def _set(self, row: int, col: int, text: str, tip: str = "", color: Optional[str] = None) -> None:
        item = self.table.item(row, col)
        if item is None:
            item = QTableWidgetItem()
            self.table.setItem(row, col, item)
        item.setText(text)
        item.setToolTip(tip or text)
        if color:
            item.setForeground(QColor(color))

    def status(self, row: int) -> str:
        return self.table.item(row, 1).text()

    def _update_buttons(self) -> None:
        busy = self.is_running()
        for b in (self.add_files_button, self.add_folder_button, self.remove_button, self.clear_button,
                  self.out_dir_button, self.recursive, self.skip_existing):
            b.setEnabled(not busy)
        self.run_button.setEnabled(not busy and bool(self._rows))
        self.cancel_button.setVisible(busy)
        self.progress.setVisible(busy)

    def _pick_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add files to the queue")
        if paths:
            self.add_paths(paths)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder to the queue")
        if path:
            self.add_paths([path])

    def _pick_out_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for the outputs")
        self.set_out_dir(path or None)

    def set_out_dir(self, path: Optional[str]) -> None:
        self.out_dir = path
        self.out_dir_button.setText(path or "Beside each input")
        self._refresh()

    def _remove_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        files = {self._rows[r][0] for r in rows}
        # A folder's files cannot be removed one by one: remove the files named explicitly.
        self._paths = [p for p in self._paths if p not in files]
        self._refresh()

    # -- running -------------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.task is not None and self.task.is_running()

    def run_all(self) -> None:
        if self.is_running() or not self._rows:
            return
        try:
            options = self._options()
            jobs = plan_jobs(self._rows, out_dir=self.out_dir)
        except (ValueError, VidganError) as exc:
            self.summary.setText(one_line(exc))
            return
        if self.out_dir:
            for folder in sorted({os.path.dirname(j.output) for j in jobs}):
                os.makedirs(folder, exist_ok=True)
        for row in range(len(jobs)):
            self._set(row, 1, "waiting", color="#c0c4cc")
        skip = self.skip_existing.isChecked()

        def started(i, job):
            task.restart_clock()
            task.fileStarted.emit(i)

        task = BatchTask("batch", lambda progress, cancel: run_batch(
            jobs, options, skip_existing=skip, cancel=cancel, on_start=started,
            on_progress=lambda job, done, total: progress(done, total),
            on_done=lambda i, job, report: task.fileDone.emit(i, report)))
        task.fileStarted.connect(self._file_started)
        task.fileDone.connect(self._show_report)
        task.progress.connect(self._progress)
        task.succeeded.connect(self._finished)
        task.failed.connect(lambda reason: self.summary.setText(f"batch stopped: {reason}"))
        task.finished.connect(self._update_buttons)
        task.finished.connect(lambda: self.busyChanged.emit(False))
        self.task = task
        self._current = 0
        self.progress.setRange(0, len(jobs))
        self.progress.setValue(0)
        task.start()
        self._update_buttons()
        self.busyChanged.emit(True)

    def _file_started(self, i: int) -> None:
        self._current = i
        self._set(i, 1, "running", color=STATUS_COLORS["running"])

    def _progress(self, done: int, total: int, left: float) -> None:
        pct = f" {100 * done // total}%" if total else f" · frame {done}"
        eta = f" · {fmt_left(left)} left" if left >= 0 else ""
        self._set(self._current, 1, f"running{pct}{eta}", color=STATUS_COLORS["running"])

    def _show_report(self, i: int, report) -> None:
        text = report.status if not report.error or report.status == "cancelled" else \
            f"{report.status}: {report.error}"
        self._set(i, 1, text, tip=report.error or text, color=STATUS_COLORS.get(report.status))
        self.progress.setValue(i + 1)

    def _finished(self, report) -> None:
        self.last_report = report
        s = report.as_dict()["summary"]
        self.summary.setText(f"Done: {s['ok']} ok, {s['failed']} failed, {s['skipped']} skipped, "
                             f"{s['total'] - s['ok'] - s['failed'] - s['skipped']} cancelled "
                             f"({fmt_time(report.seconds)})")

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def shutdown(self) -> None:
        if self.task is not None and self.task.is_running():
            self.task.cancel()
            self.task.wait()
