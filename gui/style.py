"""A calm dark theme (Fusion style, a dark palette and a little QSS) so video stands out."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#3d8bfd"

QSS = f"""
QMainWindow, QDialog {{ background: #1e1f22; }}
QToolBar {{ background: #25272b; border: none; border-bottom: 1px solid #17181b; spacing: 4px; padding: 3px; }}
QToolBar QToolButton {{ padding: 4px 10px; border-radius: 4px; color: #dfe1e5; }}
QToolBar QToolButton:hover {{ background: #33363c; }}
QToolBar QToolButton:checked {{ background: {ACCENT}; color: white; }}
QTabWidget::pane {{ border: 1px solid #2f3237; border-radius: 4px; top: -1px; }}
QTabBar::tab {{ background: #25272b; color: #b8bcc4; padding: 6px 14px; border: 1px solid #2f3237;
               border-bottom: none; border-top-left-radius: 4px; border-top-right-radius: 4px; }}
QTabBar::tab:selected {{ background: #2b2d31; color: #ffffff; }}
QGroupBox {{ border: 1px solid #33363c; border-radius: 6px; margin-top: 14px; padding: 8px 6px 6px 6px;
            font-weight: bold; color: #dfe1e5; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; }}
QGroupBox:disabled {{ color: #6b6f78; }}
QPushButton {{ background: #33363c; color: #dfe1e5; border: 1px solid #3f434a; border-radius: 4px;
              padding: 5px 12px; }}
QPushButton:hover {{ background: #3b3f46; }}
QPushButton:disabled {{ color: #6b6f78; background: #2a2c30; border-color: #303237; }}
QPushButton#primary {{ background: {ACCENT}; border-color: {ACCENT}; color: white; font-weight: bold;
                      padding: 8px 16px; }}
QPushButton#primary:hover {{ background: #5a9cfd; }}
QPushButton#primary:disabled {{ background: #2f4a73; border-color: #2f4a73; color: #9fb3cf; }}
QLabel#hint {{ color: #9aa0a9; }}
QLabel#error {{ color: #ff6b6b; }}
QLabel#timeLabel {{ color: #dfe1e5; font-family: "DejaVu Sans Mono", monospace; }}
QProgressBar {{ border: 1px solid #3f434a; border-radius: 4px; background: #25272b; color: #dfe1e5;
               text-align: center; min-height: 16px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QSlider::groove:horizontal {{ height: 6px; background: #3a3d44; border-radius: 3px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 3px; }}
QSlider::handle:horizontal {{ background: #ffffff; width: 14px; margin: -5px 0; border-radius: 7px; }}
QTreeWidget, QTableWidget {{ background: #232428; alternate-background-color: #27292d; border: 1px solid #2f3237;
                            border-radius: 4px; }}
QTreeWidget::item, QTableWidget::item {{ padding: 3px 2px; }}
QTreeWidget::indicator {{ width: 13px; height: 13px; border: 1px solid #9aa0a9; border-radius: 3px;
                         background: #1e1f22; }}
QTreeWidget::indicator:checked {{ background: #ff9f1c; border-color: #ff9f1c; }}
QHeaderView::section {{ background: #2b2d31; color: #b8bcc4; border: none; border-right: 1px solid #1e1f22;
                       padding: 4px 6px; }}
QStatusBar {{ background: #25272b; color: #b8bcc4; }}
QScrollArea {{ border: none; }}
"""


def apply(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#1e1f22",
        QPalette.ColorRole.WindowText: "#dfe1e5",
        QPalette.ColorRole.Base: "#2b2d31",
        QPalette.ColorRole.AlternateBase: "#27292d",
        QPalette.ColorRole.ToolTipBase: "#2b2d31",
        QPalette.ColorRole.ToolTipText: "#dfe1e5",
        QPalette.ColorRole.Text: "#dfe1e5",
        QPalette.ColorRole.Button: "#33363c",
        QPalette.ColorRole.ButtonText: "#dfe1e5",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.PlaceholderText: "#7d828c",
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, value in colors.items():
        pal.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6f78"))
    app.setPalette(pal)
    app.setStyleSheet(QSS)
