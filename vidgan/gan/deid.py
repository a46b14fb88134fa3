"""GAN de-identification: a generator that paints a *different* face into an aligned face crop.

The face is aligned by its 5 MTCNN landmarks (`faces/align.py`) onto a canonical square crop. In that
frame a fixed ellipse — forehead, brows, eyes, nose, cheeks, mouth, chin: what identifies a person —
is the *interior*. The generator sees only

    the crop with the interior set to 0   (pose context: hair, jaw, ears, light, background)
    the interior mask                     (where to paint)
    5 landmark heatmaps                   (where the eyes, nose and mouth corners are: pose, expression)
    a latent identity code z (64-d)       (who the fake person is; FiLM at every decoder level)
    optionally a prototype's interior     (a bank entry: the average of >= 6 similar training faces,
                                           chosen from the context and the passcode; see DeidGenerator)

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
# were enough; (0.47) / (0.48, 0.52) left 2 of 10; this one 0. Thin evidence (one donor per clip;
# held-out stills showed no difference), so the choice leans to covering more (docs/benchmarks.md).
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


def context_ring(size: int, margin: float, center: tuple[float, float] = INTERIOR_CENTER,
                 axes: tuple[float, float] = INTERIOR_AXES, scale: float = 1.25) -> np.ndarray:
    """float32 mask of the context just around the interior (the ellipse grown `scale` times, minus
    the interior): skin, hairline, jaw and light next to the face — what prototypes are chosen by and
    colours are matched on, never the interior itself."""
    hard = interior_masks(size, margin, center, axes)[0]
    return interior_masks(size, margin, center, tuple(scale * a for a in axes))[0] * (1 - hard)


def heatmaps(points: torch.Tensor, size: int, sigma: float | None = None) -> torch.Tensor:
    """N,5,2 landmark positions (crop pixels) -> N,5,size,size Gaussian heatmaps in [0, 1]."""
    sigma = sigma or size / 32.0
    c = torch.arange(size, device=points.device, dtype=torch.float32)
    k = -1.0 / (2 * sigma ** 2)  # separable: exp(k dx^2) exp(k dy^2), 2*size exponentials per point, not size^2
    gx = torch.exp(k * (c.view(1, 1, 1, size) - points[..., 0].float().view(*points.shape[:2], 1, 1)) ** 2)
    gy = torch.exp(k * (c.view(1, 1, size, 1) - points[..., 1].float().view(*points.shape[:2], 1, 1)) ** 2)
    return gy * gx


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
    n_proto: int = 0      # identity prototypes in the bank (0: no bank; z alone decides the fake)
    proto_size: int = 64  # side of a stored prototype (upsampled to `size` when used)
    proto_fit: bool = False  # recolour the prototype to the face's context first (`fit_prototypes`)


class DeidGenerator(nn.Module):
    """Encoder (stride-2 convs) -> FiLM residual blocks -> decoder (upsample + conv, U-Net skips,
    FiLM from z at every level) -> tanh. Inputs: 3 masked RGB + 1 mask + 5 heatmaps = 9 channels,
    plus, with a prototype bank (`arch.n_proto`), 3 more: the interior of the track's prototype.

    The prototype bank: each entry is the average of several (>= 6) aligned training faces that look
    alike (k-means clusters, `deid_train.build_bank`), so it is nobody in particular (k-Same
    de-identification, Newton et al. 2005) but it has a definite face structure. It gives the fake its
    identity; the network paints it into the pose, expression and light of the context and adds
    detail; z varies what the prototype leaves open. Prototypes for a face are chosen by its *context*
    only (`candidates`), so the interior still never reaches the output."""

    def __init__(self, arch: DeidArch = DeidArch()) -> None:
        super().__init__()
        self.arch = arch
        hard, soft = interior_masks(arch.size, arch.margin, tuple(arch.interior_center), tuple(arch.interior_axes))
        self.register_buffer("hard", torch.from_numpy(hard)[None, None], persistent=False)
        self.register_buffer("soft", torch.from_numpy(soft)[None, None], persistent=False)
        ring = context_ring(arch.size, arch.margin, tuple(arch.interior_center), tuple(arch.interior_axes))
        self.register_buffer("ring", torch.from_numpy(ring)[None, None], persistent=False)
        if arch.n_proto:
            self.register_buffer("bank", torch.zeros(arch.n_proto, 3, arch.proto_size, arch.proto_size,
                                                     dtype=torch.uint8))
        self._bank_feats: torch.Tensor | None = None  # context features of the bank (derived, ~0.2 s on a CPU)
        ch = [min(arch.ngf * 2 ** i, arch.ngf * 8) for i in range(arch.n_down + 1)]
        in_ch = 3 + 1 + N_LANDMARKS + (3 if arch.n_proto else 0)
        self.inp = nn.Sequential(nn.Conv2d(in_ch, ch[0], 5, 1, 2), nn.LeakyReLU(0.2, True))
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1), nn.InstanceNorm2d(ch[i + 1]),
                                                nn.LeakyReLU(0.2, True)) for i in range(arch.n_down))
        self.res = nn.ModuleList(ResFiLM(ch[-1], arch.z_dim) for _ in range(arch.n_res))
        self.up = nn.ModuleList(nn.Conv2d(ch[i + 1] + ch[i], ch[i], 3, 1, 1) for i in reversed(range(arch.n_down)))
        self.up_film = nn.ModuleList(FiLM(ch[i], arch.z_dim) for i in reversed(range(arch.n_down)))
        self.out = nn.Conv2d(ch[0], 3, 3, 1, 1)

    # -- the prototype bank
    def context_features(self, x: torch.Tensor) -> torch.Tensor:
        """N,3,S,S crops in [-1, 1] -> N,D: the ring just outside the interior (skin, hairline, jaw,
        light) at 16 x 16. The interior is multiplied by 0 here: choosing a prototype never looks at it."""
        r = F.interpolate(x.float() * self.ring, size=(16, 16), mode="area")
        return r.flatten(1)

    def set_bank(self, bank: torch.Tensor) -> None:
        """Store the prototypes (n_proto,3,p,p uint8, RGB)."""
        self.bank.copy_(bank)
        self._bank_feats = None

    def _load_from_state_dict(self, *args, **kwargs):  # every load path replaces the bank: drop the cache
        self._bank_feats = None
        return super()._load_from_state_dict(*args, **kwargs)

    def prototypes(self, idx: torch.Tensor) -> torch.Tensor:
        """Bank entries `idx` as N,3,S,S in [-1, 1]."""
        p = self.bank[idx.to(self.bank.device)].float() / 127.5 - 1
        return F.interpolate(p, size=(self.arch.size, self.arch.size), mode="bilinear", align_corners=False)

    def fit_prototypes(self, proto: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Prototypes (N,3,S,S in [-1, 1]) recoloured for the faces `x` they go into: each channel is
        shifted so that the prototype's own context ring has the mean of x's ring (the skin and light
        around the face; the ring never includes the interior). A prototype is an average of other
        people, often of another skin tone or light than the face it replaces; unfitted, the
        generator either has to recolour it or paints a face that does not match its neck.
        Unchanged for a model trained without it (`arch.proto_fit` off)."""
        if not self.arch.proto_fit:
            return proto
        r = self.ring.to(torch.float32)
        n = r.sum().clamp(min=1.0)
        shift = ((x.float() - proto.float()) * r).sum((2, 3), keepdim=True) / n
        return (proto.float() + shift).clamp(-1, 1).to(proto.dtype)

    def candidates(self, x: torch.Tensor, m: int = 16) -> torch.Tensor:
        """N,m bank indices whose context is nearest to each crop's (nearest first)."""
        if self._bank_feats is None or self._bank_feats.device != x.device:
            self._bank_feats = self.context_features(self.prototypes(torch.arange(self.arch.n_proto))).to(x.device)
        d = torch.cdist(self.context_features(x), self._bank_feats)
        return d.topk(min(m, self.arch.n_proto), dim=1, largest=False).indices

    def forward(self, x: torch.Tensor, heat: torch.Tensor, z: torch.Tensor,
                proto: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: N,3,S,S crop in [-1, 1] (the interior may hold anything: it is cut off here);
        heat: N,5,S,S; z: N,z_dim; proto (with a bank): N,3,S,S prototype faces in [-1, 1], of which
        only the interior is used. Returns (raw generator output, composite)."""
        hard = self.hard.to(x.dtype).expand(x.shape[0], 1, -1, -1)
        soft = self.soft.to(x.dtype)
        parts = [x * (1 - hard), hard, heat.to(x.dtype)]
        if self.arch.n_proto:
            if proto is None:
                raise ValueError("this generator needs a prototype face (gan.deid.DeidGenerator.prototypes)")
            parts.append(self.fit_prototypes(proto, x).to(x.dtype) * hard)
        h = self.inp(torch.cat(parts, 1))
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
