"""Training the de-identification generator (`vidgan train deid`).

Data: UTKFace chips. Each chip's 5 MTCNN landmarks are detected once and cached in
`packed/deid_landmarks_<folder>.npz` (git-ignored); a chip where MTCNN finds no face uses the
canonical template (UTKFace chips are already roughly aligned). Every chip is then aligned with
`faces/align.py` exactly as at inference (same template, same margin), so the generator is trained
on the framing the video operation feeds it. Augmentation: horizontal flip (landmarks swapped).

One step (batch of real crops x, landmark heatmaps h, two codes z1, z2):

    D: lsgan(D([x, mask]), real) + lsgan(D([G(x, h, z1), mask]), fake)
    G: adv   lsgan(D([comp1, mask]), real)
       ctx   L1 of the raw output against x *outside* the interior (seamless context)
       in    L1 of comp1 against x inside (a weak prior: plausible shading, not the identity, which
             the generator cannot see)
       perc  face-attr loss of comp1 against x (the project's own loss network): feature content
             (default), or only Gram statistics (`perc_mode="style"`: texture of a face, none of the
             original's layout, since matching its features pulls the fake towards that identity)
       ms    mode seeking: 1 / (mean |comp1 - comp2| on the interior / mean |z1 - z2| + 0.05)

With `proto` > 0 the generator also gets a prototype face (`deid.DeidGenerator`): the bank is built
here (k-means of the training faces' standardised interiors, clusters of >= `proto_k` faces averaged),
and each training face is conditioned on the average of its `proto_k` most similar *other* faces, so
the network learns to paint a given look-alike structure into a context, not to copy the face.
Models trained since session 6 recolour the prototype to the face's context ring first
(`DeidArch.proto_fit`, in the generator's forward, so training and inference do the same).
With `target="prototype"` the `in` and `perc` terms compare against the training face with its
interior replaced by that prototype (soft mask) instead of the face itself: nothing then rewards
painting what the context implies about the unseen original (the GPU model of session 6, trained
against the original, left 8-10 % of faces recognisable on two clips), only the prototype's look.

Checkpoint/resume as in `train.py`: `ckpt.pt` holds networks, optimisers, the data generator's and
torch's RNG state and the step, so `--resume` continues the same run; `log.csv`, `samples/`,
`metrics.json`; `--export DIR` writes DIR/generator.pt + a model card.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..faces.align import TEMPLATE, align_matrix, transform_points, warp_crop
from .data import is_val, list_images, read_rgb
from .deid import DeidArch, DeidGenerator, heatmaps, interior_masks, save_deid
from .losses import GANLoss, PerceptualLoss
from .nets import build_discriminator, count_params, init_weights
from .train import Pace, after_log, finish, hardware, save_grid, set_requires_grad
from .translator import resolve_device

FLIP = [1, 0, 2, 4, 3]  # landmark order after a horizontal flip


@dataclass
class DeidConfig:
    data: str
    out: str
    size: int = 128
    margin: float = 0.1
    limit: int = 0          # use the first N chips (0: all)
    val_fraction: float = 0.05
    batch_size: int = 16
    steps: int = 2000
    time_budget: float = 0.0  # seconds: after 60 steps, cut `steps` to what fits (0: no limit)
    lr: float = 2e-4
    beta1: float = 0.5
    ngf: int = 32
    n_down: int = 4
    n_res: int = 2
    z_dim: int = 64
    ndf: int = 64
    n_layers: int = 3
    w_adv: float = 1.0
    w_ctx: float = 10.0
    w_in: float = 1.0
    w_perc: float = 1.0
    perc_mode: str = "content"  # content: feature maps of layers 0-2; style: their Gram matrices only
    w_ms: float = 1.0
    lossnet: str = "face-attr"  # face-attr (models/face-attr), a path to a lossnet.pt, or none
    proto: int = 0          # prototype bank: k-means clusters of the training faces (0: no bank, z only)
    proto_k: int = 6        # faces averaged per prototype (at least; smaller clusters are dropped)
    proto_size: int = 64
    target: str = "original"  # what `in` and `perc` compare the fake with: "original" or "prototype"
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    log_every: int = 10
    sample_every: int = 100
    ckpt_every: int = 100
    cache: str = "packed"
    export: str | None = None
    command: str = ""

    def arch(self) -> DeidArch:
        return DeidArch(size=self.size, margin=self.margin, ngf=self.ngf, n_down=self.n_down, n_res=self.n_res,
                        z_dim=self.z_dim, proto_size=self.proto_size)  # n_proto: set from the built bank


# ------------------------------------------------------------------------------------------- data


def chip_landmarks(files: list[Path], cache_dir: str | Path, device: str = "auto", log=print) -> np.ndarray:
    """N,5,2 MTCNN landmarks (chip pixels) for `files`, from the cache where known; missing ones are
    detected (and the cache updated). No face found -> the template scaled to the chip."""
    root = files[0].parent if files else Path(".")
    cache = Path(cache_dir) / f"deid_landmarks_{root.name}.npz"
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as z:
            known = dict(zip(z["names"].tolist(), z["landmarks"]))
    todo = [f for f in files if f.name not in known]
    if todo:
        from ..faces import DetectorOptions, FaceDetector

        det = FaceDetector(DetectorOptions(device=device, min_face=40, batch_size=16))
        t0 = time.time()
        for i in range(0, len(todo), 64):
            chunk = todo[i:i + 64]
            ims = [read_rgb(f) for f in chunk]
            by_size: dict[tuple, list[int]] = {}
            for j, im in enumerate(ims):
                by_size.setdefault(im.shape, []).append(j)
            for idx in by_size.values():
                for j, faces in zip(idx, det.detect([ims[j] for j in idx])):
                    h, w = ims[j].shape[:2]
                    best = max((f for f in faces if f.landmarks), key=lambda f: f.box.width * f.score, default=None)
                    lm = (np.asarray(best.landmarks, np.float32) if best is not None
                          else (TEMPLATE * [w, h]).astype(np.float32))
                    known[chunk[j].name] = lm
            log(f"landmarks: {min(i + 64, len(todo))}/{len(todo)} ({time.time() - t0:.0f} s)")
            if (i // 64) % 16 == 15 or i + 64 >= len(todo):  # save every ~1000 (an interrupted run keeps them)
                _save_landmarks(cache, known)
    return np.stack([known[f.name] for f in files])


def _save_landmarks(cache: Path, known: dict[str, np.ndarray]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(known)
    tmp = cache.with_name(cache.stem + ".part.npz")
    np.savez(tmp, names=np.array(names), landmarks=np.stack([known[n] for n in names]))
    os.replace(tmp, cache)


def load_aligned(cfg: DeidConfig, split: str, log=print) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N,3,S,S aligned crops and float N,5,2 landmarks in crop pixels."""
    files = list_images(cfg.data)
    if cfg.limit:  # a hash-ordered subset (the file list is sorted by age otherwise)
        files = sorted(sorted(files, key=lambda f: hashlib.sha1(b"limit:" + f.name.encode()).digest())[: cfg.limit])
    files = [f for f in files if is_val(f.name, cfg.val_fraction) == (split == "val")]
    if not files:
        raise ValueError(f"no {split} images in {cfg.data}")
    lms = chip_landmarks(files, cfg.cache, cfg.device, log)
    crops, pts = [], []
    for f, lm in zip(files, lms):
        m = align_matrix(lm, cfg.size, cfg.margin)
        crops.append(warp_crop(read_rgb(f), m, cfg.size))
        pts.append(transform_points(lm, m))
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.stack(pts).astype(np.float32))


