"""Start the desktop app: `vidgan gui [FILE...]`, `vidgan-gui [FILE...]` or `python -m gui`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from PySide6.QtWidgets import QApplication

from . import style
from .main_window import MainWindow


def create_app(argv: Optional[Sequence[str]] = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "vidgan-gui", *(argv or [])])
    app.setApplicationName("vidgan")
    app.setOrganizationName("vidgan")
    style.apply(app)
    return app


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="vidgan-gui", description="vidgan's desktop app")
    parser.add_argument("inputs", nargs="*", metavar="FILE",
                        help="a video or photo to open (several files or folders go to the batch queue)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="vidgan: %(levelname)s: %(message)s")
    app = create_app()
    window = MainWindow()
    window.show()
    if args.inputs:
        window.open_paths(args.inputs)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
