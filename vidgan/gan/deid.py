"""GAN de-identification: a generator that paints a *different* face into an aligned face crop.

The face is aligned by its 5 MTCNN landmarks (`faces/align.py`) onto a canonical square crop. In that
frame a fixed ellipse — brows, eyes, nose, cheeks, mouth: what identifies a person — is the
*interior*. The generator sees only

    the crop with the interior set to 0   (pose context: hair, jaw, ears, light, background)
    the interior mask                     (where to paint)
    5 landmark heatmaps                   (where the eyes, nose and mouth corners are: pose, expression)
    a latent identity code z (64-d)       (who the fake person is; FiLM at every decoder level)

and its output is composited: `soft * G + (1 - soft) * crop`, where `soft` is 1 on the whole
interior and fades to 0 just outside it. Because the masked input is exactly 0 inside and
`1 - soft` is exactly 0 there too, no pixel of the interior can reach the output
(tests/test_deid.py changes those pixels and checks the output is bit-identical).

The discriminator (PatchGAN from `nets.py`) judges the composite together with the mask.
Training (`deid_train.py`): adversarial + context reconstruction (L1 outside the interior) +
perceptual (the project's face-attribute network) + mode seeking (different z -> different faces).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..faces.align import template_points
from .translator import find_model, resolve_device

FORMAT = "vidgan-deid/1"
N_LANDMARKS = 5

# The identity-bearing interior, an ellipse in the *margin 0* canonical frame (fractions of the crop
# side; eyes at y 0.21, mouth corners at y 0.68 — see align.TEMPLATE): forehead to the chin, cheek to
# cheek. The jaw outline, ears, hair and the top of the crop stay as context.
# Sized by its ceiling (`benchmarks/bench_deid.py --donors`: a real, different person pasted inside,
# the best any generator can do): with the earlier (0.50, 0.44) / (0.42, 0.47), dlib still matched
# expressive_woman.mp4 to herself on 6 of 10 faces — her forehead, brows' surroundings and face outline
# were enough; (0.47) / (0.48, 0.52) left 2 of 10; this one 0 (docs/benchmarks.md).
INTERIOR_CENTER = (0.50, 0.46)
INTERIOR_AXES = (0.48, 0.54)
INTERIOR_FEATHER = 0.08  # soft band *outside* the ellipse, fraction of its axes


# ------------------------------------------------------------------------------------- geometry


def interior_masks(size: int, margin: float, center: tuple[float, float] = INTERIOR_CENTER,
                   axes: tuple[float, float] = INTERIOR_AXES) -> tuple[np.ndarray, np.ndarray]:
    """(hard, soft) float32 size x size masks in the crop with `margin`. hard: 1 on the interior,
    exactly 0 elsewhere. soft: 1 wherever hard is 1, fading to 0 over the band outside."""
    k = 1.0 + 2.0 * margin
    cx, cy = [(c + margin) / k * size for c in center]
    ax, ay = [a / k * size for a in axes]
    c = np.arange(size, dtype=np.float32) + 0.5
    r = np.sqrt(((c[None, :] - cx) / ax) ** 2 + ((c[:, None] - cy) / ay) ** 2)
    hard = (r <= 1.0).astype(np.float32)
    soft = np.clip((1.0 + INTERIOR_FEATHER - r) / INTERIOR_FEATHER, 0.0, 1.0).astype(np.float32)
    soft[hard > 0] = 1.0
    return hard, soft


def heatmaps(points: torch.Tensor, size: int, sigma: float | None = None) -> torch.Tensor:
    """N,5,2 landmark positions (crop pixels) -> N,5,size,size Gaussian heatmaps in [0, 1]."""
    sigma = sigma or size / 32.0
    c = torch.arange(size, device=points.device, dtype=torch.float32)
    dx = (c.view(1, 1, 1, size) - points[..., 0].float().view(*points.shape[:2], 1, 1)) ** 2
    dy = (c.view(1, 1, size, 1) - points[..., 1].float().view(*points.shape[:2], 1, 1)) ** 2
    return torch.exp(-(dx + dy) / (2 * sigma ** 2))


def canonical_points(size: int, margin: float) -> np.ndarray:
    return template_points(size, margin).astype(np.float32)


# ------------------------------------------------------------------------------------- networks


class FiLM(nn.Module):
    """Instance norm, then a per-channel scale and shift predicted from z (AdaIN-style)."""

    def __init__(self, ch: int, z_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(ch, affine=False)
        self.fc = nn.Linear(z_dim, 2 * ch)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        g, b = self.fc(z).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return self.norm(x) * (1 + g) + b


class ResFiLM(nn.Module):
    def __init__(self, ch: int, z_dim: int) -> None:
        super().__init__()
        self.c1, self.f1 = nn.Conv2d(ch, ch, 3, 1, 1), FiLM(ch, z_dim)
        self.c2, self.f2 = nn.Conv2d(ch, ch, 3, 1, 1), FiLM(ch, z_dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.f1(self.c1(x), z))
        return x + self.f2(self.c2(h), z)


@dataclass(frozen=True)
class DeidArch:
    size: int = 128       # crop side (>= 128 for real use; tests use 32-64)
    margin: float = 0.1   # context added on every side of the UTKFace framing (align.template_points)
    ngf: int = 32
    n_down: int = 4
    n_res: int = 2
    z_dim: int = 64
    interior_center: tuple[float, float] = INTERIOR_CENTER  # saved with the model: its mask never changes
    interior_axes: tuple[float, float] = INTERIOR_AXES


class DeidGenerator(nn.Module):
    """Encoder (stride-2 convs) -> FiLM residual blocks -> decoder (upsample + conv, U-Net skips,
    FiLM from z at every level) -> tanh. Inputs: 3 masked RGB + 1 mask + 5 heatmaps = 9 channels."""

    def __init__(self, arch: DeidArch = DeidArch()) -> None:
        super().__init__()
        self.arch = arch
        hard, soft = interior_masks(arch.size, arch.margin, tuple(arch.interior_center), tuple(arch.interior_axes))
        self.register_buffer("hard", torch.from_numpy(hard)[None, None], persistent=False)
        self.register_buffer("soft", torch.from_numpy(soft)[None, None], persistent=False)
        ch = [min(arch.ngf * 2 ** i, arch.ngf * 8) for i in range(arch.n_down + 1)]
        self.inp = nn.Sequential(nn.Conv2d(3 + 1 + N_LANDMARKS, ch[0], 5, 1, 2), nn.LeakyReLU(0.2, True))
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1), nn.InstanceNorm2d(ch[i + 1]),
                                                nn.LeakyReLU(0.2, True)) for i in range(arch.n_down))
        self.res = nn.ModuleList(ResFiLM(ch[-1], arch.z_dim) for _ in range(arch.n_res))
        self.up = nn.ModuleList(nn.Conv2d(ch[i + 1] + ch[i], ch[i], 3, 1, 1) for i in reversed(range(arch.n_down)))
        self.up_film = nn.ModuleList(FiLM(ch[i], arch.z_dim) for i in reversed(range(arch.n_down)))
        self.out = nn.Conv2d(ch[0], 3, 3, 1, 1)

    def forward(self, x: torch.Tensor, heat: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: N,3,S,S crop in [-1, 1] (the interior may hold anything: it is cut off here);
        heat: N,5,S,S; z: N,z_dim. Returns (raw generator output, composite)."""
        hard = self.hard.to(x.dtype).expand(x.shape[0], 1, -1, -1)
        soft = self.soft.to(x.dtype)
        h = self.inp(torch.cat([x * (1 - hard), hard, heat.to(x.dtype)], 1))
        skips = [h]
        for d in self.down:
            h = d(h)
            skips.append(h)
        for r in self.res:
            h = r(h, z)
        for i, (conv, film) in enumerate(zip(self.up, self.up_film)):
            skip = skips[-2 - i]
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = F.relu(film(conv(torch.cat([h, skip], 1)), z))
        raw = torch.tanh(self.out(h))
        return raw, soft * raw + (1 - soft) * x


