"""`vidgan translate`: apply a trained generator (models/<name>/generator.pt) to videos and photos."""

from __future__ import annotations

import argparse
import os
import sys

from . import _fraction, _frame_bar, _positive_int, add_detector_args, parse_time

EPILOG = """exit codes: 0 all inputs translated, 1 some inputs failed (the others completed),
2 usage error (bad option, unknown model, -o with several inputs)

examples:
  vidgan translate talk.mp4 --model face-colorize -o talk_colour.mp4
  vidgan translate clip.mp4 --model face-sr4x --keep-size -o sharper.mp4
  vidgan translate street.mp4 --model facades --whole-frame --tile 512 -o out.mp4
  vidgan translate photos/ --model face-age --out-dir aged/ --no-temporal"""


def register(sub) -> None:
    p = sub.add_parser(
        "translate", help="apply a trained GAN generator to videos or photos (whole frames or faces)",
        description="Run a trained image-to-image generator (see `vidgan train`) over every frame.\n"
        "Face models translate aligned face crops and paste them back (feathered); other models\n"
        "translate whole frames, in overlapping tiles when large. Video output keeps frame count,\n"
        "timestamps, rotation, audio and metadata; per-frame flicker is smoothed along the optical\n"
        "flow of the input. x4 super-resolution models give a x4 video unless --keep-size.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="videos, photos or folders")
    p.add_argument("--model", required=True, metavar="NAME_OR_PATH",
                   help="a model in models/ (e.g. face-colorize, face-sr4x) or a generator .pt file")
    where = p.add_argument_group("output")
    where.add_argument("-o", "--output", help="output file (one input only)")
    where.add_argument("--out-dir", help="folder for outputs (default: beside each input as NAME.MODEL.EXT)")
    where.add_argument("--recursive", action="store_true", help="walk sub-folders of folder inputs")
    where.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    what = p.add_argument_group("what to translate")
    mode = what.add_mutually_exclusive_group()
    mode.add_argument("--faces-only", dest="faces_only", action="store_true", default=None,
                      help="translate aligned face crops only (default for models trained on faces)")
    mode.add_argument("--whole-frame", dest="faces_only", action="store_false",
                      help="translate whole frames (default for other models)")
    what.add_argument("--start", type=parse_time, help="translate frames from this time (s or hh:mm:ss)")
    what.add_argument("--end", type=parse_time, help="translate frames before this time; others pass through")
    what.add_argument("--keep-size", action="store_true",
                      help="x4 models: resize the result back to the input size (default: x4 output)")
    what.add_argument("--tile", type=int, default=512, metavar="PX",
                      help="whole-frame tile size in input pixels (rounded up to what the model accepts; "
                           "0 = whole frame at once; default 512)")
    what.add_argument("--tile-overlap", type=int, default=32, metavar="PX", help="tile overlap (default 32)")
    faces = p.add_argument_group("faces")
    faces.add_argument("--align-margin", type=_fraction(0.0, 1.0), default=0.0,
                       help="context around the model's training crop, fraction of the crop per side (default 0)")
    faces.add_argument("--feather", type=_fraction(0.01, 0.5), default=0.12,
                       help="soft edge of the pasted face, fraction of the crop (default 0.12)")
    faces.add_argument("--paste-mask", choices=["ellipse", "box"], default="ellipse",
                       help="shape pasted back (default ellipse)")
    faces.add_argument("--color-match", action="store_true",
                       help="match each translated face's colours to the original face")
    luma = faces.add_mutually_exclusive_group()
    luma.add_argument("--keep-luma", dest="keep_luma", action="store_true", default=None,
                      help="keep the frame's own brightness and take only the model's colour (default for "
                           "gray-input models: colourisation keeps full-resolution detail)")
    luma.add_argument("--model-luma", dest="keep_luma", action="store_false",
                      help="paste the model's output as it is")
    tm = p.add_argument_group("temporal smoothing (video)")
    tsel = tm.add_mutually_exclusive_group()
    tsel.add_argument("--temporal-alpha", type=_fraction(0.0, 0.95), default=0.7, metavar="A",
                      help="weight of the previous output warped by optical flow, on pixels where the flow "
                           "is trusted (default 0.7; 0 = off)")
    tsel.add_argument("--no-temporal", action="store_true", help="no smoothing (per-frame translation)")
    add_detector_args(p)  # --device also picks where the generator runs
    p.add_argument("--model-batch", type=_positive_int, default=4, metavar="N",
                   help="tiles or faces per generator pass (default 4)")
    e = p.add_argument_group("encoding")
    e.add_argument("--codec", default="auto", help="video encoder (default auto: libx264; libvpx for "
                   "webm/ogg, mpeg4 for avi, gif for GIF)")
    e.add_argument("--crf", type=int, default=None, help="quality (x264 default 20; lower is better)")
    e.add_argument("--preset", default="veryfast", help="x264/x265 preset (default veryfast)")
    e.add_argument("--no-audio", action="store_true", help="drop audio and subtitle streams")
    e.add_argument("--strip-metadata", action="store_true", help="do not copy container metadata")
    from ._ray import add_ray_args

    add_ray_args(p, segments=False)
    p.set_defaults(func=cmd_translate)


def _options(args):
    from ..errors import UsageError
    from ..faces import DetectorOptions
    from ..media import EncodeOptions
    from ..translate import TranslateOptions

    try:
        encode = EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset,
                               copy_audio=not args.no_audio, copy_metadata=not args.strip_metadata)
        detector = DetectorOptions(threshold=args.threshold, min_face=args.min_face, device=args.device,
                                   batch_size=args.batch_size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return TranslateOptions(
        model=args.model, faces_only=args.faces_only,
        temporal_alpha=0.0 if args.no_temporal else args.temporal_alpha,
        tile=args.tile, tile_overlap=args.tile_overlap, keep_size=args.keep_size,
        margin=args.align_margin, feather=args.feather, mask_shape=args.paste_mask,
        color_match=args.color_match, keep_luma=args.keep_luma, device=args.device, batch_size=args.model_batch,
        detector=detector, encode=encode, start=args.start, end=args.end, detect_every=args.detect_every)


def _plan(args, translator_name: str) -> list[tuple[str, str]]:
    from ..batch import collect_inputs
    from ..errors import UsageError
    from ..translate import default_output

    inputs = collect_inputs(args.inputs, recursive=args.recursive)
    if not inputs:
        raise UsageError("no media files found in the given folders")
    if args.output and args.out_dir:
        raise UsageError("use either -o/--output or --out-dir, not both")
    if args.output and len(inputs) != 1:
        raise UsageError(f"-o/--output takes one input, got {len(inputs)}; use --out-dir for several")
    jobs = []
    for path, base in inputs:
        if args.output:
            jobs.append((path, args.output))
            continue
        out = default_output(path, translator_name)
        if args.out_dir:
            rel = os.path.relpath(os.path.dirname(path), base) if base else "."
            out = os.path.normpath(os.path.join(args.out_dir, rel, os.path.basename(out)))
        jobs.append((path, out))
    return jobs


def cmd_translate(args) -> int:
    from ..errors import EXIT_FAILED, EXIT_OK, VidganError
    from ..translate import Translation

    options = _options(args)
    job = Translation(options)  # loads the model first: an unknown model is a usage error (exit 2)
    if args.ray is not None:
        return _translate_on_ray(args, options, _plan(args, job.translator.name))
    failed = 0
    for src, dst in _plan(args, job.translator.name):
        if args.out_dir:
            os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        progress, close = _frame_bar(os.path.basename(src)[:40], args.quiet)
        try:
            report = job.translate(src, dst, progress=progress)
        except VidganError as exc:
            close()
            if exc.exit_code != EXIT_FAILED:
                raise
            print(f"vidgan: error: {exc if exc.path else f'{src}: {exc}'}", file=sys.stderr)
            failed += 1
            continue
        close()
        if not args.quiet:
            what = "faces" if job.faces_only else "whole frames"
            extra = f"; {'; '.join(report.warnings)}" if report.warnings else ""
            print(f"ok: {src} -> {dst} ({report.frames} frames, {what}, {report.fps:.1f} fps{extra})",
                  file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _translate_on_ray(args, options, plan) -> int:
    """One Ray task per file (whole files: smoothing runs through the video); same lines and exit
    code as the local loop."""
    from ..batch import Job
    from ..distributed import TranslateWork
    from ..errors import EXIT_FAILED, EXIT_OK
    from . import file_done
    from ._ray import RayBar, run_on_ray

    jobs = [Job(src, dst) for src, dst in plan]
    bar = RayBar(len(jobs), args.quiet)
    done = file_done(bar, args.quiet, lambda r: f"{r.frames} frames, {r.fps:.1f} fps")
    try:
        report = run_on_ray(args, jobs, TranslateWork(options), bar, done)
    finally:
        bar.close()
    return EXIT_FAILED if report.failed else EXIT_OK
