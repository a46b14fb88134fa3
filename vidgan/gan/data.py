"""Image datasets for the GAN trainers: every dataset is decoded once into a uint8 tensor in memory
(N,3,S,S) and batches are drawn with an explicit `torch.Generator`. No DataLoader workers, no hidden
RNG: the generator's state goes into the checkpoint, so a resumed run draws exactly the batches an
uninterrupted one would (see train.py). The datasets here are small (hundreds to a few thousand
images at 128 px), so holding them in memory is cheaper than decoding JPEGs every step.

Kinds of pairs (A = input, B = target; tensors in [-1, 1]):
  - side-by-side files (pix2pix facades: photo left, labels right; `--direction` picks which is A),
  - two paired folders (same file names),
  - two unpaired folders or one folder split by a rule (CycleGAN; UTKFace young < 30 vs old >= 60),
  - pairs made on the fly from one folder: lowres->highres (SR), gray->colour, edges->photo.

Held-out split: a file belongs to `val` when a hash of its name falls below `val_fraction`, so the
split is the same on every machine and no evaluation ever sees a training face. Folders with their
own train/ and val/ are used as they are, minus val files byte-identical to a training file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm")
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # the same weights Translator.prepare uses for `gray` models

# ------------------------------------------------------------------------------------- file lists


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files


def is_val(name: str, val_fraction: float) -> bool:
    """Deterministic held-out split by a hash of the file name (not of its path or list order)."""
    h = int.from_bytes(hashlib.sha1(Path(name).name.encode()).digest()[:8], "big")
    return h / 2 ** 64 < val_fraction


def split_files(files: Sequence[Path], split: str, val_fraction: float) -> list[Path]:
    """`train`, `val` or `all`. When the folder already has train/ and val/ sub-folders (facades),
    pass the sub-folder instead and split='all'."""
    if split == "all":
        return list(files)
    if split not in ("train", "val"):
        raise ValueError(f"split must be train, val or all, not {split!r}")
    return [f for f in files if is_val(f.name, val_fraction) == (split == "val")]


UTK_NAME = re.compile(r"^(\d+)_(\d)_(\d)_")


def utk_attributes(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from a UTKFace file name `age_gender_race_date.jpg.chip.jpg`; None when
    the name is malformed (a few are: they are skipped wherever labels matter)."""
    m = UTK_NAME.match(Path(name).name)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def utk_labels(name: str) -> tuple[int, int] | None:
    """(age, gender) from a UTKFace file name (`utk_attributes` without the race)."""
    a = utk_attributes(name)
    return a[:2] if a else None


def age_filter(lo: int | None = None, hi: int | None = None) -> Callable[[Path], bool]:
    """Keep UTKFace files with lo <= age < hi (e.g. young: hi=30, old: lo=60)."""
    def keep(p: Path) -> bool:
        lab = utk_labels(p.name)
        return lab is not None and (lo is None or lab[0] >= lo) and (hi is None or lab[0] < hi)
    return keep


# ------------------------------------------------------------------------------------------ decode


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


def resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    if im.shape[1] == w and im.shape[0] == h:
        return im
    interp = cv2.INTER_AREA if im.shape[1] > w else cv2.INTER_CUBIC
    return cv2.resize(im, (w, h), interpolation=interp)


def to_tensor(ims: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).contiguous()


def load_folder(files: Sequence[Path], size: int) -> torch.Tensor:
    """Decode and resize to size x size: uint8 N,3,S,S."""
    return to_tensor([resize(read_rgb(f), size, size) for f in files])


