"""benchmarks/device_pack.py: the training data for a lent GPU, packed under the upload limit and
unpacked there into exactly the caches the trainers read. Synthetic chips; no shared data needed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

from vidgan.deepfake.crop import crop_face

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("device_pack", ROOT / "benchmarks" / "device_pack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _chip(rng: np.random.Generator) -> np.ndarray:
    """A smooth 200 px picture (JPEG-friendly, so re-encoding changes it little)."""
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (200, 200), interpolation=cv2.INTER_CUBIC)


def test_pack_unpack_round_trip(tmp_path):
    dp = _module()
    rng = np.random.default_rng(0)
    data, packed, out, dest = tmp_path / "data", tmp_path / "packed", tmp_path / "devpack", tmp_path / "shm"
    (data / "faces" / "utkface").mkdir(parents=True)
    packed.mkdir()
    names, chips, lms = [], [], []
    for i in range(40):
        name = f"{20 + i}_0_0_x{i}.jpg.chip.jpg"
        chip = _chip(rng)
        cv2.imwrite(str(data / "faces" / "utkface" / name), chip[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
        names.append(name)
        chips.append(cv2.imread(str(data / "faces" / "utkface" / name))[..., ::-1])
        lms.append(np.array([[70, 80], [130, 80], [100, 110], [75, 140], [125, 140]], np.float32)
                   + rng.uniform(-5, 5, (5, 2)).astype(np.float32))
    np.savez(packed / dp.LANDMARKS, names=np.array(names), landmarks=np.stack(lms))
    # the deepfake pack: one crop per chip (the scoring recipe) and one crop from a "video"
    crops, crop_lms = [], []
    for chip, lm in zip(chips, lms):
        box = (lm[:, 0].min() - 25, lm[:, 1].min() - 35, lm[:, 0].max() + 25, lm[:, 1].max() + 20)
        c, l2 = crop_face(chip, box, 160, landmarks=lm)
        crops.append(c)
        crop_lms.append(l2)
    crops.append(_chip(rng)[:160, :160])
    crop_lms.append(crop_lms[0])
    pack_names = np.array(["utk/" + n for n in names] + ["video/clip.mp4"])
    np.savez(packed / "deepfake_faces.npz", crops=np.stack(crops), landmarks=np.stack(crop_lms),
             sources=np.arange(41), names=pack_names)
    ffpp = rng.integers(0, 256, (4, 160, 160, 3), dtype=np.uint8)
    np.savez(packed / "deepfake_ffpp.npz", images=ffpp, labels=np.array([0, 1, 0, 1]),
             types=np.array(["df", "df", "nt", "nt"]), files=np.array([f"f{i}.png" for i in range(4)]))

    dp.pack(out, data, 95, packed)
    assert sorted(os.listdir(out)) == sorted(["utkface.npz", dp.LANDMARKS, "deepfake.npz", "ffpp.npz"])
    dp.unpack(out, dest)

    assert sorted(os.listdir(dest / "utkface")) == sorted(names)
    with np.load(dest / "deepfake_faces.npz") as z:
        assert z["crops"].shape == (41, 160, 160, 3)
        assert np.array_equal(z["sources"], np.arange(41)) and list(z["names"]) == list(pack_names)
        diff = np.abs(z["crops"].astype(float) - np.stack(crops).astype(float)).mean(axis=(1, 2, 3))
    assert diff.max() < 3.0, diff  # re-cut from the re-encoded chips: the same crops, JPEG aside
    with np.load(dest / "deepfake_ffpp.npz") as z:
        assert z["images"].shape == ffpp.shape and list(z["labels"]) == [0, 1, 0, 1]
    with np.load(dest / dp.LANDMARKS) as z:
        assert list(z["names"]) == names
