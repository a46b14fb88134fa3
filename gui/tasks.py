"""Run a library call in a worker thread, with throttled progress, remaining time and Cancel.

A `Task` wraps `fn(progress, cancel) -> result`, where `progress(done, total)` is the library's
`ProgressFn` and `cancel` a `threading.Event` the library polls (`Pipeline.anonymize`,
`Pipeline.detect`, `run_batch`). The task object is moved to its own `QThread`; its signals reach
widgets on the GUI thread as queued calls, so the window never blocks on the work.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from vidgan.errors import Cancelled, VidganError

log = logging.getLogger(__name__)

TaskFn = Callable[[Callable[[int, Optional[int]], None], threading.Event], Any]


def one_line(exc: BaseException) -> str:
    """The user-facing one-line reason of an exception."""
    if isinstance(exc, VidganError):
        text = str(exc)
    else:
        text = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else exc.__class__.__name__


def remaining_seconds(elapsed: float, done: int, total: Optional[int]) -> float:
    """Linear estimate of the time left; -1 when unknown."""
    if not total or done <= 0 or done > total or elapsed <= 0:
        return -1.0
    return elapsed / done * (total - done)


class _Worker(QObject):
    """Lives in the worker thread; runs the function and reports through its signals."""

    progress = Signal(int, int, float)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, name: str, fn: TaskFn, cancel: threading.Event, min_interval: float):
        super().__init__()
        self.name = name
        self._fn = fn
        self.cancel_event = cancel
        self._min_interval = min_interval
        self._last_emit = 0.0
        self.t0 = 0.0

    def report(self, done: int, total: Optional[int]) -> None:
        now = time.perf_counter()
        last = total is not None and done >= total
        if not last and now - self._last_emit < self._min_interval:
            return
        self._last_emit = now
        self.progress.emit(int(done), int(total or 0), remaining_seconds(now - self.t0, done, total))

    @Slot()
    def run(self) -> None:
        self.t0 = time.perf_counter()
        try:
            result = self._fn(self.report, self.cancel_event)
        except Cancelled:
            self.cancelled.emit()
        except VidganError as exc:
            self.failed.emit(one_line(exc))
        except Exception as exc:  # noqa: BLE001 - shown to the user as one line
            log.debug("task %s failed", self.name, exc_info=True)
            self.failed.emit(one_line(exc))
        else:
            self.succeeded.emit(result)
        finally:
            self.finished.emit()


class Task(QObject):
    """A library call in its own thread. Lives on the GUI thread: its signals are emitted there, so
    any slot (lambdas included) runs on the GUI thread.

    Signals: progress(done, total or 0, seconds left or -1), succeeded(result), failed(reason),
    cancelled(), finished() (always last).
    """

    progress = Signal(int, int, float)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, name: str, fn: TaskFn, min_interval: float = 0.05, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.name = name
        self.cancel_event = threading.Event()
        self._worker = _Worker(name, fn, self.cancel_event, min_interval)
        self.thread: Optional[QThread] = None
        self.done = False
        # Bound methods of an object on the GUI thread: queued from the worker thread.
        self._worker.progress.connect(self._on_progress)
        self._worker.succeeded.connect(self._on_succeeded)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._worker.finished.connect(self._on_finished)

    def _on_progress(self, done: int, total: int, left: float) -> None:
        self.progress.emit(done, total, left)

    def _on_succeeded(self, result) -> None:
        self.succeeded.emit(result)

    def _on_failed(self, reason: str) -> None:
        self.failed.emit(reason)

    def _on_cancelled(self) -> None:
        self.cancelled.emit()

    def _on_finished(self) -> None:
        if self.thread is not None:
            self.thread.wait()
        self.done = True
        self.finished.emit()

    def restart_clock(self) -> None:
        """Time the remaining-time estimate from now (worker thread: a batch calls it per file)."""
        self._worker.t0 = time.perf_counter()
        self._worker._last_emit = 0.0

    # -- control from the GUI thread ----------------------------------------------------------
    def start(self) -> "Task":
        thread = QThread()
        thread.setObjectName(f"vidgan-{self.name}")
        self._worker.moveToThread(thread)
        thread.started.connect(self._worker.run)
        # quit() is thread-safe: end the thread's event loop as soon as the work returns, without
        # a round trip through the GUI thread's event loop (shutdown waits on the thread).
        self._worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        self.thread = thread
        thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def is_running(self) -> bool:
        """True from start() until `finished` has been delivered on the GUI thread."""
        return self.thread is not None and not self.done

    def wait(self, ms: int = 60000) -> bool:
        """Block until the worker thread has stopped (shutdown only; signals still queued are dropped)."""
        if self.thread is None:
            return True
        return self.thread.wait(ms)
