"""Trainers: pix2pix, CycleGAN and super-resolution (SRResNet with MSE, then SRGAN), one loop.

    Trainer.run():  for step in range(start, steps):
                        batch = dataset.sample(...)        # explicit torch.Generator
                        losses = self.train_step(batch)    # subclass: D and G updates
                        scheduler.step()                   # constant LR, then linear decay to 0
                        log CSV / sample grid / checkpoint
                    export the generator (save_translator) + evaluation metrics

Exact resume: the checkpoint holds the networks, optimisers, schedulers, the data generator's state,
torch's global RNG state (dropout), the image pool and the step, so `--resume` continues the very run
that was interrupted: the weights after N steps are the same as in a run that never stopped (bitwise
on CPU). AMP (bfloat16 autocast, no loss scaling needed) is used on CUDA only.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import metrics
from .data import DataSpec, PairSet, build_dataset
from .losses import GANLoss, PerceptualLoss, cycle_loss, identity_loss, l1
from .nets import build_discriminator, build_generator, count_params, init_weights
from .translator import resolve_device, save_translator

# -------------------------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    task: str                          # pix2pix | cyclegan | sr
    data: DataSpec
    out: str                           # run folder: ckpt.pt, log.csv, samples/
    steps: int = 1000
    epochs: int | None = None          # when set, steps = epochs * ceil(training images / batch)
    batch_size: int = 4
    lr: float = 2e-4
    beta1: float = 0.5
    decay_from: float = 0.5            # constant LR for this fraction of the steps, then linear to 0
    device: str = "auto"
    seed: int = 0
    amp: bool = True                   # bf16 autocast on CUDA
    ckpt_every: int = 200
    sample_every: int = 200
    log_every: int = 10
    # generator
    arch: str = "unet"                 # unet | resnet | srresnet
    ngf: int = 64
    n_blocks: int = 9
    norm: str = "instance"
    dropout: bool = True
    init: str = "normal"
    # discriminator
    d_arch: str = "patch"              # patch | pixel
    n_layers: int = 3
    ndf: int = 64
    # losses
    gan_mode: str = "vanilla"          # vanilla | lsgan | hinge
    lambda_l1: float = 100.0           # pix2pix
    lambda_cycle: float = 10.0         # cyclegan
    lambda_idt: float = 0.5            # cyclegan, relative to lambda_cycle
    pool_size: int = 50                # cyclegan image pool
    adv_weight: float = 0.0            # sr: 0 = SRResNet (MSE only); SRGAN uses 1e-3
    content: str = "mse"               # sr: mse | perceptual (mse + lossnet features)
    perceptual_weight: float = 1.0
    style_weight: float = 0.0
    lossnet: str = "face-attr"         # face-attr | vgg16 | path to a face-attr lossnet.pt
    init_from: str | None = None       # sr: start G from this generator.pt (SRGAN from the MSE model)
    # export
    export: str | None = None          # models/NAME: generator.pt + samples.jpg + README.md
    export_reverse: str | None = None  # cyclegan: where G_B (B->A) goes
    name: str | None = None
    input_mode: str = "rgb"            # rgb | gray | labels (how Translator prepares input)
    faces: bool = False                # trained on aligned face crops
    eval_max: int = 400                # at most this many held-out images in the final evaluation
    command: str = ""                  # the command line, for the model card

    def arch_kwargs(self) -> dict[str, Any]:
        if self.arch == "unet":
            return {"size": self.data.crop or self.data.size, "ngf": self.ngf, "norm": self.norm,
                    "dropout": self.dropout}
        if self.arch == "resnet":
            return {"n_blocks": self.n_blocks, "ngf": self.ngf, "norm": self.norm, "dropout": self.dropout}
        if self.arch == "srresnet":
            return {"n_blocks": self.n_blocks, "nf": self.ngf, "scale": self.data.scale}
        raise ValueError(f"unknown generator arch {self.arch!r}")


# ---------------------------------------------------------------------------------------- helpers


class ImagePool:
    """History of generated images (Shrivastava et al.): D sees a mix of the newest fakes and older
    ones, which damps the oscillation between G and D. Draws use the trainer's generator, and the
    contents go into the checkpoint, so resume stays exact."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for im in images.detach():
            im = im.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(im.clone())
                out.append(im)
            elif float(torch.rand(1, generator=gen)) < 0.5:
                j = int(torch.randint(self.size, (1,), generator=gen))
                out.append(self.images[j].clone())
                self.images[j] = im.clone()
            else:
                out.append(im)
        return torch.cat(out)

    def state(self) -> torch.Tensor | None:
        return torch.cat(self.images).cpu() if self.images else None

    def load(self, t: torch.Tensor | None, device: torch.device) -> None:
        self.images = [] if t is None else [im.unsqueeze(0).to(device) for im in t]


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