# ------------------------------------------------------------------------------------ save/load


def save_deid(path: str | os.PathLike, net: DeidGenerator, meta: dict, half: bool = False) -> None:
    """`half`: store the weights as float16 (shipped models; loading converts them back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save({"format": FORMAT, "arch": asdict(net.arch), "state_dict": state, "meta": dict(meta)}, tmp)
    os.replace(tmp, path)


def find_deid(name_or_path: str) -> Path:
    """A generator file, a folder holding generator.pt, or the name of a folder in models/."""
    p = Path(name_or_path)
    return find_model(name_or_path, missing=(
        f"no de-identification model {name_or_path!r} (looked for a file, {p / 'generator.pt'} and "
        f"models/{name_or_path}/generator.pt); train one with `vidgan train deid` and pass "
        f"--gan-model runs/.../generator.pt"))


def load_deid(name_or_path: str, device: str | torch.device = "auto") -> DeidGenerator:
    path = find_deid(name_or_path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a vidgan de-identification generator ({FORMAT})")
    arch = dict(ckpt["arch"])
    for k in ("interior_center", "interior_axes"):
        if k in arch:
            arch[k] = tuple(arch[k])
    net = DeidGenerator(DeidArch(**arch))
    net.load_state_dict(ckpt["state_dict"])
    net.meta = ckpt.get("meta", {})
    return net.to(resolve_device(device)).eval()
