"""A batch on a Ray cluster: one task per file, long videos split at key frames and joined.

Same jobs, same `FileReport`s and the same JSON report as `batch.run_batch`; only where the work
runs changes. The driver (this process) submits tasks and reacts as they finish:

    start task (per file) ──▶ FileReport                        (short video, photo, ...: done)
                          └─▶ SegmentPlan ──▶ segment tasks ──▶ join task ──▶ FileReport

- **start** decides whether a file is split (`FileWork.plan`) and otherwise processes it whole.
- **segment** processes one piece of a long video *with context*: it decodes and tracks
  `context` seconds on either side of its own frames (so a face crossing the cut is tracked, back-
  filled and held exactly as in a whole-file run) but encodes only its own frames, into a part
  file beside the output.
- **join** concatenates the parts' encoded packets (no re-encode) and copies audio, subtitles and
  metadata once from the original (`media.segments.concat_segments`).

Failures: an exception that is not a `VidganError` (a crashed worker, a lost node, an out-of-memory
kill) is retried `max_retries` times by Ray; a `VidganError` (a corrupt input, an unwritable
folder) is final at once — except in a segment or the join, where the file is then processed
whole once (what a local run would do). Either way a file that cannot be done ends as a "failed"
`FileReport` and the batch goes on.

What runs on a file is a `FileWork` (picklable; shipped to the workers). `AnonymizeWork` is the
anonymize command; another command gets distributed by subclassing `FileWork` with `run_file`
(and, if its frames can be processed piecewise, `plan` + `run_segment`).

Inputs and outputs are paths: every node must see them at the same place (a shared or network
file system). The part files live in a hidden folder beside the output and are removed after the
join (or when the file fails).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .batch import BatchReport, Job
from .errors import UsageError, VidganError
from .media.segments import (SEGMENTABLE_FORMATS, PacketTable, Segment, SegmentReader, concat_segments,
                             encode_segment, packet_table, part_path, plan_segments)
from .media.reader import is_image_path, probe
from .media.writer import EncodeOptions, output_format_for
from .pipeline import AnonymizeOptions, FileReport, Pipeline
from .translate import TranslateOptions, Translation

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # frames done so far by this task


@dataclass(frozen=True)
class RayOptions:
    """Where and how the batch runs on Ray."""

    address: Optional[str] = None  # None: start a local instance; "HOST:6379" or "ray://HOST:10001"
    segment_seconds: float = 30.0  # split videos longer than 1.5x this at key frames
    context_seconds: float = 1.0  # decoded and tracked on each side of a segment, not encoded
    max_retries: int = 2  # extra attempts for a task whose worker died or that raised unexpectedly
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.25  # asked for only when the cluster has GPUs and the work can use one
    init_kwargs: dict = field(default_factory=dict)  # extra ray.init arguments (local instance)

    def __post_init__(self):
        if self.segment_seconds <= 0:
            raise UsageError("--segment-seconds must be positive")
        if self.max_retries < 0:
            raise UsageError("max_retries must be >= 0")


# -- what runs on each file --------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentPlan:
    """A file the start task decided to split: the packet table, the segments, the parts folder."""

    table: PacketTable
    segments: list[Segment]
    folder: str
    started: float  # time.time() when the start task began (for the file's wall time)


class FileWork:
    """What a distributed batch does to one file. Runs in Ray workers: must be picklable.

    Subclasses implement `run_file` (whole file). To be split, they also implement `plan` (return
    segments, or None to run whole) and `run_segment`; the join is generic."""

    wants_gpu = False  # ask Ray for `gpus_per_task` GPUs for the start and segment tasks
    encode_options = EncodeOptions()  # how the parts were encoded (the join copies their headers)

    def run_file(self, job: Job, progress: Progress) -> FileReport:
        raise NotImplementedError

    def plan(self, job: Job, seconds: float) -> Optional[tuple[PacketTable, list[Segment]]]:
        return None

    def run_segment(self, job: Job, table: PacketTable, segment: Segment, part: str,
                    context: float, progress: Progress) -> FileReport:
        raise NotImplementedError

    def join(self, job: Job, plan: SegmentPlan, parts: list[str], reports: list[FileReport]) -> FileReport:
        """Concatenate the parts into the output; sum the segments' reports."""
        from .media.reader import VideoReader

        with VideoReader(job.input) as reader:
            info = reader.info
        writer = concat_segments(parts, job.output, info, job.input, self.encode_options,
                                 expected_frames=len(plan.table.pts))
        report = FileReport(input=job.input, output=job.output)
        for r in reports:
            report.frames += r.frames
            report.faces += r.faces
            report.tracks += r.tracks
            report.covered_boxes += r.covered_boxes
            report.detect_every = r.detect_every
            report.warnings.extend(w for w in r.warnings if w not in report.warnings)
        report.warnings.extend(writer.warnings)
        report.seconds = max(0.0, time.time() - plan.started)
        report.fps = report.frames / report.seconds if report.seconds > 0 else 0.0
        return report


