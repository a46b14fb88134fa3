#!/usr/bin/env python3
"""Leaks of a lent GPU's outputs against this machine's: the "no increase in leaks" row of issue 8.

`device_gpu_bench.sh` brings back what the GPU wrote (`outputs.tar.*`: NAME.blur.EXT, NAME.gan.EXT for
hall_1080p and the clips of packed/gpu/also). This script anonymizes the same clips here on the CPU
(blur, `vidgan anonymize`, the current checkout), then runs the dlib judge of `bench_anonymize.py` once
per clip on all outputs side by side and prints a table: per clip the input faces dlib finds and, per
output, the detect leaks (a face still found) and identity hits (descriptor within 0.6):

    mkdir -p /tmp/gpu-outputs && cat .../outputs.tar.* | tar xf - -C /tmp/gpu-outputs
    .venv/bin/python benchmarks/judge_gpu_outputs.py /tmp/gpu-outputs --json judge.json

Every frame of clips under 200 frames is judged, else every 3rd (as in bench_anonymize.py). Session 6,
2 cores: about 25 minutes for the 8 clips.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_anonymize as ba  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outputs", help="folder with the GPU's NAME.MODE.EXT files")
    ap.add_argument("--videos", default=str(ba.DEFAULT_VIDEOS), help="where the input clips are")
    ap.add_argument("--cpu-dir", help="keep the CPU outputs here (default: a temporary folder)")
    ap.add_argument("--judge-jobs", type=int, default=1)
    ap.add_argument("--json", help="write the judge results here")
    args = ap.parse_args(argv)
    out_dir, videos = Path(args.outputs), Path(args.videos)
    names = sorted({p.name.split(".")[0] for p in out_dir.iterdir() if p.name.count(".") >= 2})
    if not names:
        print(f"judge_gpu_outputs: no NAME.MODE.EXT files in {out_dir}", file=sys.stderr)
        return 2
    judge, err = ba.try_env("judge")
    if judge is None:
        print(f"judge_gpu_outputs: {err}", file=sys.stderr)
        return 1
    cpu_dir = Path(args.cpu_dir or tempfile.mkdtemp(prefix="vidgan-cpu-"))
    cpu_dir.mkdir(parents=True, exist_ok=True)
    jargs = SimpleNamespace(judge_jobs=args.judge_jobs, cnn=False, judge_timeout=3600)
    results, totals = {}, {}
    print("clip | input faces | per output: detect leaks / identity hits", flush=True)
    for name in names:
        srcs = sorted(videos.glob(name + ".*"))
        if not srcs:
            print(f"{name}: input not found in {videos}, skipped", flush=True)
            continue
        src = srcs[0]
        cpu = cpu_dir / f"{name}.blur{src.suffix}"
        if not cpu.exists():
            subprocess.run([str(ba.VIDGAN_CLI), "anonymize", str(src), "-o", str(cpu), "--quiet"], check=True)
        outputs = {"cpu_blur": cpu}
        for p in sorted(out_dir.glob(name + ".*.*")):
            outputs["gpu_" + p.name.split(".")[1]] = p
        every = ba.frames_every(ba.media_facts(str(src)).frames, None)
        res = ba.run_judge(judge, None, src, outputs, every, jargs, cpu_dir)
        results[name] = res
        if "error" in res:
            print(f"{name}: {res['error']}", flush=True)
            continue
        cells = []
        for tool, v in res["tools"].items():
            cells.append(f"{tool} {v['det_leaks']}/{v['id_leaks']}")
            t = totals.setdefault(tool, [0, 0])
            t[0] += v["det_leaks"]
            t[1] += v["id_leaks"]
        totals.setdefault("faces", [0])[0] += res["gt_faces"]
        print(f"{name} | {res['gt_faces']} | " + " | ".join(cells), flush=True)
    print("all | " + " | ".join(f"{k} {'/'.join(map(str, v))}" for k, v in totals.items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "totals": totals}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
