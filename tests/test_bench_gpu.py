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
                  "blur-every end to end (cpu)", "blur-every2 end to end (cpu)", "blur-cpu-detector end to end (cpu)",
                  "blur-cpu-detector clip (cpu)", "detect+track (cpu)", "blur, switch 0.5 ms (cpu)", "cover blur",
                  "cover gan, no network"):
        assert rows[stage]["fps"] and rows[stage]["fps"] > 0, (stage, rows)
    assert rows["detector (cpu)"]["frames"] == 4
    assert rows["gan end to end"]["fps"] is None and "skipped" in rows["gan end to end"]["note"]
    assert not any("failed" in str(r.get("note")) for r in rows.values()), rows
    assert "blur-every clip (cpu)" not in rows  # the --also clips run the judged modes and the CPU detector's
    assert sorted(os.listdir(keep)) == ["clip.blur.mp4"]  # only what the leak judge reads comes back
    with av.open(str(keep / "clip.blur.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12


def test_device_preflight_counts_what_travels_and_names_what_is_missing(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import device_preflight as pf

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("packed/\n.whl/\n")
    (tmp_path / "small.txt").write_text("x" * 1000)
    (tmp_path / "packed" / "gpu" / "also").mkdir(parents=True)
    (tmp_path / "packed" / "gpu" / "hall_1080p.mp4").write_bytes(b"0" * 2000)
    (tmp_path / ".whl").mkdir()
    for name in ("av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl", "facenet_pytorch-2.5.3-py3-none-any.whl",
                 "cryptography-50.0.2-cp311-abi3-manylinux_2_28_x86_64.whl", "cffi-2.1.1-cp312-cp312-x.whl",
                 "pycparser-3.12-py3-none-any.whl"):
        (tmp_path / ".whl" / name).write_bytes(b"w")
    assert pf.main(["--root", str(tmp_path)]) == 0
    assert "ok" in capsys.readouterr().out
    (tmp_path / ".whl" / "cffi-2.1.1-cp312-cp312-x.whl").unlink()
    (tmp_path / "packed" / "gpu" / "hall_1080p.mp4").unlink()
    with open(tmp_path / "big.bin", "wb") as fh:  # an untracked, not ignored file travels too
        fh.truncate(65 * 2**20)
    assert pf.main(["--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no cffi wheel" in out and "packed/gpu/hall_1080p.mp4 is missing" in out and "limit 64" in out
    assert pf.main(["--root", str(tmp_path), "--carry", "nope"]) == 1
    assert "carry path nope does not exist" in capsys.readouterr().out
