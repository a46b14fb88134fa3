"""`vidgan train deid`: train the GAN de-identification generator used by `anonymize --mode gan`.

Exit codes: 0 trained (or stopped at --stop-at), 1 data or model file missing, 2 usage error.
"""

from __future__ import annotations

import argparse

from . import _fraction, _int_at_least, _positive_int

EPILOG = __doc__.split("\n\n", 1)[1]


def register(sub) -> None:
    """No top-level command (inference is `vidgan anonymize --mode gan`); listed so that
    `vidgan train` finds `register_train`."""


def register_train(tsub) -> None:
    p = tsub.add_parser("deid", help="GAN de-identification: paint a different face into each aligned face crop",
                        description="Train the de-identification generator on aligned UTKFace crops "
                        "(landmarks cached in packed/).", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DIR", help="UTKFace folder")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="checkpoints, log.csv, samples/, generator.pt")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/ckpt.pt")
    p.add_argument("--export", metavar="models/NAME", help="also write generator.pt + model card here when done")
    p.add_argument("--size", type=_positive_int, default=128, help="aligned crop side (default 128)")
    p.add_argument("--margin", type=float, default=0.1, help="context around the UTKFace framing (0.1)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--steps", type=_positive_int, default=2000)
    p.add_argument("--time-budget", type=_fraction(0.0, float("inf")), default=0.0, metavar="S",
                   help="after 60 steps, cut --steps to what fits in S seconds of training (a lent GPU's time)")
    p.add_argument("--stop-at", type=_positive_int, help="stop (checkpointed) at this step, as an interruption would")
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ngf", type=_positive_int, default=32)
    p.add_argument("--n-down", type=_positive_int, default=4)
    p.add_argument("--n-res", type=int, default=2)
    p.add_argument("--z-dim", type=_positive_int, default=64)
    p.add_argument("--ndf", type=_positive_int, default=64)
    p.add_argument("--n-layers", type=_positive_int, default=3)
    p.add_argument("--w-adv", type=float, default=1.0)
    p.add_argument("--w-ctx", type=float, default=10.0)
    p.add_argument("--w-in", type=float, default=1.0)
    p.add_argument("--w-perc", type=float, default=1.0)
    p.add_argument("--perc", choices=["content", "style"], default="content", dest="perc_mode",
                   help="perceptual term: feature content (default) or Gram statistics only (texture, "
                        "no pull towards the original's facial layout)")
    p.add_argument("--w-ms", type=float, default=1.0)
    p.add_argument("--lossnet", default="face-attr", help="face-attr (models/face-attr), a lossnet.pt, or none")
    p.add_argument("--proto", type=_int_at_least(0), default=0, metavar="N",
                   help="identity prototype bank: N k-means clusters of the training faces, each kept when it "
                        "averages at least --proto-k faces; the fake gets its identity from one (0: none, z only)")
    p.add_argument("--proto-k", type=_positive_int, default=6, metavar="K",
                   help="faces averaged per prototype, at least (default 6)")
    p.add_argument("--target", choices=["original", "prototype"], default="original",
                   help="what the interior and perceptual terms compare the fake with: the training face, or "
                        "(with --proto) the face with its prototype pasted into the interior")
    p.add_argument("--cache", default="packed", metavar="DIR", help="where the landmark cache goes (packed/)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--threads", type=_positive_int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=_positive_int, default=10)
    p.add_argument("--sample-every", type=_positive_int, default=100)
    p.add_argument("--ckpt-every", type=_positive_int, default=100)
    p.set_defaults(func=run_train_deid)


def run_train_deid(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UsageError, VidganError
    from ..gan.deid_train import DeidConfig, DeidTrainer, command_line

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no CUDA device")
    if args.size < 32 or args.size % (2 ** args.n_down):
        raise UsageError(f"--size must be at least 32 and a multiple of {2 ** args.n_down}")
    if args.target == "prototype" and not args.proto:
        raise UsageError("--target prototype needs a prototype bank (--proto N)")
    cfg = DeidConfig(data=args.data, out=args.out, size=args.size, margin=args.margin, limit=args.limit,
                     val_fraction=args.val_fraction, batch_size=args.batch_size, steps=args.steps,
                     time_budget=args.time_budget, lr=args.lr,
                     ngf=args.ngf, n_down=args.n_down, n_res=args.n_res, z_dim=args.z_dim, ndf=args.ndf,
                     n_layers=args.n_layers, w_adv=args.w_adv, w_ctx=args.w_ctx, w_in=args.w_in,
                     w_perc=args.w_perc, perc_mode=args.perc_mode, w_ms=args.w_ms, lossnet=args.lossnet,
                     proto=args.proto, proto_k=args.proto_k, target=args.target,
                     device=args.device,
                     amp=not args.no_amp, seed=args.seed, log_every=args.log_every,
                     sample_every=args.sample_every, ckpt_every=args.ckpt_every, export=args.export, cache=args.cache,
                     command=command_line())
    try:
        trainer = DeidTrainer(cfg, log=lambda m: print(m, flush=True))
        if args.resume:
            trainer.resume()
        trainer.run(stop_at=args.stop_at)
    except (FileNotFoundError, ValueError) as exc:
        raise VidganError(str(exc)) from None
    return 0
