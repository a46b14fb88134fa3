"""`vidgan train pix2pix|cyclegan|sr|lossnet`: the GAN toolkit's trainers (library: vidgan.gan).

Every trainer writes RUN_DIR/ckpt.pt (every --ckpt-every steps), RUN_DIR/log.csv (losses),
RUN_DIR/samples/step_N.png (grids) and, when finished, RUN_DIR/metrics.json; `--resume` continues
exactly where the last checkpoint left off; `--export models/NAME` writes the shipped generator
(generator.pt + samples.jpg + model card README.md).
"""

from __future__ import annotations

import argparse
import logging

from . import _positive_int

EPILOG = """exit codes: 0 trained (and exported), 1 training failed (data unreadable, weights missing),
2 usage error"""

PAIR_KINDS = ("side-by-side", "paired", "unpaired", "age", "sr", "gray", "edges")


def _common(p: argparse.ArgumentParser, kind: str, size: int, steps: int, batch: int, lr: float) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, metavar="DIR",
                   help="image folder (side-by-side pairs, folder A, or the one folder pairs are made from)")
    d.add_argument("--data-b", metavar="DIR", help="folder B for paired/unpaired folders")
    d.add_argument("--pairs", choices=PAIR_KINDS, default=kind, help=f"how A/B pairs are made (default {kind})")
    d.add_argument("--direction", choices=["AtoB", "BtoA"], default="BtoA",
                   help="side-by-side: AtoB translates left->right (default BtoA: facades labels->photo)")
    d.add_argument("--size", type=_positive_int, default=size, help=f"images are resized to SIZE x SIZE (default {size})")
    d.add_argument("--crop", type=_positive_int, help="random training crops of this side (default: none)")
    d.add_argument("--val-fraction", type=float, default=0.1, help="held-out share by file-name hash (default 0.1)")
    d.add_argument("--limit", type=_positive_int, help="use at most this many training images")
    d.add_argument("--faces", action="store_true", help="mark the model as trained on aligned face crops")
    t = p.add_argument_group("training")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=steps, help=f"optimiser steps (default {steps})")
    length.add_argument("--epochs", type=_positive_int, help="passes over the training images (sets --steps)")
    t.add_argument("--batch-size", type=_positive_int, default=batch, help=f"default {batch}")
    t.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr})")
    t.add_argument("--decay-from", type=float, default=0.5, help="fraction of steps before linear LR decay (0.5)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto: CUDA when present")
    t.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    t.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, metavar="RUN_DIR", help="checkpoints, log.csv, samples/")
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR/ckpt.pt when it exists")
    t.add_argument("--ckpt-every", type=_positive_int, default=200, help="steps between checkpoints (200)")
    t.add_argument("--sample-every", type=_positive_int, default=200, help="steps between sample grids (200)")
    t.add_argument("--log-every", type=_positive_int, default=10, help="steps between CSV rows (10)")
    t.add_argument("--export", metavar="models/NAME", help="write the finished generator and its model card here")
    t.add_argument("--name", help="model name in the card (default: the export folder's name)")
    n = p.add_argument_group("networks")
    n.add_argument("--ngf", type=_positive_int, help="generator width")
    n.add_argument("--ndf", type=_positive_int, default=64, help="discriminator width (64)")
    n.add_argument("--n-blocks", type=_positive_int, help="residual blocks (resnet 6|9, srresnet)")
    n.add_argument("--n-layers", type=_positive_int, default=3, help="PatchGAN layers (3 = 70x70 patches)")
    n.add_argument("--d-arch", choices=["patch", "pixel"], default="patch", help="discriminator (patch)")
    n.add_argument("--norm", choices=["instance", "batch", "none"], default="instance", help="normalisation (instance)")
    n.add_argument("--init", choices=["normal", "xavier", "kaiming", "orthogonal"], default="normal")
    n.add_argument("--gan-loss", choices=["vanilla", "lsgan", "hinge"], help="adversarial objective")


def register(sub) -> None:
    """No top-level command of its own (inference is `vidgan translate`); being listed by
    `command_modules` is what lets `vidgan train` find `register_train` below."""


