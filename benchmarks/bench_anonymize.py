#!/usr/bin/env python3
"""Benchmark `vidgan anonymize` against deface and a bare transcode; judge leaks with dlib.

For each clip, in one run:
  * vidgan   `vidgan anonymize IN -o OUT --quiet` (+ --vidgan-args), output in the input's container;
  * deface   its defaults plus --keep-audio (onnxruntime backend), in a virtualenv of its own;
  * transcode  PyAV decode -> RGB -> libx264 (crf 20, veryfast, yuv420p) with no face work: the speed
             limit for anything that has to touch every frame.
Each is timed as the wall clock of the whole command (start-up and model loading included);
fps = input frames / seconds.

Then, per output: frames out vs in (both decode-counted), whether every audio stream was copied
bit for bit (packet bytes in order), the largest timestamp difference; and `dlib_judge.py`, run in a
second virtualenv, counts faces dlib finds in the input that are still detectable (detect leak) or
still recognisable (identity leak) in the output.

Run with the project's virtualenv (it needs PyAV):
    .venv/bin/python benchmarks/bench_anonymize.py --quick
    .venv/bin/python benchmarks/bench_anonymize.py --json bench.json --markdown bench.md
    .venv/bin/python benchmarks/bench_anonymize.py --no-deface --no-judge   # vidgan vs transcode only
The two helper virtualenvs are built on first use under .benchvenv/ (git-ignored; several minutes).
Timings are wall clock on a possibly busy machine: compare within one run, not across machines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
BENCH_VENVS = ROOT / ".benchvenv"
VIDGAN_CLI = ROOT / ".venv" / "bin" / "vidgan"
JUDGE_SCRIPT = HERE / "dlib_judge.py"

DEFAULT_CLIPS = ["hall_1080p.mp4", "party_h264_aac.mp4", "hikers.mp4", "interview_720p.mp4",
                 "talking_vfr.mp4", "marathon_vfr_pcm.mkv", "walking_pause.gif", "selfie_rotate-90.mp4"]
QUICK_CLIPS = ["hall_1080p.mp4", "party_h264_aac.mp4"]

# pip requirements of the two helper environments (a change here rebuilds the environment).
ENV_PACKAGES = {
    "deface": ["deface", "onnxruntime"],
    # face_recognition_models still imports pkg_resources, gone from setuptools 81.
    "judge": ["dlib-bin", "face-recognition-models", "setuptools<81", "numpy",
              "opencv-python-headless", "av"],
}
# deface picks video or image handling from the input's MIME type and writes with imageio-ffmpeg.
# Inputs it would treat as a still image (GIF) are handed over through a .mp4-named link.
DEFACE_OUTPUT_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"}
DEFACE_VIDEO_MIME_FIX = {".gif"}

TOOLS = ("vidgan", "deface", "transcode")
JUDGED = ("vidgan", "deface")


# =============================================================================================
# Helper environments
# =============================================================================================
def ensure_env(name: str) -> Path:
    """Python of .benchvenv/<name>, built (once) with ENV_PACKAGES[name]. Raises on failure."""
    env = BENCH_VENVS / name
    python = env / "bin" / "python"
    stamp = env / ".bench-installed"
    wanted = "\n".join(ENV_PACKAGES[name]) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"[setup] building {env}: pip install {' '.join(ENV_PACKAGES[name])} (once; minutes)", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *ENV_PACKAGES[name]], check=True)
    stamp.write_text(wanted)
    return python


def try_env(name: str) -> tuple[Optional[Path], Optional[str]]:
    try:
        return ensure_env(name), None
    except (subprocess.CalledProcessError, OSError) as exc:
        return None, f"cannot build the {name} environment: {exc}"


def package_version(python: Optional[Path], package: str) -> Optional[str]:
    if python is None:
        return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() or None


# =============================================================================================
# Machine
# =============================================================================================
def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "usable_cores": usable_cores(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0], "vidgan_commit": git_commit()}


def git_commit() -> Optional[str]:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "vidgan"],
                               capture_output=True, text=True).stdout.strip()
        return f"{rev}{'+dirty' if dirty else ''}" if rev else None
    except OSError:
        return None


# =============================================================================================
# Media facts (PyAV, in this process)
# =============================================================================================
@dataclass
class MediaFacts:
    frames: int = 0
    times: list = field(default_factory=list)  # seconds per decoded video frame, in decode order
    audio: list = field(default_factory=list)  # per audio stream: [codec, [packet sha1 ...]]
    size: tuple = (0, 0)  # stored width, height
    rotation: int = 0
    error: Optional[str] = None


def media_facts(path: str) -> MediaFacts:
    """Decode-count the video frames and fingerprint every audio packet."""
    import av

    facts = MediaFacts()
    try:
        with av.open(path) as container:
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            audio = list(container.streams.audio)
            digests = {s.index: [] for s in audio}
            for packet in container.demux(video, *audio):
                if packet.stream.type == "audio":
                    if packet.size:
                        digests[packet.stream.index].append(hashlib.sha1(bytes(packet)).hexdigest())
                    continue
                for frame in packet.decode():
                    if facts.frames == 0:
                        facts.size = (frame.width, frame.height)
                        facts.rotation = int(getattr(frame, "rotation", 0) or 0)
                    facts.times.append(frame.time)
                    facts.frames += 1
            facts.audio = [[s.codec_context.name, digests[s.index]] for s in audio]
    except Exception as exc:  # noqa: BLE001 - any decode problem is a finding, not a crash
        facts.error = f"{exc.__class__.__name__}: {exc}"
    return facts


def audio_verdict(src: MediaFacts, out: MediaFacts) -> str:
    """'-' no audio in the input; 'exact' all streams bit-identical; else 'differs'/'lost' per stream."""
    if not src.audio:
        return "-"
    verdicts = []
    for i, (codec, packets) in enumerate(src.audio):
        if i >= len(out.audio):
            verdicts.append("lost")
        elif out.audio[i][1] == packets:
            verdicts.append("exact")
        else:
            verdicts.append(f"differs({out.audio[i][0]})" if out.audio[i][0] != codec else "differs")
    return verdicts[0] if len(set(verdicts)) == 1 else "/".join(verdicts)


def max_time_diff(src: MediaFacts, out: MediaFacts) -> Optional[float]:
    """Largest |t_out - t_in| frame by frame; None when the frame counts differ (not comparable)."""
    if src.frames != out.frames or not src.frames:
        return None
    diffs = [abs(a - b) for a, b in zip(src.times, out.times) if a is not None and b is not None]
    return max(diffs) if diffs else None


def faithfulness(src: MediaFacts, out: MediaFacts) -> dict:
    if out.error and not out.frames:
        return {"error": out.error, "frames_out": 0}
    return {
        "frames_out": out.frames, "frames_match": out.frames == src.frames,
        "audio": audio_verdict(src, out), "max_time_diff_s": max_time_diff(src, out),
        "first_time": out.times[0] if out.times else None, "last_time": out.times[-1] if out.times else None,
        "size": list(out.size), "rotation": out.rotation, "decode_error": out.error,
    }


# =============================================================================================
# The timed commands
# =============================================================================================
@dataclass
class Run:
    ok: bool = False
    seconds: Optional[float] = None
    output: Optional[str] = None
    error: Optional[str] = None
    note: Optional[str] = None
    command: Optional[list] = None
    load_before: Optional[float] = None  # 1-minute load average when it started (shared machines)


def timed(cmd: list, output: Path, log: Path, timeout: float, note: Optional[str] = None) -> Run:
    """Run `cmd`, time it, and call it a success only if it exits 0 and leaves a non-empty output."""
    run = Run(output=str(output), note=note, command=[str(c) for c in cmd], load_before=os.getloadavg()[0])
    output.unlink(missing_ok=True)  # a stale file from an earlier --keep run must not count as success
    t0 = time.perf_counter()
    try:
        with open(log, "wb") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        run.error = f"timed out after {timeout:.0f} s"
        return run
    except OSError as exc:
        run.error = f"cannot start: {exc}"
        return run
    run.seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        run.error = f"exit {proc.returncode}: {log_tail(log)}"
    elif not output.exists() or output.stat().st_size == 0:
        run.error = f"no output written: {log_tail(log)}"
    else:
        run.ok = True
    return run


def log_tail(log: Path, limit: int = 300) -> str:
    """Last meaningful line(s) of a tool's log (progress bars dropped)."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "it/s]" not in ln and "s/it]" not in ln]
    return " | ".join(lines[-3:])[-limit:] or "(no message)"


