"""benchmarks/bench_gpu.py, the script a lent GPU runs (issue 8), on the CPU: its rows, the --also
clips and the kept outputs the leak judge reads afterwards. A broken script costs lease minutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_gpu_on_the_cpu(make_clip_in, tmp_path):
    clip = make_clip_in("clip.mp4", frames=12, width=96, height=64)
    keep, out = tmp_path / "keep", tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gpu.py"), "--clip", clip,
                           "--repeat", "1", "--batch-size", "4", "--cpu-frames", "4", "--gan-model",
                           str(tmp_path / "missing.pt"), "--also", clip, "--keep", str(keep), "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["stage"]: r for r in json.loads(out.read_text())["rows"]}
    for stage in ("decode", "transcode", "transcode (PyAV)", "detector (cpu)", "blur end to end (cpu)", "blur clip (cpu)",
                  "blur-every end to end (cpu)", "blur-every clip (cpu)", "blur-every2 end to end (cpu)",
                  "detect+track (cpu)"):
        assert rows[stage]["fps"] and rows[stage]["fps"] > 0, (stage, rows)
    assert rows["detector (cpu)"]["frames"] == 4
    assert rows["gan end to end"]["fps"] is None and "skipped" in rows["gan end to end"]["note"]
    assert not any("failed" in str(r.get("note")) for r in rows.values()), rows
    for mode in ("blur", "blur-every", "blur-every2"):
        with av.open(str(keep / f"clip.{mode}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 12