def register_train(tsub) -> None:
    p = tsub.add_parser("pix2pix", help="paired image translation (U-Net + PatchGAN, adversarial + L1)",
                        description="pix2pix: learn A->B from aligned pairs.", epilog=EPILOG)
    _common(p, "side-by-side", 256, 2000, 4, 2e-4)
    p.add_argument("--arch", choices=["unet", "resnet"], default="unet")
    p.add_argument("--lambda-l1", type=float, default=100.0, help="weight of L1 to the target (100)")
    p.add_argument("--no-dropout", action="store_true")
    p.set_defaults(func=run_train, task="pix2pix")

    p = tsub.add_parser("cyclegan", help="unpaired translation (two ResNet G, two PatchGAN D, cycle + identity)",
                        description="CycleGAN: learn A<->B from unpaired folders (or UTKFace young/old).",
                        epilog=EPILOG)
    _common(p, "unpaired", 128, 4000, 1, 2e-4)
    p.add_argument("--arch", choices=["resnet", "unet"], default="resnet")
    p.add_argument("--lambda-cycle", type=float, default=10.0)
    p.add_argument("--lambda-idt", type=float, default=0.5, help="identity weight relative to cycle (0.5)")
    p.add_argument("--pool-size", type=int, default=50)
    p.add_argument("--young-max", type=int, default=30, help="--pairs age: domain A is age < this (30)")
    p.add_argument("--old-min", type=int, default=60, help="--pairs age: domain B is age >= this (60)")
    p.add_argument("--export-reverse", metavar="models/NAME", help="where the B->A generator goes")
    p.set_defaults(func=run_train, task="cyclegan")

    p = tsub.add_parser("sr", help="x4 super-resolution: SRResNet (MSE) or SRGAN (content + adversarial)",
                        description="SR: low-res/high-res pairs made from one folder of images.", epilog=EPILOG)
    _common(p, "sr", 128, 2000, 16, 1e-4)
    p.add_argument("--scale", type=int, choices=[2, 4, 8], default=4)
    p.add_argument("--adv-weight", type=float, default=0.0, help="0: SRResNet (MSE only); SRGAN: 1e-3")
    p.add_argument("--content", choices=["mse", "perceptual"], default="mse",
                   help="content loss: MSE, or MSE + feature loss over --lossnet")
    p.add_argument("--perceptual-weight", type=float, default=1.0)
    p.add_argument("--style-weight", type=float, default=0.0, help="Gram-matrix style loss weight (0)")
    p.add_argument("--lossnet", default="face-attr", help="face-attr (shipped), vgg16 (local weights), or a lossnet.pt")
    p.add_argument("--init-from", metavar="GENERATOR", help="start G from this generator.pt (SRGAN from the MSE model)")
    p.set_defaults(func=run_train, task="sr")

    p = tsub.add_parser("lossnet", help="the face-attribute loss network for perceptual losses (UTKFace)",
                        description="Train FaceAttrNet (age bucket + gender) on UTKFace file-name labels.",
                        epilog=EPILOG)
    p.add_argument("--data", required=True, metavar="DIR", help="UTKFace folder (age_gender_race_*.jpg)")
    p.add_argument("--size", type=_positive_int, default=64)
    p.add_argument("--epochs", type=_positive_int, default=4)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=_positive_int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=_positive_int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="RUN_DIR")
    p.add_argument("--export", metavar="models/NAME", help="write lossnet.pt here (default models/face-attr)")
    p.set_defaults(func=run_lossnet)


def _log(msg: str) -> None:
    logging.getLogger("vidgan.gan").info(msg)
    print(msg, flush=True)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UsageError
    from ..gan.data import DataSpec
    from ..gan.train import TrainConfig, command_line, make_trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no CUDA device")
    task = args.task
    defaults = {"pix2pix": dict(ngf=64, n_blocks=9, gan="vanilla"),
                "cyclegan": dict(ngf=64, n_blocks=9 if args.size >= 256 else 6, gan="lsgan"),
                "sr": dict(ngf=64, n_blocks=16, gan="vanilla")}[task]
    spec = DataSpec(kind=args.pairs, root=args.data, root_b=args.data_b, size=args.size, crop=args.crop,
                    scale=getattr(args, "scale", 4), direction=args.direction, val_fraction=args.val_fraction,
                    limit=args.limit, young_max=getattr(args, "young_max", 30), old_min=getattr(args, "old_min", 60))
    input_mode = {"gray": "gray", "side-by-side": "labels" if args.direction == "BtoA" else "rgb"}.get(args.pairs, "rgb")
    cfg = TrainConfig(
        task=task, data=spec, out=args.out, steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, decay_from=args.decay_from, device=args.device, seed=args.seed, amp=not args.no_amp,
        ckpt_every=args.ckpt_every, sample_every=args.sample_every, log_every=args.log_every,
        arch=getattr(args, "arch", "srresnet"), ngf=args.ngf or defaults["ngf"],
        n_blocks=args.n_blocks or defaults["n_blocks"], norm=args.norm,
        dropout=not getattr(args, "no_dropout", False), init=args.init, d_arch=args.d_arch, n_layers=args.n_layers,
        ndf=args.ndf, gan_mode=args.gan_loss or defaults["gan"], lambda_l1=getattr(args, "lambda_l1", 100.0),
        lambda_cycle=getattr(args, "lambda_cycle", 10.0), lambda_idt=getattr(args, "lambda_idt", 0.5),
        pool_size=getattr(args, "pool_size", 50), adv_weight=getattr(args, "adv_weight", 0.0),
        content=getattr(args, "content", "mse"), perceptual_weight=getattr(args, "perceptual_weight", 1.0),
        style_weight=getattr(args, "style_weight", 0.0), lossnet=getattr(args, "lossnet", "face-attr"),
        init_from=getattr(args, "init_from", None), export=args.export,
        export_reverse=getattr(args, "export_reverse", None), name=args.name, input_mode=input_mode,
        faces=args.faces, command=command_line())
    try:
        trainer = make_trainer(cfg, log=_log)
        if args.resume:
            trainer.resume()
        trainer.run()
    except FileNotFoundError as e:
        from ..errors import VidganError
        raise VidganError(str(e)) from None
    return 0


def run_lossnet(args: argparse.Namespace) -> int:
    import torch

    from ..gan.lossnet import LossnetConfig, train_face_attr, write_lossnet_card
    from ..gan.train import command_line, hardware
    from ..gan.translator import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = LossnetConfig(root=args.data, out=args.out, size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, width=args.width, val_fraction=args.val_fraction, device=args.device,
                        seed=args.seed, export=args.export)
    try:
        m = train_face_attr(cfg, log=_log)
    except FileNotFoundError as e:
        from ..errors import VidganError
        raise VidganError(str(e)) from None
    if cfg.export:
        write_lossnet_card(cfg, m, command_line(), hardware(resolve_device(cfg.device)))
    return 0