def vidgan_command(template: Optional[str], extra: str, src: Path, dst: Path) -> list:
    if template:  # e.g. to benchmark another checkout: "python -m vidgan.cli anonymize {input} -o {output}"
        return [tok.format(input=src, output=dst) for tok in shlex.split(template)] + shlex.split(extra)
    return [str(VIDGAN_CLI), "anonymize", str(src), "-o", str(dst), "--quiet", *shlex.split(extra)]


def run_vidgan(src: Path, workdir: Path, args) -> Run:
    dst = workdir / f"vidgan{src.suffix.lower()}"
    cmd = vidgan_command(args.vidgan_cmd, args.vidgan_args, src, dst)
    if not args.vidgan_cmd and not VIDGAN_CLI.exists():
        return Run(error=f"vidgan CLI not found at {VIDGAN_CLI} (pip install -e . in .venv?)")
    return timed(cmd, dst, workdir / "vidgan.log", args.timeout)


def run_deface(src: Path, workdir: Path, args, deface_python: Optional[Path], env_error: Optional[str]) -> Run:
    if deface_python is None:
        return Run(error=env_error or "deface environment missing")
    ext = src.suffix.lower()
    dst = workdir / f"deface{ext if ext in DEFACE_OUTPUT_EXTS else '.mp4'}"
    notes = []
    if dst.suffix != ext:
        notes.append(f"written as {dst.suffix} (deface cannot write {ext})")
    given = src
    if ext in DEFACE_VIDEO_MIME_FIX:
        # deface decides video vs image by MIME type and would write one still frame for a GIF.
        given = workdir / f"input-for-deface{ext}.mp4"
        given.unlink(missing_ok=True)
        given.symlink_to(src)
        notes.append(f"input passed as a .mp4-named link (deface treats {ext} as a still image)")
    cmd = [str(deface_python.parent / "deface"), str(given), "-o", str(dst), "--keep-audio"]
    return timed(cmd, dst, workdir / "deface.log", args.timeout, note="; ".join(notes) or None)


