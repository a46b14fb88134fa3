"""Save PNG screenshots of the main window's states (for docs/screenshots/ and the README).

    python -m gui.screenshots OUTDIR [--clip VIDEO]

Runs headless (QT_QPA_PLATFORM=offscreen unless set). States: `empty`, `opened` (a clip with its
face boxes, one person kept visible), `split` (before/after view), `settings` (the controls) and
`exporting` (progress bar, time left, Cancel). The clip defaults to the shared `party_1s_h264_mp3.mp4`; the export goes to a
temporary folder and is deleted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MAX_WIDTH = 1200
DEFAULT_CLIP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "videos" / "party_1s_h264_mp3.mp4"


def wait_until(condition, timeout: float = 300.0) -> None:
    """Run the Qt event loop until `condition()` holds."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not condition():
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.005)
        if time.monotonic() > end:
            raise TimeoutError("the window did not reach the expected state in time")


def save_window(window, path: str, max_width: int = MAX_WIDTH, palette: bool = True) -> str:
    """Grab the window (after pending paints) into a PNG at most `max_width` pixels wide; with
    `palette`, reduced to 256 colours (a third of the size, for the docs)."""
    from PIL import Image
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    pixmap = window.grab()
    if pixmap.width() > max_width:
        pixmap = pixmap.scaledToWidth(max_width, Qt.TransformationMode.SmoothTransformation)
    if not pixmap.save(path, "PNG"):
        raise OSError(f"cannot write {path}")
    if palette:
        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    return path


def _largest_track(window) -> int:
    boxes = window.current_boxes()
    return max(boxes, key=lambda b: b.box.area).track_id


def take(outdir: str, clip: str, size=(1200, 740)) -> list[str]:
    from .app import create_app
    from .main_window import MainWindow

    create_app()
    os.makedirs(outdir, exist_ok=True)
    window = MainWindow()
    window.resize(*size)
    window.show()
    saved = [save_window(window, os.path.join(outdir, "empty.png"))]
    try:
        if not window.open_path(clip):
            raise SystemExit(f"cannot open {clip}")
        wait_until(lambda: window.doc is not None)
        window.seek(min(12, window.frame_count - 1))
        wait_until(lambda: window.current_index == min(12, window.frame_count - 1))
        if window.current_boxes():
            window.set_track_kept(_largest_track(window), True)
        window.set_view_mode("result")
        saved.append(save_window(window, os.path.join(outdir, "opened.png")))
        window.set_view_mode("split")
        saved.append(save_window(window, os.path.join(outdir, "split.png")))
        window.set_view_mode("result")
        window.tabs.setCurrentIndex(1)
        saved.append(save_window(window, os.path.join(outdir, "settings.png")))
        window.tabs.setCurrentIndex(0)
        with tempfile.TemporaryDirectory() as tmp:
            grabbed = []

            def grab(done, total):
                if not grabbed and done >= total // 3:
                    grabbed.append(save_window(window, os.path.join(outdir, "exporting.png")))

            window.exportProgress.connect(grab)
            window.export_to(os.path.join(tmp, "out" + os.path.splitext(clip)[1]))
            wait_until(lambda: not window.is_exporting())
            saved.extend(grabbed)
    finally:
        window.close()
    return saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gui.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--clip", default=str(DEFAULT_CLIP), help="video to show (default: %(default)s)")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.clip):
        print(f"no such clip: {args.clip} (the shared data lives in ../shared/data)", file=sys.stderr)
        return 2
    for path in take(args.outdir, args.clip):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
