#!/usr/bin/env python3
"""Benchmark the passcode vault: size against the anonymized video, fidelity of the restored faces.

For each clip: detect the faces once (cached as a tracks JSON in the work folder, so every variant
covers exactly the same regions), then for each vault variant
  * anonymize with a passcode (default Argon2id parameters, blur) -> OUT.mp4 + OUT.mp4.vault;
  * restore (`vidgan.vault.restore`, default encode) -> RESTORED.mp4;
  * measure, over the pixels the vault restores (every covered pixel of every frame):
      - region PSNR: the restored frames *before* the final encode vs the original decoded frames
        (this is the vault's fidelity; "bit-exact" when every value matches),
      - file PSNR: the same pixels of RESTORED.mp4 as written (after one more CRF 20 encode),
      - that every other pixel equals the anonymized video's (before the final encode).
Variants: the default (target 45.5 dB), --lossless, and any --extra-psnr targets (to show the size
for a given quality).

Run with the project's virtualenv:
    .venv/bin/python benchmarks/bench_vault.py                      # the three clips of issue 3
    .venv/bin/python benchmarks/bench_vault.py --clips party_h264_aac.mp4 --markdown vault.md
Timings are wall clock on a possibly busy machine (the load average is printed with the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from vidgan.keys import Passcode  # noqa: E402
from vidgan.media import VideoReader  # noqa: E402
from vidgan.pipeline import AnonymizeOptions, Pipeline  # noqa: E402
from vidgan.vault import VaultOptions, VaultWriter, open_vault, restore, restored_frames  # noqa: E402

DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
DEFAULT_CLIPS = ["hall_1080p.mp4", "party_h264_aac.mp4", "interview_720p.mp4"]
PASSCODE = Passcode("benchmark passcode, not a secret")


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def tracks_for(clip: Path, work: Path, redetect: bool) -> tuple[str, float]:
    path = work / f"{clip.stem}.tracks.json"
    if path.exists() and not redetect:
        return str(path), float("nan")
    t0 = time.perf_counter()
    doc = Pipeline(AnonymizeOptions()).detect(str(clip))
    seconds = time.perf_counter() - t0
    path.write_text(json.dumps(doc))
    return str(path), seconds


def fidelity(original: str, anon: str, vault: str, restored: str) -> dict:
    se_r, se_f, n, exact, outside = 0.0, 0.0, 0, True, True
    with open_vault(vault, PASSCODE) as v, VideoReader(original) as ro, VideoReader(restored) as rr:
        orig, back = iter(ro), iter(rr)
        for rf in restored_frames(anon, v):
            o = next(orig).image
            f = next(back).image
            covered = np.zeros(o.shape[:2], bool)
            for x0, y0, x1, y1, m in rf.regions:
                covered[y0:y1, x0:x1] |= m
            d = rf.image[covered].astype(np.int64) - o[covered]
            se_r += float((d * d).sum())
            exact &= not d.any()
            d = f[covered].astype(np.int64) - o[covered]
            se_f += float((d * d).sum())
            n += d.size
            outside &= np.array_equal(rf.image[~covered], rf.frame.image[~covered])

    def db(se):
        return float("inf") if se == 0 else 10 * np.log10(255.0 ** 2 * n / se)

    return {"region_psnr": db(se_r), "file_psnr": db(se_f), "bit_exact": exact, "outside_equal": outside,
            "values": n}


def run_variant(clip: Path, tracks: str, work: Path, name: str, options: VaultOptions) -> dict:
    out = work / f"{clip.stem}.{name}.mp4"
    vault = str(out) + ".vault"
    restored = work / f"{clip.stem}.{name}.restored.mp4"
    writer = VaultWriter(vault, PASSCODE, options)
    t0 = time.perf_counter()
    report = Pipeline(AnonymizeOptions(tracks_file=tracks)).anonymize(str(clip), str(out), observers=[writer])
    t_anon = time.perf_counter() - t0
    t0 = time.perf_counter()
    restore(str(out), vault, str(restored), PASSCODE)
    t_restore = time.perf_counter() - t0
    fid = fidelity(str(clip), str(out), vault, str(restored))
    anon_size, vault_size = os.path.getsize(out), os.path.getsize(vault)
    return {
        "clip": clip.name, "variant": name, "frames": report.frames, "regions": writer.stats.patches,
        "anon_bytes": anon_size, "vault_bytes": vault_size, "ratio": vault_size / anon_size,
        "anonymize_s": t_anon, "vault_s": writer.stats.seconds,
        "encode_s": writer.stats.encode_seconds, "encodes": writer.stats.encodes,
        "segments": writer.stats.segments, "restore_s": t_restore, **fid,
    }


def fmt_db(x: float) -> str:
    return "∞" if x == float("inf") else f"{x:.2f}"


def markdown(rows: list[dict], detect: dict, machine: str) -> str:
    lines = [
        "| clip | vault | anonymized | vault size | vault / video | region PSNR (dB) | bit-exact | "
        "restored file PSNR (dB) | anonymize + vault (s) | vault, pipeline's thread (s) | segment encodes (s) "
        "| restore (s) |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['variant']} | {r['anon_bytes'] / 1024:.0f} KiB | {r['vault_bytes'] / 1024:.0f} KiB "
            f"| {100 * r['ratio']:.0f} % | {fmt_db(r['region_psnr'])} | {'yes' if r['bit_exact'] else 'no'} "
            f"| {fmt_db(r['file_psnr'])} | {r['anonymize_s']:.1f} | {r['vault_s']:.1f} | {r['encode_s']:.1f} "
            f"| {r['restore_s']:.1f} |")
    lines.append("")
    det = ", ".join(f"{k} {v:.0f} s" for k, v in detect.items() if v == v)
    lines.append(f"Machine: {machine}." + (f" Face detection (once per clip, shared by the variants): {det}."
                                           if det else ""))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "vault", help="outputs and cached tracks")
    ap.add_argument("--extra-psnr", type=float, nargs="*", default=[35.0],
                    help="also run the default mode at these target PSNRs (default: 35)")
    ap.add_argument("--no-lossless", action="store_true")
    ap.add_argument("--redetect", action="store_true", help="detect again even when tracks are cached")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    variants = [("default", VaultOptions())]
    if not args.no_lossless:
        variants.append(("lossless", VaultOptions(lossless=True)))
    variants += [(f"psnr {t:g}", VaultOptions(target_psnr=t)) for t in args.extra_psnr]
    rows, detect = [], {}
    for name in args.clips:
        clip = args.videos / name
        if not clip.exists():
            print(f"skip {name}: not found in {args.videos}", file=sys.stderr)
            continue
        tracks, detect[name] = tracks_for(clip, args.work, args.redetect)
        for vname, opts in variants:
            row = run_variant(clip, tracks, args.work, vname.replace(" ", ""), opts)
            row["variant"] = vname
            rows.append(row)
            print(f"{name} {vname}: vault {row['vault_bytes'] / 1024:.0f} KiB = {100 * row['ratio']:.0f} % of "
                  f"{row['anon_bytes'] / 1024:.0f} KiB, regions {fmt_db(row['region_psnr'])} dB "
                  f"(file {fmt_db(row['file_psnr'])} dB), exact {row['bit_exact']}, outside equal "
                  f"{row['outside_equal']}, anonymize {row['anonymize_s']:.1f} s (vault {row['vault_s']:.1f} s, "
                  f"{row['encodes']} encodes / {row['segments']} segments), restore {row['restore_s']:.1f} s",
                  file=sys.stderr, flush=True)
    load1 = os.getloadavg()[0]
    machine = (f"{cpu_name()}, {os.cpu_count()} cores, shared with other jobs (1-min load average "
               f"{load0:.1f} at the start, {load1:.1f} at the end)")
    table = markdown(rows, detect, machine)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "detect_s": detect, "rows": rows}, indent=1,
                                        default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
