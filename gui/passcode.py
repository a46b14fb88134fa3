"""Passcode entry for reversible anonymization, and the restore dialog.

Both talk to the vault only through `gui.features`; without `vidgan.vault` the passcode box is
disabled (its tooltip says why) and the restore dialog is never offered.
"""

from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

from . import features
from .tasks import Task


class PasscodeBox(QWidget):
    """'Restorable with a passcode': a check box, then a masked field and a confirmation field."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.enable = QCheckBox("Restorable with a passcode")
        self.enable.setToolTip("Keep the original faces, encrypted, in a vault beside the output; "
                               "whoever has the passcode can restore them")
        self.passcode = QLineEdit()
        self.passcode.setEchoMode(QLineEdit.EchoMode.Password)
        self.passcode.setPlaceholderText("passcode")
        self.confirm = QLineEdit()
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm.setPlaceholderText("repeat the passcode")
        self.state = QLabel("")
        self.state.setObjectName("hint")
        self.state.setWordWrap(True)
        self.lossless = QCheckBox("Bit-exact originals (bigger vault)")
        self.fields = QWidget()
        form = QFormLayout(self.fields)
        form.setContentsMargins(18, 0, 0, 0)
        form.addRow("Passcode", self.passcode)
        form.addRow("Confirm", self.confirm)
        form.addRow(self.lossless)
        form.addRow(self.state)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 4, 2, 4)
        lay.addWidget(self.enable)
        lay.addWidget(self.fields)
        self.passcode.textChanged.connect(self._check)
        self.confirm.textChanged.connect(self._check)
        self.enable.toggled.connect(self._check)
        self.enable.toggled.connect(self.fields.setVisible)  # the fields only while asked for
        self.feature = features.vault()
        if not self.feature.available:
            self.enable.setText("Restorable with a passcode (not available yet)")
            self.setEnabled(False)
            self.setToolTip(self.feature.reason)
        self.fields.setVisible(False)
        self._check()

    def isChecked(self) -> bool:
        return self.enable.isChecked()

    def setChecked(self, on: bool) -> None:
        self.enable.setChecked(on)

    def _check(self, *_):
        if not self.feature.available or not self.isChecked():
            return
        a, b = self.passcode.text(), self.confirm.text()
        if not a:
            self.state.setText("The originals of covered faces are kept, encrypted, in OUT.vault")
        elif a != b:
            self.state.setText("The two passcodes differ")
        else:
            self.state.setText("OK: keep this passcode safe; it cannot be recovered")

    def value(self) -> Optional[str]:
        """The passcode to use, None when not asked for; ValueError when the fields disagree."""
        if not self.feature.available or not self.isChecked():
            return None
        a, b = self.passcode.text(), self.confirm.text()
        if not a:
            raise ValueError("enter a passcode (or untick 'Restorable with a passcode')")
        if a != b:
            raise ValueError("the passcode and its confirmation differ")
        return a

    def clear(self) -> None:
        self.passcode.clear()
        self.confirm.clear()


class RestoreDialog(QDialog):
    """Anonymized video + vault + passcode -> restored video (runs `vidgan.vault.restore`)."""

    task_done = Signal()  # a restore attempt ended (accepted, failed or cancelled)

    def __init__(self, parent=None, video: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Restore original faces")
        self.video = QLineEdit(video)
        self.vault = QLineEdit(features.vault_path_for(video) if video else "")
        self.output = QLineEdit()
        self.passcode = QLineEdit()
        self.passcode.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        for label, edit, pick in (("Anonymized video", self.video, self._pick_video),
                                  ("Vault", self.vault, self._pick_vault),
                                  ("Restored video", self.output, self._pick_output)):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            b = QPushButton("…")
            b.setFixedWidth(32)
            b.clicked.connect(pick)
            row.addWidget(b)
            form.addRow(label, row)
        form.addRow("Passcode", self.passcode)
        self.progress = QProgressBar()
        self.progress.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.run_button = self.buttons.addButton("Restore", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.clicked.connect(self._run)
        self.buttons.rejected.connect(self._cancel)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.buttons)
        self.task: Optional[Task] = None
        self.video.textChanged.connect(self._suggest)

    def _suggest(self, text: str) -> None:
        if text and not self.vault.text():
            self.vault.setText(features.vault_path_for(text))
        if text and not self.output.text():
            stem, ext = os.path.splitext(text)
            self.output.setText(f"{stem}.restored{ext}")

    def _pick_video(self):
        path, _ = QFileDialog.getOpenFileName(self, "Anonymized video")
        if path:
            self.video.setText(path)

    def _pick_vault(self):
        path, _ = QFileDialog.getOpenFileName(self, "Vault", filter="Vault (*.vault);;All files (*)")
        if path:
            self.vault.setText(path)

    def _pick_output(self):
        path, _ = QFileDialog.getSaveFileName(self, "Restored video")
        if path:
            self.output.setText(path)

    def _run(self):
        video, vault, out, code = self.video.text(), self.vault.text(), self.output.text(), self.passcode.text()
        if not (video and vault and out and code):
            QMessageBox.warning(self, "Restore", "Fill in the video, the vault, the output and the passcode.")
            return
        self.task = Task("restore", lambda progress, cancel: features.restore(
            video, vault, features.passcode(code, check=False), out, progress=progress, cancel=cancel))
        self.task.progress.connect(self._progress)
        self.task.succeeded.connect(lambda _r: self.accept())
        self.task.failed.connect(lambda reason: QMessageBox.critical(self, "Restore failed", reason))
        self.task.finished.connect(self._finished)
        self.run_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.task.start()

    def _progress(self, done, total, _left):
        self.progress.setRange(0, total or 0)
        self.progress.setValue(done)

    def _finished(self):
        self.run_button.setEnabled(True)
        self.progress.hide()
        self.task_done.emit()

    def _cancel(self):
        if self.task is not None and self.task.is_running():
            self.task.cancel()
            self.task.wait()
        self.reject()

    def closeEvent(self, event):
        self._cancel()
        super().closeEvent(event)
