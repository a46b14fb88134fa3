"""RSS over time while vidgan anonymizes a long clip: memory must stay flat with the video's length.

    python benchmarks/bench_memory.py [--clip people_one_by_one_10fps.mp4] [--vidgan-args "..."]

Runs `vidgan anonymize` in a subprocess, samples its resident set size (VmRSS, children included)
every 0.5 s, and prints RSS at 10/25/50/75/90/100 % of the run, the peak, and the growth between the
first and the last quarter (flat = a few MB, not proportional to the frames processed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "videos"))


def rss_kb(pid: int) -> int:
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in out]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="people_one_by_one_10fps.mp4")
    ap.add_argument("--vidgan-args", default="")
    args = ap.parse_args()
    src = os.path.join(SHARED, args.clip)
    if not os.path.exists(src):
        print(f"skip: {src} not found (../shared/data absent)")
        return 0
    vidgan = os.path.join(os.path.dirname(sys.executable), "vidgan")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out" + os.path.splitext(src)[1])
        cmd = [vidgan, "anonymize", src, "-o", out, "--quiet", *shlex.split(args.vidgan_args)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        samples = []
        while proc.poll() is None:
            samples.append((time.perf_counter() - t0, rss_kb(proc.pid)))
            time.sleep(0.5)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or len(samples) < 8:
            print(f"vidgan failed (exit {proc.returncode}) or ran too briefly")
            return 1
    mb = [s[1] / 1024 for s in samples]
    n = len(mb)
    print(f"clip {args.clip}: {seconds:.1f} s, {n} samples")
    print(f"{'progress':>9} | {'RSS MB':>7}")
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        print(f"{int(q * 100):>8}% | {mb[min(n - 1, int(q * n) - 1 if q < 1 else n - 1)]:>7.0f}")
    first = sum(mb[n // 8: n // 4]) / max(1, n // 4 - n // 8)
    last = sum(mb[n - n // 4:]) / max(1, n // 4)  # the last n // 4 samples (not mb[-n // 4:]: that is (-n) // 4)
    print(f"peak {max(mb):.0f} MB; mean RSS second eighth {first:.0f} MB -> last quarter {last:.0f} MB "
          f"(growth {last - first:+.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