def run_transcode(src: Path, workdir: Path, args) -> Run:
    dst = workdir / "transcode.mp4"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--transcode", str(src), str(dst)]
    return timed(cmd, dst, workdir / "transcode.log", args.timeout)


def transcode(src: str, dst: str) -> None:
    """The baseline: decode, convert to RGB and back, encode like vidgan's default libx264 output."""
    import av

    with av.open(src) as inp, av.open(dst, "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate or 30)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.options = {"crf": "20", "preset": "veryfast"}
        vout.codec_context.thread_type = "AUTO"
        last = -1
        for index, frame in enumerate(inp.decode(vin)):
            image = frame.to_ndarray(format="rgb24")  # what every face tool has to look at
            new = av.VideoFrame.from_ndarray(image, format="rgb24")
            new.pts = max(frame.pts if frame.pts is not None else index, last + 1)
            new.time_base = vin.time_base
            last = new.pts
            out.mux(vout.encode(new))
        out.mux(vout.encode(None))


# =============================================================================================
# The judge
# =============================================================================================
def frames_every(frames: int, every: Optional[int]) -> int:
    return every if every else (1 if frames < 200 else 3)


def run_judge(judge_python: Optional[Path], env_error: Optional[str], src: Path, outputs: dict,
              every: int, args, workdir: Path) -> dict:
    if judge_python is None:
        return {"error": env_error or "judge environment missing"}
    if not outputs:
        return {"error": "no output to judge"}
    cmd = [str(judge_python), str(JUDGE_SCRIPT), str(src), "--every", str(every), "--jobs", str(args.judge_jobs)]
    cmd += [arg for name, path in outputs.items() for arg in ("--output", f"{name}={path}")]
    if args.cnn:
        cmd.append("--cnn")
    log = workdir / "judge.log"
    try:
        with open(log, "wb") as err:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, timeout=args.judge_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"judge timed out after {args.judge_timeout:.0f} s"}
    try:
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"judge exit {proc.returncode}: {log_tail(log)}"}


