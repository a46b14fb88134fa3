#!/usr/bin/env python3
"""Compare deepfake training runs from their log.csv files (what `vidgan train deepfake` validates).

One FaceForensics++ AUC from 160 crops moves by about +-0.04 between evaluations, so a recipe is
judged here by the mean over the second half of each run's validations (and their spread), per
manipulation type, next to the held-out pseudo-fake AUC (how well the pseudo-fake task itself was
learned). Runs compared this way should share seed, steps and batch size.

    .venv/bin/python benchmarks/compare_deepfake_runs.py runs/q7/base runs/q7/detail ...
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

COLS = ("ffpp_auc", "auc_df", "auc_ff", "auc_fs", "auc_nt", "pseudo_auc")


def summary(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "log.csv")))
    if not rows:
        raise ValueError(f"{run}: empty log")
    half = rows[len(rows) // 2:]
    out = {"run": run.name, "steps": int(rows[-1]["step"]), "n": len(half),
           "curve": " ".join(f"{float(r['ffpp_auc']):.2f}" for r in rows)}
    for c in COLS:
        v = np.array([float(r[c]) for r in half if r.get(c)])
        out[c] = (float(v.mean()), float(v.std())) if len(v) else (float("nan"), 0.0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders holding log.csv")
    args = ap.parse_args(argv)
    rows = []
    for r in args.runs:
        if not (r / "log.csv").is_file():
            print(f"skipping {r}: no log.csv", file=sys.stderr)
            continue
        rows.append(summary(r))
    if not rows:
        print("no runs with a log.csv", file=sys.stderr)
        return 1
    head = ["run", "steps", "vals"] + [f"{c} (2nd half)" for c in COLS] + ["ffpp AUC at each validation"]
    print("| " + " | ".join(head) + " |")
    print("|---|---:|---:|" + "---:|" * len(COLS) + "---|")
    for s in rows:
        cells = [s["run"], str(s["steps"]), str(s["n"])]
        cells += [f"{s[c][0]:.3f} ± {s[c][1]:.3f}" for c in COLS]
        print("| " + " | ".join(cells + [s["curve"]]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
