#!/usr/bin/env python3
"""Check, here and at no device time, that a lent GPU machine's call will have what it needs.

A device call sends the working tree (tracked and untracked-not-ignored files) plus the paths named
in `carry`, 64 MiB in all, and the machine has no network and no ../shared. A call that fails on a
missing wheel or clip still costs a machine start (1-2 minutes of the 15). Run this first:

    python benchmarks/device_preflight.py                 # the GPU check: carry .whl and packed/gpu
    python benchmarks/device_preflight.py --carry .whl packed/train

It prints the size that would travel (biggest parts first), which wheels `.whl/` holds against what
`device_gpu_bench.sh` installs, and which clips `packed/gpu/` holds; exit 0 when the call fits and
has them, 1 with one line per problem otherwise. How to fill `.whl/` and `packed/gpu/`: the header
of benchmarks/device_gpu_bench.sh.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_anonymize import DEFAULT_CLIPS  # noqa: E402  (the CPU benchmark's clips; stdlib imports only)

LIMIT = 64 * 2**20
WHEELS = ("av-", "facenet_pytorch-", "cryptography-", "cffi-", "pycparser-")  # what the device lacks
GPU_CLIPS = ("hall_1080p.mp4",)
ALSO_CLIPS = tuple(c for c in DEFAULT_CLIPS if c not in GPU_CLIPS)  # packed/gpu/also: the same clips on the GPU


def tree_files(root: Path) -> list[Path]:
    """What a device call sends without `carry`: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                         capture_output=True).stdout.decode()
    return [root / p for p in out.split("\0") if p and (root / p).is_file()]


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def check(root: Path, carry: list[str], gpu_bench: bool) -> list[str]:
    problems = []
    sizes: dict[str, int] = {}
    for f in tree_files(root):
        top = f.relative_to(root).parts
        key = "/".join(top[:2]) if top[0] in ("models", "packed") and len(top) > 1 else top[0]
        sizes[key] = sizes.get(key, 0) + f.stat().st_size
    for c in carry:
        p = root / c
        if not p.exists():
            problems.append(f"carry path {c} does not exist here")
            continue
        sizes[f"{c} (carried)"] = size_of(p)
    total = sum(sizes.values())
    print(f"would travel: {total / 2**20:.1f} MiB of {LIMIT / 2**20:.0f} MiB")
    for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {v / 2**20:7.1f} MiB  {k}")
    if total > LIMIT:
        problems.append(f"{total / 2**20:.1f} MiB would travel (limit 64): move models/* out of the tree "
                        "for the call, or carry less")
    if gpu_bench:
        wheels = sorted(p.name for p in (root / ".whl").glob("*.whl")) if (root / ".whl").is_dir() else []
        print("wheels:", ", ".join(wheels) or "none")
        for w in WHEELS:
            hits = [n for n in wheels if n.lower().startswith(w)]
            if not hits:
                problems.append(f".whl/ has no {w[:-1]} wheel (see benchmarks/device_gpu_bench.sh)")
            elif w == "av-" and not any("av-18." in n for n in hits):
                problems.append(f".whl/ holds {hits[0]}, not PyAV 18 (the version the project pins)")
        for c in GPU_CLIPS:
            if not (root / "packed" / "gpu" / c).is_file():
                problems.append(f"packed/gpu/{c} is missing")
        missing = [c for c in ALSO_CLIPS if not (root / "packed" / "gpu" / "also" / c).is_file()]
        if missing:  # the judge's rows for these clips would be absent, the run still works
            print("note: packed/gpu/also/ lacks " + ", ".join(missing) + " (no GPU rows for them)")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--carry", nargs="*", default=None, help="paths the call will carry (default: .whl packed/gpu)")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    carry = [".whl", "packed/gpu"] if args.carry is None else args.carry
    problems = check(args.root, carry, gpu_bench=args.carry is None)
    for p in problems:
        print("problem:", p)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
