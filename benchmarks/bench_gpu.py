#!/usr/bin/env python3
"""GPU check for issue 8: one run on a lent GPU machine prints where the time goes at 1080p.

Rows (frames per second over the same clip, each the best of --repeat runs):
  decode            PyAV decode to RGB, CPU (the input side of every job)
  transcode         decode + libx264 encode at vidgan's default settings, no face work: the limit
                    (vidgan's reader and writer: a yuv420p input passes through without RGB -> YUV)
  transcode (PyAV)  the same through PyAV's own RGB -> YUV (swscale), as bench_anonymize.py's baseline
                    and vidgan's writer before session 8 (which now converts with OpenCV)
  detector (cuda)   MTCNN cascade alone on preloaded frames, batch --batch-size, PyTorch nets on the GPU
  detector (cpu)    the same on the CPU (OpenCV DNN nets), for the ratio
  blur end to end   `Pipeline.anonymize` in blur mode with --device cuda (detect stride auto)
  blur-every        the same with detection on every frame (--detect-every 1: no region searches)
  blur-every2       every frame, every 2nd one at half resolution (--detect-every 1 --full-res-every 2)
  blur-cpu-detector blur end to end with the detector on the CPU (OpenVINO; --device cpu), on a GPU machine
  gan end to end    the same in GAN mode, when a de-identification model is in models/ (skipped otherwise)
  detect+track      `Pipeline.detect` (decode, detection, tracking; no cover, no encode): the input side
  blur, switch 0.5 ms  blur end to end with the GIL handed between threads every 0.5 ms (Python's
                    default: 5 ms); session 11 found the 16-core machine's threads waiting on the GIL
  cover blur / cover gan, no network / cover gan
                    the operation alone over the decoded frames and tracked boxes, called from one
                    thread as the pipeline does (its note: faces a frame, that thread's CPU a frame);
                    "no network": GAN mode with a generator that returns its input (the per-face work
                    around the network); "cover gan" with --gan-model when there is one
plus the peak GPU memory PyTorch allocated. Targets (issue 8): blur >= 100 fps, GAN >= 60 fps at 1080p.
With --also CLIP... --keep DIR, blur, GAN and blur-cpu-detector then run once over those clips too (fps per clip) and
their outputs are kept in DIR, so the leak judge (dlib_judge.py SRC --output cpu=A --output gpu=B) can compare
them here with the CPU's outputs. A row that fails prints its error and the others still run.

The device machine has no network and no ../shared: pack what it needs first (here):
    mkdir -p packed/gpu && cp ../shared/data/videos/hall_1080p.mp4 packed/gpu/
and carry the wheels PyAV, facenet-pytorch (--no-deps) and cryptography need there (see
docs/benchmarks.md, "GPU check"). Then, on the device:
    python3 benchmarks/bench_gpu.py --clip packed/gpu/hall_1080p.mp4 --json $OUT/gpu.json
Runs on a CPU-only machine too (GPU rows are skipped), which is how it is tested.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

import torch  # noqa: E402

from bench_anonymize import transcode as pyav_transcode  # noqa: E402
from vidgan.faces import DetectorOptions, FaceDetector  # noqa: E402
from vidgan.media import EncodeOptions, VideoReader, VideoWriter  # noqa: E402
from vidgan.pipeline import AnonymizeOptions, Pipeline  # noqa: E402


# the modes run over --also clips: what the leak judge compares (blur, GAN) and the CPU detector's
# blur (per clip, against the GPU detector's)
ALSO_MODES = ("blur", "gan", "blur-cpu-detector")


def best(fn, repeat: int) -> float:
    """Best wall time of `repeat` calls (the machine's noise only ever adds time)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def decode(clip: str) -> int:
    n = 0
    with VideoReader(clip) as r:
        for _ in r:
            n += 1
    return n


def transcode(clip: str, out: str) -> None:
    with VideoReader(clip, keep_yuv=True) as r:
        w = VideoWriter(out, r.info, clip, EncodeOptions())
        try:
            for f in r:
                w.write(f, f.image, [])  # nothing covered: the frame's own YUV where it has it
            w.finish()
            w.commit()
        except BaseException:
            w.abort()
            raise


def cover_rows(doc: dict, decoded: list, args, dev: str, row, guarded, tmp: str) -> None:
    """The operations alone over the decoded frames and the boxes the pipeline tracked (`doc`, as
    `Pipeline.detect` returns it; no decode, detection or encode; one thread calling `apply`, as the
    pipeline's caller does): how fast each can cover at most, and the CPU it takes from that thread."""
    from vidgan.gan.deid import DeidArch, DeidGenerator, find_deid
    from vidgan.ops import Blur
    from vidgan.ops.gan_face import GanFace
    from vidgan.pipeline import TrackSource

    path = os.path.join(tmp, "tracks.json")
    with open(path, "w") as fh:
        json.dump(doc, fh)
    boxes = TrackSource(path)
    faces = sum(len(boxes.get(f.index)) for f in decoded) / max(1, len(decoded))

    def timed(name: str, op) -> None:
        def once():
            if hasattr(op, "start_file"):
                op.start_file(args.clip)
            for f in decoded:
                op.apply(f.image, boxes.get(f.index), f)
            if dev == "cuda":
                torch.cuda.synchronize()
        once()  # warm-up
        cpu = time.thread_time()
        seconds = best(once, args.repeat)
        cpu = (time.thread_time() - cpu) / args.repeat / len(decoded) * 1000
        row(name, seconds, frames=len(decoded), note=f"{faces:.1f} faces a frame; caller CPU {cpu:.1f} ms a frame")

    guarded("cover blur", lambda: timed("cover blur", Blur()))
    # GAN mode without its network (the generator returns its input): the crops, alignment, colour
    # match, smoothing and paste that every face costs whatever the weights
    net = DeidGenerator(DeidArch(size=128, ngf=32, n_down=4, n_res=4, n_proto=555, proto_fit=True))
    net.forward = lambda x, heat, z, *rest: (x, x)
    guarded("cover gan, no network", lambda: timed("cover gan, no network", GanFace(generator=net.to(dev))))
    try:
        find_deid(args.gan_model)
    except Exception:  # noqa: BLE001 - no model: the row above is all there is
        return
    guarded(f"cover gan ({dev})", lambda: timed(f"cover gan ({dev})", GanFace(model=args.gan_model, device=dev)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=os.path.join(os.path.dirname(HERE), "packed", "gpu", "hall_1080p.mp4"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-frames", type=int, default=0, help="limit the frames used (0: all)")
    ap.add_argument("--gan-model", default="deid", help="model for the GAN row (name in models/ or a path)")
    ap.add_argument("--cpu-frames", type=int, default=32, help="frames for the CPU detector row (it is slow)")
    ap.add_argument("--also", nargs="*", default=[], metavar="CLIP", help="more clips, one end-to-end run each")
    ap.add_argument("--keep", metavar="DIR", help="keep the outputs of --also here (NAME.MODE.EXT)")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    if not os.path.isfile(args.clip):
        print(f"bench_gpu: clip not found: {args.clip} (pack it first, see the docstring)", file=sys.stderr)
        return 2

    cuda = torch.cuda.is_available()
    rows: list[dict] = []
    tmp = tempfile.mkdtemp(prefix="vidgan-gpu-")
    n = decode(args.clip)

    def row(name: str, seconds: float | None, frames: int = n, note: str = "") -> None:
        fps = frames / seconds if seconds else None
        rows.append({"stage": name, "frames": frames, "seconds": seconds and round(seconds, 3),
                     "fps": fps and round(fps, 1), "note": note})
        print(f"  {name:22s} {'-' if fps is None else f'{fps:8.1f} fps'}  {note}", flush=True)

    def guarded(name: str, fn) -> None:
        """Run one row; a failure is reported as that row's note instead of ending the run."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one broken row must not lose the others
            traceback.print_exc()
            rows.append({"stage": name, "fps": None, "note": f"failed: {type(exc).__name__}: {exc}"})
            print(f"  {name}: FAILED ({exc})", flush=True)

    print(f"clip {args.clip}: {n} frames; torch {torch.__version__}, cuda {cuda}"
          + (f" ({torch.cuda.get_device_name(0)})" if cuda else ""), flush=True)
    guarded("decode", lambda: row("decode", best(lambda: decode(args.clip), args.repeat)))
    guarded("transcode", lambda: row("transcode", best(lambda: transcode(args.clip, os.path.join(tmp, "t.mp4")),
                                                       args.repeat), note="libx264 " + EncodeOptions().preset))
    guarded("transcode (PyAV)", lambda: row("transcode (PyAV)", best(
        lambda: pyav_transcode(args.clip, os.path.join(tmp, "p.mp4")), args.repeat), note="swscale RGB -> YUV"))

    decoded = []
    with VideoReader(args.clip) as r:
        for f in r:
            decoded.append(f)
            if args.max_frames and len(decoded) >= args.max_frames:
                break
    frames = [f.image for f in decoded]

    def detector_row(device: str) -> None:
        det = FaceDetector(DetectorOptions(device=device, batch_size=args.batch_size))
        use = frames if device == "cuda" else frames[: args.cpu_frames]
        det.detect(use[: args.batch_size])  # warm-up (kernels, allocator)
        if cuda:
            torch.cuda.synchronize()
        row(f"detector ({device})", best(lambda: det.detect(use), args.repeat), frames=len(use),
            note=f"batch {args.batch_size}")

    for device in (["cuda"] if cuda else []) + ["cpu"]:
        guarded(f"detector ({device})", lambda d=device: detector_row(d))

    # "blur-every": detection on every frame, batched on the GPU, so no region searches: on a GPU the
    # sparse schedule's searches are many small cascade calls (session 11: 51 fps with it on hall)
    # "blur-cpu-detector": the detector on this machine's CPU (OpenVINO, as on a laptop) while the
    # GPU is there: whether the 16-core device host's CPU detects faster than the GPU path does (on a
    # CPU-only machine it is the blur row again)
    modes = [("blur", {}), ("blur-every", {"mode": "blur", "detect_every": 1}),
             ("blur-every2", {"mode": "blur", "detect_every": 1, "full_res_every": 2}),
             ("blur-cpu-detector", {"mode": "blur", "device": "cpu"})]
    try:
        from vidgan.gan.deid import find_deid

        find_deid(args.gan_model)
        modes.append(("gan", {"gan_model": args.gan_model}))
    except Exception as exc:  # no trained de-identification model yet
        rows.append({"stage": "gan end to end", "fps": None, "note": f"skipped: {exc}"})
        print(f"  gan end to end: skipped ({exc})")
    dev = "cuda" if cuda else "cpu"
    pipes = {}
    for mode, extra in modes:
        def end_to_end(mode=mode, extra=extra) -> None:
            kw = {"mode": mode, **extra}
            det_dev = kw.pop("device", dev)
            opts = AnonymizeOptions(detector=DetectorOptions(device=det_dev, batch_size=args.batch_size), **kw)
            pipe = pipes[mode] = Pipeline(opts)
            out = os.path.join(tmp, f"{mode}.mp4")
            pipe.anonymize(args.clip, out)  # warm-up: loads the models
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            row(f"{mode} end to end ({dev})", best(lambda: pipe.anonymize(args.clip, out), args.repeat))
        guarded(f"{mode} end to end ({dev})", end_to_end)
    if "blur" in pipes:  # the input side alone: decode, detection and tracking, no cover and no encode
        docs: list = []  # the tracks it found: the cover rows below use them
        guarded(f"detect+track ({dev})", lambda: row(f"detect+track ({dev})", best(
            lambda: docs.append(pipes["blur"].detect(args.clip)), args.repeat),
            note="Pipeline.detect: no cover, no encode"))

        def switch_row() -> None:  # the GIL handed over every 0.5 ms instead of Python's 5 ms
            old = sys.getswitchinterval()
            sys.setswitchinterval(0.0005)
            try:
                row(f"blur, switch 0.5 ms ({dev})", best(lambda: pipes["blur"].anonymize(args.clip, os.path.join(
                    tmp, "switch.mp4")), args.repeat), note="sys.setswitchinterval(0.0005)")
            finally:
                sys.setswitchinterval(old)
        guarded(f"blur, switch 0.5 ms ({dev})", switch_row)
        guarded("cover alone", lambda: cover_rows(docs[-1] if docs else pipes["blur"].detect(args.clip), decoded,
                                                  args, dev, row, guarded, tmp))
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    for clip in args.also:
        name = os.path.splitext(os.path.basename(clip))[0]
        for mode, pipe in pipes.items():
            if mode not in ALSO_MODES:
                continue
            kept = args.keep if mode in ("blur", "gan") else None  # what the judge reads, only
            out = os.path.join(kept or tmp, f"{name}.{mode}{os.path.splitext(clip)[1]}")

            def one(clip=clip, pipe=pipe, out=out, mode=mode, name=name) -> None:
                t = time.perf_counter()
                res = pipe.anonymize(clip, out)
                row(f"{mode} {name} ({dev})", time.perf_counter() - t, frames=res.frames,
                    note="one run, models already loaded")
            guarded(f"{mode} {name} ({dev})", one)
    if cuda:
        rows.append({"stage": "peak GPU memory", "MiB": round(torch.cuda.max_memory_allocated() / 2**20, 1)})
        print(f"  peak GPU memory        {rows[-1]['MiB']} MiB")
    info = {"machine": platform.node(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if cuda else None, "clip": args.clip, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
