"""`vidgan` command line. Parses arguments, builds the option dataclasses, calls the library.

Exit codes: 0 all inputs ok, 1 some inputs failed, 2 usage error, 3 wrong passcode or damaged vault,
4 audit found a leak.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import os
import sys
from typing import Optional, Sequence

from ..threads import set_defaults

# Before NumPy's and OpenCV's imports: their own thread pools only cost CPU beside the pipeline's
# stages (one OpenBLAS thread; one OpenCV thread on 1-2 cores; see threads.py). A user's own setting wins.
set_defaults()

from .. import __version__  # noqa: E402
from ..errors import EXIT_FAILED, EXIT_LEAK, EXIT_OK, EXIT_USAGE, UsageError, VidganError  # noqa: E402

EPILOG = """exit codes: 0 all inputs processed, 1 some inputs failed (the others completed),
2 usage error, 3 wrong passcode or damaged vault, 4 audit found a leak"""


def parse_time(value: str) -> float:
    """Seconds ('12.5') or [[hh:]mm:]ss(.fff)."""
    try:
        parts = [float(p) for p in value.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {value!r} (use seconds or hh:mm:ss.fff)") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise argparse.ArgumentTypeError(f"not a time: {value!r}")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def _fraction(lo: float, hi: float):
    def check(value: str) -> float:
        try:
            v = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is outside [{lo}, {hi}]")
        return v
    return check


def _int_at_least(lo: int):
    def check(value: str) -> int:
        try:
            v = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v
    return check


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def add_detector_args(p: argparse.ArgumentParser, auto_stride: bool = False) -> None:
    g = p.add_argument_group("detection")
    g.add_argument("--threshold", type=_fraction(0.01, 0.99), default=0.7,
                   help="MTCNN final-stage probability to accept a face (lower finds more; default 0.7)")
    g.add_argument("--min-face", type=int, default=None, metavar="PX",
                   help="smallest face to find, in pixels of the frame (default: max(20, short side/36)); "
                        "sets the working resolution")
    g.add_argument("--batch-size", type=_positive_int, default=8, help="frames per detector batch (default 8)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where MTCNN runs (default auto: the GPU when there is one)")
    if auto_stride:
        g.add_argument("--detect-every", type=_non_negative_int, default=0, metavar="N",
                       help="search whole frames on every N-th frame (and the last); the tracker covers the "
                            "frames between and searches around each face where it appears or leaves "
                            "(default 0 = auto: at least 5 times a second, every 5th frame at 25-29.97 fps)")
        g.add_argument("--full-res-every", type=_non_negative_int, default=0, metavar="N",
                       help="of those searches, every N-th at the full working resolution, the others at "
                            "half of it (faces of at least twice --min-face; smaller ones are found by "
                            "the next full search and followed back) (default 0 = auto: 2 with the auto "
                            "stride, else 1: every search at full resolution)")
    else:
        g.add_argument("--detect-every", type=_positive_int, default=1, metavar="N",
                       help="run the detector on every N-th frame; tracking covers the rest (default 1)")


def add_passcode_args(p: argparse.ArgumentParser, making: bool) -> None:
    """Where the passcode comes from: a file, an environment variable or a prompt — never a value
    on the command line (it would land in shell history and process listings)."""
    g = p.add_argument_group("passcode vault" if making else "passcode")
    src = g.add_mutually_exclusive_group(required=not making)
    src.add_argument("--passcode-file", metavar="FILE",
                     help="read the passcode from FILE (UTF-8; one trailing newline is ignored)")
    src.add_argument("--passcode-env", metavar="VAR", help="read the passcode from environment variable VAR")
    src.add_argument("--passcode-prompt", action="store_true",
                     help="ask for the passcode on the terminal" + (" (twice)" if making else ""))
    if making:
        g.add_argument("--vault", metavar="PATH", help="where to write the vault (one input only; "
                       "default: OUTPUT.vault beside the output)")
        g.add_argument("--lossless", action="store_true",
                       help="store the original regions bit-exact (much larger vault)")
        g.add_argument("--vault-psnr", type=_fraction(30.0, 60.0), default=None, metavar="DB",
                       help="quality of the stored regions: PSNR each segment must reach (default 45.5; "
                            "lower gives a smaller vault)")
        g.add_argument("--allow-weak-passcode", action="store_true",
                       help="accept a passcode shorter than 8 characters")
    else:
        g.add_argument("--vault", metavar="PATH", help="the vault (default: INPUT.vault)")


def command_modules():
    """Commands that live in their own module of this package (vidgan/cli/<name>.py), found by
    listing the package: a module with `register(sub)` adds its subparser(s) and sets `func=` to the
    function that runs them (parsed args in, exit code out). Such modules import the library lazily
    inside that function so `vidgan --help` stays fast."""
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidgan", description="Anonymize and transform faces in recorded video.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vidgan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # anonymize
    a = sub.add_parser("anonymize", help="find every face and cover it", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("inputs", nargs="+", metavar="INPUT", help="videos, photos or folders")
    where = a.add_argument_group("output")
    where.add_argument("-o", "--output", help="output file (one input only)")
    where.add_argument("--out-dir", help="folder for outputs (sub-folders kept with --recursive)")
    where.add_argument("--recursive", action="store_true", help="walk sub-folders of folder inputs")
    where.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    where.add_argument("--json-report", metavar="FILE", help="write a per-file JSON report")
    where.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    where.add_argument("--audit", action="store_true",
                       help="audit each output with an independent judge (see `vidgan audit`); "
                            "exit 4 if any face leaked")
    m = a.add_argument_group("covering")
    m.add_argument("--mode", choices=["blur", "pixelate", "solid", "gan"], default="blur",
                   help="gan: a generated face of another person, keyed by the passcode (random without one)")
    m.add_argument("--mask", choices=["ellipse", "box"], default="ellipse", help="mask shape (default ellipse)")
    m.add_argument("--margin", type=_fraction(0.0, 2.0), default=0.25,
                   help="grow each face box by this fraction on every side (default 0.25)")
    m.add_argument("--mask-scale", type=_fraction(0.2, 5.0), default=1.0, help="extra mask scale (default 1)")
    m.add_argument("--feather", type=_fraction(0.0, 1.0), default=0.15,
                   help="soft edge outside the mask, fraction of its size (default 0.15)")
    m.add_argument("--blur-strength", type=_fraction(0.1, 10.0), default=1.0, help="blur mode (default 1)")
    m.add_argument("--blocks", type=int, default=8, help="pixelate mode: cells across a face (default 8)")
    m.add_argument("--color", default="black", help="solid mode colour: #rrggbb, r,g,b or a name")
    m.add_argument("--gan-model", default="deid", metavar="NAME_OR_PATH",
                   help="gan mode: generator in models/NAME or a generator.pt (`vidgan train deid`; default deid)")
    m.add_argument("--gan-steady", type=_fraction(0.0, 0.95), default=0.0, metavar="W",
                   help="gan mode: weight of the previous frame's faces carried along the motion of the scene "
                        "around them (0: off, the default; with real donor faces it did not lower flicker)")
    t = a.add_argument_group("what to cover")
    t.add_argument("--start", type=parse_time, help="process from this time (s or hh:mm:ss); "
                   "earlier frames are kept unchanged")
    t.add_argument("--end", type=parse_time, help="process until this time; later frames kept unchanged")
    t.add_argument("--tracks", metavar="FILE", help="cover the boxes of a (possibly edited) `vidgan detect` "
                   "JSON instead of detecting")
    t.add_argument("--keep-track", type=int, action="append", default=[], metavar="ID",
                   help="leave this track visible (ids from `vidgan detect`); repeatable")
    add_detector_args(a, auto_stride=True)
    e = a.add_argument_group("encoding")
    e.add_argument("--codec", default="auto", help="video encoder (default auto: libx264; libvpx for "
                   "webm/ogg, mpeg4 for avi, gif for GIF)")
    e.add_argument("--crf", type=int, default=None, help="quality (x264 default 20; lower is better)")
    e.add_argument("--preset", default="veryfast", help="x264/x265 preset (default veryfast)")
    e.add_argument("--no-audio", action="store_true", help="drop audio and subtitle streams")
    e.add_argument("--strip-metadata", action="store_true",
                   help="do not copy container metadata (creation time, location, title...)")
    add_passcode_args(a, making=True)
    from ._ray import add_ray_args

    add_ray_args(a)

    # restore
    r = sub.add_parser("restore", help="put the original faces back from a passcode vault",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("input", metavar="ANONYMIZED", help="the anonymized video or photo (as published, "
                   "or re-encoded at the same frame rate)")
    r.add_argument("-o", "--output", required=True, help="the restored file")
    r.add_argument("--quiet", "-q", action="store_true")
    add_passcode_args(r, making=False)
    re_ = r.add_argument_group("encoding")
    re_.add_argument("--codec", default="auto", help="video encoder (default auto, as for anonymize)")
    re_.add_argument("--crf", type=int, default=None, help="quality (x264 default 20; lower is better)")
    re_.add_argument("--preset", default="veryfast", help="x264/x265 preset (default veryfast)")

    # detect
    d = sub.add_parser("detect", help="export face tracks to JSON (edit, then anonymize --tracks)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("input", metavar="INPUT")
    d.add_argument("--json", required=True, metavar="FILE", help="where to write the tracks")
    d.add_argument("--quiet", "-q", action="store_true")
    add_detector_args(d, auto_stride=True)

    # demo
    dm = sub.add_parser("demo", help="anonymize a built-in example clip (made at run time)")
    dm.add_argument("--out-dir", default="demo-out", help="where to put the example and result")
    dm.add_argument("--quiet", "-q", action="store_true")

    add_audit_parser(sub)
    add_gui_parser(sub)
    for module in command_modules():
        module.register(sub)
    return parser


def _detector_options(args):
    from ..faces import DetectorOptions

    return DetectorOptions(threshold=args.threshold, min_face=args.min_face, device=args.device,
                           batch_size=args.batch_size)


def _warm_up_detector(args) -> None:
    """Start compiling the detector's networks while the rest of the command loads (see
    `vidgan.faces.warm_up`): not where nothing is detected here (a tracks file, Ray's workers)."""
    if getattr(args, "tracks", None) or getattr(args, "ray", None) is not None:
        return
    try:
        options = _detector_options(args)
    except ValueError:
        return  # reported with the other options
    from ..faces import warm_up

    warm_up(options)


def _anonymize_options(args):
    from ..media import EncodeOptions
    from ..ops import MaskOptions, parse_color
    from ..pipeline import AnonymizeOptions

    try:
        color = parse_color(args.color)
        mask = MaskOptions(shape=args.mask, margin=args.margin, scale=args.mask_scale, feather=args.feather)
        encode = EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset,
                               copy_audio=not args.no_audio, copy_metadata=not args.strip_metadata)
        return AnonymizeOptions(
            mode=args.mode, mask=mask, detector=_detector_options(args), encode=encode,
            blur_strength=args.blur_strength, pixel_blocks=args.blocks, color=color,
            start=args.start, end=args.end, keep_tracks=frozenset(args.keep_track),
            tracks_file=args.tracks, detect_every=args.detect_every,
            full_res_every=args.full_res_every,
            gan_model=getattr(args, "gan_model", "deid"), gan_flow=getattr(args, "gan_steady", 0.0))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def file_done(bars, quiet: bool, detail, after=None):
    """The per-file callback of the batch commands: advance the bars, then print the error, or (unless
    quiet) `status: input -> output (detail(report))` and whatever `after(job, report)` adds."""
    def done(i, job, report):
        bars.done(i, job, report)
        if report.status == "failed":
            print(f"vidgan: error: {job.input}: {report.error}", file=sys.stderr)
        elif not quiet:
            print(f"{report.status}: {job.input} -> {job.output} ({detail(report)})", file=sys.stderr)
            if after is not None:
                after(job, report)
    return done


