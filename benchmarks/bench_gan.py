"""Quality of the shipped GAN-toolkit models on held-out data (no speed numbers).

    .venv/bin/python benchmarks/bench_gan.py [--n 300] [--device auto]

1. face-sr4x: UTKFace held-out crops, 128 px ground truth, 32 px input (antialiased bicubic
   downscale). Bicubic vs the MSE SRResNet (models/face-sr4x-mse) vs the SRGAN (models/face-sr4x):
   PSNR, SSIM and two sharpness measures relative to the ground truth (mean gradient magnitude and
   Laplacian variance; 1.0 = as much detail as the real photo). The lecture's claim to check: MSE wins
   PSNR but is blurry (ratio < 1); the GAN gives up some PSNR for detail (ratio closer to 1).
2. facades: L1 and PSNR on the 155 val pairs (labels -> photo).
3. face-colorize: L1/PSNR of gray -> colour on held-out faces.
4. face-age: the face-attr network's expected age of held-out young faces before and after
   young->old (and old faces after old->young).
Models not trained yet are reported as missing. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidgan.gan import metrics  # noqa: E402
from vidgan.gan.data import DataSpec, build_dataset  # noqa: E402
from vidgan.gan.translator import find_model, load_translator  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def have(name: str) -> bool:
    try:
        find_model(name)
        return True
    except FileNotFoundError:
        print(f"- {name}: not trained yet")
        return False


def batches(ds, n: int, bs: int = 25):
    n = min(n, len(ds))
    for i in range(0, n, bs):
        idx = torch.arange(i, min(i + bs, n))
        yield ds.batch(idx, idx, None, "cpu")


def to01(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2).clamp(0, 1)


@torch.no_grad()
def bench_sr(n: int, device: str) -> None:
    ds = build_dataset(DataSpec(kind="sr", root=str(DATA / "faces" / "utkface"), size=128), "val")
    methods: dict[str, object] = {"bicubic": None}
    for name in ("face-sr4x-mse", "face-sr4x"):
        if have(name):
            methods[name] = load_translator(name, device)
    sums: dict[str, dict[str, float]] = {m: {} for m in methods}
    count = 0
    for a, b in batches(ds, n):
        t = to01(b)
        lr = to01(a)
        gt_grad, gt_lap = metrics.gradient_magnitude(t), metrics.laplacian_variance(t)
        for m, tr in methods.items():
            y = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1) if tr is None \
                else tr(lr).cpu()
            vals = {"PSNR dB": metrics.psnr(y, t), "SSIM": metrics.ssim(y, t),
                    "gradient ratio": metrics.gradient_magnitude(y) / gt_grad,
                    "Laplacian-var ratio": metrics.laplacian_variance(y) / gt_lap}
            for k, v in vals.items():
                sums[m][k] = sums[m].get(k, 0.0) + float(v.sum())
        count += len(a)
    print(f"\n### face-sr4x: x4 on {count} held-out UTKFace faces (32 -> 128 px)\n")
    cols = ["PSNR dB", "SSIM", "gradient ratio", "Laplacian-var ratio"]
    print("| method | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for m, s in sums.items():
        print(f"| {m} | " + " | ".join(f"{s[c] / count:.3f}" for c in cols) + " |")


@torch.no_grad()
def bench_paired(name: str, spec: DataSpec, n: int, device: str) -> None:
    if not have(name):
        return
    tr = load_translator(name, device)
    ds = build_dataset(DataSpec(**{**spec.__dict__, "size": tr.size}), "val")
    l1 = ps = 0.0
    count = 0
    for a, b in batches(ds, n):
        # the translator takes RGB in [0, 1]; `gray` models convert it themselves
        x = to01(b) if tr.input_mode == "gray" else to01(a)
        y, t = tr(x).cpu(), to01(b)
        l1 += float((y - t).abs().flatten(1).mean(1).sum())
        ps += float(metrics.psnr(y, t).sum())
        count += len(a)
    print(f"\n### {name}: {count} held-out pairs at {tr.size} px\n")
    print("| L1 (0-1 pixel units) | PSNR dB |\n|---:|---:|")
    print(f"| {l1 / count:.4f} | {ps / count:.2f} |")


@torch.no_grad()
def bench_age(n: int, device: str) -> None:
    if not (have("face-age") and have("face-age-young")):
        return
    from vidgan.gan.lossnet import load_face_attr

    attr = load_face_attr(device=device)
    old, young = load_translator("face-age", device), load_translator("face-age-young", device)
    ds = build_dataset(DataSpec(kind="age", root=str(DATA / "faces" / "utkface"), size=old.size), "val")

    def age(x):
        return float(attr.expected_age(F.interpolate(x, size=64, mode="area").to(attr.age.weight.device) * 2 - 1).sum())

    s = {"young": 0.0, "young->old": 0.0, "old": 0.0, "old->young": 0.0}
    count = 0
    for a, b in batches(ds, n):
        a, b = to01(a), to01(b)
        s["young"] += age(a)
        s["young->old"] += age(old(a))
        s["old"] += age(b)
        s["old->young"] += age(young(b))
        count += len(a)
    print(f"\n### face-age: face-attr expected age (years) on {count} held-out faces per domain\n")
    print("| young | young->old | old | old->young |\n|---:|---:|---:|---:|")
    print("| " + " | ".join(f"{v / count:.1f}" for v in s.values()) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="held-out images per benchmark (default 300)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        sys.exit(f"shared data not found at {DATA}")
    bench_sr(args.n, args.device)
    bench_paired("facades", DataSpec(kind="side-by-side", root=str(DATA / "pairs" / "facades")), args.n, args.device)
    bench_paired("face-colorize", DataSpec(kind="gray", root=str(DATA / "faces" / "utkface")), args.n, args.device)
    bench_age(args.n, args.device)


if __name__ == "__main__":
    main()