def to01(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def save_grid(rows: list[torch.Tensor], path: Path) -> None:
    """Rows of images (each N,3,h,w in [-1, 1]) resized to the largest size, one row per list item."""
    from torchvision.utils import save_image

    side = max(r.shape[-1] for r in rows)
    rows = [F.interpolate(r.float(), size=(side, side), mode="nearest") if r.shape[-1] != side else r.float()
            for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    save_image(to01(torch.cat(rows).cpu()), str(tmp), nrow=len(rows[0]), padding=2)
    os.replace(tmp, path)


class Pace:
    """Fits a run to a time budget (a lent GPU's minutes): the steps from `first` to `last` after the
    run's start are timed (warm-up excluded), and at `last` the step count is cut to what fits.
    Used by the de-identification and deepfake trainers (`--time-budget`)."""

    def __init__(self, budget: float, start: int, first: int, last: int) -> None:
        self.budget, self.start, self.first, self.last = budget, start, first, last
        self.t_first = time.time()

    def fit(self, done: int, steps: int, elapsed: float) -> int | None:
        """Call after every step with the steps done and the training seconds so far: the new step
        count (at least one more step) at the deciding step, else None."""
        if not self.budget:
            return None
        if done == self.start + self.first:
            self.t_first = time.time()
        if done != self.start + self.last:
            return None
        self.rate = (self.last - self.first) / max(time.time() - self.t_first, 1e-6)
        return max(done + 1, min(steps, done + int(self.rate * (self.budget - elapsed))))

    def message(self, steps: int) -> str:
        return f"time budget {self.budget:.0f} s at {self.rate:.1f} steps/s: {steps} steps"


def after_log(trainer, end: int) -> None:
    """Inside a training loop, after each step: sample grid and checkpoint when they are due."""
    c = trainer.cfg
    if trainer.step % c.sample_every == 0:
        trainer.save_samples()
    if trainer.step % c.ckpt_every == 0 or trainer.step == end:
        trainer.save_checkpoint()


def finish(trainer) -> tuple[Path, dict]:
    """After the last step: the final sample grid and held-out metrics (also written to
    metrics.json and the log). Returns (grid path, metrics)."""
    grid = trainer.save_samples()
    m = trainer.evaluate()
    m["train_seconds"] = round(trainer.elapsed)
    m["steps"] = trainer.step
    (trainer.out / "metrics.json").write_text(json.dumps(m, indent=2))
    trainer.log("metrics: " + json.dumps(m))
    return grid, m


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA, bf16 autocast)"
    model = platform.processor() or platform.machine()
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU ({model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s))"


# ---------------------------------------------------------------------------------------- trainer


class Trainer:
    """Shared loop. Subclasses build `self.nets`/`self.opts` in `build` and implement `train_step`,
    `sample_rows` (for grids) and `evaluate` (metrics on the held-out split)."""

    loss_names: tuple[str, ...] = ()

    def __init__(self, cfg: TrainConfig, log=print) -> None:
        self.cfg, self.log = cfg, log
        self.device = resolve_device(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.train_set: PairSet = build_dataset(cfg.data, "train")
        self.val_set: PairSet = build_dataset(cfg.data, "val")
        if cfg.epochs:
            cfg.steps = cfg.epochs * -(-len(self.train_set) // cfg.batch_size)
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.build()
        for n in self.nets.values():
            n.to(self.device)
        total, start = max(cfg.steps, 1), int(cfg.steps * cfg.decay_from)
        lam = lambda s: 1.0 if s < start else max(0.0, 1.0 - (s - start) / max(1, total - start))  # noqa: E731
        self.scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, lam) for k, o in self.opts.items()}
        self.step, self.elapsed = 0, 0.0
        self.out = Path(cfg.out)
        self.sample_a, self.sample_b = self.val_set.fixed(6, self.device)

    # -- to override
    def build(self) -> None:
        raise NotImplementedError

    def train_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def sample_rows(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        g = self.nets["G"]
        return [a, g(a), b]

    def generator_for_export(self) -> nn.Module:
        return self.nets["G"]

    # -- shared
    def adam(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.cfg.lr, betas=(self.cfg.beta1, 0.999))

    def new_generator(self) -> nn.Module:
        return init_weights(build_generator(self.cfg.arch, **self.cfg.arch_kwargs()), self.cfg.init)

    def new_discriminator(self, in_ch: int) -> nn.Module:
        c = self.cfg
        return init_weights(build_discriminator(c.d_arch, in_ch=in_ch, ndf=c.ndf, n_layers=c.n_layers,
                                                norm="batch" if c.norm == "batch" else "instance"), c.init)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)

    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "step": self.step, "elapsed": self.elapsed, "cfg": json.dumps(asdict(self.cfg), default=str),
            "nets": {k: n.state_dict() for k, n in self.nets.items()},
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "scheds": {k: s.state_dict() for k, s in self.scheds.items()},
            "gen": self.gen.get_state(), "rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            st["cuda_rng"] = torch.cuda.get_rng_state_all()
        return st

    def load_state(self, st: dict[str, Any]) -> None:
        for k, n in self.nets.items():
            n.load_state_dict(st["nets"][k])
        for k, o in self.opts.items():
            o.load_state_dict(st["opts"][k])
        for k, s in self.scheds.items():
            s.load_state_dict(st["scheds"][k])
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["rng"])
        if "cuda_rng" in st and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        self.step, self.elapsed = int(st["step"]), float(st["elapsed"])

    def save_checkpoint(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path, tmp = self.out / "ckpt.pt", self.out / "ckpt.pt.part"
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path

    def resume(self) -> bool:
        path = self.out / "ckpt.pt"
        if not path.is_file():
            return False
        self.load_state(torch.load(path, map_location="cpu", weights_only=True))
        self._trim_log()
        self.log(f"resumed {path} at step {self.step}")
        return True

    def _trim_log(self) -> None:
        """Drop CSV rows written after the checkpoint (they will be redone)."""
        p = self.out / "log.csv"
        if not p.is_file():
            return
        rows = list(csv.reader(p.open()))
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= self.step]
        with p.open("w", newline="") as fh:
            csv.writer(fh).writerows(keep)

    @torch.no_grad()
    def save_samples(self) -> Path:
        for n in self.nets.values():
            n.eval()
        with self.autocast():
            rows = self.sample_rows(self.sample_a, self.sample_b)
        for n in self.nets.values():
            n.train()
        path = self.out / "samples" / f"step_{self.step:06d}.png"
        save_grid(rows, path)
        return path

    def run(self, stop_at: int | None = None) -> dict[str, float]:
        """Train up to cfg.steps (or stop early at `stop_at`, as an interruption would), checkpoint,
        and export when finished. Returns the final evaluation metrics (empty when stopped early)."""
        c = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(c), indent=2, default=str))
        new_log = not (self.out / "log.csv").is_file()
        end = c.steps if stop_at is None else min(stop_at, c.steps)
        with open(self.out / "log.csv", "a", newline="") as fh:
            w = csv.writer(fh)
            if new_log:
                w.writerow(["step", "lr", *self.loss_names, "time_s"])
            acc: dict[str, float] = {}
            t0, n_acc = time.time(), 0
            while self.step < end:
                a, b = self.train_set.sample(c.batch_size, self.gen, self.device)
                losses = self.train_step(a, b)
                for s in self.scheds.values():
                    s.step()
                self.step += 1
                for k, v in losses.items():
                    acc[k] = acc.get(k, 0.0) + v
                n_acc += 1
                if self.step % c.log_every == 0 or self.step == end:
                    now = time.time()
                    self.elapsed += now - t0
                    t0 = now
                    lr = next(iter(self.opts.values())).param_groups[0]["lr"]
                    w.writerow([self.step, f"{lr:.3g}", *(f"{acc.get(k, 0) / n_acc:.5f}" for k in self.loss_names),
                                f"{self.elapsed:.0f}"])
                    fh.flush()
                    self.log(f"step {self.step}/{c.steps} " + " ".join(f"{k} {acc.get(k, 0) / n_acc:.4f}"
                                                                        for k in self.loss_names))
                    acc, n_acc = {}, 0
                after_log(self, end)
        if self.step < c.steps:
            return {}
        grid, m = finish(self)
        if c.export:
            self.export(Path(c.export), self.generator_for_export(), grid, m, c.name or Path(c.export).name)
        return m

    # -- evaluation and export
    @torch.no_grad()
    def val_batches(self, bs: int = 16):
        n = min(len(self.val_set), self.cfg.eval_max)
        for i in range(0, n, bs):
            idx = torch.arange(i, min(i + bs, n))
            yield self.val_set.batch(idx, idx, None, self.device)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Paired tasks: L1 (in [0, 1] pixel units) and PSNR of G(A) against B on held-out images."""
        g = self.nets["G"].eval()
        l1s, ps, n = 0.0, 0.0, 0
        for a, b in self.val_batches():
            with self.autocast():
                y = g(a)
            y, t = to01(y), to01(b)
            l1s += float((y - t).abs().flatten(1).mean(1).sum())
            ps += float(metrics.psnr(y, t).sum())
            n += len(a)
        g.train()
        return {"val_l1": round(l1s / n, 4), "val_psnr": round(ps / n, 2), "n_val": n}

    def meta(self, name: str, m: dict) -> dict[str, Any]:
        c = self.cfg
        return {"name": name, "task": c.task, "input_mode": c.input_mode, "scale": c.data.scale if c.task == "sr" else 1,
                "size": c.data.size, "faces": c.faces, "data": c.data.root, "metrics": m, "steps": self.step}

    def export(self, d: Path, g: nn.Module, grid: Path, m: dict, name: str, extra: str = "") -> None:
        d.mkdir(parents=True, exist_ok=True)
        half = count_params(g) * 4 > 24e6  # keep shipped files under 25 MB
        save_translator(d / "generator.pt", g, self.cfg.arch, self.cfg.arch_kwargs(),
                        {**self.meta(name, m), "weights": "float16" if half else "float32"}, half=half)
        import cv2

        im = cv2.imread(str(grid))
        cv2.imwrite(str(d / "samples.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, 88])
        write_card(d, self.cfg, name, m, count_params(g), hardware(self.device), extra)
        self.log(f"exported {d / 'generator.pt'}")


# ---------------------------------------------------------------------------------------- pix2pix


class Pix2PixTrainer(Trainer):
    """Conditional GAN (Isola et al.): D judges (input, output) pairs patch by patch; G minimises
    adversarial + lambda * L1 to the target (L1 gets the low frequencies right, D the texture)."""

    loss_names = ("d", "g_gan", "g_l1")

    def build(self) -> None:
        self.nets = {"G": self.new_generator(), "D": self.new_discriminator(6)}
        self.opts = {"G": self.adam(self.nets["G"].parameters()), "D": self.adam(self.nets["D"].parameters())}
        self.gan = GANLoss(self.cfg.gan_mode)

    def train_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        G, D, c = self.nets["G"], self.nets["D"], self.cfg
        with self.autocast():
            fake = G(a)
            set_requires_grad(D, True)
            loss_d = 0.5 * (self.gan(D(torch.cat([a, fake.detach()], 1)), False) +
                            self.gan(D(torch.cat([a, b], 1)), True))
        self.opts["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.opts["D"].step()
        set_requires_grad(D, False)
        with self.autocast():
            loss_gan = self.gan(D(torch.cat([a, fake], 1)), True, for_discriminator=False)
            loss_l1 = l1(fake, b)
        self.opts["G"].zero_grad(set_to_none=True)
        (loss_gan + c.lambda_l1 * loss_l1).backward()
        self.opts["G"].step()
        return {"d": float(loss_d.detach()), "g_gan": float(loss_gan.detach()), "g_l1": float(loss_l1.detach())}


# --------------------------------------------------------------------------------------- CycleGAN


class CycleGANTrainer(Trainer):
    """Unpaired translation (Zhu et al.): G_A: A->B, G_B: B->A, D_A judges B-domain images, D_B
    judges A-domain ones. Cycle consistency ties the two generators together; identity loss keeps
    colours; image pools of past fakes feed the discriminators."""

    loss_names = ("d_a", "d_b", "g_a", "g_b", "cycle_a", "cycle_b", "idt_a", "idt_b")

    def build(self) -> None:
        self.nets = {"G": self.new_generator(), "G_B": self.new_generator(),
                     "D_A": self.new_discriminator(3), "D_B": self.new_discriminator(3)}
        n = self.nets
        self.opts = {"G": self.adam(list(n["G"].parameters()) + list(n["G_B"].parameters())),
                     "D": self.adam(list(n["D_A"].parameters()) + list(n["D_B"].parameters()))}
        self.gan = GANLoss(self.cfg.gan_mode)
        self.pool_a, self.pool_b = ImagePool(self.cfg.pool_size), ImagePool(self.cfg.pool_size)

    def state(self) -> dict[str, Any]:
        st = super().state()
        st["pools"] = {"a": self.pool_a.state(), "b": self.pool_b.state()}
        return st

    def load_state(self, st: dict[str, Any]) -> None:
        super().load_state(st)
        self.pool_a.load(st["pools"]["a"], self.device)
        self.pool_b.load(st["pools"]["b"], self.device)

    def train_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        n, c = self.nets, self.cfg
        G_A, G_B, D_A, D_B = n["G"], n["G_B"], n["D_A"], n["D_B"]
        # generators
        set_requires_grad(D_A, False)
        set_requires_grad(D_B, False)
        with self.autocast():
            fake_b, fake_a = G_A(a), G_B(b)
            rec_a, rec_b = G_B(fake_b), G_A(fake_a)
            loss_g_a = self.gan(D_A(fake_b), True, for_discriminator=False)
            loss_g_b = self.gan(D_B(fake_a), True, for_discriminator=False)
            loss_cyc_a, loss_cyc_b = cycle_loss(rec_a, a), cycle_loss(rec_b, b)
            if c.lambda_idt > 0:
                loss_idt_a, loss_idt_b = identity_loss(G_A(b), b), identity_loss(G_B(a), a)
            else:
                loss_idt_a = loss_idt_b = torch.zeros((), device=a.device)
        loss_g = (loss_g_a + loss_g_b + c.lambda_cycle * (loss_cyc_a + loss_cyc_b) +
                  c.lambda_cycle * c.lambda_idt * (loss_idt_a + loss_idt_b))
        self.opts["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.opts["G"].step()
        # discriminators, on pooled fakes
        set_requires_grad(D_A, True)
        set_requires_grad(D_B, True)
        pa, pb = self.pool_b.query(fake_b, self.gen), self.pool_a.query(fake_a, self.gen)
        with self.autocast():
            loss_d_a = 0.5 * (self.gan(D_A(b), True) + self.gan(D_A(pa), False))
            loss_d_b = 0.5 * (self.gan(D_B(a), True) + self.gan(D_B(pb), False))
        self.opts["D"].zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        self.opts["D"].step()
        values = (loss_d_a, loss_d_b, loss_g_a, loss_g_b, loss_cyc_a, loss_cyc_b, loss_idt_a, loss_idt_b)
        return {k: float(v.detach()) for k, v in zip(self.loss_names, values)}

    def sample_rows(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        fb = self.nets["G"](a)
        fa = self.nets["G_B"](b)
        return [a, fb, self.nets["G_B"](fb), b, fa]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """No ground truth: report cycle L1 on held-out images and, for faces with the shipped
        face-attr network, its expected age of inputs vs translations (does young->old look older?)."""
        G_A, G_B = self.nets["G"].eval(), self.nets["G_B"].eval()
        attr = None
        if self.cfg.faces:
            try:
                from .lossnet import load_face_attr
                attr = load_face_attr(device=self.device)
            except FileNotFoundError:
                attr = None
        s = {"cycle_l1_a": 0.0, "cycle_l1_b": 0.0, "age_a": 0.0, "age_fake_b": 0.0, "age_b": 0.0, "age_fake_a": 0.0}
        n = 0
        for a, b in self.val_batches():
            k = min(len(a), len(b))
            a, b = a[:k], b[:k]
            fb, fa = G_A(a), G_B(b)
            s["cycle_l1_a"] += float((to01(G_B(fb)) - to01(a)).abs().flatten(1).mean(1).sum())
            s["cycle_l1_b"] += float((to01(G_A(fa)) - to01(b)).abs().flatten(1).mean(1).sum())
            if attr is not None:
                for key, x in (("age_a", a), ("age_fake_b", fb), ("age_b", b), ("age_fake_a", fa)):
                    s[key] += float(attr.expected_age(F.interpolate(x.float(), size=64, mode="area")).sum())
            n += k
        G_A.train()
        G_B.train()
        m = {k: round(v / n, 3) for k, v in s.items() if attr is not None or not k.startswith("age")}
        m["n_val"] = n
        return m

    def run(self, stop_at: int | None = None) -> dict[str, float]:
        m = super().run(stop_at)
        c = self.cfg
        if m and c.export_reverse:
            grid = self.out / "samples" / f"step_{self.step:06d}.png"
            name = Path(c.export_reverse).name
            self.export(Path(c.export_reverse), self.nets["G_B"], grid, m, name,
                        extra="This is the B->A generator of the same CycleGAN run (rows 4-5 of the grid).")
        return m


# ------------------------------------------------------------------------------------ SR / SRGAN


class SRTrainer(Trainer):
    """x4 super-resolution. adv_weight == 0: SRResNet, pure MSE (the PSNR-optimal, blurry average).
    adv_weight > 0: SRGAN, content loss (MSE, or MSE + lossnet features) + adv_weight * adversarial,
    G usually initialised from the MSE model (`init_from`) so D starts against sensible images."""

    loss_names = ("mse", "perceptual", "g_adv", "d")

    def build(self) -> None:
        c = self.cfg
        g = self.new_generator()
        if c.init_from:
            ck = torch.load(c.init_from, map_location="cpu", weights_only=True)
            g.load_state_dict(ck["state_dict"] if "state_dict" in ck else ck["nets"]["G"])
        self.nets = {"G": g}
        self.opts = {"G": self.adam(g.parameters())}
        if c.adv_weight > 0:
            self.nets["D"] = self.new_discriminator(3)
            self.opts["D"] = self.adam(self.nets["D"].parameters())
            self.gan = GANLoss(c.gan_mode)
        self.perceptual = None
        if c.content == "perceptual":
            from .lossnet import load_lossnet
            net = load_lossnet(c.lossnet, self.device)
            self.perceptual = PerceptualLoss(net, content_layers=(0, 1), style_weight=c.style_weight).to(self.device)

    def train_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        c = self.cfg
        G = self.nets["G"]
        out: dict[str, float] = {}
        with self.autocast():
            sr = G(a)
        if c.adv_weight > 0:
            D = self.nets["D"]
            set_requires_grad(D, True)
            with self.autocast():
                loss_d = 0.5 * (self.gan(D(b), True) + self.gan(D(sr.detach()), False))
            self.opts["D"].zero_grad(set_to_none=True)
            loss_d.backward()
            self.opts["D"].step()
            set_requires_grad(D, False)
            out["d"] = float(loss_d.detach())
        with self.autocast():
            loss_mse = F.mse_loss(sr.float(), b.float())
            loss = loss_mse
            if self.perceptual is not None:
                loss_p = self.perceptual(sr, b)
                loss = loss + c.perceptual_weight * loss_p
                out["perceptual"] = float(loss_p.detach())
            if c.adv_weight > 0:
                loss_adv = self.gan(self.nets["D"](sr), True, for_discriminator=False)
                loss = loss + c.adv_weight * loss_adv
                out["g_adv"] = float(loss_adv.detach())
        self.opts["G"].zero_grad(set_to_none=True)
        loss.backward()
        self.opts["G"].step()
        out["mse"] = float(loss_mse.detach())
        return out

    def sample_rows(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        bic = F.interpolate(a, scale_factor=self.cfg.data.scale, mode="bicubic", align_corners=False).clamp(-1, 1)
        return [a, bic, self.nets["G"](a), b]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """PSNR/SSIM/sharpness of the model and of bicubic upsampling on held-out faces."""
        return evaluate_sr(self.nets["G"], self.val_batches(), self.cfg.data.scale)


@torch.no_grad()
def evaluate_sr(g: nn.Module, batches, scale: int) -> dict[str, float]:
    was = g.training
    g.eval()
    s: dict[str, float] = {}
    n = 0
    for a, b in batches:
        t = to01(b)
        bic = to01(F.interpolate(a, scale_factor=scale, mode="bicubic", align_corners=False))
        y = to01(g(a))
        gt_sharp = metrics.gradient_magnitude(t)
        for key, x in (("bicubic", bic), ("model", y)):
            for mname, v in (("psnr", metrics.psnr(x, t)), ("ssim", metrics.ssim(x, t)),
                             ("sharpness", metrics.gradient_magnitude(x) / gt_sharp)):
                s[f"{key}_{mname}"] = s.get(f"{key}_{mname}", 0.0) + float(v.sum())
        n += len(a)
    g.train(was)
    m = {k: round(v / n, 4) for k, v in s.items()}
    m["gain_db"] = round(m["model_psnr"] - m["bicubic_psnr"], 3)
    m["n_val"] = n
    return m


TRAINERS = {"pix2pix": Pix2PixTrainer, "cyclegan": CycleGANTrainer, "sr": SRTrainer}


def make_trainer(cfg: TrainConfig, log=print) -> Trainer:
    if cfg.task not in TRAINERS:
        raise ValueError(f"unknown task {cfg.task!r} ({', '.join(TRAINERS)})")
    return TRAINERS[cfg.task](cfg, log)


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict[str, float]:
    t = make_trainer(cfg, log)
    if resume:
        t.resume()
    return t.run()


# -------------------------------------------------------------------------------------- model card

DATA_TERMS = {
    "utkface": "UTKFace aligned and cropped faces (non-commercial research use only)",
    "facades": "CMP Facade Database pairs as packaged for pix2pix (research use)",
}


def write_card(d: Path, cfg: TrainConfig, name: str, m: dict, n_params: int, hw: str, extra: str = "") -> None:
    data = next((v for k, v in DATA_TERMS.items() if k in cfg.data.root), cfg.data.root)
    mins = m.get("train_seconds", 0) / 60
    split = ("held out: the folder's own val/, minus byte-identical copies of train/ files"
             if (Path(cfg.data.root) / "val").is_dir() else
             f"held-out split by file-name hash, {cfg.data.val_fraction:.0%}, never trained on")
    lines = [
        f"# {name}", "",
        f"{cfg.task} generator ({cfg.arch}, {n_params / 1e6:.2f} M parameters, {cfg.data.size} px, "
        f"input mode `{cfg.input_mode}`), trained by `vidgan train {cfg.task}`. Load it with "
        f"`vidgan.gan.translator.load_translator('{name}')` or `vidgan translate --model {name}`.", "",
        extra, "" if extra else None,
        f"- Data: {data}; dataset recipe `{cfg.data.kind}` from `{cfg.data.root}` ({split}).",
        f"- Command: `{cfg.command or '(library call)'}`",
        f"- Training: {m.get('steps')} steps, batch {cfg.batch_size}, lr {cfg.lr} (linear decay from "
        f"{cfg.decay_from:.0%}), {cfg.gan_mode if cfg.task != 'sr' or cfg.adv_weight > 0 else 'no'} GAN loss, "
        f"seed {cfg.seed}; {mins:.1f} min on {hw}.",
        "- Metrics (held-out): " + ", ".join(f"{k} {v}" for k, v in m.items() if k not in ("train_seconds", "steps")),
        "- Licence of the weights: derived from the data above, same terms.", "",
        "![samples](samples.jpg)", "",
        _grid_caption(cfg.task), "",
    ]
    (d / "README.md").write_text("\n".join(x for x in lines if x is not None))


def _grid_caption(task: str) -> str:
    return {"pix2pix": "Rows: held-out input, generator output, ground truth.",
            "cyclegan": "Rows: held-out A, G_A(A), G_B(G_A(A)) (cycle), held-out B, G_B(B).",
            "sr": "Rows: held-out low-res input (nearest), bicubic x4, model x4, ground truth."}[task]


def command_line() -> str:
    return " ".join(["vidgan", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith(("vidgan", "__main__.py")) \
        else " ".join(sys.argv)

