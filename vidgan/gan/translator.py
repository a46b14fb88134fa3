"""A trained generator ready to apply: the one contract between training (vidgan.gan) and its users
(`vidgan translate`, GAN de-identification, the GUI).

Checkpoint format (`torch.save` of a dict, loaded with weights_only=True):
    {"format": "vidgan-generator/1",
     "arch": str, "arch_kwargs": dict,        # build_generator(arch, **arch_kwargs) rebuilds the net
     "state_dict": dict,                      # generator weights only (no optimiser, no D)
     "meta": {"name": str, "task": "pix2pix"|"cyclegan"|"sr", "input_mode": "rgb"|"gray"|"labels",
              "scale": int, "size": int, "faces": bool, ...free-form extras: data, metrics}}
Training checkpoints (with optimisers, for --resume) are a different, larger file; export the
generator with `save_translator` for shipping.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..faces.detector import resolve_device as device_name
from .amp import autocast

FORMAT = "vidgan-generator/1"
TASKS = ("pix2pix", "cyclegan", "sr")
INPUT_MODES = ("rgb", "gray", "labels")


def models_dir() -> Path:
    """Where shipped models live: $VIDGAN_MODELS, else `models/` at the top of the source tree."""
    env = os.environ.get("VIDGAN_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The detector's device rule ("auto": CUDA when usable), as a torch.device."""
    if isinstance(device, torch.device):
        return device
    return torch.device(device_name(device))


@dataclass
class Translator:
    """A generator in eval mode on its device. Call it on N,3,H,W float RGB in [0, 1]; get
    N,3,H*scale,W*scale float RGB in [0, 1] back (no grad). Input conversion (to gray for `gray`
    models, to [-1, 1]) happens here, so callers only ever deal with RGB in [0, 1]. `bf16`: the
    network in bfloat16 where the device computes it natively (`gan/amp.py`; the shipped models'
    outputs stay within 55-78 dB PSNR of float32's, at 1.4-2x the speed on a 2-core AVX-512 BF16 CPU)."""

    net: torch.nn.Module
    name: str
    task: str
    input_mode: str
    scale: int
    size: int
    faces: bool
    device: torch.device
    meta: dict[str, Any] = field(default_factory=dict)
    bf16: bool = True
    ov: Any = field(default=None, repr=False)  # the network on OpenVINO's CPU plugin (gan/ovgen.py), else None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mode == "gray":
            w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True).expand(-1, 3, -1, -1)
        return x * 2 - 1

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N,3,H,W, got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        if self.ov is not None and x.shape[-2] * x.shape[-1] <= OV_MAX_PIXELS:
            y = self.ov(self.prepare(x))
        else:
            with autocast(self.device, self.bf16):
                y = self.net(self.prepare(x))
        return ((y.float() + 1) / 2).clamp_(0, 1)


def save_translator(path: str | os.PathLike, net: torch.nn.Module, arch: str, arch_kwargs: dict,
                    meta: dict, half: bool = False) -> None:
    """half=True stores floating-point weights as float16 (half the file; shipped models must stay
    under 25 MB). Loading casts them back to float32, so users never see the difference."""
    missing = {"name", "task", "input_mode", "scale", "size", "faces"} - set(meta)
    if missing:
        raise ValueError(f"generator meta lacks {sorted(missing)}")
    if meta["task"] not in TASKS or meta["input_mode"] not in INPUT_MODES:
        raise ValueError(f"bad task/input_mode: {meta['task']!r}/{meta['input_mode']!r}")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = f"{path}.part"
    torch.save({"format": FORMAT, "arch": arch, "arch_kwargs": dict(arch_kwargs), "state_dict": state,
                "meta": dict(meta)}, tmp)
    os.replace(tmp, path)


def find_model(name_or_path: str, missing: str | None = None) -> Path:
    """A generator file, a folder holding generator.pt, or the name of a folder in models/
    (models/NAME/generator.pt). `missing`: the error message when none exists (default: list the
    models there are)."""
    p = Path(name_or_path)
    for cand in (p, p / "generator.pt", models_dir() / name_or_path / "generator.pt"):
        if cand.is_file():
            return cand
    if missing is None:
        known = sorted(d.name for d in models_dir().glob("*") if (d / "generator.pt").is_file())
        missing = (f"no model {name_or_path!r}: not a file, and not one of models/ "
                   f"({', '.join(known) or 'none trained yet'})")
    raise FileNotFoundError(missing)


BACKENDS = ("auto", "openvino", "torch")
# Pictures up to this size run on OpenVINO, larger ones in PyTorch: OpenVINO ran face crops 1.3-1.9x
# faster (64-128 px; gan/ovgen.py) but facades' U-Net on 256-512 px tiles 1.4-1.7x slower (2-core CPU).
OV_MAX_PIXELS = 128 * 128


def load_translator(name_or_path: str, device: str | torch.device = "auto", bf16: bool = True,
                    backend: str = "auto") -> Translator:
    """The generator `name_or_path` names (see `find_model`) ready to run on `device`. `backend`:
    on the CPU, "auto" runs a face model's network (meta "faces") on OpenVINO where it is installed,
    for pictures up to OV_MAX_PIXELS (gan/ovgen.py), "openvino" does so for any model, "torch" keeps
    PyTorch; a GPU always runs PyTorch. `bf16`: bfloat16 where the device computes it natively
    (`gan/amp.py`)."""
    from .nets import build_generator

    if backend not in BACKENDS:
        raise ValueError(f"unknown generator backend {backend!r} (one of {', '.join(BACKENDS)})")

    path = find_model(name_or_path)
    data = path.read_bytes()  # read once: loaded here, hashed for OpenVINO's cache below
    ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a vidgan generator file ({FORMAT})")
    net = build_generator(ckpt["arch"], **ckpt["arch_kwargs"])
    net.load_state_dict(ckpt["state_dict"])
    dev = resolve_device(device)
    net.to(dev).eval()
    ov = None
    if dev.type == "cpu" and (backend == "openvino" or (backend == "auto" and ckpt["meta"].get("faces"))):
        from .ovgen import openvino_generator

        size, multiple = int(ckpt["meta"]["size"]), int(getattr(net, "multiple", 0) or 1)
        digest = hashlib.sha256(data).hexdigest()
        ov = openvino_generator(net, digest, bf16, -(-size // multiple) * multiple)  # traced at its training size
        if ov is None and backend == "openvino":
            raise ValueError(f"{path}: could not run on OpenVINO (is it installed? `pip install openvino`)")
    elif backend == "openvino":
        raise ValueError("the openvino generator backend runs on the CPU only")
    m = ckpt["meta"]
    return Translator(net=net, name=m["name"], task=m["task"], input_mode=m["input_mode"], scale=int(m["scale"]),
                      size=int(m["size"]), faces=bool(m["faces"]), device=dev, meta=m, bf16=bf16, ov=ov)
