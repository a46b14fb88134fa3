"""The track list: one row per face track of the tracks document (`Pipeline.detect`).

The check box in a row says whether that person is covered; untick it (or click the face in the
preview) to keep the person visible. Selecting a row jumps to the track's first frame when the
current frame does not show it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from .player import COVERED_COLOR, KEPT_COLOR


class TrackList(QWidget):
    keptChanged = Signal(int, bool)  # track id, keep visible
    trackSelected = Signal(int)  # track id
    coverAllRequested = Signal()
    redetectRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(5)
        self.tree.setHeaderLabels(["Face", "Export", "Frames", "Hits", "Score"])
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(36)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.summary = QLabel("No faces yet")
        self.summary.setObjectName("hint")
        self.summary.setWordWrap(True)
        self.cover_all = QPushButton("Cover everyone")
        self.cover_all.setToolTip("Cover every face again")
        self.redetect = QPushButton("Detect again")
        self.redetect.setToolTip("Run face detection again with the current detection settings")
        buttons = QHBoxLayout()
        buttons.addWidget(self.cover_all)
        buttons.addWidget(self.redetect)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        help_label = QLabel("Untick a face (or click it in the picture) to keep that person visible.")
        help_label.setObjectName("hint")
        help_label.setWordWrap(True)
        lay.addWidget(help_label)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.summary)
        lay.addLayout(buttons)
        self._items: dict[int, QTreeWidgetItem] = {}
        self._tracks: dict[int, dict] = {}
        self._filling = False
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.cover_all.clicked.connect(self.coverAllRequested)
        self.redetect.clicked.connect(self.redetectRequested)
        self.set_tracks(None, set())

    def set_tracks(self, tracks, kept: set[int], fps: float = 0.0) -> None:
        """`tracks`: the `tracks` list of a tracks document, or None while detection runs."""
        self._filling = True
        self.tree.clear()
        self._items.clear()
        self._tracks = {int(t["id"]): t for t in (tracks or [])}
        for tid, t in sorted(self._tracks.items()):
            item = QTreeWidgetItem([f"Face {tid}", "", f"{t['first'] + 1}–{t['last'] + 1}",
                                    str(t.get("detections", "")), f"{t.get('max_score', 0):.2f}"])
            item.setData(0, Qt.ItemDataRole.UserRole, tid)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            for col in (2, 3, 4):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.tree.addTopLevelItem(item)
            self._items[tid] = item
        self._filling = False
        self.set_kept(kept)
        self.cover_all.setEnabled(bool(self._tracks))
        self.redetect.setEnabled(tracks is not None)

    def set_kept(self, kept: set[int]) -> None:
        self._filling = True
        for tid, item in self._items.items():
            visible = tid in kept
            item.setCheckState(0, Qt.CheckState.Unchecked if visible else Qt.CheckState.Checked)
            item.setText(1, "visible" if visible else "covered")
            for col in (0, 1):
                item.setForeground(col, KEPT_COLOR if visible else COVERED_COLOR)
                item.setToolTip(col, "Left visible in the export" if visible else "Covered in the export")
        self._filling = False
        n = len(self._items)
        if n:
            shown = len([t for t in kept if t in self._items])
            self.summary.setText(f"{n} face track{'s' if n != 1 else ''}: {n - shown} covered, "
                                 f"{shown} left visible")

    def set_status(self, text: str) -> None:
        self.summary.setText(text)

    def track_ids(self) -> list[int]:
        return sorted(self._items)

    def item(self, track_id: int) -> QTreeWidgetItem:
        return self._items[track_id]

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        tid = int(item.data(0, Qt.ItemDataRole.UserRole))
        self.keptChanged.emit(tid, item.checkState(0) == Qt.CheckState.Unchecked)

    def _current_changed(self, current, _previous) -> None:
        if current is not None and not self._filling:
            self.trackSelected.emit(int(current.data(0, Qt.ItemDataRole.UserRole)))

    def track(self, track_id: int) -> dict:
        return self._tracks[track_id]