# Models are loaded once per worker process and reused by every task it runs.
_PIPELINES: dict[AnonymizeOptions, Pipeline] = {}


class AnonymizeWork(FileWork):
    """`vidgan anonymize` on one file (whole, or one segment with context)."""

    def __init__(self, options: AnonymizeOptions):
        self.options = options
        self.encode_options = options.encode
        self.wants_gpu = options.detector.device != "cpu" and options.tracks_file is None

    def pipeline(self) -> Pipeline:
        pipe = _PIPELINES.get(self.options)
        if pipe is None:
            pipe = _PIPELINES[self.options] = Pipeline(self.options)
        return pipe

    def run_file(self, job: Job, progress: Progress) -> FileReport:
        return self.pipeline().anonymize(job.input, job.output, progress=lambda done, _total: progress(done))

    def plan(self, job: Job, seconds: float) -> Optional[tuple[PacketTable, list[Segment]]]:
        opts = self.options
        # Whole-file only: track ids (--keep-track) and a tracks file are numbered over the whole
        # video; photos; containers without real timestamps.
        if opts.keep_tracks or opts.tracks_file or is_image_path(job.input):
            return None
        try:
            if output_format_for(job.output) not in SEGMENTABLE_FORMATS:
                return None
        except VidganError:
            return None
        table = packet_table(job.input)
        if table is None:
            return None
        segments = plan_segments(table, seconds)
        return (table, segments) if len(segments) > 1 else None

    def run_segment(self, job: Job, table: PacketTable, segment: Segment, part: str,
                    context: float, progress: Progress) -> FileReport:
        pipe = self.pipeline()
        reader = self.segment_reader(job.input, table, segment, context)
        report = FileReport(input=job.input, output=job.output)
        scratch = FileReport(input=job.input)  # counts detections in the context frames too
        tracks: set[int] = set()
        stop = threading.Event()

        def own_frames():
            for frame, boxes in pipe.frames_with_boxes(reader, stop, scratch):
                if frame.index not in reader.own:
                    continue
                report.faces += sum(b.kind == "detected" for b in boxes)
                tracks.update(b.track_id for b in boxes)
                item = pipe._cover(frame, boxes, report)
                report.frames += 1
                progress(report.frames)
                yield item

        try:
            encode_segment(part, reader.info, own_frames(), self.options.encode)
        finally:
            stop.set()
        report.tracks = len(tracks)
        report.detect_every = scratch.detect_every
        if reader.skipped_packets:
            report.warnings.append(f"{reader.skipped_packets} damaged packet(s) skipped while decoding")
        return report

    def segment_reader(self, path: str, table: PacketTable, segment: Segment,
                       context: float = 1.0) -> SegmentReader:
        """The frames a segment task tracks: its own plus enough context on both sides.

        The context starts on a frame where a whole-file run starts a block of its detection
        schedule (`search_block`), so the same frames are detected together and the same way
        and the tracker gives the segment's own frames the boxes a whole-file run gives them."""
        context = max(context, self._context_needed(table))
        rate = probe(path).average_rate
        align = self.options.search_block(float(rate) if rate else None)
        return SegmentReader(path, table, segment, before=context, after=context, align=align, keep_yuv=True)

    def _context_needed(self, table: PacketTable) -> float:
        """Seconds of context the tracker needs so frames next to a cut get the boxes a whole-file
        run gives them: history for gaps and holds, lookahead for back-fill, plus smoothing."""
        fps = (len(table.pts) - 1) / table.duration if table.duration > 0 else 30.0
        t = self.options.tracker_options(fps)
        frames = max(t.lookahead, max(t.max_gap, t.hold) + t.smooth + 1) + 2
        return frames / fps