class _Bars:
    """tqdm bars: one for the batch, one for the current file."""

    def __init__(self, total_files: int, quiet: bool):
        self.quiet = quiet
        self.total_files = total_files
        self.batch = None
        self.file = None
        if not quiet:
            from tqdm import tqdm

            self._tqdm = tqdm
            if total_files > 1:
                self.batch = tqdm(total=total_files, desc="batch", unit="file", position=0)

    def start(self, i, job):
        if self.quiet:
            return
        if self.file is not None:
            self.file.close()
        self.file = self._tqdm(desc=os.path.basename(job.input)[:40], unit="frame",
                               position=1 if self.batch else 0, leave=self.batch is None)

    def progress(self, job, done, total):
        if self.file is None:
            return
        if total and self.file.total != total and done <= total:
            self.file.total = total
        self.file.n = done
        self.file.refresh() if done % 10 == 0 else None

    def done(self, i, job, report):
        if self.file is not None:
            self.file.n = report.frames
            self.file.close()
            self.file = None
        if self.batch is not None:
            self.batch.update(1)

    def close(self):
        for bar in (self.file, self.batch):
            if bar is not None:
                bar.close()


def cmd_anonymize(args) -> int:
    _warm_up_detector(args)
    from ..batch import collect_inputs, plan_jobs, run_batch

    options = _anonymize_options(args)
    if args.audit:
        from ..audit import load_dlib

        load_dlib()  # fail before anonymizing when the judge is not installed
    inputs = collect_inputs(args.inputs, recursive=args.recursive)
    if not inputs:
        raise UsageError("no media files found in the given folders")
    jobs = plan_jobs(inputs, output=args.output, out_dir=args.out_dir)
    if args.out_dir:
        for folder in sorted({os.path.dirname(j.output) for j in jobs}):
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError:
                pass  # reported per file as an unwritable output folder
    if args.ray is not None and (args.passcode_file or args.passcode_env or args.passcode_prompt):
        raise UsageError("--ray does not make passcode vaults (the passcode would travel to the workers); "
                         "run vault batches without --ray")
    passcode = None
    if args.mode == "gan":  # the fake identities follow the passcode (random key without one)
        import dataclasses

        from ..gan.deid_keys import passcode_key, random_key

        if args.passcode_file or args.passcode_env or args.passcode_prompt:
            passcode = _passcode(args, making=True)
        options = dataclasses.replace(options, gan_key=passcode_key(passcode) if passcode is not None else random_key())
    observers_for, vaults = _vault_observers(args, jobs, passcode)
    if args.ray is not None:
        from ._ray import RayBar

        bars = RayBar(len(jobs), args.quiet)
    else:
        bars = _Bars(len(jobs), args.quiet)

    def vault_line(job, report):
        vault = vaults.get(job)
        if vault is not None and report.status == "ok":
            s = vault.stats
            quality = "bit-exact" if vault.options.lossless else f"regions at {s.psnr:.1f} dB PSNR"
            print(f"vault: {s.path} ({s.bytes / 1024:.0f} KiB, {s.patches} regions, {quality})",
                  file=sys.stderr)

    def detail(report):
        extra = f"; {'; '.join(report.warnings)}" if report.warnings else ""
        return f"{report.frames} frames, {report.tracks} tracks, {report.fps:.1f} fps{extra}"

    done = file_done(bars, args.quiet, detail, after=vault_line)

    try:
        if args.ray is not None:
            from ..distributed import AnonymizeWork
            from ._ray import run_on_ray

            report = run_on_ray(args, jobs, AnonymizeWork(options), bars, done)
        else:
            report = run_batch(jobs, options, skip_existing=args.skip_existing, on_start=bars.start,
                               on_progress=bars.progress, on_done=done, observers_for=observers_for)
    finally:
        bars.close()
    if args.json_report:
        report.write_json(args.json_report)
    code = EXIT_FAILED if report.failed else EXIT_OK
    if args.audit:
        code = _audit_outputs(args, [f for f in report.files if f.status == "ok"]) or code
    return code


