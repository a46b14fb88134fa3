"""`vidgan deepfake INPUT...`: how likely are the faces in each video or photo manipulated, and
`vidgan train deepfake`: train the detector on real faces and pseudo-fakes made from them."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import _fraction, _positive_int

EPILOG = """exit codes: 0 every input scored (whatever the verdict), 1 some inputs could not be read
or scored (the others were), 2 usage error (bad option, no model)

The verdict is "likely fake" when the fake probability reaches the threshold (--threshold, else
the model's calibrated one, written in the JSON), "likely real" below it,
and "no face found" (fake_probability null in the JSON) when no sampled frame shows a face."""


def register(sub) -> None:
    p = sub.add_parser("deepfake", help="score videos/photos: how likely are their faces manipulated",
                       description="Sample frames, find faces with MTCNN, score each face crop with the "
                       "deepfake classifier (models/deepfake), aggregate per face track and per input.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="videos or photos")
    p.add_argument("--json", metavar="FILE", help="write the results (a list, one entry per input) to FILE")
    p.add_argument("--report", metavar="DIR",
                   help="write DIR/<input name>.png: score over time and example face crops")
    p.add_argument("--frames", type=_positive_int, default=32, metavar="N",
                   help="frames sampled per video, evenly spaced (default 32)")
    p.add_argument("--threshold", type=_fraction(0.01, 0.99), default=None,
                   help="fake probability from which the verdict is 'likely fake' (default: the model's "
                        "calibrated threshold, the score 99%% of held-out real faces stay under)")
    p.add_argument("--model", metavar="FILE", help="detector checkpoint (default models/deepfake/deepfake.pt)")
    p.add_argument("--min-face", type=int, default=32, metavar="PX",
                   help="ignore faces smaller than PX pixels (default 32)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    from ._ray import add_ray_args

    add_ray_args(p, segments=False)
    p.set_defaults(func=run)


def _write_json(path: str, results: list) -> None:
    from ..media.writer import AtomicPath

    out = AtomicPath(path)
    try:
        with open(out.temp, "w") as f:
            json.dump(results, f, indent=1)
        out.commit()
    except BaseException:
        out.abort()
        raise


def run(args) -> int:
    from ..deepfake import ScoreOptions, Scorer, write_plot
    from ..errors import EXIT_FAILED, EXIT_OK, UsageError, VidganError
    from . import _frame_bar

    if args.min_face < 8:
        raise UsageError("--min-face must be at least 8 pixels")
    options = ScoreOptions(frames=args.frames, model=args.model, device=args.device,
                           threshold=args.threshold, min_face=args.min_face)
    scorer = Scorer(options)
    results, failed = [], 0
    if args.ray is not None:
        scored_all = _score_on_ray(args, options)
    for n, path in enumerate(args.inputs):
        if args.ray is not None:
            scored = scored_all[n]
            if isinstance(scored, BaseException):
                print(f"vidgan: error: {path}: {scored}", file=sys.stderr)
                results.append({"input": path, "fake_probability": None, "verdict": "error",
                                "error": str(scored)})
                failed += 1
                continue
        else:
            progress, close = _frame_bar(f"deepfake {os.path.basename(path)[:30]}", args.quiet, leave=False)
            try:
                scored = scorer.score(path, progress=progress)
            except VidganError as exc:
                close()
                print(f"vidgan: error: {exc}", file=sys.stderr)
                results.append({"input": path, "fake_probability": None, "verdict": "error", "error": str(exc)})
                failed += 1
                continue
            close()
        r = scored.result
        if args.report:
            name = os.path.splitext(os.path.basename(path))[0] + ".png"
            r["report_png"] = str(write_plot(scored, os.path.join(args.report, name)))
        prob = "n/a" if r["fake_probability"] is None else f"{r['fake_probability']:.2f}"
        print(f"{path}: {r['verdict']} (fake probability {prob}; {r['faces_scored']} faces in "
              f"{len(r['tracks'])} tracks over {r['frames_sampled']} frames)")
        results.append(r)
    if args.json:
        _write_json(args.json, results)
    return EXIT_FAILED if failed else EXIT_OK


_SCORERS: dict = {}


def _score_task(item):
    """One Ray task: score one input with a scorer cached per worker; an input vidgan cannot read
    comes back as its error (not retried: it would fail again)."""
    from ..deepfake import Scorer
    from ..errors import VidganError

    path, options = item
    scorer = _SCORERS.get(options)
    if scorer is None:
        scorer = _SCORERS[options] = Scorer(options)
    try:
        return scorer.score(path)
    except VidganError as exc:
        return exc


def _score_on_ray(args, options) -> list:
    from ..distributed import map_on_ray
    from ._ray import RayBar, ray_options

    bar = RayBar(len(args.inputs), args.quiet)
    try:
        return map_on_ray(_score_task, [(p, options) for p in args.inputs], ray_options(args),
                          on_done=lambda i, r: bar.done(i, None, r))
    finally:
        bar.close()


ARCHS = ("resnet18", "resnet34", "efficientnet_b0", "efficientnet_b1")  # deepfake.model.ARCHS (no torch here)


# -- vidgan train deepfake ------------------------------------------------------------------------------
TRAIN_EPILOG = """Trains on real faces only (../shared/data/faces/utkface and face crops from the shared
videos, cached once in packed/deepfake_faces.npz) against pseudo-fakes made from them on the fly.
Validates on the FaceForensics++ crops (never trained on) every --val-every steps into RUN_DIR/log.csv.
RUN_DIR/last.pt resumes exactly (--resume); RUN_DIR/best.pt has the best ffpp train-split AUC;
--export DIR writes DIR/deepfake.pt (float16) from best.pt at the end.

exit codes: 0 trained, 2 usage error"""


def register_train(tsub) -> None:
    t = tsub.add_parser("deepfake", help="deepfake detector from real faces and self-blended pseudo-fakes",
                        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data", metavar="DIR", default="", help="shared data folder (default ../shared/data)")
    t.add_argument("--pack", metavar="FILE", default="", help="face-crop cache (default packed/deepfake_faces.npz)")
    t.add_argument("--arch", default="resnet18", choices=ARCHS)
    t.add_argument("--size", type=_positive_int, default=128, help="input size in px (default 128)")
    t.add_argument("--steps", type=_positive_int, default=3000)
    t.add_argument("--batch-size", type=_positive_int, default=16,
                   help="real faces per step; each comes with its pseudo-fake, so 2x images (default 16)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--curriculum", type=_fraction(0.0, 1.0), default=0.5,
                   help="fraction of the steps over which fakes go from obvious to subtle (default 0.5)")
    t.add_argument("--lower-prob", type=_fraction(0.0, 1.0), default=0.0,
                   help="share of self-blends confined to the nose, mouth and chin, like a reenactment "
                        "(Face2Face, NeuralTextures); default 0")
    t.add_argument("--detail-prob", type=_fraction(0.0, 1.0), default=0.0,
                   help="share of self-blends whose copy has lost its fine detail (resampled, blurred "
                        "or smoothed, like a decoder's output); default 0")
    t.add_argument("--video-prob", type=_fraction(0.0, 1.0), default=0.0,
                   help="share of training images compressed by an H.264 round trip (qp 18-32) instead "
                        "of JPEG, as video frames are; default 0")
    t.add_argument("--gan-prob", type=_fraction(0.0, 1.0), default=0.0,
                   help="share of fakes blended from a shipped generator's re-rendering of the face "
                        "(rendered once into packed/deepfake_gan.npz); default 0")
    t.add_argument("--gan-models", metavar="M,M", default="",
                   help="generators (models/ names or files) for --gan-prob (default: the shipped age, "
                        "super-resolution and colouriser models)")
    t.add_argument("--map-weight", type=float, default=1.0,
                   help="weight of the auxiliary blend-map loss (0 turns it off; default 1)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--workers", type=int, default=1, help="data-loading processes (default 1)")
    t.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--time-budget", type=_fraction(0.0, float("inf")), default=0.0, metavar="S",
                   help="after 150 steps, cut --steps to what fits in S seconds (a lent GPU's time); "
                        "the lr and curriculum follow the new length")
    t.add_argument("--val-every", type=_positive_int, default=100, metavar="N")
    t.add_argument("--out", metavar="RUN_DIR", default="runs/deepfake")
    t.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt")
    t.add_argument("--export", metavar="DIR", default="", help="write DIR/deepfake.pt at the end (e.g. models/deepfake)")
    t.add_argument("--init", metavar="FILE", default="",
                   help="start from a backbone pre-trained on the shared faces (`vidgan train "
                        "deepfake-backbone`), or from a torchvision state dict of the same --arch (e.g. "
                        "ImageNet weights you have), instead of random weights")
    t.set_defaults(func=run_train)

    b = tsub.add_parser("deepfake-backbone", help="pre-train the deepfake detector's CNN on the shared faces",
                        epilog=BACKBONE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--pack", metavar="FILE", default="", help="face-crop cache (default packed/deepfake_faces.npz)")
    b.add_argument("--arch", default="resnet18", choices=ARCHS)
    b.add_argument("--size", type=_positive_int, default=128, help="input size in px (default 128)")
    b.add_argument("--epochs", type=_positive_int, default=2)
    b.add_argument("--batch-size", type=_positive_int, default=32)
    b.add_argument("--lr", type=float, default=2e-3)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    b.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1)")
    b.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0)")
    b.add_argument("--limit", type=int, default=0, metavar="N", help="train on the first N faces only (0: all)")
    b.add_argument("--out", metavar="RUN_DIR", default="runs/deepfake-backbone")
    b.set_defaults(func=run_backbone)


BACKBONE_EPILOG = """Trains the detector's architecture to tell age bucket, gender and ethnicity (from the
UTKFace file names) on the face pack's crops, so `vidgan train deepfake --init RUN_DIR/backbone.pt`
starts from a network that already describes faces. Rerunning continues after the last finished epoch.

