"""Pre-training the detector's backbone on the shared faces, since no downloaded weights exist here.

A CNN trained from scratch on pseudo-fakes alone learns whatever separates them first: the exact
traces of the pseudo-fake recipe, which real manipulations do not share. Detectors that transfer
well start from a backbone that already describes faces. This module trains the detector's own
torchvision architecture on the UTKFace crops of the face pack (the crops training uses, same
framing and size) to predict what their file names label: age bucket, gender and ethnicity (three
softmax heads on one linear layer). `vidgan train deepfake --init FILE` then starts from these
weights (all but the classifier layer).

The split is the detector's own (`train.split_sources`), so the people held out for the
pseudo-fake validation are held out here too. One checkpoint per epoch; rerunning the same command
continues after the last finished epoch.

Output (`torch.save`, weights_only loadable): {"format": "vidgan-deepfake-backbone/1", "arch",
"size", "state_dict" (the torchvision net without its classifier layer), "metrics"}.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from ..gan.data import utk_attributes
from ..gan.lossnet import AGE_EDGES, age_bucket
from .dataset import augment_geometry, augment_photometric, default_pack_path, load_pack, to_tensor

FORMAT = "vidgan-deepfake-backbone/1"
HEADS = (("age", len(AGE_EDGES) + 1), ("gender", 2), ("ethnicity", 5))  # age: face-attr's buckets


def utk_targets(names: np.ndarray) -> np.ndarray:
    """N,3 int targets (age bucket, gender, ethnicity) from the pack's names; -1 where a name is not
    a well-formed UTKFace name `utk/age_gender_race_date.jpg.chip.jpg` (video crops, a few typos)."""
    out = np.full((len(names), 3), -1, np.int64)
    for i, name in enumerate(names):
        name = str(name)
        attrs = utk_attributes(name) if name.startswith("utk/") else None
        if attrs is not None and attrs[1] < 2 and attrs[2] < 5:
            out[i] = (age_bucket(attrs[0]), attrs[1], attrs[2])
    return out


@dataclass
class PretrainOptions:
    out: str = "runs/deepfake-backbone"
    pack: str = ""  # default packed/deepfake_faces.npz (built by the first `vidgan train deepfake`)
    arch: str = "resnet18"
    size: int = 128
    epochs: int = 2
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    workers: int = 0  # data-loading processes (augmentation is the bottleneck on a GPU)
    limit: int = 0  # train on the first N labelled faces only (dry runs); 0: all
    device: str = "auto"


def build(arch: str) -> torch.nn.Module:
    return getattr(torchvision.models, arch)(weights=None, num_classes=sum(n for _, n in HEADS))


class _Batches(torch.utils.data.Dataset):
    """Step s of an epoch -> (images, targets): the crops of that step, augmented like the detector's
    training images (geometry, colour, blur/noise, JPEG) with an RNG seeded by (seed, epoch, step),
    so batches are the same whatever the number of loader workers."""

    def __init__(self, crops, targets, order, epoch, batch_size, size, seed):
        self.crops, self.targets, self.order = crops, targets, order
        self.epoch, self.batch_size, self.size, self.seed = epoch, batch_size, size, seed

    def __len__(self) -> int:
        return max(1, len(self.order) // self.batch_size)

    def __getitem__(self, s: int):
        idx = np.sort(self.order[s * self.batch_size:(s + 1) * self.batch_size])
        rng = np.random.default_rng([self.seed, self.epoch, s])
        x = to_tensor(np.stack([augment_photometric(augment_geometry(rng, c.shape[0], self.size)(c), rng)
                                for c in self.crops[idx]]))
        return x, torch.from_numpy(self.targets[idx])


def _losses(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    total, correct, start = 0.0, [], 0
    for k, (_, n) in enumerate(HEADS):
        part = logits[:, start:start + n]
        total = total + F.cross_entropy(part, y[:, k])
        correct.append((part.argmax(1) == y[:, k]).float())
        start += n
    return total, correct


def pretrain(opts: PretrainOptions, progress: Optional[Callable[[str], None]] = None) -> Path:
    """Train, checkpoint each epoch, and write OUT/backbone.pt; returns its path."""
    from ..faces import resolve_device
    from .model import MEAN, STD
    from .train import split_sources, warmup_cosine

    say = progress or print
    torch.set_num_threads(max(1, opts.threads))
    if opts.workers > 0:
        import cv2

        cv2.setNumThreads(1)  # the workers are the parallelism (set before they fork)
    device = torch.device(resolve_device(opts.device))
    pack_path = Path(opts.pack) if opts.pack else default_pack_path()
    if not pack_path.is_file():
        raise FileNotFoundError(f"no face pack at {pack_path}: run `vidgan train deepfake` once to build it")
    pack = load_pack(pack_path)
    targets = utk_targets(pack["names"][pack["sources"]])
    train_idx, val_idx = split_sources(pack["sources"], opts.seed)
    train_idx = train_idx[targets[train_idx, 0] >= 0]
    val_idx = val_idx[targets[val_idx, 0] >= 0]
    if opts.limit:
        train_idx = train_idx[:opts.limit]
    say(f"backbone pre-training: {len(train_idx)} labelled faces, {len(val_idx)} held out, "
        f"{opts.arch} at {opts.size} px on {device}")

    torch.manual_seed(opts.seed)
    net = build(opts.arch).to(device)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    steps_per_epoch = max(1, len(train_idx) // opts.batch_size)
    optim = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=1e-4)
    total_steps = opts.epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        """The detector's schedule with a warm-up over 5 % of the steps: a function of the step and
        the epoch count, so a rerun with more epochs simply extends the schedule."""
        return warmup_cosine(step, opts.lr, max(1, total_steps // 20), total_steps)

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, epoch, elapsed = out / "ckpt.pt", 0, 0.0
    if ckpt.is_file():
        ck = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(ck["net"])
        optim.load_state_dict(ck["optim"])
        epoch, elapsed = int(ck["epoch"]), float(ck["elapsed"])
        say(f"resumed after epoch {epoch}")
    log_path = out / "log.csv"
    new_log = not log_path.is_file()
    metrics: dict[str, float] = {}
    with open(log_path, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(["epoch", "loss", *(f"{n}_acc" for n, _ in HEADS), "time_s"])
        while epoch < opts.epochs:
            t0 = time.time()
            net.train()
            order = np.random.default_rng([opts.seed, epoch]).permutation(train_idx)
            batches = _Batches(pack["crops"], targets, order, epoch, opts.batch_size, opts.size, opts.seed)
            loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, num_workers=opts.workers)
            total = 0.0
            for s, (x, y) in enumerate(loader):
                x = (x.to(device, non_blocking=True) - mean) / std
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    logits = net(x)
                loss, _ = _losses(logits.float(), y.to(device))
                for g in optim.param_groups:
                    g["lr"] = lr_at(epoch * steps_per_epoch + s)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                total += float(loss.detach())
                if progress and (s + 1) % 50 == 0:
                    say(f"epoch {epoch + 1} step {s + 1}/{steps_per_epoch} loss {total / (s + 1):.3f}")
            epoch += 1
            elapsed += time.time() - t0
            metrics = evaluate(net, pack["crops"][val_idx], targets[val_idx], opts.size, device, mean, std)
            writer.writerow([epoch, f"{total / steps_per_epoch:.4f}", *metrics.values(), f"{elapsed:.0f}"])
            fh.flush()
            say(f"epoch {epoch}/{opts.epochs} loss {total / steps_per_epoch:.3f} "
                + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
            tmp = out / "ckpt.pt.part"
            torch.save({"net": net.state_dict(), "optim": optim.state_dict(), "epoch": epoch,
                        "elapsed": elapsed, "options": asdict(opts)}, tmp)
            os.replace(tmp, ckpt)
    if not metrics:
        metrics = evaluate(net, pack["crops"][val_idx], targets[val_idx], opts.size, device, mean, std)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()
             if not k.startswith(("fc.", "classifier."))}  # the heads; the detector has its own
    path = out / "backbone.pt"
    tmp = out / "backbone.pt.part"
    torch.save({"format": FORMAT, "arch": opts.arch, "size": opts.size, "state_dict": state,
                "metrics": {**metrics, "epochs": epoch, "train_seconds": round(elapsed)}}, tmp)
    os.replace(tmp, path)
    return path


@torch.no_grad()
def evaluate(net, crops, y, size, device, mean, std) -> dict[str, float]:
    """Accuracy per head on held-out crops (resized as at scoring, no augmentation)."""
    import cv2

    net.eval()
    hits = np.zeros(len(HEADS))
    for i in range(0, len(crops), 128):
        x = to_tensor(np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA)
                                for c in crops[i:i + 128]])).to(device)
        _, correct = _losses(net((x - mean) / std), torch.from_numpy(y[i:i + 128]).to(device))
        hits += [float(c.sum()) for c in correct]
    net.train()
    return {f"{name}_acc": round(float(h) / max(1, len(crops)), 4) for (name, _), h in zip(HEADS, hits)}


def load_backbone(path: str | Path, arch: str) -> dict[str, torch.Tensor]:
    """The pre-trained weights (without the classifier layer) for a Detector of `arch`: a backbone
    from `pretrain` here, or a plain torchvision state dict of that architecture (e.g. ImageNet
    weights a user has, `torchvision.models.resnet18(weights=...).state_dict()` saved with
    `torch.save`; none can be downloaded here). A clear error otherwise."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ck, dict) and ck.get("format") == FORMAT:
        if ck["arch"] != arch:
            raise ValueError(f"{path} holds a {ck['arch']} backbone, the detector is a {arch}")
        return ck["state_dict"]
    if isinstance(ck, dict) and ck and all(isinstance(v, torch.Tensor) for v in ck.values()):
        head = ("fc.", "classifier.")  # torchvision's classifier layers, which the detector replaces
        want = getattr(torchvision.models, arch)(weights=None).state_dict()
        body = {k: v for k, v in ck.items() if not k.startswith(head)}
        if set(body) != {k for k in want if not k.startswith(head)} or \
                any(v.shape != want[k].shape for k, v in body.items()):
            raise ValueError(f"{path} is a state dict, but not of a torchvision {arch}")
        return body
    raise ValueError(f"{path} is neither a vidgan deepfake backbone ({FORMAT}) nor a torchvision state dict")