def _passcode(args, making: bool):
    from ..keys import get_passcode

    return get_passcode(args.passcode_file, args.passcode_env, args.passcode_prompt, confirm=making)


def _vault_observers(args, jobs, passcode=None):
    """(observers_for, {job: VaultWriter}) for `run_batch`; (None, {}) without a passcode."""
    has_passcode = bool(args.passcode_file or args.passcode_env or args.passcode_prompt)
    if not has_passcode:
        for flag, used in (("--vault", args.vault), ("--lossless", args.lossless),
                           ("--allow-weak-passcode", args.allow_weak_passcode),
                           ("--vault-psnr", args.vault_psnr is not None)):
            if used:
                raise UsageError(f"{flag} needs a passcode (--passcode-file, --passcode-env or --passcode-prompt)")
        return None, {}
    if args.vault and len(jobs) != 1:
        raise UsageError(f"--vault takes one input, got {len(jobs)}; vaults go beside each output by default")
    from ..vault import VaultOptions, VaultWriter, default_vault_path

    passcode = (passcode or _passcode(args, making=True)).check_policy(allow_weak=args.allow_weak_passcode)
    options = VaultOptions(lossless=args.lossless,
                           **({"target_psnr": args.vault_psnr} if args.vault_psnr is not None else {}))
    vaults = {}

    def observers_for(job):
        vaults[job] = VaultWriter(args.vault or default_vault_path(job.output), passcode, options)
        return [vaults[job]]

    return observers_for, vaults