exit codes: 0 trained, 2 usage error (no face pack yet)"""


def run_backbone(args) -> int:
    from ..deepfake.pretrain import PretrainOptions, pretrain
    from ..errors import UsageError

    if args.size < 32:
        raise UsageError("--size must be at least 32")
    opts = PretrainOptions(out=args.out, pack=args.pack, arch=args.arch, size=args.size, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
                           workers=max(0, args.workers), limit=max(0, args.limit), device=args.device)
    try:
        path = pretrain(opts, progress=lambda s: print(s, flush=True))
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {path}")
    return 0


def run_train(args) -> int:
    import logging

    from ..deepfake.train import TrainOptions, train
    from ..errors import UsageError

    if args.size < 32:
        raise UsageError("--size must be at least 32")
    if args.init:
        from ..deepfake.pretrain import load_backbone

        try:
            load_backbone(args.init, args.arch)
        except (OSError, ValueError, RuntimeError) as exc:
            raise UsageError(f"--init: {exc}") from None
    if args.gan_prob > 0:
        from ..deepfake.ganfakes import model_list
        from ..gan.translator import find_model

        for name in model_list(args.gan_models):
            try:
                find_model(name)
            except FileNotFoundError as exc:
                raise UsageError(f"--gan-models: {exc}") from None
    opts = TrainOptions(out=args.out, data=args.data, pack=args.pack, arch=args.arch, size=args.size,
                        steps=args.steps, batch_size=args.batch_size, lr=args.lr, curriculum=args.curriculum,
                        map_weight=args.map_weight, lower_prob=args.lower_prob,
                        detail_prob=args.detail_prob, video_prob=args.video_prob, gan_prob=args.gan_prob,
                        gan_models=args.gan_models,
                        seed=args.seed, device=args.device, workers=args.workers, threads=args.threads,
                        val_every=args.val_every, resume=args.resume, export=args.export,
                        time_budget=args.time_budget, init=args.init)
    logging.getLogger("vidgan.deepfake").setLevel(logging.INFO)
    train(opts, progress=lambda s: print(s, flush=True))
    return 0
