"""The player: a frame loader thread, the preview (original / result / split, face boxes) and the
transport bar (play/pause, stepping, scrub slider, time).

Frames come from `vidgan.media.seek.FrameSeeker`, so the index shown here is the index the
pipeline and the tracks document use. Decoding happens in `FrameLoader`'s thread; when requests
arrive faster than frames decode (scrubbing), only the newest one is served.
"""

from __future__ import annotations

import math
import threading
from typing import Optional, Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QThread, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QSizePolicy, QSlider, QStyle, QToolButton,
                               QWidget)

from vidgan.media.seek import FrameSeeker
from vidgan.types import TrackBox

from .tasks import one_line

KEPT_COLOR = QColor("#3ddc84")  # left visible
COVERED_COLOR = QColor("#ff9f1c")  # covered
SPLIT_COLOR = QColor("#ffffff")


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None or seconds < 0:
        return "--:--"
    cs = int(round(seconds * 100))
    h, rem = divmod(cs, 360000)
    m, rem = divmod(rem, 6000)
    s, c = divmod(rem, 100)
    return f"{h}:{m:02d}:{s:02d}.{c:02d}" if h else f"{m}:{s:02d}.{c:02d}"


def fmt_left(seconds: float) -> str:
    """Remaining time, rounded up to whole seconds: '0:07', '12:30', '1:02:03'."""
    s = max(0, math.ceil(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def to_qimage(image: np.ndarray) -> QImage:
    """RGB uint8 HxWx3 -> QImage (a copy, so the array may go away)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class FrameLoader(QThread):
    """Decodes requested frames in the background; the newest request wins."""

    loaded = Signal(object)  # Frame
    failed = Signal(str)

    def __init__(self, seeker: FrameSeeker, parent=None):
        super().__init__(parent)
        self.seeker = seeker
        self._cond = threading.Condition()
        self._want: Optional[int] = None
        self._stop = False

    def request(self, index: int) -> None:
        with self._cond:
            self._want = index
            self._cond.notify()

    def run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._want is None and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    index, self._want = self._want, None
                try:
                    frame = self.seeker.frame(index)
                except Exception as exc:  # noqa: BLE001 - shown in the window
                    self.failed.emit(one_line(exc))
                    continue
                self.loaded.emit(frame)
        finally:
            self.seeker.close()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait(10000)


class PreviewView(QWidget):
    """Shows a frame as the original, the result, or a before/after split, with face boxes.

    Click a face to emit `faceClicked(track_id)`; drag the split line to move it.
    """

    faceClicked = Signal(int)
    MODES = ("original", "result", "split")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.mode = "result"
        self.show_boxes = True
        self.split = 0.5  # fraction of the width showing the original (left)
        self._original: Optional[QImage] = None
        self._result: Optional[QImage] = None
        self.original_array: Optional[np.ndarray] = None
        self.result_array: Optional[np.ndarray] = None
        self._size = (0, 0)
        self._boxes: list[TrackBox] = []
        self._kept: set[int] = set()
        self._banner = ""
        self._placeholder = "Open a video or photo\n(File ▸ Open, or drop it here)"
        self._dragging = False

    # -- content ---------------------------------------------------------------------------------
    def set_frame(self, original: np.ndarray, result: np.ndarray, boxes: Sequence[TrackBox],
                  kept: set[int]) -> None:
        self.original_array, self.result_array = original, result  # what is shown (tests read them)
        self._original = to_qimage(original)
        self._result = self._original if result is original else to_qimage(result)
        self._size = (original.shape[1], original.shape[0])
        self._boxes = list(boxes)
        self._kept = set(kept)
        self.update()

    def clear(self) -> None:
        self._original = self._result = None
        self.original_array = self.result_array = None
        self._boxes = []
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(mode)
        self.mode = mode
        self.update()

    def set_show_boxes(self, on: bool) -> None:
        self.show_boxes = on
        self.update()

    def set_banner(self, text: str) -> None:
        """A short notice over the picture (e.g. 'finding faces… 40 %')."""
        self._banner = text
        self.update()

    @property
    def boxes(self) -> list[TrackBox]:
        return list(self._boxes)

    # -- geometry --------------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        """Where the picture is drawn (aspect kept, centred)."""
        w, h = self._size
        if not w or not h:
            return QRectF()
        k = min(self.width() / w, self.height() / h)
        dw, dh = w * k, h * k
        return QRectF((self.width() - dw) / 2, (self.height() - dh) / 2, dw, dh)

    def to_widget(self, x: float, y: float) -> QPointF:
        r = self.image_rect()
        return QPointF(r.x() + x * r.width() / self._size[0], r.y() + y * r.height() / self._size[1])

    def to_image(self, p: QPointF) -> Optional[tuple[float, float]]:
        r = self.image_rect()
        if r.isEmpty() or not r.contains(p):
            return None
        return ((p.x() - r.x()) * self._size[0] / r.width(), (p.y() - r.y()) * self._size[1] / r.height())

    def box_at(self, x: float, y: float) -> Optional[TrackBox]:
        """The smallest face box (grown a little for easy clicking) containing an image point."""
        hits = []
        for tb in self._boxes:
            b = tb.box.scaled(1.2)
            if b.x1 <= x <= b.x2 and b.y1 <= y <= b.y2:
                hits.append((tb.box.area, tb))
        return min(hits, key=lambda h: h[0])[1] if hits else None

    def _split_x(self) -> float:
        r = self.image_rect()
        return r.x() + r.width() * self.split

    # -- mouse -------------------------------------------------------------------------------------
    def mousePressEvent(self, event):
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        pos = event.position()
        if self.mode == "split" and abs(pos.x() - self._split_x()) <= 6:
            self._dragging = True
            return
        pt = self.to_image(pos)
        if pt is not None:
            tb = self.box_at(*pt)
            if tb is not None:
                self.faceClicked.emit(tb.track_id)

    def mouseMoveEvent(self, event):
        pos = event.position()
        if self._dragging:
            r = self.image_rect()
            if r.width() > 0:
                self.split = min(1.0, max(0.0, (pos.x() - r.x()) / r.width()))
                self.update()
            return
        near_split = self.mode == "split" and abs(pos.x() - self._split_x()) <= 6
        pt = self.to_image(pos)
        over_face = pt is not None and self.box_at(*pt) is not None
        self.setCursor(Qt.CursorShape.SplitHCursor if near_split else
                       Qt.CursorShape.PointingHandCursor if over_face else Qt.CursorShape.ArrowCursor)

    def mouseReleaseEvent(self, event):
        self._dragging = False

    # -- painting ----------------------------------------------------------------------------------
    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor("#111214"))
        if self._original is None:
            p.setPen(QColor("#8b8f98"))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.3)
            p.setFont(f)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            p.end()
            return
        r = self.image_rect()
        if self.mode == "original":
            p.drawImage(r, self._original)
        elif self.mode == "result":
            p.drawImage(r, self._result)
        else:
            w = self._size[0]
            cut = self.split * w
            left = QRectF(r.x(), r.y(), r.width() * self.split, r.height())
            right = QRectF(left.right(), r.y(), r.width() - left.width(), r.height())
            p.drawImage(left, self._original, QRectF(0, 0, cut, self._size[1]))
            p.drawImage(right, self._result, QRectF(cut, 0, w - cut, self._size[1]))
        if self.show_boxes:
            self._paint_boxes(p)
        if self.mode == "split":
            x = self._split_x()
            p.setPen(QPen(SPLIT_COLOR, 2))
            p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
            self._tag(p, QPointF(x - 8, r.top() + 8), "original", Qt.AlignmentFlag.AlignRight)
            self._tag(p, QPointF(x + 8, r.top() + 8), "result", Qt.AlignmentFlag.AlignLeft)
        if self._banner:
            self._tag(p, QPointF(r.x() + 10, r.bottom() - 34), self._banner, Qt.AlignmentFlag.AlignLeft,
                      bg=QColor(20, 20, 24, 210))
        p.end()

    def _paint_boxes(self, p: QPainter) -> None:
        f = QFont(self.font())
        f.setBold(True)
        p.setFont(f)
        for tb in self._boxes:
            kept = tb.track_id in self._kept
            color = KEPT_COLOR if kept else COVERED_COLOR
            a, b = self.to_widget(tb.box.x1, tb.box.y1), self.to_widget(tb.box.x2, tb.box.y2)
            pen = QPen(color, 2)
            if tb.kind != "detected":
                pen.setStyle(Qt.PenStyle.DashLine)  # interpolated or held: not a detector hit
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(a, b))
            label = f"{tb.track_id}" + (" visible" if kept else "")
            self._tag(p, QPointF(a.x(), a.y() - 2), label, Qt.AlignmentFlag.AlignLeft, bg=color,
                      fg=QColor("#111214"), above=True)

    def _tag(self, p: QPainter, at: QPointF, text: str, align, bg: QColor = QColor(0, 0, 0, 170),
             fg: QColor = QColor("#ffffff"), above: bool = False) -> None:
        fm = p.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 10, fm.height() + 4
        x = at.x() - w if align == Qt.AlignmentFlag.AlignRight else at.x()
        y = at.y() - h if above else at.y()
        rect = QRectF(x, y, w, h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(bg)
        p.drawRoundedRect(rect, 3, 3)
        p.setPen(fg)
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def sizeHint(self) -> QSize:
        return QSize(800, 500)


class TransportBar(QWidget):
    """Play/pause, step back/forward, scrub slider and time display."""

    playToggled = Signal()
    stepRequested = Signal(int)
    seekRequested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        style = self.style()
        self.play_button = self._button(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
                                        "Play / pause (Space)")
        self.back_button = self._button(style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekBackward),
                                        "Previous frame (Left)")
        self.forward_button = self._button(style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward),
                                           "Next frame (Right)")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Scrub")
        self.time_label = QLabel("--:-- / --:--")
        self.time_label.setObjectName("timeLabel")
        self.time_label.setMinimumWidth(210)
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        for wdg in (self.back_button, self.play_button, self.forward_button):
            lay.addWidget(wdg)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.time_label)
        self.play_button.clicked.connect(self.playToggled)
        self.back_button.clicked.connect(lambda: self.stepRequested.emit(-1))
        self.forward_button.clicked.connect(lambda: self.stepRequested.emit(1))
        self.slider.valueChanged.connect(self._slider_moved)
        self._updating = False
        self.set_enabled(False)

    def _button(self, icon, tip) -> QToolButton:
        b = QToolButton()
        b.setIcon(icon)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.setIconSize(QSize(22, 22))
        return b

    def _slider_moved(self, value: int) -> None:
        if not self._updating:
            self.seekRequested.emit(value)

    def set_enabled(self, on: bool) -> None:
        for w in (self.play_button, self.back_button, self.forward_button, self.slider):
            w.setEnabled(on)

    def set_playing(self, playing: bool) -> None:
        pm = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(pm))

    def set_length(self, frames: int) -> None:
        self._updating = True
        self.slider.setRange(0, max(0, frames - 1))
        self._updating = False

    def show_position(self, index: int, frames: int, time: Optional[float], duration: Optional[float]) -> None:
        self._updating = True
        self.slider.setValue(index)
        self._updating = False
        self.time_label.setText(f"{fmt_time(time)} / {fmt_time(duration)}   frame {index + 1}/{frames}")