# -- the tasks (run in Ray workers) ------------------------------------------------------------------
_TRANSLATIONS: dict[TranslateOptions, Translation] = {}


class TranslateWork(FileWork):
    """`vidgan translate` on one file, always whole: temporal smoothing carries the previous
    output from frame to frame, so a cut would restart it (and show as a jump)."""

    def __init__(self, options: TranslateOptions):
        self.options = options
        self.encode_options = options.encode
        self.wants_gpu = options.device != "cpu"

    def run_file(self, job: Job, progress: Progress) -> FileReport:
        job_runner = _TRANSLATIONS.get(self.options)
        if job_runner is None:
            job_runner = _TRANSLATIONS[self.options] = Translation(self.options)
        os.makedirs(os.path.dirname(job.output) or ".", exist_ok=True)
        return job_runner.translate(job.input, job.output, progress=lambda done, _total: progress(done))


def map_on_ray(fn: Callable[[Any], Any], items: list, options: RayOptions = RayOptions(), *,
               on_done: Optional[Callable[[int, Any], None]] = None) -> list:
    """`fn(item)` for every item as one Ray task each, for jobs that write no video (deepfake
    scoring). A crashed worker is retried `options.max_retries` times; `fn` should turn its own
    expected failures into a result (they are not retried). Results come back in item order; a task
    that still fails gives its exception as the result. `on_done(i, result)` as tasks finish."""
    ray = connect(options)
    task = ray.remote(fn).options(num_cpus=options.cpus_per_task, max_retries=options.max_retries)
    refs = {task.remote(item): i for i, item in enumerate(items)}
    results: list = [None] * len(items)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            i = refs[ref]
            try:
                results[i] = ray.get(ref)
            except Exception as exc:  # the task died for good (RayTaskError, WorkerCrashedError)
                results[i] = exc
            if on_done is not None:
                on_done(i, results[i])
    return results


def _throttled(actor, key) -> Progress:
    """Send a task's frame count to the progress actor every few frames (fire and forget)."""
    last = [0.0]

    def progress(done: int) -> None:
        now = time.monotonic()
        if actor is not None and now - last[0] >= 0.5:
            last[0] = now
            actor.report.remote(key, done)

    return progress


def _pin_threads() -> None:
    """Compute threads = the CPUs Ray gave this task (not the node's count), so tasks sharing a
    node do not oversubscribe it."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU") or 1
    torch.set_num_threads(max(1, int(cpus)))


def _final_count(actor, key, frames: int) -> None:
    """The task's last count, waited for: the driver's final total must include it."""
    if actor is not None:
        import ray

        ray.get(actor.report.remote(key, frames))


def _failed(job: Job, exc: BaseException) -> FileReport:
    reason = exc.reason if isinstance(exc, VidganError) else f"{exc.__class__.__name__}: {exc}"
    return FileReport(input=job.input, output=job.output, status="failed", error=reason.splitlines()[0])


def _start_task(work: FileWork, job: Job, key: int, seconds: float, actor) -> Any:
    started = time.time()
    _pin_threads()
    try:
        planned = work.plan(job, seconds)
        if planned is None:
            report = work.run_file(job, _throttled(actor, (key, -1)))
            _final_count(actor, (key, -1), report.frames)
            return report
        table, segments = planned
        folder = tempfile.mkdtemp(prefix=f".{os.path.basename(job.output)}.parts.",
                                  dir=os.path.dirname(os.path.abspath(job.output)))
        return SegmentPlan(table, segments, folder, started)
    except VidganError as exc:  # deterministic: no point retrying
        return _failed(job, exc)


def _segment_task(work: FileWork, job: Job, key: int, plan: SegmentPlan, number: int,
                  context: float, actor) -> FileReport:
    segment = plan.segments[number]
    part = part_path(plan.folder, job.output, number)
    _pin_threads()
    try:
        report = work.run_segment(job, plan.table, segment, part, context,
                                  _throttled(actor, (key, number)))
    except VidganError as exc:
        return _failed(job, exc)
    _final_count(actor, (key, number), report.frames)
    return report


def _join_task(work: FileWork, job: Job, plan: SegmentPlan, reports: list[FileReport]) -> FileReport:
    parts = [part_path(plan.folder, job.output, s.number) for s in plan.segments]
    try:
        return work.join(job, plan, parts, reports)
    except VidganError as exc:
        return _failed(job, exc)
    finally:
        shutil.rmtree(plan.folder, ignore_errors=True)


class _ProgressActor:
    """Frames done per task key (file index, segment number or -1 for the whole file); the driver
    polls the sum. A retried task reports from 0 again under the same key, so nothing is counted
    twice; a split file resubmitted whole has its segments' counts dropped (and late ones ignored)."""

    def __init__(self):
        self.done: dict = {}
        self.whole: set[int] = set()

    def report(self, key, frames: int) -> None:
        if key[0] in self.whole and key[1] != -1:
            return
        self.done[key] = frames

    def forget(self, file_key: int) -> None:
        self.whole.add(file_key)
        self.done = {k: v for k, v in self.done.items() if k[0] != file_key or k[1] == -1}

    def total(self) -> int:
        return sum(self.done.values())


