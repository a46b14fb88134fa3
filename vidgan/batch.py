"""Many inputs: collect files, plan outputs, run the pipeline on each, keep going past failures.

Used by the CLI and the GUI's batch queue. A failure in one file becomes a `FileReport` with
status "failed" and a one-line error; the other files still complete.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from .errors import Cancelled, UsageError, VidganError
from .media.reader import IMAGE_EXTENSIONS
from .pipeline import AnonymizeOptions, FileReport, Pipeline

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ogg", ".ogv", ".gif", ".ts",
                    ".mts", ".flv", ".wmv", ".mpg", ".mpeg", ".3gp"}
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
# Containers we read but do not write: their outputs get another extension.
_OUTPUT_EXT = {".wmv": ".mp4", ".mpg": ".mp4", ".mpeg": ".mp4", ".3gp": ".mp4", ".tif": ".png",
               ".tiff": ".png", ".bmp": ".png"}
SUFFIX = ".anonymized"


@dataclass(frozen=True)
class Job:
    input: str
    output: str


def collect_inputs(paths: Iterable[str], recursive: bool = False) -> list[tuple[str, str]]:
    """Expand folders into media files. Returns (file, folder it came from or '') pairs.

    Files named explicitly are kept whatever their extension (so a bad file gets a clear error);
    files found in folders are filtered by extension and skip our own outputs."""
    out: list[tuple[str, str]] = []
    for p in paths:
        if os.path.isdir(p):
            if recursive:
                walker = ((root, files) for root, _dirs, files in os.walk(p))
            else:
                walker = [(p, [f for f in os.listdir(p) if os.path.isfile(os.path.join(p, f))])]
            for root, files in walker:
                for name in sorted(files):
                    stem, ext = os.path.splitext(name)
                    if ext.lower() in MEDIA_EXTENSIONS and not stem.endswith(SUFFIX) \
                            and not name.startswith("."):
                        out.append((os.path.join(root, name), p))
        else:
            out.append((p, ""))
    return out


def output_ext(input_path: str) -> str:
    ext = os.path.splitext(input_path)[1].lower()
    return _OUTPUT_EXT.get(ext, ext or ".mp4")


def plan_jobs(inputs: list[tuple[str, str]], output: Optional[str] = None,
              out_dir: Optional[str] = None) -> list[Job]:
    """Decide where each output goes: `-o` (one input), `--out-dir` (keeps sub-folders), or beside
    the input as NAME.anonymized.EXT."""
    if output and out_dir:
        raise UsageError("use either -o/--output or --out-dir, not both")
    if output and len(inputs) != 1:
        raise UsageError(f"-o/--output takes one input, got {len(inputs)}; use --out-dir for several")
    jobs = []
    for path, base in inputs:
        stem = os.path.splitext(os.path.basename(path))[0]
        name = f"{stem}{SUFFIX}{output_ext(path)}"
        if output:
            dest = output
        elif out_dir:
            rel = os.path.relpath(os.path.dirname(path), base) if base else "."
            dest = os.path.normpath(os.path.join(out_dir, rel, name))
        else:
            dest = os.path.join(os.path.dirname(path), name)
        jobs.append(Job(path, dest))
    seen: dict[str, str] = {}
    for j in jobs:
        key = os.path.abspath(j.output)
        if key in seen:
            raise UsageError(f"two inputs would write the same output {j.output} ({seen[key]} and {j.input})")
        seen[key] = j.input
    return jobs


@dataclass
class BatchReport:
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "failed"]

    def as_dict(self) -> dict:
        return {
            "files": [f.as_dict() for f in self.files],
            "summary": {
                "total": len(self.files),
                "ok": sum(f.status == "ok" for f in self.files),
                "skipped": sum(f.status == "skipped" for f in self.files),
                "failed": len(self.failed),
                "frames": sum(f.frames for f in self.files),
                "seconds": round(self.seconds, 3),
            },
        }

    def write_json(self, path: str) -> None:
        tmp = f"{path}.partial"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.as_dict(), fh, indent=2)
        os.replace(tmp, path)


FileStart = Callable[[int, Job], None]
FileProgress = Callable[[Job, int, Optional[int]], None]
FileDone = Callable[[int, Job, FileReport], None]


def run_batch(jobs: list[Job], options: AnonymizeOptions, *, skip_existing: bool = False,
              on_start: Optional[FileStart] = None, on_progress: Optional[FileProgress] = None,
              on_done: Optional[FileDone] = None, cancel: Optional[threading.Event] = None,
              pipeline: Optional[Pipeline] = None,
              observers_for: Optional[Callable[[Job], list]] = None) -> BatchReport:
    """Run every job; never raises for a single file's failure (see FileReport.status/error)."""
    report = BatchReport()
    t0 = time.perf_counter()
    pipe = pipeline or Pipeline(options)
    for i, job in enumerate(jobs):
        if cancel is not None and cancel.is_set():
            fr = FileReport(input=job.input, output=job.output, status="cancelled", error="cancelled")
            report.files.append(fr)
            if on_done:
                on_done(i, job, fr)
            continue
        if on_start:
            on_start(i, job)
        if skip_existing and os.path.exists(job.output):
            fr = FileReport(input=job.input, output=job.output, status="skipped")
        else:
            progress = (lambda done, total, _job=job: on_progress(_job, done, total)) if on_progress else None
            try:
                observers = observers_for(job) if observers_for else ()
                fr = pipe.anonymize(job.input, job.output, progress=progress, cancel=cancel,
                                    observers=observers)
            except Cancelled as exc:
                fr = FileReport(input=job.input, output=job.output, status="cancelled", error=exc.reason)
            except VidganError as exc:
                fr = FileReport(input=job.input, output=job.output, status="failed", error=exc.reason)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                log.debug("unexpected failure", exc_info=True)
                fr = FileReport(input=job.input, output=job.output, status="failed",
                                error=f"{exc.__class__.__name__}: {exc}".splitlines()[0])
        report.files.append(fr)
        if on_done:
            on_done(i, job, fr)
    report.seconds = time.perf_counter() - t0
    return report
