"""Fakes rendered by the project's own generators: a neural re-rendering of each real crop.

Self-blends and swaps (`pseudofake`) reuse real pixels, so their faces never carry the texture of a
network's output. Real manipulations do: Deepfakes decodes the face from a 64-256 px autoencoder,
NeuralTextures renders it with a network, FaceSwap and Face2Face re-render it from a 3D model. This
module runs every packed real crop once through one of the shipped generators (the CycleGAN age
translators, the 4x super-resolution GAN from a quarter-size copy, the pix2pix colouriser from grey)
and caches the outputs, resized back to the crop, next to the face pack. The dataset blends such a
rendering into its own real crop inside a face mask (`pseudofake.gan_blend`), so the fake differs
from its real by a generator's texture, its lost detail and its colour drift, and by nothing else.

Which generator renders crop *i* is fixed by the seed (a permutation over the model list), so the
cache is reproducible and every model covers about the same share of people.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import torch

DEFAULT_MODELS = ("face-age", "face-age-young", "face-sr4x", "face-colorize")


def model_list(spec: str) -> list[str]:
    """"a,b" -> ["a", "b"]; "" -> the default generators."""
    return [m.strip() for m in spec.split(",") if m.strip()] or list(DEFAULT_MODELS)


def default_gan_pack_path(pack_path: Path) -> Path:
    return pack_path.parent / "deepfake_gan.npz"


def render(translator, crops: np.ndarray) -> np.ndarray:
    """N,S,S,3 uint8 crops -> the generator's rendering of each, N,S,S,3 uint8.

    A super-resolution model gets the crop at 1/scale of its size (so it invents the detail back); a
    same-size translator gets the crop at its training size. The output is resized back to S."""
    s = crops.shape[1]
    n_in = max(8, s // translator.scale) if translator.scale > 1 else translator.size
    small = np.stack([cv2.resize(c, (n_in, n_in), interpolation=cv2.INTER_AREA) for c in crops])
    x = torch.from_numpy(small).permute(0, 3, 1, 2).float().div_(255.0)
    y = translator(x).mul_(255.0).round_().clamp_(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    interp = cv2.INTER_AREA if y.shape[1] > s else cv2.INTER_CUBIC
    return np.stack([cv2.resize(o, (s, s), interpolation=interp) for o in y])


def pack_gan(out_path: Path, crops: np.ndarray, models: Sequence[str] = DEFAULT_MODELS, seed: int = 0,
             device: str = "auto", batch: int = 64,
             progress: Optional[Callable[[str], None]] = None) -> Path:
    """Render every crop with one of `models` and save images (N,S,S,3 uint8), `model` (N, index into
    `models`) and `models` (names) to `out_path` (atomically)."""
    from ..gan.translator import load_translator

    if not models:
        raise ValueError("no generator given for GAN fakes")
    n = len(crops)
    which = np.random.default_rng([seed, 77]).permutation(n) % len(models)
    images = np.empty_like(crops)
    for k, name in enumerate(models):
        tr = load_translator(name, device)
        idx = np.nonzero(which == k)[0]
        for start in range(0, len(idx), batch):
            sel = idx[start:start + batch]
            images[sel] = render(tr, crops[sel])
        if progress:
            progress(f"GAN fakes: {name} rendered {len(idx)} crops")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, model=which.astype(np.int16), models=np.array(list(models)))
    os.replace(tmp, out_path)
    return out_path


def load_gan_pack(path: Path, n_crops: int, models: Sequence[str]) -> np.ndarray:
    """The cached renderings, checked against the face pack and model list they must belong to."""
    with np.load(path) as z:
        images, names = z["images"], [str(m) for m in z["models"]]
    if len(images) != n_crops or names != list(models):
        raise ValueError(f"{path} was rendered for another face pack or model list "
                         f"({len(images)} crops by {names}); delete it to render again")
    return images
