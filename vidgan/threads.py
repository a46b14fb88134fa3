"""Thread counts of the native libraries under the pipeline, for a process that runs it.

The pipeline's parallelism is its stages (decode, detect, track, cover, encode run at once, see
pipeline.py). Libraries that start threads of their own inside one stage's call only add hand-offs
(and, for OpenBLAS, spinning) where those stages already fill the cores (`few_cores`; the decoder's
threading follows the same rule, `media.reader.decoder_threading`). Set through environment
variables, read by each library when it loads: `set_defaults()` has to run before NumPy and OpenCV
are imported (the `vidgan` command and the app do it first). A user's own setting wins.
"""

from __future__ import annotations

import os
from typing import Optional


FEW_CORES = 2  # up to this many cores, the pipeline's stages keep them busy on their own


def few_cores(cores: Optional[int] = None) -> bool:
    """Whether a machine of `cores` CPUs (default: `os.cpu_count()`) has at most FEW_CORES."""
    return ((os.cpu_count() or 1) if cores is None else cores) <= FEW_CORES


def defaults(cores: Optional[int] = None) -> dict[str, str]:
    """The settings for a machine of `cores` CPUs (default: `os.cpu_count()`):

    - OpenBLAS (under NumPy) one thread: its threads spun ~0.1 s after NumPy's import (0.14 of the
      0.69 CPU-s a 2-frame clip took on 2 cores), and vidgan makes no large BLAS calls.
    - OpenCV one thread on 1-2 cores: its pool split each resize, blur and blend across the cores
      and the caller waited for it; in the calling thread alone the same work took less CPU (8
      clips on 2 cores, 5 interleaved runs: 56.9 -> 55.7 CPU-s, 33.4 -> 32.9 s; the same pixels).
      Machines with more cores keep OpenCV's pool (not measured there)."""
    out = {"OPENBLAS_NUM_THREADS": "1"}
    if few_cores(cores):
        out["OPENCV_FOR_THREADS_NUM"] = "1"
    return out


def set_defaults(cores: Optional[int] = None) -> None:
    """Put `defaults(cores)` into the environment, where not already set."""
    for key, value in defaults(cores).items():
        os.environ.setdefault(key, value)
