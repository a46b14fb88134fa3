#!/usr/bin/env python3
"""Where each thread of one `vidgan anonymize` run spends its time: a sampling profile.

Every --interval seconds a sampler thread reads every other thread's Python stack
(`sys._current_frames`) and counts, per thread, the innermost function of vidgan, PyAV, OpenCV-calling
or threading code it is in. A thread blocked in C (libx264 encoding, a CUDA sync, a NumPy kernel)
shows up as the Python function that called into C, so the table says which stage is busy and which
waits. Used on a lent GPU machine to find what limits end-to-end fps (issue 8); runs anywhere:

    python benchmarks/prof_threads.py CLIP [--mode blur|gan] [--device cuda] [--gan-model F] [--detect-only]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vidgan.faces import DetectorOptions  # noqa: E402
from vidgan.pipeline import AnonymizeOptions, Pipeline  # noqa: E402

WAITS = {"wait", "get", "put", "acquire", "join", "sleep"}


def where(frame) -> str:
    """The innermost frame worth naming: skip the standard library's waiting frames unless the
    thread is waiting (then say so, with the vidgan frame that waits)."""
    inner = frame
    names = []
    while frame is not None:
        names.append(frame)
        frame = frame.f_back
    top = names[0]
    base = os.path.basename(top.f_code.co_filename)
    if top.f_code.co_name in WAITS and base in ("threading.py", "queue.py"):
        for f in names[1:]:
            if "vidgan" in f.f_code.co_filename:
                return f"WAIT in {os.path.basename(f.f_code.co_filename)}:{f.f_code.co_name}"
        return "WAIT"
    return f"{base}:{inner.f_code.co_name}:{inner.f_lineno}"


def sample(stop: threading.Event, interval: float, counts: dict) -> None:
    me = threading.get_ident()
    while not stop.is_set():
        names = {t.ident: t.name for t in threading.enumerate()}
        for tid, frame in sys._current_frames().items():
            if tid != me:
                counts[names.get(tid, str(tid))][where(frame)] += 1
        time.sleep(interval)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--mode", default="blur")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--gan-model")
    ap.add_argument("--detect-only", action="store_true", help="Pipeline.detect: no cover, no encode")
    ap.add_argument("--interval", type=float, default=0.002)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    extra = {"gan_model": args.gan_model} if args.gan_model else {}
    pipe = Pipeline(AnonymizeOptions(mode=args.mode, detector=DetectorOptions(device=args.device), **extra))
    out = os.path.join(tempfile.mkdtemp(prefix="vidgan-prof-"), "out" + os.path.splitext(args.clip)[1])
    run = (lambda: pipe.detect(args.clip)) if args.detect_only else (lambda: pipe.anonymize(args.clip, out))
    run()  # warm-up: models, kernels
    counts: dict = collections.defaultdict(collections.Counter)
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(stop, args.interval, counts), daemon=True)
    sampler.start()
    t = time.perf_counter()
    run()
    seconds = time.perf_counter() - t
    stop.set()
    sampler.join()
    what = "detect" if args.detect_only else args.mode
    print(f"{args.clip}: {what}, {seconds:.3f} s")
    for name, c in sorted(counts.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(c.values())
        print(f"  thread {name}: {total} samples")
        for place, k in c.most_common(args.top):
            print(f"    {100 * k / total:5.1f} %  {place}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
