"""`--ray [ADDRESS]` for batch commands: the option, one progress bar, and the run.

Kept out of `cli/__init__.py` so a command adds Ray support with `add_ray_args(parser)` and one
call to `run_on_ray(args, jobs, work, on_done)`. Imports Ray (through vidgan.distributed) only when
a batch actually runs on it.
"""

from __future__ import annotations

import argparse
import os

from ..errors import UsageError


def _seconds(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def add_ray_args(p: argparse.ArgumentParser, segments: bool = True) -> None:
    g = p.add_argument_group("cluster (Ray)")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the batch on Ray: one task per file" + (", long videos split at key frames"
                                                                     if segments else "") + ". "
                        "No ADDRESS: a local Ray instance; HOST:6379 or ray://HOST:10001: an existing "
                        "cluster (inputs and outputs must be on a file system every node sees). Put it "
                        "after the inputs or write --ray=ADDRESS")
    if not segments:  # commands whose files always run whole (translate: smoothing; deepfake: sampling)
        return
    g.add_argument("--segment-seconds", type=_seconds, default=30.0, metavar="S",
                   help="with --ray: split videos longer than 1.5 x S seconds into segments of about S "
                        "seconds, processed in parallel and joined without re-encoding (default 30)")


class RayBar:
    """One tqdm bar for the whole batch: files done, with the frames done as a postfix."""

    def __init__(self, total_files: int, quiet: bool):
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total_files, desc="batch (ray)", unit="file")

    def done(self, i, job, report) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def frames(self, n: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{n} frames", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def ray_options(args):
    """RayOptions from `--ray [ADDRESS]` and `--segment-seconds`."""
    from ..distributed import RayOptions

    if args.ray and os.path.exists(args.ray):
        raise UsageError(f"--ray took {args.ray!r} as the cluster address; put --ray after the inputs "
                         "or write --ray=ADDRESS")
    return RayOptions(address=args.ray or None, segment_seconds=getattr(args, "segment_seconds", 30.0))


def run_on_ray(args, jobs, work, bar: RayBar, on_done):
    """Run `work` (a vidgan.distributed.FileWork) over `jobs`; returns the BatchReport."""
    from ..distributed import run_distributed

    return run_distributed(jobs, work, ray_options(args), skip_existing=getattr(args, "skip_existing", False),
                           on_done=on_done, on_frames=bar.frames)
