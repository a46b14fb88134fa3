#!/usr/bin/env python3
"""Pack the training data for a lent GPU machine into one small folder, and unpack it there.

A device call carries at most 64 MiB (the working tree included) and the machine has no
../shared. Both GPU trainings read the same UTKFace chips, so they travel once:

    python benchmarks/device_pack.py pack devpack                  # here (52 MiB)
    python3 benchmarks/device_pack.py unpack devpack --packed /dev/shm/packed   # on the device

* `utkface.npz`: the UTKFace chips re-encoded as JPEG (`--quality`), one file; unpacked into
  `PACKED/utkface/` with the same names (`vidgan train deid --data`).
* `deid_landmarks_utkface.npz`: the MTCNN landmark cache of those chips (unpacked into packed/).
* `deepfake.npz`: packed/deepfake_faces.npz without its pixels. Each UTKFace crop is stored as
  the scale and offset that cut it from its chip (fitted from its 5 landmarks in both frames),
  and re-cut from the re-encoded chip at unpack; the video-frame crops travel as JPEG (q95).
* `ffpp.npz`: packed/deepfake_ffpp.npz with each crop as JPEG q95 (PNG would be 4 MB more). On the
  device it only picks the best checkpoint; the reported AUCs are measured here on the originals.

Unpacking writes PACKED/utkface/, PACKED/deepfake_faces.npz (776 MB), PACKED/deepfake_ffpp.npz and the
landmark cache, the files `vidgan train deepfake` and `vidgan train deid` read. On the device PACKED
is in /dev/shm, which outlives a call while the machine stays warm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidgan.deepfake.dataset import load_pack  # noqa: E402

LANDMARKS = "deid_landmarks_utkface.npz"


def _encode(images, ext: str, params=(), bgr: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """RGB images (BGR with `bgr`, as OpenCV reads them), any iterable -> (concatenated bytes,
    offsets with a final end)."""
    bufs = []
    for im in images:
        ok, buf = cv2.imencode(ext, im if bgr else cv2.cvtColor(im, cv2.COLOR_RGB2BGR), list(params))
        assert ok
        bufs.append(buf.ravel())
    offsets = np.cumsum([0] + [len(b) for b in bufs]).astype(np.int64)
    return np.concatenate(bufs), offsets


def _decode(data: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imdecode(data[a:b], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for a, b in zip(offsets[:-1], offsets[1:])]


def _fit_crop(chip_lm: np.ndarray, crop_lm: np.ndarray) -> tuple[np.ndarray, float]:
    """(s, x0, y0) with crop = (chip - (x0, y0)) * s, by least squares; and the worst residual (px)."""
    a = np.zeros((10, 3))
    b = crop_lm.reshape(-1).astype(np.float64)
    a[0::2, 0], a[0::2, 1] = chip_lm[:, 0], -1.0
    a[1::2, 0], a[1::2, 2] = chip_lm[:, 1], -1.0
    s, u, v = np.linalg.lstsq(a, b, rcond=None)[0]  # u = s * x0, v = s * y0
    res = np.abs(a @ [s, u, v] - b).max()
    return np.array([s, u / s, v / s]), float(res)


def pack(out: Path, data: Path, quality: int, packed: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    chips = sorted((data / "faces" / "utkface").glob("*.jpg"))
    cdata, coff = _encode((cv2.imread(str(f)) for f in chips), ".jpg", (cv2.IMWRITE_JPEG_QUALITY, quality),
                          bgr=True)  # one chip in memory at a time
    np.savez(out / "utkface.npz", data=cdata, offsets=coff, names=np.array([f.name for f in chips]))
    shutil.copy(packed / LANDMARKS, out / LANDMARKS)
    with np.load(packed / LANDMARKS) as z:
        chip_lms = dict(zip(z["names"].tolist(), z["landmarks"]))

    p = load_pack(packed / "deepfake_faces.npz")
    names, sources = p["names"], p["sources"]
    affine = np.full((len(sources), 3), np.nan)
    kept_video, skipped = [], 0
    for i, src in enumerate(sources):
        name = str(names[src])
        if name.startswith("utk/") and name[4:] in chip_lms:
            fit, res = _fit_crop(chip_lms[name[4:]], p["landmarks"][i])
            if res < 1.5:
                affine[i] = fit
                continue
            skipped += 1
        if not name.startswith("utk/"):
            kept_video.append(i)
    keep = np.isfinite(affine[:, 0])
    keep[kept_video] = True
    vid = np.array(kept_video, np.int64)
    vdata, voff = _encode(p["crops"][vid], ".jpg", (cv2.IMWRITE_JPEG_QUALITY, 95))
    np.savez_compressed(out / "deepfake.npz", size=p["crops"].shape[1], affine=affine[keep],
                        landmarks=p["landmarks"][keep], sources=sources[keep], names=names,
                        video_rows=np.searchsorted(np.nonzero(keep)[0], vid), video_data=vdata, video_offsets=voff)
    print(f"deepfake: {keep.sum()} of {len(keep)} crops ({len(vid)} from videos); "
          f"{skipped} UTKFace crops dropped (landmarks disagree by >= 1.5 px)")

    with np.load(packed / "deepfake_ffpp.npz") as z:
        fdata, foff = _encode(z["images"], ".jpg", (cv2.IMWRITE_JPEG_QUALITY, 95))
        np.savez(out / "ffpp.npz", data=fdata, offsets=foff, labels=z["labels"], types=z["types"], files=z["files"])
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {total / 2**20:.1f} MiB ({len(chips)} chips at JPEG q{quality})")


def unpack(src: Path, packed: Path) -> None:
    packed.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / LANDMARKS, packed / LANDMARKS)
    with np.load(src / "utkface.npz") as z:  # one file travels (the limit counts each file's blocks)
        data, offsets, names = z["data"], z["offsets"], z["names"]  # z[key] re-reads the file each time
    (packed / "utkface").mkdir(exist_ok=True)
    for name, a, b in zip(names, offsets[:-1], offsets[1:]):
        (packed / "utkface" / str(name)).write_bytes(data[a:b].tobytes())
    with np.load(src / "ffpp.npz") as z:
        images = np.stack(_decode(z["data"], z["offsets"]))
        np.savez(packed / "deepfake_ffpp.npz", images=images, labels=z["labels"], types=z["types"], files=z["files"])
    with np.load(src / "deepfake.npz") as z:
        d = {k: z[k] for k in z.files}
    size, n = int(d["size"]), len(d["sources"])
    crops = np.zeros((n, size, size, 3), np.uint8)
    for row, im in zip(d["video_rows"], _decode(d["video_data"], d["video_offsets"])):
        crops[row] = im
    for i in np.nonzero(np.isfinite(d["affine"][:, 0]))[0]:
        s, x0, y0 = d["affine"][i]
        chip = cv2.cvtColor(cv2.imread(str(packed / "utkface" / str(d["names"][d["sources"][i]])[4:])), cv2.COLOR_BGR2RGB)
        m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
        crops[i] = cv2.warpAffine(chip, m, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    tmp = packed / "deepfake_faces.tmp.npz"
    np.savez(tmp, crops=crops, landmarks=d["landmarks"], sources=d["sources"], names=d["names"])
    os.replace(tmp, packed / "deepfake_faces.npz")
    print(f"unpacked {n} face crops and {len(images)} ffpp crops into {packed}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["pack", "unpack"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--packed", type=Path, default=ROOT / "packed")
    ap.add_argument("--quality", type=int, default=62, help="JPEG quality of the chips (62: 45 MB)")
    a = ap.parse_args()
    if a.action == "pack":
        pack(a.folder, a.data, a.quality, a.packed)
    else:
        unpack(a.folder, a.packed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