def batch(x: torch.Tensor, pts: torch.Tensor, idx: torch.Tensor, flip: torch.Tensor | None,
          device: torch.device, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """Images in [-1, 1] and heatmaps for the rows `idx`; `flip` (bool per row) mirrors them. With
    `cond` (uint8 prototypes per row), a third item: those prototypes at the crop size, in [-1, 1]."""
    im = x[idx].to(device).float() / 127.5 - 1
    p = pts[idx].to(device).clone()
    pr = None
    if cond is not None:
        pr = F.interpolate(cond[idx].to(device).float() / 127.5 - 1, size=x.shape[-2:], mode="bilinear",
                           align_corners=False)
    if flip is not None and bool(flip.any()):
        f = flip.to(device)
        im[f] = im[f].flip(-1)
        if pr is not None:
            pr[f] = pr[f].flip(-1)
        pf = p[f][:, FLIP]
        pf[..., 0] = x.shape[-1] - 1 - pf[..., 0]
        p[f] = pf
    return (im, heatmaps(p, x.shape[-1])) + ((pr,) if pr is not None else ())


# ----------------------------------------------------------------------------------- prototypes


def interior_features(x: torch.Tensor, hard: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """uint8 N,3,S,S crops -> N,D: the interior at 32 px, each face standardised (mean 0, std 1), so
    faces group by their structure rather than by skin tone or light."""
    m = F.interpolate(hard.float().reshape(1, 1, *hard.shape[-2:]), size=(32, 32), mode="area")[0, 0] > 0.5
    out = []
    for i in range(0, len(x), chunk):
        f = F.interpolate(x[i:i + chunk].float() / 255, size=(32, 32), mode="area")[:, :, m].flatten(1)
        out.append((f - f.mean(1, keepdim=True)) / (f.std(1, keepdim=True) + 1e-3))
    return torch.cat(out)


def neighbour_prototypes(fq: torch.Tensor, fdb: torch.Tensor, xdb_small: torch.Tensor, k: int,
                         exclude_self: bool, chunk: int = 1024) -> torch.Tensor:
    """For each query face, the average of its k nearest database faces (itself excluded when the
    query set is the database): the training condition, a prototype that resembles the face without
    being it. uint8 N,3,p,p."""
    out = []
    for i in range(0, len(fq), chunk):
        d = torch.cdist(fq[i:i + chunk], fdb)
        if exclude_self:
            d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = float("inf")
        nn_idx = d.topk(k, dim=1, largest=False).indices
        out.append(xdb_small[nn_idx].mean(1).round().clamp(0, 255).byte())
    return torch.cat(out)


def build_bank(feats: torch.Tensor, x_small: torch.Tensor, n: int, k: int, seed: int = 0,
               iters: int = 20) -> torch.Tensor:
    """k-means (n clusters) of the training faces; each cluster with at least k members becomes one
    prototype, the average of its members. uint8 M,3,p,p (M <= n)."""
    g = torch.Generator().manual_seed(seed)
    cent = feats[torch.randperm(len(feats), generator=g)[:n]].clone()
    for _ in range(iters):
        a = torch.cat([torch.cdist(feats[i:i + 2048], cent).argmin(1) for i in range(0, len(feats), 2048)])
        sums = torch.zeros_like(cent).index_add_(0, a, feats)
        cnt = torch.bincount(a, minlength=n)
        cent = torch.where(cnt[:, None] > 0, sums / cnt.clamp(min=1)[:, None].float(), cent)
    keep = [c for c in range(n) if cnt[c] >= k]
    if not keep:
        raise ValueError(f"no cluster of {k} or more faces among {len(feats)} (lower --proto or --proto-k)")
    return torch.stack([x_small[a == c].mean(0) for c in keep]).round().clamp(0, 255).byte()


# ---------------------------------------------------------------------------------------- trainer


class DeidTrainer:
    loss_names = ("d", "adv", "ctx", "in", "perc", "ms")

    def __init__(self, cfg: DeidConfig, log=print, data: tuple | None = None) -> None:
        self.cfg, self.log = cfg, log
        self.device = resolve_device(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        if data is None:
            data = (load_aligned(cfg, "train", log), load_aligned(cfg, "val", log))
        (self.x, self.pts), (self.vx, self.vpts) = data
        arch, bank, self.cond, self.vcond = cfg.arch(), None, None, None
        if cfg.proto:
            t0 = time.time()
            hard = torch.from_numpy(interior_masks(arch.size, arch.margin, arch.interior_center, arch.interior_axes)[0])
            f, vf = interior_features(self.x, hard), interior_features(self.vx, hard)
            xs = F.interpolate(self.x.float(), size=(cfg.proto_size, cfg.proto_size), mode="area")
            bank = build_bank(f, xs, cfg.proto, cfg.proto_k, cfg.seed)
            self.cond = neighbour_prototypes(f, f, xs, cfg.proto_k, exclude_self=True)
            self.vcond = neighbour_prototypes(vf, f, xs, cfg.proto_k, exclude_self=False)
            arch = dataclasses.replace(arch, n_proto=len(bank), proto_fit=True)
            log(f"prototype bank: {len(bank)} of {cfg.proto} clusters have >= {cfg.proto_k} faces; "
                f"training conditions: the {cfg.proto_k} nearest other faces ({time.time() - t0:.0f} s)")
        self.G = DeidGenerator(arch).to(self.device)
        init_weights(self.G, "normal", 0.02)
        if bank is not None:
            self.G.set_bank(bank.to(self.device))
        for m in self.G.modules():  # FiLM starts as the identity (zero scale/shift); z enters by training
            if m.__class__.__name__ == "FiLM":
                nn.init.zeros_(m.fc.weight)
        self.D = init_weights(build_discriminator("patch", in_ch=4, ndf=cfg.ndf, n_layers=cfg.n_layers,
                                                  norm="instance"), "normal").to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
        self.gan = GANLoss("lsgan")
        self.perc = None
        if cfg.w_perc > 0 and cfg.lossnet != "none":
            from .lossnet import load_lossnet

            try:
                style = cfg.perc_mode == "style"
                self.perc = PerceptualLoss(load_lossnet(cfg.lossnet, self.device), content_layers=(0, 1, 2),
                                           style_layers=(0, 1, 2), content_weight=0.0 if style else 1.0,
                                           style_weight=1.0 if style else 0.0).to(self.device)
            except FileNotFoundError as exc:
                log(f"warning: no perceptual loss ({exc}); pass --lossnet none to silence this")
        self.step, self.elapsed = 0, 0.0
        self.out = Path(cfg.out)
        n = min(6, len(self.vx))
        self.sample_idx = torch.arange(n)
        self.sample_z = torch.randn(2, n, cfg.z_dim, generator=torch.Generator().manual_seed(1))

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)

    def train_step(self, x: torch.Tensor, heat: torch.Tensor, proto: torch.Tensor | None = None) -> dict[str, float]:
        c, n = self.cfg, x.shape[0]
        hard = self.G.hard.expand(n, 1, -1, -1)
        z1 = torch.randn(n, c.z_dim, generator=self.gen).to(self.device)
        z2 = torch.randn(n, c.z_dim, generator=self.gen).to(self.device)
        with self.autocast():
            raw1, comp1 = self.G(x, heat, z1, proto)
            _, comp2 = self.G(x, heat, z2, proto) if c.w_ms > 0 else (None, comp1)
        # D
        set_requires_grad(self.D, True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            d_loss = 0.5 * (self.gan(self.D(torch.cat([x, hard], 1)), True)
                            + self.gan(self.D(torch.cat([comp1.detach(), hard], 1)), False))
        d_loss.backward()
        self.opt_d.step()
        # G
        set_requires_grad(self.D, False)
        self.opt_g.zero_grad(set_to_none=True)
        outside = 1 - self.G.soft
        inside = self.G.hard
        # the look the fake is held to: the face itself, or the face with the prototype pasted in
        if c.target == "original" or proto is None:
            tgt = x
        else:  # the prototype as the generator gets it (recoloured to this face's context)
            tgt = x * outside + self.G.fit_prototypes(proto, x) * self.G.soft
        with self.autocast():
            adv = self.gan(self.D(torch.cat([comp1, hard], 1)), True, for_discriminator=False)
            ctx = ((raw1.float() - x).abs() * outside).sum() / (outside.sum() * 3 * n)
            inn = ((comp1.float() - tgt).abs() * inside).sum() / (inside.sum() * 3 * n)
            perc = self.perc(comp1, tgt) if self.perc is not None else torch.zeros((), device=self.device)
            if c.w_ms > 0:
                diff = ((comp1.float() - comp2.float()).abs() * inside).flatten(1).sum(1) / (inside.sum() * 3)
                lz = (diff / (z1 - z2).abs().mean(1)).mean()
                ms = 1.0 / (lz + 0.05)  # bounded: at most 20 while z is still ignored
            else:
                ms = torch.zeros((), device=self.device)
            g_loss = c.w_adv * adv + c.w_ctx * ctx + c.w_in * inn + c.w_perc * perc + c.w_ms * 0.1 * ms
        g_loss.backward()
        self.opt_g.step()
        return {k: float(v.detach()) for k, v in
                (("d", d_loss), ("adv", adv), ("ctx", ctx), ("in", inn), ("perc", perc), ("ms", ms))}

    # -- checkpoints
    def state(self) -> dict[str, Any]:
        return {"step": self.step, "elapsed": self.elapsed, "cfg": json.dumps(asdict(self.cfg)),
                "G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "gen": self.gen.get_state(), "rng": torch.get_rng_state()}

    def save_checkpoint(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save(self.state(), self.out / "ckpt.pt.part")
        os.replace(self.out / "ckpt.pt.part", self.out / "ckpt.pt")

    def resume(self) -> bool:
        p = self.out / "ckpt.pt"
        if not p.is_file():
            return False
        st = torch.load(p, map_location="cpu", weights_only=True)
        self.G.load_state_dict(st["G"])
        self.D.load_state_dict(st["D"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["rng"])
        self.step, self.elapsed = int(st["step"]), float(st["elapsed"])
        log_path = self.out / "log.csv"
        if log_path.is_file():  # drop rows written after the checkpoint (they are redone)
            rows = list(csv.reader(log_path.open()))
            keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= self.step]
            with log_path.open("w", newline="") as fh:
                csv.writer(fh).writerows(keep)
        self.log(f"resumed {p} at step {self.step}")
        return True

    @torch.no_grad()
    def save_samples(self) -> Path:
        """Rows: original, masked input, fake with z_a, fake with z_b. With a prototype bank: original,
        masked input, the nearest other faces' average and the fake from it, then two bank
        prototypes (the 1st and 4th candidates by context) and their fakes (z_a, z_b)."""
        self.G.eval()
        x, h, *pr = batch(self.vx, self.vpts, self.sample_idx, None, self.device, self.vcond)
        za, zb = self.sample_z[0].to(self.device), self.sample_z[1].to(self.device)
        path = self.out / "samples" / f"step_{self.step:06d}.png"
        with self.autocast():
            if pr:
                cand = self.G.candidates(x, 4)
                pa, pb = self.G.prototypes(cand[:, 0]), self.G.prototypes(cand[:, -1])
                rows = [x, x * (1 - self.G.hard), pr[0], self.G(x, h, za, pr[0])[1], pa, self.G(x, h, za, pa)[1],
                        pb, self.G(x, h, zb, pb)[1]]
            else:
                rows = [x, x * (1 - self.G.hard), self.G(x, h, za)[1], self.G(x, h, zb)[1]]
        self.G.train()
        save_grid([r.float() for r in rows], path)
        return path

    @torch.no_grad()
    def evaluate(self, max_n: int = 256) -> dict[str, float]:
        """Held-out: context L1 (outside the interior, [0, 1] units), interior L1 to the original,
        diversity (mean interior |G(z1) - G(z2)|, [0, 1] units)."""
        self.G.eval()
        n = min(len(self.vx), max_n)
        gen = torch.Generator().manual_seed(123)
        tot = {"val_ctx_l1": 0.0, "val_interior_l1": 0.0, "val_diversity": 0.0}
        inside, outside = self.G.hard, 1 - self.G.soft
        for i in range(0, n, 16):
            idx = torch.arange(i, min(i + 16, n))
            x, h, *pr = batch(self.vx, self.vpts, idx, None, self.device, self.vcond)
            pr = pr[0] if pr else None
            z = torch.randn(2, len(idx), self.cfg.z_dim, generator=gen).to(self.device)
            with self.autocast():
                raw, a = self.G(x, h, z[0], pr)
                _, b = self.G(x, h, z[1], pr)
            raw, a, b = raw.float(), a.float(), b.float()

            def mean_in(t, m):
                return float(((t.abs() * m).flatten(1).sum(1) / (m.sum() * 3)).sum() / 2)

            tot["val_ctx_l1"] += mean_in(raw - x, outside)
            tot["val_interior_l1"] += mean_in(a - x, inside)
            tot["val_diversity"] += mean_in(a - b, inside)
        self.G.train()
        return {k: round(v / n, 4) for k, v in tot.items()} | {"n_val": n}

    def run(self, stop_at: int | None = None) -> dict[str, float]:
        c = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(c), indent=2))
        new_log = not (self.out / "log.csv").is_file()
        end = c.steps if stop_at is None else min(stop_at, c.steps)
        with open(self.out / "log.csv", "a", newline="") as fh:
            w = csv.writer(fh)
            if new_log:
                w.writerow(["step", *self.loss_names, "time_s"])
            acc: dict[str, float] = {}
            t0, n_acc = time.time(), 0
            pace = Pace(c.time_budget, self.step, 20, 60)
            while self.step < end:
                fitted = pace.fit(self.step, c.steps, self.elapsed + time.time() - t0)
                if fitted is not None:
                    c.steps = fitted
                    end = c.steps if stop_at is None else min(stop_at, c.steps)
                    self.log(pace.message(c.steps))
                idx = torch.randint(0, len(self.x), (c.batch_size,), generator=self.gen)
                flip = torch.rand(c.batch_size, generator=self.gen) < 0.5
                losses = self.train_step(*batch(self.x, self.pts, idx, flip, self.device, self.cond))
                self.step += 1
                for k, v in losses.items():
                    acc[k] = acc.get(k, 0.0) + v
                n_acc += 1
                if self.step % c.log_every == 0 or self.step == end:
                    now = time.time()
                    self.elapsed += now - t0
                    t0 = now
                    w.writerow([self.step, *(f"{acc[k] / n_acc:.5f}" for k in self.loss_names), f"{self.elapsed:.0f}"])
                    fh.flush()
                    self.log(f"step {self.step}/{c.steps} " + " ".join(f"{k} {acc[k] / n_acc:.4f}" for k in self.loss_names))
                    acc, n_acc = {}, 0
                after_log(self, end)
        if self.step < c.steps:
            return {}
        grid, m = finish(self)
        save_deid(self.out / "generator.pt", self.G, self.meta(m))
        if c.export:
            self.export(Path(c.export), grid, m)
        return m

    def meta(self, m: dict) -> dict[str, Any]:
        return {"data": self.cfg.data, "steps": self.step, "metrics": m, "command": self.cfg.command}

    def export(self, d: Path, grid: Path, m: dict) -> None:
        import cv2

        d.mkdir(parents=True, exist_ok=True)
        save_deid(d / "generator.pt", self.G, self.meta(m), half=True)
        cv2.imwrite(str(d / "samples.jpg"), cv2.imread(str(grid)), [cv2.IMWRITE_JPEG_QUALITY, 88])
        c = self.cfg
        lines = [
            f"# {d.name}", "",
            f"GAN de-identification generator (`vidgan.gan.deid.DeidGenerator`, "
            f"{count_params(self.G) / 1e6:.2f} M float16 parameters, {c.size} px aligned crops, margin {c.margin}, z {c.z_dim}-d), trained by "
            f"`vidgan train deid`; used by `vidgan anonymize --mode gan --gan-model {d}`.", "",
            "- Data: UTKFace aligned and cropped faces (non-commercial research use only), aligned by their "
            "MTCNN landmarks; held-out split by file-name hash "
            f"({c.val_fraction:.0%}, never trained on).",
            f"- Command: `{c.command or '(library call)'}`",
            f"- Training: {self.step} steps, batch {c.batch_size}, lr {c.lr}, weights adv {c.w_adv} ctx {c.w_ctx} "
            f"in {c.w_in} perc {c.w_perc} ({c.lossnet}, {c.perc_mode}) ms {c.w_ms}; "
            f"{m.get('train_seconds', 0) / 60:.1f} min on {hardware(self.device)}.",
            "- Metrics (held-out): " + ", ".join(f"{k} {v}" for k, v in m.items() if k not in ("train_seconds", "steps")),
            *([f"- Identity prototypes: {self.G.arch.n_proto} (k-means of the training faces' interiors, "
               f"{c.proto} clusters, those of at least {c.proto_k} faces kept), each the average of its "
               f"cluster at {c.proto_size} px, stored in the file. A prototype is nobody in particular "
               f"(k-Same de-identification); the generator paints it into the context. Training "
               f"condition: the average of the {c.proto_k} most similar other faces."] if self.G.arch.n_proto else []),
            "- Acceptance numbers (dlib judge): see docs/benchmarks.md (`benchmarks/bench_deid.py`).",
            "- Licence of the weights: derived from the data above, same terms.", "",
            "![samples](samples.jpg)", "",
            ("Rows: held-out original, generator input (interior removed), the average of the most similar "
             "other faces and the fake from it, then two bank prototypes chosen from the context, each "
             "followed by its fake." if self.G.arch.n_proto else
             "Rows: held-out original, generator input (interior removed), fake with code A, fake with code B."), "",
        ]
        (d / "README.md").write_text("\n".join(lines))
        self.log(f"exported {d / 'generator.pt'}")


def train_deid(cfg: DeidConfig, resume: bool = False, log=print) -> dict[str, float]:
    t = DeidTrainer(cfg, log)
    if resume:
        t.resume()
    return t.run()


def command_line() -> str:
    return " ".join(["vidgan", *sys.argv[1:]])


__all__ = ["DeidConfig", "DeidTrainer", "train_deid", "load_aligned", "chip_landmarks"]
