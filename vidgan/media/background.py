"""Stages in threads of their own, for the jobs that read, process and write media: a producer run
`size` items ahead of its consumer (`prefetch`), and an encode that runs behind it (`EncodeThread`).
Bounded queues; an error in a stage's thread comes back on the caller's; stopping never hangs."""

from __future__ import annotations

import queue
import threading
from typing import Iterator, Optional

from ..errors import Cancelled


class Worker(threading.Thread):
    """Runs `fn`, keeps any exception for the caller to re-raise."""

    def __init__(self, fn, name):
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.error: Optional[BaseException] = None

    def run(self):
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc


END = object()


def _put(q: queue.Queue, item, *stops: threading.Event) -> bool:
    while not any(s.is_set() for s in stops):
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterator, stop: threading.Event, size: int = 8, name: str = "vidgan-decode"):
    """Run the iterator `items` in a background thread, `size` items ahead; yield them in order on
    the caller's thread. `stop` (set by the caller) ends it early; so does closing this generator."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done = threading.Event()  # this stage's own end: another stage's end must not stop this one

    def produce():
        try:
            for item in items:
                if not _put(q, item, stop, done):
                    return
        finally:
            _put(q, END, stop, done)

    worker = Worker(produce, name)
    worker.start()
    try:
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                if worker.is_alive() or not q.empty():
                    continue
                # ended without its end marker: an error, or stopped from outside
                raise worker.error or Cancelled(f"{name} stopped before the end of its input")
            if item is END:
                break
            yield item
        worker.join()
        if worker.error is not None:
            raise worker.error
    finally:
        done.set()
        worker.join(timeout=5)


class EncodeThread:
    """`writer.write(*item)` for each item `put`, in a thread of its own (`vidgan-encode`), up to
    `size` items behind the caller, in order. An error there comes back from the next `put` or from
    `close`; `abort` drops what is queued and ends the thread (the writer itself is the caller's)."""

    def __init__(self, writer, size: int = 8):
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.worker = Worker(self._run, "vidgan-encode")
        self.worker.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not END:
            self.writer.write(*item)

    def put(self, item: tuple) -> None:
        while True:
            if self.worker.error is not None:
                raise self.worker.error
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait until everything put is written."""
        self.put(END)
        self.worker.join()
        if self.worker.error is not None:
            raise self.worker.error

    def abort(self) -> None:
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass
        if self.worker.is_alive():
            self.queue.put(END)
        self.worker.join(timeout=10)
