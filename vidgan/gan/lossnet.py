"""Loss networks for the perceptual loss: frozen CNNs whose intermediate features say how different
two images look.

(a) VGG-16 (torchvision) -- the lecture's choice. Its ImageNet weights cannot be downloaded here, so
    they are read from a file you give or from torch's hub cache when present; otherwise a clear error.
(b) FaceAttrNet -- a small CNN this project trains itself on the UTKFace crops (age bucket + gender
    from the file names) and ships in models/face-attr/, so the perceptual loss works offline. Its
    features encode what matters on faces (age cues, skin texture, shape) rather than ImageNet objects.

Both return a list of feature maps (4 stages, coarser and coarser) for input in [-1, 1].
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .translator import models_dir, resolve_device

# ------------------------------------------------------------------------------------------- VGG-16

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet weights, as torch.hub caches them
VGG16_TAPS = (3, 8, 15, 22)        # relu1_2, relu2_2, relu3_3, relu4_3
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def find_vgg16_weights(path: str | os.PathLike | None = None) -> Path:
    cands = [Path(path)] if path else []
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    cands.append(hub / VGG16_FILE)
    for c in cands:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"VGG-16 weights not found (looked at {', '.join(map(str, cands))}); vidgan never downloads "
        f"weights: copy torchvision's {VGG16_FILE} there, or use the shipped face-attr loss network")


class VGG16Features(nn.Module):
    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        path = find_vgg16_weights(weights)  # fail before building anything
        # only the convolutional part up to relu4_3 is needed: skip the 120 M classifier parameters
        self.features = make_layers(cfgs["D"])[: VGG16_TAPS[-1] + 1]
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                       if k.startswith("features.") and int(k.split(".")[1]) <= VGG16_TAPS[-1]})
        self.features.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in VGG16_TAPS:
                out.append(h)
        return out


# ------------------------------------------------------------------------------------- FaceAttrNet

AGE_EDGES = (13, 20, 30, 40, 50, 60, 70)  # 8 buckets: <13, 13-19, 20-29, ..., 60-69, >=70
AGE_MIDS = (6.0, 16.0, 25.0, 35.0, 45.0, 55.0, 65.0, 80.0)


def age_bucket(age: int) -> int:
    return sum(age >= e for e in AGE_EDGES)


class FaceAttrNet(nn.Module):
    """4 stages of (conv 3x3, BN, ReLU, conv 3x3 stride 2, BN, ReLU); global average pool; two heads.
    Fully convolutional up to the pool, so its features apply to faces of any size."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = (width, width * 2, width * 4, width * 6)
        stages, c_in = [], 3
        for c in chans:
            stages.append(nn.Sequential(
                nn.Conv2d(c_in, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True),
                nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.age = nn.Linear(c_in, len(AGE_EDGES) + 1)
        self.gender = nn.Linear(c_in, 2)
        self.width = width

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps (what PerceptualLoss consumes)."""
        return self.features(x)

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)[-1].mean((2, 3))
        return self.age(h), self.gender(h)

    @torch.no_grad()
    def expected_age(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the bucket mid-points under the predicted age distribution (years)."""
        logits, _ = self.classify(x)
        return logits.softmax(1) @ torch.tensor(AGE_MIDS, device=x.device)


def load_face_attr(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FaceAttrNet:
    p = Path(path) if path else models_dir() / "face-attr" / "lossnet.pt"
    if not p.is_file():
        raise FileNotFoundError(f"no face-attr loss network at {p}: train it with `vidgan train lossnet`")
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    net = FaceAttrNet(width=int(ckpt["width"]))
    net.load_state_dict(ckpt["state_dict"])
    return net.to(resolve_device(device)).eval()


def load_lossnet(name: str = "face-attr", device: str | torch.device = "cpu",
                 vgg_weights: str | None = None) -> nn.Module:
    """'face-attr' (shipped), 'vgg16' (needs local weights), or a path to a face-attr lossnet.pt."""
    if name == "vgg16":
        return VGG16Features(vgg_weights).to(resolve_device(device)).eval()
    return load_face_attr(None if name == "face-attr" else name, device)


# ----------------------------------------------------------------------------------------- training


@dataclass
class LossnetConfig:
    root: str
    out: str
    size: int = 64
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 32
    val_fraction: float = 0.1
    device: str = "auto"
    seed: int = 0
    export: str | None = None


def _labelled(root: str, split: str, val_fraction: float, size: int):
    from .data import _files, load_folder, utk_labels

    files = [f for f in _files(root, split, val_fraction) if utk_labels(f.name) is not None]
    labels = [utk_labels(f.name) for f in files]
    ages = torch.tensor([age_bucket(a) for a, _ in labels])
    genders = torch.tensor([g for _, g in labels])
    return load_folder(files, size), ages, genders


@torch.no_grad()
def evaluate_face_attr(net: FaceAttrNet, x: torch.Tensor, ages: torch.Tensor, genders: torch.Tensor,
                       device: torch.device) -> dict[str, float]:
    from .data import to_float

    net.eval()
    age_ok = gender_ok = off_by_one = 0
    for i in range(0, len(x), 256):
        a, g = net.classify(to_float(x[i:i + 256]).to(device))
        pa, pg = a.argmax(1).cpu(), g.argmax(1).cpu()
        age_ok += int((pa == ages[i:i + 256]).sum())
        off_by_one += int(((pa - ages[i:i + 256]).abs() <= 1).sum())
        gender_ok += int((pg == genders[i:i + 256]).sum())
    n = len(x)
    return {"age_bucket_acc": age_ok / n, "age_bucket_within1": off_by_one / n, "gender_acc": gender_ok / n}


def train_face_attr(cfg: LossnetConfig, log=print) -> dict[str, float]:
    """Plain supervised training (cross-entropy on both heads, Adam, cosine LR, flips). A checkpoint
    after every epoch; rerunning with the same --out continues from the last finished epoch."""
    from .data import to_float

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, ages, genders = _labelled(cfg.root, "train", cfg.val_fraction, cfg.size)
    vx, vages, vgenders = _labelled(cfg.root, "val", cfg.val_fraction, cfg.size)
    log(f"face-attr: {len(x)} training faces, {len(vx)} held out, {cfg.size} px")
    net = FaceAttrNet(cfg.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps_per_epoch = len(x) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, epoch, elapsed = out / "ckpt.pt", 0, 0.0
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["rng"])
        epoch, elapsed = ck["epoch"], ck["elapsed"]
        log(f"resumed after epoch {epoch}")
    new_log = not (out / "log.csv").is_file()
    with open(out / "log.csv", "a", newline="") as fh:
        w = csv.writer(fh)
        if new_log:
            w.writerow(["epoch", "loss", "age_bucket_acc", "age_bucket_within1", "gender_acc", "time_s"])
        while epoch < cfg.epochs:
            t0 = time.time()
            net.train()
            order = torch.randperm(len(x), generator=gen)
            total = 0.0
            for s in range(steps_per_epoch):
                idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                xb = to_float(x[idx])
                flip = torch.rand(len(xb), generator=gen) < 0.5
                xb[flip] = xb[flip].flip(-1)
                a, g = net.classify(xb.to(device))
                loss = F.cross_entropy(a, ages[idx].to(device)) + F.cross_entropy(g, genders[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            epoch += 1
            elapsed += time.time() - t0
            m = evaluate_face_attr(net, vx, vages, vgenders, device)
            w.writerow([epoch, f"{total / steps_per_epoch:.4f}", *(f"{v:.4f}" for v in m.values()), f"{elapsed:.0f}"])
            fh.flush()
            log(f"epoch {epoch}/{cfg.epochs} loss {total / steps_per_epoch:.3f} " +
                " ".join(f"{k} {v:.3f}" for k, v in m.items()))
            tmp = out / "ckpt.pt.part"
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "gen": gen.get_state(), "rng": torch.get_rng_state(), "epoch": epoch,
                        "elapsed": elapsed, "cfg": asdict(cfg)}, tmp)
            os.replace(tmp, ckpt_path)
    m = evaluate_face_attr(net, vx, vages, vgenders, device)
    m.update(train_seconds=round(elapsed), n_train=len(x), n_val=len(vx))
    (out / "metrics.json").write_text(json.dumps(m, indent=2))
    if cfg.export:
        export_face_attr(net, cfg, m)
    return m


def export_face_attr(net: FaceAttrNet, cfg: LossnetConfig, metrics: dict) -> Path:
    d = Path(cfg.export)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    tmp = d / "lossnet.pt.part"
    torch.save({"format": "vidgan-lossnet/1", "width": cfg.width, "size": cfg.size, "state_dict": state,
                "age_edges": list(AGE_EDGES), "metrics": metrics}, tmp)
    os.replace(tmp, d / "lossnet.pt")
    return d / "lossnet.pt"


def write_lossnet_card(cfg: LossnetConfig, m: dict, command: str, hw: str) -> Path:
    d = Path(cfg.export)
    n_params = sum(p.numel() for p in FaceAttrNet(cfg.width).parameters())
    text = f"""# face-attr

FaceAttrNet ({n_params / 1e6:.2f} M parameters, {cfg.size} px input): a small CNN (4 stages of two 3x3
convs with batch norm) that predicts an age bucket ({len(AGE_EDGES) + 1} buckets, edges {list(AGE_EDGES)})
and gender. It exists to be a *loss network*: `vidgan.gan.lossnet.load_lossnet('face-attr')` returns its
4 feature maps, which `PerceptualLoss` compares (feature reconstruction + Gram-matrix style), so
perceptual losses work without downloading VGG weights. It also scores CycleGAN face-age translations
(`expected_age`). Not a product age/gender estimator: labels are coarse and the data is biased.

- Data: UTKFace aligned and cropped faces (non-commercial research use only); labels from the file names
  `age_gender_race_date.jpg.chip.jpg`; held-out split by file-name hash ({cfg.val_fraction:.0%}):
  {m['n_train']} training faces, {m['n_val']} held out.
- Command: `{command}`
- Training: {cfg.epochs} epochs, batch {cfg.batch_size}, Adam one-cycle lr {cfg.lr}, flips; {m['train_seconds'] / 60:.1f} min
  on {hw}.
- Held-out metrics: age-bucket accuracy {m['age_bucket_acc']:.3f} (within one bucket {m['age_bucket_within1']:.3f}),
  gender accuracy {m['gender_acc']:.3f}.
- Licence of the weights: derived from UTKFace, same terms (non-commercial research).
"""
    (d / "README.md").write_text(text)
    return d / "README.md"
