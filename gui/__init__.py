"""vidgan's desktop app: a PySide6 front over the `vidgan` library.

Layer 1 (a front), like `vidgan/cli.py`: it builds the library's option dataclasses from widgets,
runs `Pipeline` / `run_batch` in worker threads and shows their progress. No pipeline logic lives
here. Start it with `vidgan gui [FILE]`, `vidgan-gui [FILE]` or `python -m gui [FILE]`.
"""

from __future__ import annotations

from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Open the main window (optionally with files) and run the Qt event loop."""
    from vidgan.threads import set_defaults

    set_defaults()  # before NumPy and OpenCV load, as the command does (see vidgan/threads.py)
    from .app import main as _main

    return _main(argv)
