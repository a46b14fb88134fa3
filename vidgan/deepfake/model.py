"""The classifier: a torchvision CNN trained from scratch (weights=None), one logit = "manipulated".

Input is N,3,S,S RGB in [0, 1] at the checkpoint's size (128 px by default); the network normalises
itself, so callers never deal with ImageNet statistics.

Checkpoint format (`torch.save` of a dict, loaded with weights_only=True):
    {"format": "vidgan-deepfake/1", "arch": str, "size": int, "margin": float,
     "state_dict": dict (float16 in shipped exports), "meta": dict (data, steps, metrics ...)}
Training checkpoints (`runs/.../last.pt`) hold that plus the optimiser state for --resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision

from .crop import MARGIN

FORMAT = "vidgan-deepfake/1"
ARCHS = ("resnet18", "resnet34", "efficientnet_b0", "efficientnet_b1")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Detector(torch.nn.Module):
    def __init__(self, arch: str = "resnet18"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
        self.arch = arch
        self.net = getattr(torchvision.models, arch)(weights=None, num_classes=1)
        # Auxiliary head on the stride-8 features: a map of where the face was blended (training only).
        self.map_head = torch.nn.Conv2d(128 if arch.startswith("resnet") else 40, 1, kernel_size=1)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, with_map: bool = False):
        """N,3,S,S in [0, 1] -> N logits (and N,1,S/8,S/8 blend-map logits when `with_map`)."""
        x = (x - self.mean) / self.std
        n = self.net
        if self.arch.startswith("resnet"):
            x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
            mid = n.layer2(n.layer1(x))
            x = n.layer4(n.layer3(mid))
            logits = n.fc(torch.flatten(n.avgpool(x), 1)).squeeze(1)
        else:
            mid = n.features[:4](x)
            x = n.features[4:](mid)
            logits = n.classifier(torch.flatten(n.avgpool(x), 1)).squeeze(1)
        return (logits, self.map_head(mid)) if with_map else logits


def models_dir() -> Path:
    """Shipped models: $VIDGAN_MODELS, else `models/` at the top of the source tree."""
    env = os.environ.get("VIDGAN_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "models"


def default_model_path() -> Path:
    return models_dir() / "deepfake" / "deepfake.pt"


@dataclass
class LoadedModel:
    net: Detector
    size: int
    margin: float
    device: torch.device
    meta: dict[str, Any] = field(default_factory=dict)


def checkpoint_dict(net: Detector, size: int, meta: dict[str, Any], half: bool = False) -> dict[str, Any]:
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
          for k, v in net.state_dict().items()}
    return {"format": FORMAT, "arch": net.arch, "size": int(size), "margin": MARGIN,
            "state_dict": sd, "meta": dict(meta)}


def export(net: Detector, size: int, path: Path, meta: dict[str, Any]) -> Path:
    """Write a shipping checkpoint (weights in float16 to stay small), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint_dict(net, size, meta, half=True), tmp)
    os.replace(tmp, path)
    return path


def load(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    from ..errors import UsageError

    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise UsageError(f"no deepfake model at {path} (train one with `vidgan train deepfake` "
                         "or pass --model)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") != FORMAT:
        raise UsageError(f"{path} is not a vidgan deepfake model (format {ckpt.get('format')!r})")
    device = torch.device(device) if not isinstance(device, torch.device) else device
    net = Detector(ckpt["arch"])
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    net.eval().to(device)
    return LoadedModel(net, int(ckpt["size"]), float(ckpt.get("margin", MARGIN)), device, ckpt.get("meta", {}))
