"""Training loop for the deepfake detector: real faces vs pseudo-fakes made from them.

* Deterministic and exactly resumable: batch *k* is a pure function of (seed, k): which crops
  (a per-epoch permutation) and how each pseudo-fake is drawn (an RNG seeded with seed, step and
  crop index), so `--resume` continues with the very batches an uninterrupted run would have seen.
* Curriculum: `strength` (how visible the blending traces are) starts at 1 and anneals to
  `min_strength` over the first `curriculum` fraction of the steps: from scratch, a CNN first needs
  easy examples to find the blend boundary at all, then harder ones to stop relying on colour.
* Two losses: the real/fake label, and (weight `map_weight`) an auxiliary map of where the fake was
  blended (`model.Detector(with_map=True)`), whose dense supervision makes a from-scratch network
  find the blending traces in far fewer steps.
* AMP (float16 autocast + GradScaler) on CUDA; float32 on the CPU.
* Every `val_every` steps: AUC on held-out pseudo-fakes and on the FaceForensics++ crops (never
  trained on), per manipulation type, into `log.csv`; `last.pt` every `ckpt_every_s` seconds and at
  validation; `best.pt` keeps the weights with the best ffpp AUC on its *train* split, so the ffpp
  *test* split stays untouched by model selection.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .dataset import (FFPP_TYPES, FakeMix, PseudoFakeDataset, default_data_dir, default_pack_path, load_pack,
                      pack_faces, pack_ffpp, to_tensor)
from .ganfakes import default_gan_pack_path, load_gan_pack, model_list, pack_gan
from .model import Detector, checkpoint_dict, export

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    out: str = "runs/deepfake"
    data: str = ""  # shared data folder (default ../shared/data)
    pack: str = ""  # cached real-face crops (default packed/deepfake_faces.npz)
    arch: str = "resnet18"
    size: int = 128
    steps: int = 3000
    batch_size: int = 16  # pairs per step: 2x images (each real with its own pseudo-fake)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    curriculum: float = 0.5
    min_strength: float = 0.2
    swap_prob: float = 0.3
    lower_prob: float = 0.0  # share of self-blends in the nose-mouth-chin region only (reenactment-like)
    detail_prob: float = 0.0  # share of self-blends from a detail-loss copy (pseudofake.detail_loss)
    video_prob: float = 0.0  # share of images compressed by an H.264 round trip instead of JPEG
    gan_prob: float = 0.0  # share of fakes blended from a shipped generator's rendering (ganfakes)
    gan_models: str = ""  # the generators that render them, comma-separated ("": ganfakes.DEFAULT_MODELS)
    map_weight: float = 1.0  # weight of the auxiliary "where was it blended" loss
    seed: int = 0
    device: str = "auto"
    workers: int = 1
    threads: int = 1
    val_every: int = 100
    ckpt_every_s: float = 180.0
    resume: bool = False
    stop_at: int = 0  # stop (with a checkpoint) once this step is reached; 0: run to `steps`
    time_budget: float = 0.0  # seconds: steps 50-150 set the pace, then `steps` is cut to fit (0: off)
    export: str = ""  # models/deepfake: export best.pt there at the end
    init: str = ""  # a pre-trained backbone (pretrain.py) to start from instead of random weights

    def __post_init__(self):
        if self.size < 32 or self.steps < 1 or self.batch_size < 1:
            raise ValueError("size >= 32, steps >= 1 and batch size >= 1 are required")
        for name in ("swap_prob", "lower_prob", "detail_prob", "gan_prob", "video_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


PACE_STEPS = (50, 150)  # with a time budget, the steps between these set the pace


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); nan with one class only."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def split_sources(sources: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) crop indices: about 5 % of the sources (people, clips) held out."""
    held = np.random.default_rng(seed).random(sources.max() + 1) < 0.05
    return np.nonzero(~held[sources])[0], np.nonzero(held[sources])[0]


def calibrate_threshold(net: Detector, size: int, pack: dict, seed: int, quantile: float = 0.99) -> float:
    """The fake probability that `quantile` of the held-out real faces stay under: a verdict
    threshold with a known false-positive rate per face (per video it is lower still, since
    scores are aggregated over frames)."""
    _, held = split_sources(pack["sources"], seed)
    if len(held) == 0:  # a tiny pack: every source in training; use them all
        held = np.arange(len(pack["crops"]))
    probs = predict(net, pack["crops"][held], size, torch.device("cpu"))
    return float(np.clip(np.quantile(probs, quantile), 0.05, 0.95))