# -- the driver ---------------------------------------------------------------------------------------
def connect(options: RayOptions):
    """`ray.init` to the given cluster, or a local instance; reuse a connection already made."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs the ray package: pip install 'vidgan[ray]'") from None
    if not ray.is_initialized():
        kwargs = dict(options.init_kwargs)
        kwargs.setdefault("log_to_driver", log.isEnabledFor(logging.DEBUG))  # workers' logs with -v
        try:
            ray.init(address=options.address or None, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = options.address or "a local instance"
            raise UsageError(f"cannot connect to Ray at {where}: {str(exc).splitlines()[0]}") from None
    return ray


def task_resources(work: FileWork, options: RayOptions, cluster: dict) -> dict:
    """Ray resources of a start or segment task: GPUs only when the work can use one and the
    cluster (`ray.cluster_resources()`) has some; Ray then sets CUDA_VISIBLE_DEVICES per task, so
    `--device auto` lands on the task's GPU."""
    gpus = options.gpus_per_task if work.wants_gpu and cluster.get("GPU", 0) > 0 else 0
    return {"num_cpus": options.cpus_per_task, "num_gpus": gpus}


FileDone = Callable[[int, Job, FileReport], None]


def run_distributed(jobs: list[Job], work: FileWork, options: RayOptions = RayOptions(), *,
                    skip_existing: bool = False, on_done: Optional[FileDone] = None,
                    on_frames: Optional[Callable[[int], None]] = None) -> BatchReport:
    """Run `work` on every job on Ray. Never raises for one file's failure; returns the same
    `BatchReport` as `batch.run_batch` (files in job order). `on_done(i, job, report)` is called
    as files finish (any order); `on_frames(total)` with the frames done so far, about twice a
    second."""
    ray = connect(options)
    t0 = time.perf_counter()
    resources = task_resources(work, options, ray.cluster_resources())
    retry = dict(max_retries=options.max_retries, retry_exceptions=True)
    start = ray.remote(_start_task).options(**resources, **retry)
    segment = ray.remote(_segment_task).options(**resources, **retry)
    join = ray.remote(_join_task).options(num_cpus=options.cpus_per_task, **retry)
    actor = ray.remote(_ProgressActor).options(num_cpus=0).remote() if on_frames else None
    work_ref = ray.put(work)

    results: list[Optional[FileReport]] = [None] * len(jobs)
    pending: dict = {}  # ObjectRef -> (kind, job index, segment number)
    plans: dict[int, SegmentPlan] = {}
    plan_refs: dict = {}
    parts: dict[int, dict[int, FileReport]] = {}
    ran_whole: set[int] = set()  # split files that failed and were resubmitted whole

    def drop_plan(i: int) -> None:
        """Forget file i's segments: cancel what still runs, remove the parts folder."""
        plan = plans.pop(i, None)
        plan_refs.pop(i, None)
        if plan is not None:
            for ref, (_kind, j, _n) in list(pending.items()):
                if j == i:
                    ray.cancel(ref, force=False)
                    del pending[ref]
            shutil.rmtree(plan.folder, ignore_errors=True)

    def finish(i: int, report: FileReport) -> None:
        results[i] = report
        if report.status != "skipped":
            _remove_stale_temps(jobs[i].output)
        drop_plan(i)
        if on_done:
            on_done(i, jobs[i], report)

    def whole_instead(i: int, report: FileReport) -> None:
        """A segment or the join of file i failed with a VidganError (say a damaged packet made a
        segment's frames disagree with the packet table): run the file whole once, as a local
        run would, before calling it failed."""
        if i in ran_whole:
            finish(i, report)
            return
        log.info("%s: split processing failed (%s); processing it whole", jobs[i].input, report.error)
        ran_whole.add(i)
        drop_plan(i)
        if actor is not None:
            actor.forget.remote(i)
        pending[start.remote(work_ref, jobs[i], i, math.inf, actor)] = ("start", i, -1)

    for i, job in enumerate(jobs):
        if skip_existing and os.path.exists(job.output):
            finish(i, FileReport(input=job.input, output=job.output, status="skipped"))
            continue
        pending[start.remote(work_ref, job, i, options.segment_seconds, actor)] = ("start", i, -1)

    try:
        while pending:
            # Whatever finished in the last half second (a poll, so the bar moves between files).
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
            if actor is not None:
                try:
                    on_frames(ray.get(actor.total.remote(), timeout=5))
                except Exception:  # noqa: BLE001 - progress is cosmetic
                    pass
            for ref in ready:
                if ref not in pending:
                    continue
                kind, i, number = pending.pop(ref)
                job = jobs[i]
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - retries are spent: the file failed
                    log.debug("task failed", exc_info=True)
                    finish(i, _gave_up(job, exc, options.max_retries + 1))
                    continue
                if isinstance(result, SegmentPlan):
                    plans[i] = result
                    plan_refs[i] = ray.put(result)  # stored once, not once per segment task
                    parts[i] = {}
                    for s in result.segments:
                        ref2 = segment.remote(work_ref, job, i, plan_refs[i], s.number,
                                              options.context_seconds, actor)
                        pending[ref2] = ("segment", i, s.number)
                elif kind == "segment":
                    if i not in plans:  # the file already failed
                        continue
                    if result.status != "ok":
                        whole_instead(i, result)
                        continue
                    parts[i][number] = result
                    plan = plans[i]
                    if len(parts[i]) == len(plan.segments):
                        reports = [parts[i][s.number] for s in plan.segments]
                        pending[join.remote(work_ref, job, plan_refs[i], reports)] = ("join", i, -1)
                elif kind == "join" and result.status != "ok":
                    whole_instead(i, result)
                else:
                    finish(i, result)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        for plan in plans.values():
            shutil.rmtree(plan.folder, ignore_errors=True)
        raise
    if actor is not None:
        try:
            on_frames(ray.get(actor.total.remote(), timeout=5))
        except Exception:  # noqa: BLE001
            pass
        ray.kill(actor)
    report = BatchReport(files=[r for r in results if r is not None])
    report.seconds = time.perf_counter() - t0
    return report


def _remove_stale_temps(output: str) -> None:
    """Temporary files of this output left by a worker that was killed while writing (a normal
    failure removes its own). Called once no attempt for the file is running any more."""
    import glob

    folder = os.path.dirname(os.path.abspath(output))
    base, ext = os.path.splitext(os.path.basename(output))
    for path in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(base)}.*.partial{glob.escape(ext)}")):
        try:
            os.unlink(path)
        except OSError:
            pass


def _gave_up(job: Job, exc: BaseException, attempts: int) -> FileReport:
    """The report of a file whose task failed on every attempt: the task's own exception when it
    raised one (Ray wraps it), else Ray's one-line reason (a worker that died, a lost node)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        reason = f"{cause.__class__.__name__}: {cause}"
    else:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else exc.__class__.__name__
    return FileReport(input=job.input, output=job.output, status="failed",
                      error=f"{reason.splitlines()[0]} (gave up after {attempts} attempts)")