# =============================================================================================
# One clip
# =============================================================================================
def bench_clip(src: Path, workdir: Path, args, envs: dict) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    result = {"clip": src.name, "runs": {}, "faithfulness": {}, "judge": None}
    src_facts = media_facts(str(src))
    result["frames"] = src_facts.frames
    result["input"] = {"size": list(src_facts.size), "rotation": src_facts.rotation,
                       "audio": [a[0] for a in src_facts.audio], "error": src_facts.error}
    if src_facts.frames == 0:
        result["error"] = f"cannot decode the input: {src_facts.error}"
        return result

    runs = {
        "vidgan": lambda: run_vidgan(src, workdir, args),
        "deface": lambda: run_deface(src, workdir, args, *envs["deface"]),
        "transcode": lambda: run_transcode(src, workdir, args),
    }
    if args.no_deface:
        del runs["deface"]
    for tool, start in runs.items():
        run = start()
        result["runs"][tool] = asdict(run)
        status = f"{run.seconds:.1f} s" if run.ok else f"FAILED ({run.error})"
        print(f"    {tool:<9} {status}", flush=True)

    judged = {}
    for tool in JUDGED:
        run = result["runs"].get(tool)
        if run and run["ok"]:
            result["faithfulness"][tool] = faithfulness(src_facts, media_facts(run["output"]))
            if result["faithfulness"][tool].get("frames_out"):
                judged[tool] = run["output"]
    if not args.no_judge:
        every = frames_every(src_facts.frames, args.every)
        print(f"    judge     dlib on every {every} frame(s)...", flush=True)
        result["judge"] = run_judge(*envs["judge"], src, judged, every, args, workdir)
        if result["judge"].get("error"):
            print(f"    judge     FAILED ({result['judge']['error']})", flush=True)
    return result


# =============================================================================================
# Table
# =============================================================================================
def fps(frames: int, seconds: Optional[float]) -> Optional[float]:
    return frames / seconds if seconds else None


def tool_fps(res: dict, tool: str) -> Optional[float]:
    run = res["runs"].get(tool, {})
    return fps(res["frames"], run.get("seconds")) if run.get("ok") else None


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a and b else None


def overall_fps(results: list, tool: str, among: Optional[list] = None) -> Optional[float]:
    """Total frames / total seconds over the clips `tool` succeeded on (and `among` tools too)."""
    frames = seconds = 0.0
    for res in results:
        if all(tool_fps(res, t) for t in [tool, *(among or [])]):
            frames += res["frames"]
            seconds += res["runs"][tool]["seconds"]
    return fps(frames, seconds)


def leak_counts(res: dict, tool: str) -> Optional[tuple[int, int]]:
    judge = res.get("judge") or {}
    tally = (judge.get("tools") or {}).get(tool)
    return (tally["det_leaks"], tally["id_leaks"]) if tally else None