def strength_at(step: int, opts: TrainOptions) -> float:
    end = max(1, int(opts.curriculum * opts.steps))
    t = min(1.0, step / end)
    return float(opts.min_strength + (1.0 - opts.min_strength) * 0.5 * (1 + math.cos(math.pi * t)))


def warmup_cosine(step: int, lr: float, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `lr` down to 2 % of it at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def lr_at(step: int, opts: TrainOptions) -> float:
    return warmup_cosine(step, opts.lr, opts.warmup, opts.steps)


class StepSampler(torch.utils.data.Sampler):
    """Yields, for steps start..steps-1, the batch of dataset keys (step, crop index, strength)."""

    def __init__(self, n: int, opts: TrainOptions, start: int, train_idx: np.ndarray):
        self.n, self.opts, self.start, self.train_idx = n, opts, start, train_idx

    def batch(self, step: int) -> list[tuple[int, int, float]]:
        per_epoch = max(1, len(self.train_idx) // self.opts.batch_size)
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng([self.opts.seed, epoch]).permutation(len(self.train_idx))
        sel = perm[k * self.opts.batch_size:(k + 1) * self.opts.batch_size]
        s = strength_at(step, self.opts)
        return [(step, int(i), s) for i in sel]

    def __iter__(self):
        step = self.start
        while step < self.opts.steps:  # read each time: a time budget may shorten the run
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        return max(0, self.opts.steps - self.start)


class KeyedDataset(PseudoFakeDataset):
    """PseudoFakeDataset addressed by (step, position in the training split, strength) keys."""

    def __init__(self, pack, indices, size, seed, mix=None, gan=None, video_prob=0.0):
        super().__init__(pack, indices, size, seed, strength=None, mix=mix, gan=gan, video_prob=video_prob)

    def __getitem__(self, key):
        step, i, strength = key
        self.strength = _Const(strength)
        return self.item(i, np.random.default_rng([self.seed, step, i]))


@dataclass
class _Const:
    value: float


def _collate(items):
    return tuple(torch.cat([i[k] for i in items]) for k in range(3))


@torch.inference_mode()
def predict(net: Detector, images: np.ndarray, size: int, device: torch.device, batch: int = 64) -> np.ndarray:
    """Fake probabilities for N,H,W,3 uint8 crops (resized to the model's input like at scoring);
    each crop and its mirror image are scored and the probabilities averaged (training flips too)."""
    import cv2

    net.eval()
    out = []
    for i in range(0, len(images), batch):
        chunk = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) if im.shape[0] != size else im
                 for im in images[i:i + batch]]
        x = to_tensor(np.stack(chunk)).to(device)
        p = (torch.sigmoid(net(x).float()) + torch.sigmoid(net(x.flip(3)).float())) / 2
        out.append(p.cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def evaluate(net, size, device, ffpp, pseudo_val) -> dict[str, float]:
    """AUCs on the ffpp crops (all, train split, test split, per type) and on held-out pseudo-fakes."""
    res: dict[str, float] = {}
    p = predict(net, ffpp.images, size, device)
    res["ffpp_auc"] = auc(p, ffpp.labels)
    split = np.array([f.split(os.sep)[1] for f in ffpp.files])
    for name in ("train", "test"):
        res[f"ffpp_{name}_auc"] = auc(p[split == name], ffpp.labels[split == name])
    for t in FFPP_TYPES:
        res[f"auc_{t}"] = auc(p[ffpp.types == t], ffpp.labels[ffpp.types == t])
    res["ffpp_real_mean"] = float(p[ffpp.labels == 0].mean())
    res["ffpp_fake_mean"] = float(p[ffpp.labels == 1].mean())
    if pseudo_val is not None:
        images, labels = pseudo_val
        res["pseudo_auc"] = auc(predict(net, images, size, device), labels)
    net.train()
    return res


def _pseudo_val(pack, idx: np.ndarray, size: int, seed: int, n: int = 96):
    """A fixed set of held-out real crops and pseudo-fakes at medium strength."""
    ds = KeyedDataset(pack, idx, size, seed + 1, FakeMix(swap_prob=0.3))
    xs, ys = [], []
    for i in range(min(n, len(idx))):
        x, y, _ = ds[(0, i, 0.5)]
        xs.append(x)
        ys.append(y)
    images = (torch.cat(xs).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return images, torch.cat(ys).numpy().astype(int)


LOG_FIELDS = ["step", "elapsed_s", "loss", "acc", "strength", "lr", "pseudo_auc", "ffpp_auc",
              "ffpp_train_auc", "ffpp_test_auc", "auc_df", "auc_ff", "auc_fs", "auc_nt",
              "ffpp_real_mean", "ffpp_fake_mean"]


def train(opts: TrainOptions, progress: Optional[Callable[[str], None]] = None) -> Path:
    from ..faces import resolve_device
    from ..gan.train import Pace  # here: scoring imports this module for `predict` only

    say = progress or (lambda s: log.info(s))
    torch.set_num_threads(max(1, opts.threads))
    if opts.workers > 0:
        # The data workers are the parallelism: no OpenCV thread pool in each. Set before any
        # OpenCV call and before the workers fork (setting it inside a forked worker deadlocks).
        import cv2

        cv2.setNumThreads(1)
    torch.manual_seed(opts.seed)
    device = torch.device(resolve_device(opts.device))
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(opts.data) if opts.data else default_data_dir()
    pack_path = Path(opts.pack) if opts.pack else default_pack_path()
    if not pack_path.is_file():
        say(f"packing real faces from {data_dir} into {pack_path} (once)")
        pack_faces(pack_path, data_dir, device=opts.device, progress=say)
    pack = load_pack(pack_path)
    n = len(pack["crops"])
    # Held-out split by source (person or clip), for the pseudo-fake validation AUC.
    sources = pack["sources"]
    train_idx, val_idx = split_sources(sources, opts.seed)
    say(f"{n} real crops ({len(train_idx)} train, {len(val_idx)} held out) on {device}")
    ffpp_dir = data_dir / "deepfake" / "ffpp_crops_256"
    ffpp_cache = pack_path.parent / "deepfake_ffpp.npz"  # the cache alone will do (a machine without the data)
    ffpp = pack_ffpp(ffpp_dir, device=opts.device, cache=ffpp_cache) \
        if ffpp_dir.is_dir() or ffpp_cache.is_file() else None
    pseudo_val = _pseudo_val(pack, val_idx, opts.size, opts.seed) if len(val_idx) else None
    gan = None
    if opts.gan_prob > 0:
        models = model_list(opts.gan_models)
        gan_path = default_gan_pack_path(pack_path)
        if not gan_path.is_file():
            say(f"rendering GAN fakes with {', '.join(models)} into {gan_path} (once)")
            pack_gan(gan_path, pack["crops"], models, seed=0, device=opts.device, progress=say)
        gan = load_gan_pack(gan_path, n, models)

    torch.manual_seed(opts.seed)  # here, not earlier: building MTCNN above draws from the same RNG
    net = Detector(opts.arch).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    optim = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    step, best, elapsed0 = 0, -1.0, 0.0
    last = out / "last.pt"
    if opts.init and not (opts.resume and last.is_file()):  # a resumed run has its own weights
        from .pretrain import load_backbone

        missing, unexpected = net.net.load_state_dict(load_backbone(opts.init, opts.arch), strict=False)
        if unexpected or any(not k.startswith(("fc.", "classifier.")) for k in missing):
            raise ValueError(f"{opts.init} does not fit a {opts.arch} detector")
        say(f"started from the pre-trained backbone {opts.init}")
    if opts.resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        net.load_state_dict(ck["state_dict"])
        optim.load_state_dict(ck["optim"])
        scaler.load_state_dict(ck["scaler"])
        step, best, elapsed0 = int(ck["step"]), float(ck["best"]), float(ck.get("elapsed_s", 0.0))
        say(f"resumed {last} at step {step} (best ffpp train-split AUC {best:.3f})")
    elif opts.resume:
        say(f"--resume: no {last} yet, starting from scratch")

    def save_last():
        ck = checkpoint_dict(net, opts.size, {"options": asdict(opts)})
        ck.update(optim=optim.state_dict(), scaler=scaler.state_dict(), step=step, best=best,
                  elapsed_s=elapsed0 + time.time() - t0)
        tmp = out / "last.pt.tmp"
        torch.save(ck, tmp)
        os.replace(tmp, last)

    log_path = out / "log.csv"
    new_log = not log_path.is_file()
    logf = open(log_path, "a", newline="")
    writer = csv.DictWriter(logf, fieldnames=LOG_FIELDS)
    if new_log:
        writer.writeheader()

    mix = FakeMix(swap_prob=opts.swap_prob, lower_prob=opts.lower_prob, gan_prob=opts.gan_prob,
                  detail_prob=opts.detail_prob)
    ds = KeyedDataset(pack, train_idx, opts.size, opts.seed, mix, gan, opts.video_prob)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=StepSampler(n, opts, step, train_idx),
                                         num_workers=opts.workers, collate_fn=_collate,
                                         persistent_workers=False, prefetch_factor=2 if opts.workers else None)
    t0 = time.time()
    last_ckpt = t0
    pace = Pace(opts.time_budget, step, *PACE_STEPS)
    run_loss, run_acc, run_n = 0.0, 0.0, 0
    net.train()
    for x, y, maps in loader:
        for g in optim.param_groups:
            g["lr"] = lr_at(step, opts)
        x, y, maps = x.to(device, non_blocking=True), y.to(device), maps.to(device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            logits, map_logits = net(x, with_map=True)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        loss = bce(logits.float(), y)
        if opts.map_weight > 0:
            loss = loss + opts.map_weight * bce(map_logits.float(), maps)
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        step += 1
        fitted = pace.fit(step, opts.steps, elapsed0 + time.time() - t0)
        if fitted is not None:  # the lr and curriculum follow the new length
            opts.steps = fitted
            say(pace.message(opts.steps))
        run_loss += loss.item()
        run_acc += float(((logits.detach() > 0).float() == y).float().mean())
        run_n += 1
        validate = step % opts.val_every == 0 or step == opts.steps
        if validate:
            row = {"step": step, "elapsed_s": round(elapsed0 + time.time() - t0, 1),
                   "loss": round(run_loss / run_n, 4), "acc": round(run_acc / run_n, 4),
                   "strength": round(strength_at(step, opts), 3), "lr": f"{lr_at(step, opts):.2e}"}
            run_loss, run_acc, run_n = 0.0, 0.0, 0
            if ffpp is not None:
                res = evaluate(net, opts.size, device, ffpp, pseudo_val)
                row.update({k: round(v, 4) for k, v in res.items()})
                if res["ffpp_train_auc"] > best:
                    best = res["ffpp_train_auc"]
                    meta = {"step": step, "metrics": res, "options": asdict(opts)}
                    torch.save(checkpoint_dict(net, opts.size, meta), out / "best.pt.tmp")
                    os.replace(out / "best.pt.tmp", out / "best.pt")
            writer.writerow(row)
            logf.flush()
            say(" ".join(f"{k}={v}" for k, v in row.items()))
        if validate or time.time() - last_ckpt > opts.ckpt_every_s:
            save_last()
            last_ckpt = time.time()
        if (opts.stop_at and step >= opts.stop_at) or step >= opts.steps:
            break
    save_last()
    logf.close()
    if opts.export and step >= opts.steps:
        src = out / "best.pt" if (out / "best.pt").is_file() else last
        export_checkpoint(src, Path(opts.export))
    return last


def export_checkpoint(src: Path, export_dir: Path, extra_meta: Optional[dict] = None,
                      pack_path: Optional[Path] = None) -> Path:
    """Ship `src` (a best.pt/last.pt of a run) as export_dir/deepfake.pt in float16, with the verdict
    threshold calibrated on the held-out real faces of the pack (when the pack is there)."""
    ck = torch.load(src, map_location="cpu", weights_only=True)
    net = Detector(ck["arch"])
    net.load_state_dict(ck["state_dict"])
    meta = dict(ck.get("meta", {}))
    opts = meta.get("options", {})
    pack_path = pack_path or Path(opts.get("pack") or default_pack_path())
    if pack_path.is_file():
        meta["threshold"] = calibrate_threshold(net.eval(), int(ck["size"]), load_pack(pack_path),
                                                int(opts.get("seed", 0)))
        meta["threshold_rule"] = "99th percentile of the fake probability of held-out real faces"
    meta.update(extra_meta or {})
    return export(net, int(ck["size"]), export_dir / "deepfake.pt", meta)
