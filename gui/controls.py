"""The settings panel: widgets for the options the CLI offers, turned into the library's dataclasses.

Defaults come from the dataclasses themselves (`AnonymizeOptions`, `MaskOptions`,
`DetectorOptions`, `EncodeOptions`); validation is theirs too: `anonymize_options()` raises their
`ValueError` / `UsageError`, which the window shows inline.

Signals tell the window what a change affects: `renderChanged` (how faces are covered, or which
frames: the preview of the current frame is redrawn), `detectorChanged` (faces must be found
again, in the background), `encodeChanged` (export only).
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QColorDialog, QComboBox, QDoubleSpinBox, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox,
                               QStackedWidget, QVBoxLayout, QWidget)

from vidgan.faces import DetectorOptions
from vidgan.faces.detector import cuda_available
from vidgan.media import EncodeOptions
from vidgan.ops import OPERATIONS, MaskOptions
from vidgan.ops.masks import SHAPES
from vidgan.pipeline import AnonymizeOptions

DEFAULTS = AnonymizeOptions()


def _gan_model_available(name: str) -> bool:
    from vidgan.gan.deid import find_deid

    try:
        find_deid(name)
    except FileNotFoundError:
        return False
    return True


def _dspin(lo: float, hi: float, step: float, value: float, decimals: int = 2, suffix: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(decimals)
    s.setValue(value)
    if suffix:
        s.setSuffix(suffix)
    s.setKeyboardTracking(False)
    return s


def _ispin(lo: int, hi: int, value: int, special: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    if special:
        s.setSpecialValueText(special)
    s.setKeyboardTracking(False)
    return s


class ControlsPanel(QWidget):
    renderChanged = Signal()
    detectorChanged = Signal()
    encodeChanged = Signal()
    startFromPlayhead = Signal()
    endFromPlayhead = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        d = DEFAULTS
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(8)

        # covering
        cover = QGroupBox("Covering")
        form = QFormLayout(cover)
        self.mode = QComboBox()
        for name in OPERATIONS:
            self.mode.addItem("GAN face" if name == "gan" else name.capitalize(), name)
        if "gan" in OPERATIONS and not _gan_model_available(d.gan_model):
            item = self.mode.model().item(self.mode.findData("gan"))
            item.setEnabled(False)
            item.setToolTip("No de-identification model trained yet (vidgan train deid -> models/deid)")
        self.mode.setCurrentIndex(self.mode.findData(d.mode))
        form.addRow("Mode", self.mode)
        self.mode_params = QStackedWidget()
        self.blur_strength = _dspin(0.1, 10.0, 0.1, d.blur_strength, 1)
        self.blur_strength.setToolTip("Higher blurs more")
        self.pixel_blocks = _ispin(2, 64, d.pixel_blocks)
        self.pixel_blocks.setToolTip("Cells across a face; fewer hides more")
        self.color_button = QPushButton()
        self.color_button.setToolTip("Fill colour")
        self._color = d.color
        self._paint_color_button()
        self._param_pages: dict[str, int] = {}
        for name, label, widget in (("blur", "Strength", self.blur_strength),
                                    ("pixelate", "Blocks", self.pixel_blocks),
                                    ("solid", "Colour", self.color_button)):
            page = QWidget()
            pl = QFormLayout(page)
            pl.setContentsMargins(0, 0, 0, 0)
            pl.addRow(label, widget)
            self._param_pages[name] = self.mode_params.addWidget(page)
        self._param_pages[""] = self.mode_params.addWidget(QWidget())
        form.addRow(self.mode_params)
        self.shape = QComboBox()
        for s in SHAPES:
            self.shape.addItem(s.capitalize(), s)
        self.shape.setCurrentIndex(self.shape.findData(d.mask.shape))
        form.addRow("Mask", self.shape)
        self.margin = _dspin(0.0, 2.0, 0.05, d.mask.margin)
        self.margin.setToolTip("Grow each face box by this fraction on every side")
        form.addRow("Margin", self.margin)
        self.scale = _dspin(0.2, 5.0, 0.05, d.mask.scale)
        self.scale.setToolTip("Extra scale of the covered region")
        form.addRow("Mask scale", self.scale)
        self.feather = _dspin(0.0, 1.0, 0.05, d.mask.feather)
        self.feather.setToolTip("Soft edge outside the covered region")
        form.addRow("Feather", self.feather)
        lay.addWidget(cover)

        # detection
        det = QGroupBox("Detection")
        form = QFormLayout(det)
        self.threshold = _dspin(0.01, 0.99, 0.05, d.detector.threshold)
        self.threshold.setToolTip("MTCNN final-stage probability to accept a face (lower finds more)")
        form.addRow("Threshold", self.threshold)
        self.min_face = _ispin(7, 4000, 7, special="auto")
        self.min_face.setSuffix(" px")
        self.min_face.setToolTip("Smallest face to find, in pixels (auto: max(20, short side / 36))")
        form.addRow("Smallest face", self.min_face)
        self.device = QComboBox()
        for dev in ("auto", "cpu", "cuda"):
            self.device.addItem(dev, dev)
        if not cuda_available():
            item = self.device.model().item(self.device.findData("cuda"))
            item.setEnabled(False)
            item.setToolTip("No CUDA GPU on this machine")
        self.device.setCurrentIndex(self.device.findData(d.detector.device))
        form.addRow("Device", self.device)
        lay.addWidget(det)

        # time range
        rng = QGroupBox("Time range")
        form = QFormLayout(rng)
        self.start = _dspin(0.0, 0.0, 0.1, 0.0, 2, " s")
        self.start.setSpecialValueText("beginning")
        self.end = _dspin(0.0, 0.0, 0.1, 0.0, 2, " s")
        self.end.setSpecialValueText("end")
        self.start_here = QPushButton("◂ playhead")
        self.start_here.setToolTip("Start at the current frame")
        self.end_here = QPushButton("◂ playhead")
        self.end_here.setToolTip("End at the current frame (it is kept unchanged)")
        for label, spin, button in (("From", self.start, self.start_here), ("Until", self.end, self.end_here)):
            row = QHBoxLayout()
            row.addWidget(spin, 1)
            row.addWidget(button)
            form.addRow(label, row)
        hint = QLabel("Frames outside the range are kept unchanged.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        form.addRow(hint)
        lay.addWidget(rng)

        # encoding
        enc = QGroupBox("Encoding")
        form = QFormLayout(enc)
        self.crf = _ispin(-1, 63, -1, special="auto")
        self.crf.setToolTip("Encoder quality (CRF); lower is better. auto: 20 for H.264, 10 for VP8")
        form.addRow("Quality (CRF)", self.crf)
        self.keep_audio = QCheckBox("Keep audio and subtitles")
        self.keep_audio.setChecked(d.encode.copy_audio)
        self.keep_metadata = QCheckBox("Keep metadata (dates, location…)")
        self.keep_metadata.setChecked(d.encode.copy_metadata)
        form.addRow(self.keep_audio)
        form.addRow(self.keep_metadata)
        lay.addWidget(enc)

        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()
        lay.addWidget(self.error)
        lay.addStretch(1)

        # wiring
        self.mode.currentIndexChanged.connect(self._mode_changed)
        for w in (self.blur_strength, self.margin, self.scale, self.feather, self.start, self.end):
            w.valueChanged.connect(self.renderChanged)
        self.pixel_blocks.valueChanged.connect(self.renderChanged)
        self.shape.currentIndexChanged.connect(self.renderChanged)
        self.color_button.clicked.connect(self._pick_color)
        self.threshold.valueChanged.connect(self.detectorChanged)
        self.min_face.valueChanged.connect(self.detectorChanged)
        self.device.currentIndexChanged.connect(self.detectorChanged)
        for w in (self.crf,):
            w.valueChanged.connect(self.encodeChanged)
        self.keep_audio.toggled.connect(self.encodeChanged)
        self.keep_metadata.toggled.connect(self.encodeChanged)
        self.start_here.clicked.connect(self.startFromPlayhead)
        self.end_here.clicked.connect(self.endFromPlayhead)
        self._mode_changed()

    # -- helpers -----------------------------------------------------------------------------------
    def _mode_changed(self) -> None:
        mode = self.mode.currentData()
        self.mode_params.setCurrentIndex(self._param_pages.get(mode, self._param_pages[""]))
        self.renderChanged.emit()

    def _paint_color_button(self) -> None:
        r, g, b = self._color
        text = "#%02x%02x%02x" % (r, g, b)
        fg = "#000000" if (r * 299 + g * 587 + b * 114) / 1000 > 128 else "#ffffff"
        self.color_button.setText(text)
        self.color_button.setStyleSheet(f"background-color: {text}; color: {fg};")

    def _pick_color(self) -> None:
        c = QColorDialog.getColor(QColor(*self._color), self, "Fill colour")
        if c.isValid():
            self.set_color((c.red(), c.green(), c.blue()))

    def set_color(self, rgb: tuple[int, int, int]) -> None:
        self._color = tuple(int(v) for v in rgb)
        self._paint_color_button()
        self.renderChanged.emit()

    def set_duration(self, seconds: Optional[float]) -> None:
        top = max(0.0, seconds or 0.0)
        for spin in (self.start, self.end):
            spin.blockSignals(True)
            spin.setMaximum(top)
            spin.setValue(0.0)
            spin.blockSignals(False)
        enabled = top > 0
        for w in (self.start, self.end, self.start_here, self.end_here):
            w.setEnabled(enabled)

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    # -- options -----------------------------------------------------------------------------------
    def detector_options(self) -> DetectorOptions:
        mf = self.min_face.value()
        return DetectorOptions(threshold=round(self.threshold.value(), 4),
                               min_face=None if mf == self.min_face.minimum() else mf,
                               device=self.device.currentData())

    def mask_options(self) -> MaskOptions:
        return MaskOptions(shape=self.shape.currentData(), margin=self.margin.value(),
                           scale=self.scale.value(), feather=self.feather.value())

    def encode_options(self) -> EncodeOptions:
        crf = self.crf.value()
        return EncodeOptions(crf=None if crf < 0 else crf, copy_audio=self.keep_audio.isChecked(),
                             copy_metadata=self.keep_metadata.isChecked())

    def time_range(self) -> tuple[Optional[float], Optional[float]]:
        start, end = self.start.value(), self.end.value()
        return (start if start > 0 else None), (end if end > 0 else None)

    def anonymize_options(self, **overrides) -> AnonymizeOptions:
        """The options the widgets describe; raises ValueError (a VidganError for usage) if invalid."""
        start, end = self.time_range()
        kw = dict(mode=self.mode.currentData(), mask=self.mask_options(), detector=self.detector_options(),
                  encode=self.encode_options(), blur_strength=self.blur_strength.value(),
                  pixel_blocks=self.pixel_blocks.value(), color=self._color, start=start, end=end)
        kw.update(overrides)
        return AnonymizeOptions(**kw)
