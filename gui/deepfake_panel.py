"""Deepfake panel: score the open video and plot the fake score over time.

Shown only when the library has a deepfake scorer (`gui.features.deepfake()`); until then the
window leaves it out entirely.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from . import features
from .tasks import Task


class ScorePlot(QWidget):
    """Score in [0, 1] against time; the 0.5 line marked."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.points: list[tuple[float, float]] = []
        self.setMinimumHeight(140)

    def set_points(self, points) -> None:
        self.points = sorted((float(t), float(s)) for t, s in points if s is not None)
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(30, 8, -8, -18)
        p.fillRect(self.rect(), QColor("#17181b"))
        p.setPen(QPen(QColor("#3a3d44"), 1, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(r.left(), r.center().y()), QPointF(r.right(), r.center().y()))
        p.setPen(QColor("#8b8f98"))
        p.drawText(QRectF(0, r.top() - 6, 26, 12), Qt.AlignmentFlag.AlignRight, "1")
        p.drawText(QRectF(0, r.bottom() - 6, 26, 12), Qt.AlignmentFlag.AlignRight, "0")
        if len(self.points) >= 1:
            t0, t1 = self.points[0][0], self.points[-1][0]
            span = (t1 - t0) or 1.0
            path = QPainterPath()
            for i, (t, s) in enumerate(self.points):
                pt = QPointF(r.left() + (t - t0) / span * r.width(), r.bottom() - s * r.height())
                path.lineTo(pt) if i else path.moveTo(pt)
            p.setPen(QPen(QColor("#ff5c5c"), 2))
            p.drawPath(path)
        p.end()


class DeepfakePanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.path: Optional[str] = None
        self.button = QPushButton("Score this video")
        self.verdict = QLabel("How likely the faces in this video are manipulated.")
        self.verdict.setWordWrap(True)
        self.plot = ScorePlot()
        lay = QVBoxLayout(self)
        lay.addWidget(self.verdict)
        lay.addWidget(self.plot)
        lay.addWidget(self.button)
        lay.addStretch(1)
        self.button.clicked.connect(self.run)
        self.task: Optional[Task] = None
        self.set_path(None)

    @staticmethod
    def available() -> bool:
        return features.deepfake().available

    def set_path(self, path: Optional[str]) -> None:
        self.path = path
        self.plot.set_points([])
        self.button.setEnabled(path is not None)

    def run(self) -> None:
        if self.path is None or (self.task is not None and self.task.is_running()):
            return
        path = self.path
        self.task = Task("deepfake", lambda progress, cancel: features.score_video(path, progress, cancel))
        self.task.succeeded.connect(self._show)
        self.task.failed.connect(lambda reason: self.verdict.setText(f"Scoring failed: {reason}"))
        self.task.finished.connect(lambda: self.button.setEnabled(True))
        self.button.setEnabled(False)
        self.verdict.setText("Scoring…")
        self.task.start()

    def _show(self, result: dict) -> None:
        prob = result.get("fake_probability")
        self.verdict.setText("No face found" if prob is None else
                             f"{result.get('verdict', '')}: fake probability {prob:.2f}")
        self.plot.set_points((f.get("time", 0.0), f.get("score")) for f in result.get("frames", []))

    def shutdown(self) -> None:
        if self.task is not None and self.task.is_running():
            self.task.cancel()
            self.task.wait()