def fmt(value, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def pair(a, b) -> str:
    return f"{a}, {b}"


def clip_row(res: dict) -> list[str]:
    v, d, t = (tool_fps(res, tool) for tool in TOOLS)
    faith = res.get("faithfulness", {})

    def missing(tool):  # not run (--no-deface) or failed
        return "-" if tool not in res["runs"] else "FAIL"

    def frames_out(tool):
        return str(faith[tool]["frames_out"]) if tool in faith else missing(tool)

    def audio(tool):
        return faith[tool].get("audio", "?") if tool in faith else missing(tool)

    def ts(tool):
        if tool not in faith:
            return missing(tool)
        diff = faith[tool].get("max_time_diff_s")
        return "n/a" if diff is None else fmt(diff * 1000, 1)

    def leaks(tool):
        counts = leak_counts(res, tool)
        return f"{counts[0]}/{counts[1]}" if counts else "-"

    judge = res.get("judge") or {}
    return [res["clip"], str(res["frames"]), fmt(v), fmt(d), fmt(ratio(v, d), 2), fmt(t),
            fmt(ratio(v, t), 2), pair(frames_out("vidgan"), frames_out("deface")),
            pair(audio("vidgan"), audio("deface")), pair(ts("vidgan"), ts("deface")),
            leaks("vidgan"), leaks("deface"), str(judge.get("gt_faces", "-"))]


def overall_row(results: list) -> list[str]:
    v, d, t = (overall_fps(results, tool) for tool in TOOLS)
    vd = ratio(overall_fps(results, "vidgan", ["deface"]), overall_fps(results, "deface", ["vidgan"]))
    vt = ratio(overall_fps(results, "vidgan", ["transcode"]), overall_fps(results, "transcode", ["vidgan"]))

    def summed(tool):
        counts = [leak_counts(r, tool) for r in results]
        counts = [c for c in counts if c]
        return f"{sum(c[0] for c in counts)}/{sum(c[1] for c in counts)}" if counts else "-"

    def frames_ok(tool):
        faith = [r.get("faithfulness", {}).get(tool) for r in results]
        return f"{sum(1 for f in faith if f and f.get('frames_match'))}/{len(results)} ok"

    def audio_ok(tool):
        with_audio = [r for r in results if r.get("input", {}).get("audio")]
        exact = sum(1 for r in with_audio if r.get("faithfulness", {}).get(tool, {}).get("audio") == "exact")
        return f"{exact}/{len(with_audio)} exact"

    judged = [(r.get("judge") or {}).get("gt_faces") for r in results]
    gt = str(sum(g for g in judged if g is not None)) if any(g is not None for g in judged) else "-"
    return ["OVERALL", str(sum(r["frames"] for r in results)), fmt(v), fmt(d), fmt(vd, 2), fmt(t),
            fmt(vt, 2), pair(frames_ok("vidgan"), frames_ok("deface")),
            pair(audio_ok("vidgan"), audio_ok("deface")), "", summed("vidgan"), summed("deface"), gt]


HEADER = ["clip", "frames", "vidgan fps", "deface fps", "vidgan/deface", "transcode fps",
          "vidgan/transcode", "frames out (v, d)", "audio (v, d)", "ts max diff ms (v, d)",
          "vidgan leaks det/id", "deface leaks det/id", "GT faces"]


def table_rows(results: list) -> list[list[str]]:
    return [clip_row(r) for r in results] + [overall_row(results)]


def plain_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(cells):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADER), rule, *map(line, rows[:-1]), rule, line(rows[-1])])


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows[:-1]]
    out.append("| " + " | ".join(f"**{c}**" if c else c for c in rows[-1]) + " |")
    return "\n".join(out)


def notes(results: list) -> list[str]:
    """Failures, workarounds and faithfulness problems worth a line under the table."""
    lines = []
    for r in results:
        if r.get("error"):
            lines.append(f"{r['clip']}: {r['error']}")
        for tool, run in r.get("runs", {}).items():
            if not run.get("ok"):
                lines.append(f"{r['clip']}: {tool} failed: {run.get('error')}")
            elif run.get("note"):
                lines.append(f"{r['clip']}: {tool}: {run['note']}")
        for tool, faith in r.get("faithfulness", {}).items():
            if faith.get("error") or faith.get("decode_error"):
                lines.append(f"{r['clip']}: {tool} output decode: {faith.get('error') or faith['decode_error']}")
        judge = r.get("judge") or {}
        if judge.get("error"):
            lines.append(f"{r['clip']}: judge failed: {judge['error']}")
        for tool, err in (judge.get("errors") or {}).items():
            lines.append(f"{r['clip']}: judge on {tool}: {err}")
        for tool, tally in (judge.get("tools") or {}).items():
            if tally.get("resized_from"):
                lines.append(f"{r['clip']}: {tool} output is {tally['resized_from'][0]}x"
                             f"{tally['resized_from'][1]}, resized to the input's size for judging")
    return lines


LEGEND = ("fps = input frames / wall-clock seconds of the whole command (start-up and model load "
          "included). OVERALL fps = total frames / total seconds over the clips the tool(s) succeeded on. "
          "audio: 'exact' = every input audio stream present with bit-identical packets. "
          "ts max diff: largest per-frame timestamp difference (n/a when frame counts differ). "
          "leaks det/id: ground-truth faces (dlib HOG on the input) that dlib still detects in the output "
          "(IoU > 0.3) / whose dlib descriptor at the input landmarks is within 0.6 of the input's.")