def cmd_restore(args) -> int:
    from ..media import EncodeOptions
    from ..vault import default_vault_path, restore

    try:
        encode = EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    vault = args.vault or default_vault_path(args.input)
    passcode = _passcode(args, making=False)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(desc=os.path.basename(args.input)[:40], unit="frame")

    def progress(done, total):
        if bar is not None:
            if total and bar.total != total:
                bar.total = total
            bar.n = done
            bar.refresh() if done % 10 == 0 else None

    try:
        report = restore(args.input, vault, args.output, passcode, encode=encode, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        how = "the exact anonymized file" if report.exact_file else "a re-encoded copy (matched by timing and pictures)"
        extra = f"; {'; '.join(report.warnings)}" if report.warnings else ""
        print(f"restored: {args.input} -> {args.output} ({report.frames} frames, {report.patches} regions; "
              f"input is {how}{extra})", file=sys.stderr)
    return EXIT_OK


def _frame_bar(desc: str, quiet: bool, leave: bool = True):
    """A tqdm bar for one file's frames: returns (progress(done, total), close())."""
    if quiet:
        return (lambda done, total: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="frame", leave=leave)

    def progress(done, total):
        if total and bar.total != total and done <= total:
            bar.total = total
        bar.n = done
        if done % 5 == 0:
            bar.refresh()

    return progress, bar.close


def cmd_detect(args) -> int:
    _warm_up_detector(args)
    from ..pipeline import AnonymizeOptions, Pipeline

    pipe = Pipeline(AnonymizeOptions(detector=_detector_options(args), detect_every=args.detect_every,
                                     full_res_every=args.full_res_every))
    progress, close = _frame_bar(os.path.basename(args.input)[:40], args.quiet)
    try:
        doc = pipe.detect(args.input, progress=progress)
    finally:
        close()
    tmp = args.json + ".partial"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
        os.replace(tmp, args.json)
    except OSError as exc:
        raise VidganError(f"cannot write: {exc.strerror}", args.json) from None
    if not args.quiet:
        print(f"{len(doc['tracks'])} tracks in {doc['frame_count']} frames -> {args.json}", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args) -> int:
    from ..demo import ensure_dir, make_demo_clip, side_by_side
    from ..pipeline import anonymize_file

    folder = ensure_dir(args.out_dir)
    clip = make_demo_clip(os.path.join(folder, "astronaut.mp4"))
    out = os.path.join(folder, "astronaut.anonymized.mp4")
    report = anonymize_file(clip, out)
    png = side_by_side(clip, out, os.path.join(folder, "before_after.png"))
    print(f"demo input:  {clip}\ndemo output: {out}  ({report.frames} frames, {report.tracks} tracks, "
          f"{report.covered_boxes} faces covered, {report.fps:.1f} fps)\nbefore/after: {png}")
    return EXIT_OK


# -- audit --------------------------------------------------------------------------------------------
def add_audit_parser(sub) -> None:
    au = sub.add_parser("audit", help="check an anonymized video for leaked faces with an independent judge",
                        description="Judge ANONYMIZED against ORIGINAL with dlib (HOG/CNN face detectors\n"
                        "and face recognition: models vidgan does not use itself). Every face the judge\n"
                        "finds in the original must be neither detectable nor recognisable in the\n"
                        "anonymized copy. Also checks frame count, timestamps, audio, rotation, duration.\n"
                        "Needs the audit extra: pip install vidgan[audit]. See docs/audit.md.",
                        epilog="exit codes: 0 nothing leaked, 4 a face leaked, 1 a file could not be read, "
                        "2 usage error or dlib missing", formatter_class=argparse.RawDescriptionHelpFormatter)
    au.add_argument("original", metavar="ORIGINAL")
    au.add_argument("anonymized", metavar="ANONYMIZED")
    au.add_argument("--report", metavar="DIR", help="write audit.json and contact sheets (PNG) of every "
                    "leaking frame here")
    au.add_argument("--json", metavar="FILE", help="write the JSON report here")
    au.add_argument("--tracks", metavar="FILE", help="`vidgan detect` JSON of the original: name the track "
                    "of each face, count faces no track covers")
    au.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    g = au.add_argument_group("sampling and judge")
    g.add_argument("--every", type=_positive_int, default=1, metavar="N", help="judge every N-th frame "
                   "(default 1: all)")
    g.add_argument("--start", type=parse_time, help="judge frames from this time (s or hh:mm:ss)")
    g.add_argument("--end", type=parse_time, help="judge frames before this time")
    g.add_argument("--max-frames", type=_positive_int, metavar="N", help="judge at most N frames")
    g.add_argument("--cnn", action="store_true", help="add dlib's CNN face detector (more turned faces; "
                   "10-15x slower on CPU)")
    g.add_argument("--max-width", type=_positive_int, default=960, metavar="PX",
                   help="downscale wider frames to this width for detection (default 960)")
    g.add_argument("--upsample", type=int, choices=[0, 1, 2], default=1,
                   help="detector upsampling: 1 finds faces from ~40 px of the detection frame (default)")
    g.add_argument("--scan-output", choices=["changed", "full", "off"], default="changed",
                   help="where to look for faces found only in the anonymized frame: where it differs "
                   "from the original (default), the whole frame, or nowhere")


def _audit_options(args, **over):
    from ..audit import AuditOptions

    kw = dict(every=args.every, cnn=args.cnn, max_width=args.max_width, upsample=args.upsample,
              start=args.start, end=args.end, max_frames=args.max_frames, tracks_file=args.tracks,
              scan_output=args.scan_output)
    kw.update(over)
    return AuditOptions(**kw)


def _run_audit(auditor, original, anonymized, quiet, report_dir=None, json_path=None):
    progress, close = _frame_bar(f"audit {os.path.basename(anonymized)[:34]}", quiet, leave=False)
    try:
        report = auditor.audit(original, anonymized, report_dir=report_dir, json_path=json_path,
                               progress=progress)
    finally:
        close()
    print(report.summary())
    return report


def cmd_audit(args) -> int:
    from ..audit import Auditor

    auditor = Auditor(_audit_options(args))
    report = _run_audit(auditor, args.original, args.anonymized, args.quiet, args.report, args.json)
    return report.exit_code


def _audit_outputs(args, files) -> int:
    """`anonymize --audit`: audit each output (over the processed --start/--end range); 4 if any leaked."""
    from ..audit import AuditOptions, Auditor

    if not files:
        return 0
    auditor = Auditor(AuditOptions(start=args.start, end=args.end, tracks_file=args.tracks))
    if args.start is not None or args.end is not None:
        print("audit: only the --start/--end range is judged (frames outside it were left unchanged "
              "on purpose)", file=sys.stderr)
    leaked = False
    for f in files:
        try:
            leaked |= _run_audit(auditor, f.input, f.output, args.quiet).leaked
        except VidganError as exc:
            print(f"vidgan: error: audit of {f.output}: {exc}", file=sys.stderr)
            leaked = True  # an output that cannot be audited is not proven clean
    return EXIT_LEAK if leaked else 0


# -- gui ----------------------------------------------------------------------------------------------
def add_gui_parser(sub) -> None:
    g = sub.add_parser("gui", help="open the desktop app (needs the gui extra: pip install 'vidgan[gui]')")
    g.add_argument("inputs", nargs="*", metavar="FILE",
                   help="a video or photo to open (several files or folders go to the batch queue)")


def cmd_gui(args) -> int:
    """Start the Qt app (package `gui`, imported only here so the CLI never needs PySide6)."""
    import importlib.util

    if importlib.util.find_spec("PySide6") is None:
        print("vidgan: error: the desktop app needs PySide6; install it with: pip install 'vidgan[gui]'",
              file=sys.stderr)
        return EXIT_USAGE
    from gui import main as gui_main

    return gui_main(args.inputs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own one-line usage error
        return int(exc.code) if exc.code is not None else EXIT_USAGE
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="vidgan: %(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "anonymize":
            return cmd_anonymize(args)
        if args.command == "restore":
            return cmd_restore(args)
        if args.command == "detect":
            return cmd_detect(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "audit":
            return cmd_audit(args)
        if args.command == "gui":
            return cmd_gui(args)
        if getattr(args, "func", None) is not None:
            return args.func(args)
    except VidganError as exc:
        print(f"vidgan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vidgan: interrupted; no partial output left behind", file=sys.stderr)
        return 130
    parser.print_help()
    return EXIT_USAGE


def run() -> None:
    """The `vidgan` command: `main()`, then exit with its code. What is left in memory is frozen out
    of the garbage collector first: the interpreter's last collection at exit walked it all (exit
    took 63-94 ms after a short clip, 28-46 with this, 22-29 with no clean-up at all). Not inside
    `main()`, which tests and scripts call in a process that goes on."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