def load_side_by_side(files: Sequence[Path], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split each W x H image into its left and right halves, each resized to size x size."""
    left, right = [], []
    for f in files:
        im = read_rgb(f)
        w = im.shape[1] // 2
        left.append(resize(im[:, :w], size, size))
        right.append(resize(im[:, w:2 * w], size, size))
    return to_tensor(left), to_tensor(right)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]"""
    return x.float().div_(127.5).sub_(1)


def to_gray3(x: torch.Tensor) -> torch.Tensor:
    """RGB -> luma replicated in 3 channels (works on [-1, 1] floats: the weights sum to 1)."""
    w = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()


def edges_of(x: torch.Tensor) -> torch.Tensor:
    """Canny edge maps of uint8 images, as white-on-black 3-channel uint8 images."""
    import cv2

    out = []
    for im in x.permute(0, 2, 3, 1).numpy():
        e = cv2.Canny(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), 100, 200)
        out.append(np.repeat(e[:, :, None], 3, axis=2))
    return to_tensor(out)


def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The SR degradation: antialiased bicubic downscale by `scale` (float in, float out)."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True,
                         align_corners=False).clamp_(-1, 1)


# ------------------------------------------------------------------------------------------ datasets


@dataclass
class PairSet:
    """Images held in memory; `sample` draws a batch (A, B) in [-1, 1] on `device`.

    paired: A[i] goes with B[i]; unpaired: A and B are drawn independently (CycleGAN).
    make_a: how A is made from B when A is None (SR: downsample; gray; edges are precomputed).
    crop: random crop side (in B pixels) for training; flip: random horizontal flips
    (applied to both sides of a pair alike)."""

    a: torch.Tensor | None
    b: torch.Tensor
    paired: bool = True
    make_a: str = "none"          # none | sr | gray
    scale: int = 1
    crop: int | None = None
    flip: bool = True
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.b) if self.a is None or self.paired else min(len(self.a), len(self.b))

    def _crop(self, x: torch.Tensor, ij: tuple[int, int], side: int) -> torch.Tensor:
        i, j = ij
        return x[..., i:i + side, j:j + side]

    def sample(self, n: int, gen: torch.Generator, device: torch.device | str = "cpu",
               train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        ib = torch.randint(len(self.b), (n,), generator=gen)
        if self.a is None or self.paired:
            ia = ib
        else:
            ia = torch.randint(len(self.a), (n,), generator=gen)
        return self.batch(ia, ib, gen if train else None, device)

    def fixed(self, n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """n items spread evenly over the set (file names sort by age for UTKFace: a spread shows
        all ages), uncropped and unflipped: for sample grids."""
        idx = torch.linspace(0, len(self) - 1, min(n, len(self))).round().long()
        return self.batch(idx, idx, None, device)

    def batch(self, ia: torch.Tensor, ib: torch.Tensor, gen: torch.Generator | None,
              device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        b = to_float(self.b[ib])
        a = None if self.a is None else to_float(self.a[ia])
        if gen is not None:
            if self.crop and self.crop < b.shape[-1]:
                side = self.crop
                i, j = (int(v) for v in torch.randint(b.shape[-1] - side + 1, (2,), generator=gen))
                if self.scale > 1:  # align the crop to the LR grid
                    i, j = i - i % self.scale, j - j % self.scale
                b = self._crop(b, (i, j), side)
                if a is not None:
                    a = self._crop(a, (i, j), side) if self.paired else \
                        self._crop(a, tuple(int(v) for v in torch.randint(a.shape[-1] - side + 1, (2,),
                                                                           generator=gen)), side)
            if self.flip:
                fb = torch.rand(len(b), generator=gen) < 0.5
                b[fb] = b[fb].flip(-1)
                if a is not None:
                    fa = fb if self.paired else torch.rand(len(a), generator=gen) < 0.5
                    a[fa] = a[fa].flip(-1)
        if self.make_a == "sr":
            a = downsample(b, self.scale)
        elif self.make_a == "gray":
            a = to_gray3(b)
        assert a is not None
        return a.to(device), b.to(device)


# ---------------------------------------------------------------------------------- dataset recipes


@dataclass
class DataSpec:
    """What the CLI describes: one of the recipes below, and the folders it reads."""

    kind: str                      # side-by-side | paired | unpaired | sr | gray | edges | age
    root: str                      # folder (or folder A for paired/unpaired)
    root_b: str | None = None      # folder B for paired/unpaired
    size: int = 128
    crop: int | None = None
    scale: int = 4
    direction: str = "BtoA"        # side-by-side: AtoB = left->right; facades want labels(right)->photo(left)
    val_fraction: float = 0.1
    limit: int | None = None       # at most this many training images (CPU budgets)
    young_max: int = 30
    old_min: int = 60


def _digest(path: Path) -> bytes:
    return hashlib.sha1(path.read_bytes()).digest()


def _subdir(root: Path, split: str) -> Path | None:
    d = root / split
    return d if d.is_dir() else None


def _files(root: str | Path, split: str, val_fraction: float, keep: Callable[[Path], bool] | None = None,
           limit: int | None = None) -> list[Path]:
    """Files of a split: the train/ or val/ sub-folder when it exists, else the hash split."""
    root = Path(root)
    sub = _subdir(root, split)
    files = list_images(sub) if sub is not None else split_files(list_images(root), split, val_fraction)
    if split == "val" and sub is not None and _subdir(root, "train") is not None:
        # a val/ folder may repeat training images (the shared pairs/facades val/ holds all 100 of
        # train/): evaluation must not see them, so drop val files whose bytes equal a training file
        seen = {_digest(f) for f in list_images(root / "train")}
        files = [f for f in files if _digest(f) not in seen]
    if keep is not None:
        files = [f for f in files if keep(f)]
    if limit is not None and split == "train" and len(files) > limit:
        # a hash-ordered subset: taking the first names would take the ages that sort first (1_, 10_, ...)
        files = sorted(sorted(files, key=lambda f: hashlib.sha1(f.name.encode()).digest())[:limit])
    if not files:
        raise FileNotFoundError(f"no {split} images in {root}")
    return files


def build_dataset(spec: DataSpec, split: str = "train") -> PairSet:
    train = split == "train"
    crop = spec.crop if train else None
    limit = spec.limit
    if spec.kind == "side-by-side":
        files = _files(spec.root, split, spec.val_fraction, limit=limit)
        left, right = load_side_by_side(files, spec.size)
        a, b = (left, right) if spec.direction == "AtoB" else (right, left)
        return PairSet(a, b, crop=crop, flip=train, names=tuple(f.name for f in files))
    if spec.kind == "paired":
        if spec.root_b is None:
            raise ValueError("paired folders need root_b")
        fa = _files(spec.root, split, spec.val_fraction, limit=limit)
        by_name = {f.name: f for f in list_images(spec.root_b)}
        fa = [f for f in fa if f.name in by_name]
        if not fa:
            raise FileNotFoundError(f"no file names in common between {spec.root} and {spec.root_b}")
        return PairSet(load_folder(fa, spec.size), load_folder([by_name[f.name] for f in fa], spec.size),
                       crop=crop, flip=train, names=tuple(f.name for f in fa))
    if spec.kind in ("unpaired", "age"):
        if spec.kind == "age":
            fa = _files(spec.root, split, spec.val_fraction, age_filter(hi=spec.young_max), limit)
            fb = _files(spec.root, split, spec.val_fraction, age_filter(lo=spec.old_min), limit)
        else:
            if spec.root_b is None:
                raise ValueError("unpaired folders need root_b")
            fa = _files(spec.root, split, spec.val_fraction, limit=limit)
            fb = _files(spec.root_b, split, spec.val_fraction, limit=limit)
        return PairSet(load_folder(fa, spec.size), load_folder(fb, spec.size), paired=False, crop=crop,
                       flip=train, names=tuple(f.name for f in fb))
    if spec.kind in ("sr", "gray", "edges"):
        files = _files(spec.root, split, spec.val_fraction, limit=limit)
        b = load_folder(files, spec.size)
        names = tuple(f.name for f in files)
        if spec.kind == "edges":
            return PairSet(edges_of(b), b, crop=crop, flip=train, names=names)
        return PairSet(None, b, make_a=spec.kind, scale=spec.scale if spec.kind == "sr" else 1,
                       crop=crop, flip=train, names=names)
    raise ValueError(f"unknown dataset kind {spec.kind!r}")