# =============================================================================================
# Main
# =============================================================================================
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", metavar="CLIP",
                    help=f"clip names (looked up in --videos) or paths; default: {' '.join(DEFAULT_CLIPS)}")
    ap.add_argument("--quick", action="store_true", help=f"only {' and '.join(QUICK_CLIPS)}")
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="folder clip names are looked up in")
    ap.add_argument("--vidgan-args", default="",
                    help='extra arguments for vidgan anonymize; attach with "=": --vidgan-args="--mode pixelate"')
    ap.add_argument("--vidgan-cmd", help="command template replacing the vidgan CLI call; {input} and "
                                         "{output} are substituted (e.g. to benchmark another checkout)")
    ap.add_argument("--every", type=int, help="judge every k-th frame (default: 1 under 200 frames, else 3)")
    ap.add_argument("--cnn", action="store_true", help="also judge with dlib's CNN face detector (slow)")
    ap.add_argument("--judge-jobs", type=int, default=usable_cores(),
                    help="processes the judge splits frames over (default: usable cores; not timed)")
    ap.add_argument("--no-judge", action="store_true", help="timings and faithfulness only")
    ap.add_argument("--no-deface", action="store_true",
                    help="vidgan against the bare transcode only (quick iterations; the acceptance runs need deface)")
    ap.add_argument("--json", type=Path, help="write all results as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the table as markdown here")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="keep outputs and logs in DIR (default: a temporary folder, deleted)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per tool per clip")
    ap.add_argument("--judge-timeout", type=float, default=3600, help="seconds allowed for judging one clip")
    ap.add_argument("--setup-only", action="store_true", help="build the helper environments and exit")
    ap.add_argument("--transcode", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def resolve_clips(args) -> list[Path]:
    names = args.clips or (QUICK_CLIPS if args.quick else DEFAULT_CLIPS)
    paths = []
    for name in names:
        path = Path(name) if os.sep in name or Path(name).exists() else args.videos / name
        if not path.exists():
            sys.exit(f"clip not found: {path}")
        paths.append(path.resolve())
    return paths


def print_header(machine: dict, versions: dict) -> None:
    print(f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
          f"load average at start {machine['load_average_at_start']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), flush=True)


def write_reports(args, machine: dict, versions: dict, results: list, rows: list, note_lines: list) -> None:
    if args.json:
        doc = {"machine": machine, "versions": versions, "vidgan_args": args.vidgan_args,
               "columns": HEADER, "table": rows, "notes": note_lines, "clips": results}
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"JSON: {args.json}")
    if args.markdown:
        text = [f"Machine: {machine['cpu']}, {machine['cores']} cores; vidgan {versions.get('vidgan')}, "
                f"deface {versions.get('deface')}.", "", markdown_table(rows), "", LEGEND]
        if note_lines:
            text += ["", "Notes:", ""] + [f"- {n}" for n in note_lines]
        args.markdown.write_text("\n".join(text) + "\n")
        print(f"Markdown: {args.markdown}")


def compile_sources() -> None:
    """Write vidgan's bytecode once, as a regular (non-editable) pip install does: with the project
    installed editable and PYTHONDONTWRITEBYTECODE set (as on the machines these runs were made on),
    every run would otherwise compile its ~30 modules again (~70 ms a file), a cost deface's
    pip-installed package does not pay."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "vidgan")], check=False)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.transcode:
        transcode(*args.transcode)
        return 0
    if args.setup_only:
        errors = [err for _, err in (try_env(name) for name in ENV_PACKAGES) if err]
        print("\n".join(errors) or f"environments ready under {BENCH_VENVS}")
        return 1 if errors else 0
    clips = resolve_clips(args)
    machine = machine_info()
    compile_sources()
    envs = {"deface": (None, "skipped") if args.no_deface else try_env("deface"),
            "judge": (None, "skipped") if args.no_judge else try_env("judge")}
    versions = {"vidgan": machine["vidgan_commit"], "deface": package_version(envs["deface"][0], "deface"),
                "dlib": package_version(envs["judge"][0], "dlib-bin")}
    print_header(machine, versions)
    workroot = args.keep or Path(tempfile.mkdtemp(prefix="bench-anonymize-"))
    results = []
    try:
        for i, clip in enumerate(clips, 1):
            print(f"[{i}/{len(clips)}] {clip.name}", flush=True)
            results.append(bench_clip(clip, workroot / clip.stem, args, envs))
    except KeyboardInterrupt:
        print("interrupted: reporting the clips done so far", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
    if not results:
        return 1
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    rows = table_rows(results)
    note_lines = notes(results)
    print()
    print(plain_table(rows))
    print()
    print(LEGEND)
    for line in note_lines:
        print(f"  * {line}")
    print(f"load average at end: {machine['load_average_at_end']}")
    if args.keep:
        print(f"outputs and logs kept in {workroot}")
    write_reports(args, machine, versions, results, rows, note_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
