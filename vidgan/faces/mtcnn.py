"""MTCNN cascade over a batch of frames, vectorised.

The three networks and their weights are facenet-pytorch's (P-Net, R-Net, O-Net); this module is
the glue between them, written for throughput on video. The glue (candidate generation, NMS,
regression, squaring, thresholds) is NumPy and OpenCV and follows the original MTCNN as
facenet-pytorch implements it, so the pretrained networks see what they were trained on. Where the
networks run is a backend:

* `openvino` (the CPU default when OpenVINO is installed, as `pip install vidgan` does) and `opencv`
  (the CPU fallback): the networks exported to ONNX (see mtcnn_onnx/) on OpenVINO's CPU plugin
  (`OvNet`) or OpenCV's DNN module (`CvNet`); the same outputs within ~1e-6, OpenVINO's 1.3-2.8x
  faster (see `OvNet`), OpenCV's 1.5-4x faster than PyTorch's kernels for such small convolutions.
  The frames are NumPy arrays either way: the image pyramid is OpenCV's area resize; each candidate
  is cut and resized bilinearly when it grows and by area when it shrinks (a pure area resize blurs
  small faces and lost a third of the detections on marathon_vfr_pcm.mkv). Neither imports PyTorch,
  which saves seconds of start-up (torch + torchvision + facenet-pytorch take 3-5 s to import on a
  2-core machine), most of the run on a short clip; OpenVINO's import (without its converter) and
  compiling the three networks take ~0.2 s, most of it hidden behind the caller's own start-up
  by `compile_openvino` (see `faces.warm_up`).
* `torch` (the GPU default, or on request on the CPU): facenet-pytorch's modules (`TorchNet`); on a GPU
  the pyramid is `F.interpolate` and all candidates are cut and resized in one
  `torchvision.ops.roi_align` call on the device, where the frames already live.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Optional, Sequence

import cv2
import numpy as np


ONNX_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mtcnn_onnx")
_OUTPUTS = {"pnet": ("reg", "prob"), "rnet": ("reg", "prob"), "onet": ("reg", "landmarks", "prob")}
BACKENDS = ("auto", "openvino", "opencv", "torch")


def _normalise(x):
    return (x - 127.5) * 0.0078125


def _clipped(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """facenet-pytorch's crop window for each box: rows y1:y2, columns x1:x2 (ints, clipped)."""
    b = np.trunc(boxes[:, :4])
    return np.stack([np.maximum(b[:, 0], 1) - 1, np.maximum(b[:, 1], 1) - 1,
                     np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)], axis=1).astype(np.int64)


class CvImages:
    """A batch of RGB uint8 frames as the CPU cascade reads them (NumPy in, NumPy NCHW float out)."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self._last = frames  # the previous (larger) pyramid level, uint8 NHWC

    def level(self, sh: int, sw: int) -> np.ndarray:
        """Levels come in decreasing size; each is area-resized from the one before (not from the full
        frame: the same averages, 3-5x less work over the pyramid)."""
        src = self._last if self._last.shape[1] >= sh and self._last.shape[2] >= sw else self.frames
        self._last = np.stack([cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA) for f in src])
        return _normalise(self._last.transpose(0, 3, 1, 2).astype(np.float32, order="C"))

    def crops(self, boxes: np.ndarray, inds: np.ndarray, size: int) -> np.ndarray:
        h, w = self.frames.shape[1:3]
        out = np.zeros((len(boxes), size, size, 3), np.uint8)
        for k, ((x1, y1, x2, y2), i) in enumerate(zip(_clipped(boxes, w, h), inds)):
            if x2 > x1 and y2 > y1:  # bilinear up, area down: what roi_align's adaptive sampling does
                interp = cv2.INTER_AREA if min(x2 - x1, y2 - y1) > size else cv2.INTER_LINEAR
                out[k] = cv2.resize(self.frames[i, y1:y2, x1:x2], (size, size), interpolation=interp)
        return _normalise(out.transpose(0, 3, 1, 2).astype(np.float32, order="C"))


class CvNet:
    """A network on OpenCV's DNN module (CPU only), from its ONNX file in mtcnn_onnx/."""

    def __init__(self, name: str):
        self.name = name
        self.outputs = list(_OUTPUTS[name])
        self.net = cv2.dnn.readNetFromONNX(os.path.join(ONNX_DIR, f"{name}.onnx"))
        self._lock = threading.Lock()  # setInput + forward is one call; a Net is not thread-safe

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        with self._lock:
            self.net.setInput(np.ascontiguousarray(x, dtype=np.float32))
            return tuple(self.net.forward(self.outputs))


def openvino_available() -> bool:
    """Whether OpenVINO's runtime is installed (the fastest CPU backend)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


_CORE = None
_CORE_LOCK = threading.Lock()


def openvino_core():
    """The process's one `ov.Core` (the detector's networks and the generators of gan/ovgen.py),
    kept for the life of the process: a Core freed while a model it compiled still lived crashed the
    process later, when that model was collected (a segmentation fault in a later test's training
    run, 4 of 4 runs; none with one Core kept)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = _import_openvino().Core()
        return _CORE


def _import_openvino():
    """`import openvino`, without the model converter its package imports on the way (`openvino.tools.ovc`
    and, through it, the telemetry client with urllib, http and email: ~65 ms of its ~120 ms import on
    this project's 2-core machine, each run; the detector only reads ONNX files). The package skips
    the converter when it fails to import; blocking it is undone at once, and `openvino.convert_model`
    still works, imported on first use."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = "openvino.tools.ovc" not in sys.modules
    if blocked:
        sys.modules["openvino.tools.ovc"] = None  # makes `from openvino.tools.ovc import ...` fail
    try:
        import openvino
    finally:
        if blocked and "openvino.tools.ovc" in sys.modules and sys.modules["openvino.tools.ovc"] is None:
            del sys.modules["openvino.tools.ovc"]
    if not hasattr(openvino, "convert_model") and not hasattr(openvino, "__getattr__"):
        def lazy(name):
            if name == "convert_model":
                from openvino.tools.ovc import convert_model

                return convert_model
            raise AttributeError(f"module 'openvino' has no attribute {name!r}")

        openvino.__getattr__ = lazy
    return openvino


class OvNet:
    """A network on OpenVINO's CPU plugin, from the same ONNX file as `CvNet`: NumPy in and out, fp32
    (outputs within ~1e-6 of OpenCV's, the same detections). On this project's 2-core machine R-Net
    on 600 crops takes 20 ms against OpenCV's 57, O-Net on 60 crops 12 against 21, P-Net on 8 frames
    of 576x324 59 against 76.

    The plugin runs STREAMS streams of one thread each, twice as many as cores, and a call splits its
    batch across them: parts smaller than a core's share keep both cores busy while x264 or the other
    detection thread holds one of them (5 clips, medians of 2 runs, twice: 33.2-33.3 s with 4 or 8
    streams on the 2 cores against 35.2-35.6 s with 2, and 3-5 % less CPU). One inference request per
    stream; a request serves one call at a time, so a call takes a free set of them from a pool and
    puts it back: calls from several threads at once each get their own set (not thread-local
    storage: a request destroyed as its thread ends crashed the app's Qt worker threads). One thread
    per stream: no thread of it spins waiting for the others, which matters when the decoder, the
    encoder and the region searches share the same cores (one request on two threads spun: ten times
    the involuntary context switches, +50 % system time). Threads are not pinned to cores for the
    same reason. One compiled model per network and process, shared."""

    STREAMS = max(1, min(8, 2 * (os.cpu_count() or 1)))
    # The plugin prepares its kernels for every input shape it has not seen yet (~5 ms for R-Net or
    # O-Net on this 2-core machine, against ~1 ms to run 16 rows) and keeps them for the shapes it
    # has seen (up to 5,000 by default: RSS grew without bound, 127 -> 608 MB over 2,400 random
    # batch sizes, when every size was its own shape). The number of R-Net/O-Net crops differs in
    # almost every call (marathon_vfr_pcm.mkv: R-Net's 148 calls in 102 sizes). So a batch of up to
    # STREAMS * ROWS rows is split into one part per stream (padded to a multiple of ROWS when over
    # ROWS), and a larger one runs as parts of exactly ROWS rows, each stream taking the next part as
    # it finishes one: at most 7 part sizes with 4 streams (R-Net on marathon: 30 part shapes when
    # large batches were split into one part per stream, now 7; 2 % less wall time over the 8
    # benchmark clips), and the cache holds at most SHAPES shapes a network.
    ROWS = 16
    SHAPES = 128
    _compiled: dict = {}
    _compile_locks = {name: threading.Lock() for name in _OUTPUTS}

    def __init__(self, name: str):
        self.name = name
        self._state: Optional[tuple] = None  # (compiled model, output ports) last used: see `_current`
        self._free: list[tuple] = []  # (compiled model, set of STREAMS requests) not in use
        self._pool_lock = threading.Lock()

    @classmethod
    def compile(cls, name: str):
        """The network's compiled model, compiled on the first call in this process (one lock per
        network: a detector runs P-Net while `compile_openvino` is still compiling R-Net and O-Net)."""
        with cls._compile_locks[name]:
            if name not in cls._compiled:
                ov = _import_openvino()

                core = openvino_core()
                model = core.read_model(os.path.join(ONNX_DIR, f"{name}.onnx"))
                model.reshape({model.inputs[0].any_name: ov.PartialShape([-1, 3, -1, -1])})
                # fp32 explicitly: a CPU with bf16 units would otherwise run bf16 (other detections).
                cls._compiled[name] = core.compile_model(model, "CPU", {
                    "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": cls.STREAMS,
                    "INFERENCE_NUM_THREADS": cls.STREAMS, "ENABLE_CPU_PINNING": False,
                    "CPU_RUNTIME_CACHE_CAPACITY": cls.SHAPES})
            return cls._compiled[name]

    @classmethod
    def discard(cls, name: str, model) -> None:
        """Forget `model` (the next call compiles the network again): after an inference on it
        failed, the plugin repeats that failure on every later inference of the same compiled model,
        from any request (seen with OpenVINO 2026.4), so one failed call (say, out of memory) would
        otherwise break every later detection in the process (the app's, a batch's next files)."""
        with cls._compile_locks[name]:
            if cls._compiled.get(name) is model:
                del cls._compiled[name]

    def _current(self) -> tuple:
        """(compiled model, its output ports in `_OUTPUTS` order): the network's model now, compiled
        on first use, not when the cascade is made, so at the start of a run the detector's first
        P-Net call does not wait for R-Net and O-Net, which `compile_openvino` compiles in the
        meantime (the first network call ~30 ms sooner on a 2-core machine)."""
        model = OvNet._compiled.get(self.name)
        if model is None:
            model = OvNet.compile(self.name)
        state = self._state
        if state is None or state[0] is not model:
            state = self._state = (model, [model.output(n) for n in _OUTPUTS[self.name]])
        return state

    @property
    def compiled(self):
        return self._current()[0]

    def parts(self, n: int) -> list[tuple[int, int]]:
        """The (start, end) rows of each part a batch of `n` rows runs as; ends past `n` are padding."""
        streams, rows = self.STREAMS, self.ROWS
        if n > streams * rows:
            return [(a, a + rows) for a in range(0, n, rows)]
        padded = -(-n // rows) * rows if n > rows else n
        k = max(1, min(streams, padded))
        size, extra = divmod(padded, k)  # the first `extra` parts one row longer
        ends = [(i + 1) * size + min(i + 1, extra) for i in range(k)]
        return list(zip([0, *ends[:-1]], ends))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        model, outputs = self._current()
        with self._pool_lock:
            while self._free and self._free[-1][0] is not model:  # sets of a discarded model
                self._free.pop()
            requests = self._free.pop()[1] if self._free else None
        if requests is None:
            requests = [model.create_infer_request() for _ in range(self.STREAMS)]
        try:
            n = len(x)
            x = np.ascontiguousarray(x, dtype=np.float32)
            parts = self.parts(n)
            results: list = [None] * len(parts)

            def collect(k: int) -> None:  # part k's outputs, read before its request runs another part
                req = requests[k % len(requests)]
                req.wait()
                results[k] = [req.get_tensor(o).data.copy() if len(parts) > len(requests)
                              else req.get_tensor(o).data for o in outputs]

            for k, (a, b) in enumerate(parts):
                if k >= len(requests):
                    collect(k - len(requests))
                # Cut from `x` itself; only a part reaching past its end is copied and padded with zeros.
                part = x[a:b] if b <= n else np.concatenate(
                    [x[a:n], np.zeros((b - max(a, n),) + x.shape[1:], np.float32)])
                requests[k % len(requests)].start_async({0: part}, share_inputs=True)
            for k in range(max(0, len(parts) - len(requests)), len(parts)):
                collect(k)
            out = tuple(np.concatenate([r[i] for r in results])[:n] for i in range(len(outputs)))
        except BaseException as exc:
            for req in requests:  # none of the set still running; then it is dropped
                with contextlib.suppress(Exception):
                    req.wait()
            if isinstance(exc, Exception):
                OvNet.discard(self.name, model)
            raise
        with self._pool_lock:
            self._free.append((model, requests))
        return out


def compile_openvino() -> threading.Thread:
    """Import OpenVINO here (the import holds the GIL) and compile its three networks in a background
    thread, returned (the compiling does not hold it); `OvNet` then finds them compiled (once a
    process). Not a daemon thread: a process that ends first waits for it, rather than stopping it
    inside OpenVINO's native code."""
    _import_openvino()
    thread = threading.Thread(target=lambda: [OvNet.compile(name) for name in _OUTPUTS], name="vidgan-compile")
    thread.start()
    return thread


class TorchImages:
    """The same frames as a float NCHW tensor on `device` (PyTorch backend)."""

    def __init__(self, frames: np.ndarray, device):
        import torch

        self.device = torch.device(device)
        self.frames = frames
        self.cpu = CvImages(frames) if self.device.type == "cpu" else None
        if self.cpu is None:
            self.images = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()

    def level(self, sh: int, sw: int):
        import torch

        if self.cpu is not None:  # OpenCV's area resize is much faster than adaptive pooling
            return torch.from_numpy(self.cpu.level(sh, sw))
        return _normalise(torch.nn.functional.interpolate(self.images, size=(sh, sw), mode="area"))

    def crops(self, boxes: np.ndarray, inds: np.ndarray, size: int):
        import torch
        from torchvision.ops import roi_align

        if self.cpu is not None:
            return torch.from_numpy(self.cpu.crops(boxes, inds, size))
        h, w = self.frames.shape[1:3]
        c = _clipped(boxes, w, h).astype(np.float32)
        rois = torch.from_numpy(np.concatenate([inds[:, None].astype(np.float32), c], axis=1)).to(self.device)
        return _normalise(roi_align(self.images, rois, output_size=(size, size), spatial_scale=1.0,
                                    sampling_ratio=-1, aligned=True))


class TorchNet:
    """A facenet-pytorch network: NCHW float tensor in, tuple of NumPy arrays out.

    With `pad_batches`, R-Net/O-Net batches are padded to a bucket size (powers of two up to 256, then
    multiples of 256): oneDNN caches a compiled primitive (with buffers) per input shape, and with a
    different number of candidates in every call that cache grew without bound on the CPU (RSS rose
    ~1 GB over a 139 s clip).

    With `trace` (the default) the module runs as a TorchScript trace: one call into C++ a batch,
    taking the GIL back once, instead of one Python call a layer, each giving the GIL up around its
    kernel and then waiting to take it back. With the pipeline's other threads busy in Python (cover,
    tracking, encode) each such wait can last the interpreter's switch interval (5 ms): R-Net on 64
    crops took 99 ms a call eager and 17 ms traced beside one busy thread (12 ms alone; 2-core CPU).
    The trace computes the same numbers as the module."""

    def __init__(self, net, channels_last: bool, pad_batches: bool = False, trace: bool = True):
        import torch

        self.net = net
        self.channels_last = channels_last
        self.pad_batches = pad_batches
        if channels_last:  # halves P-Net's time on the CPU: its convs and max-pool vectorise over channels
            net.to(memory_format=torch.channels_last)
        if trace:
            self.net = _traced(net, channels_last)

    def __call__(self, x) -> tuple[np.ndarray, ...]:
        import torch

        x = torch.as_tensor(x)
        n = x.shape[0]
        if self.pad_batches:
            size = max(16, 1 << (n - 1).bit_length()) if n <= 256 else -(-n // 256) * 256
            if size != n:
                x = torch.cat([x, x.new_zeros((size - n,) + tuple(x.shape[1:]))])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # The trace as a plain interpreter (this thread only): no profiling runs, no fusing of its
        # layers into kernels compiled for each new batch size (the default on a GPU), so the same
        # kernels run as in the module.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            return tuple(o[:n].float().cpu().numpy() for o in self.net(x))


def _traced(net, channels_last: bool):
    """`net` as a TorchScript trace (see TorchNet), or `net` itself where tracing fails. Traced on a
    batch of 2 (P-Net: 2 x 3 x 24 x 24; R-Net and O-Net their input size): the networks are fully
    convolutional up to a flatten by the batch's own size, so the trace takes any batch and, for
    P-Net, any image size (tested against the module)."""
    import warnings

    import torch

    side = {"PNet": 24, "RNet": 24, "ONet": 48}.get(type(net).__name__)
    if side is None:
        return net
    p = next(net.parameters())
    x = torch.zeros((2, 3, side, side), dtype=p.dtype, device=p.device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice (torch 2.9+)
            return torch.jit.trace(net, x, check_trace=False)
    except Exception:  # noqa: BLE001 - the module itself still works, only slower beside busy threads
        return net


def _nms(boxes: np.ndarray, scores: np.ndarray, inds: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS by intersection over union, per image; kept indices, sorted.

    One OpenCV call per image: `NMSBoxesBatched` does all images in one call, but its greedy loop
    compares each box with every box kept so far in the whole batch, so its cost grew with the
    square of the batch (32 frames of hall_1080p: 3.2 s in NMS at batch 32 against 0.33 s at
    batch 4, the same boxes)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]], axis=1).astype(np.float64)
    scores = scores.astype(np.float32)
    order = np.argsort(inds, kind="stable")
    starts = np.flatnonzero(np.r_[True, inds[order][1:] != inds[order][:-1], True])
    keep = []
    for a, b in zip(starts[:-1], starts[1:]):
        sel = order[a:b]
        k = cv2.dnn.NMSBoxes(xywh[sel], scores[sel], 0.0, threshold)  # scores: probabilities past a stage, > 0
        keep.append(sel[np.asarray(k, np.int64).reshape(-1)])
    return np.sort(np.concatenate(keep))


def _nms_min(boxes: np.ndarray, scores: np.ndarray, inds: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS by intersection over the smaller box, per image (MTCNN's last step)."""
    keep = []
    for i in np.unique(inds):
        sel = np.nonzero(inds == i)[0]
        b, s = boxes[sel], scores[sel]
        area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        order = np.argsort(-s, kind="stable")
        while order.size:
            k = order[0]
            keep.append(sel[k])
            rest = order[1:]
            xx1 = np.maximum(b[k, 0], b[rest, 0])
            yy1 = np.maximum(b[k, 1], b[rest, 1])
            xx2 = np.minimum(b[k, 2], b[rest, 2])
            yy2 = np.minimum(b[k, 3], b[rest, 3])
            inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
            o = inter / np.minimum(area[k], area[rest])
            order = rest[o <= threshold]
    return np.array(sorted(keep), dtype=np.int64)


def _pyramid_scales(h: int, w: int, min_size: float, factor: float) -> list[float]:
    m = 12.0 / min_size
    minl = min(h, w) * m
    scales = []
    s = m
    while minl >= 12:
        scales.append(s)
        s *= factor
        minl *= factor
    return scales


def _generate(reg: np.ndarray, prob: np.ndarray, scale: float, thresh: float):
    """P-Net output map -> candidate boxes (x1, y1, x2, y2, score, 4 regression values), image index."""
    mask = prob >= thresh
    image_inds, y, x = np.nonzero(mask)
    score = prob[mask]
    r = reg.transpose(0, 2, 3, 1)[mask]
    xy = np.stack([x, y], axis=1).astype(np.float32)
    q1 = np.floor((2 * xy + 1) / np.float32(scale))
    q2 = np.floor((2 * xy + 12) / np.float32(scale))
    return np.concatenate([q1, q2, score[:, None], r], axis=1).astype(np.float32), image_inds


def _square(b: np.ndarray) -> np.ndarray:
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    out = b.copy()
    out[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    out = b.copy()
    out[:, 0] = b[:, 0] + reg[:, 0] * w
    out[:, 1] = b[:, 1] + reg[:, 1] * h
    out[:, 2] = b[:, 2] + reg[:, 2] * w
    out[:, 3] = b[:, 3] + reg[:, 3] * h
    return out


class Cascade:
    """P-Net, R-Net, O-Net and the frames' representation for one backend and device.

    `Cascade("cpu")` is the OpenVINO backend (OpenCV's where OpenVINO is missing) and does not import
    PyTorch; anything else loads facenet-pytorch's modules (its weights ship inside its wheel).
    `pack_levels` runs P-Net once on all pyramid levels (see `_pnet_maps`): for small images such as
    region searches."""

    def __init__(self, device: str = "cpu", backend: str = "auto", pack_levels: bool = False,
                 nms: tuple[float, float] = (0.7, 0.7)):
        self.device = str(device)
        self.pack_levels = pack_levels
        self.nms = nms  # IoU thresholds of the NMS across pyramid levels and after R-Net
        self.backend = self.resolve_backend(self.device, backend)
        on_cpu = self.device == "cpu"
        if self.backend == "openvino":
            self.nets = tuple(OvNet(n) for n in _OUTPUTS)
        elif self.backend == "opencv":
            self.nets = tuple(CvNet(n) for n in _OUTPUTS)
        else:
            from facenet_pytorch import MTCNN

            mtcnn = MTCNN(device=self.device).eval()
            self.nets = tuple(TorchNet(getattr(mtcnn, n), channels_last=on_cpu, pad_batches=on_cpu and n != "pnet")
                              for n in _OUTPUTS)

    @staticmethod
    def resolve_backend(device: str, backend: str = "auto") -> str:
        """The backend `Cascade(device, backend)` runs on ("auto" resolved); ValueError where the asked
        one cannot run there."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown detector backend {backend!r} (one of {', '.join(BACKENDS)})")
        on_cpu = str(device) == "cpu"
        have_onnx = all(os.path.isfile(os.path.join(ONNX_DIR, f"{n}.onnx")) for n in _OUTPUTS)
        if backend in ("opencv", "openvino") and not (on_cpu and have_onnx):
            raise ValueError(f"the {backend} detector backend needs the CPU and the ONNX files in " + ONNX_DIR)
        if backend == "openvino" and not openvino_available():
            raise ValueError("the openvino detector backend needs OpenVINO (pip install openvino)")
        if not (on_cpu and have_onnx) or backend == "torch":
            return "torch"
        if backend == "auto":
            return "openvino" if openvino_available() else "opencv"
        return backend

    def _pnet_maps(self, images, h: int, w: int, scales: list[float]):
        """P-Net's (regression, probability) maps for each pyramid level. With `pack_levels`, the
        levels are laid side by side on one canvas (at even offsets: the net's stride is 2) and the
        net runs once; each level's map is the part of the output whose 12 px windows lie inside that
        level. That drops at most the last, half-outside window of a level, and saves the fixed cost
        of one call per level, most of the work for small images (region searches); on a GPU it also
        saves a device-to-host copy (a sync) per level. The canvas lives where the levels do (NumPy
        for OpenCV, a tensor on the device for PyTorch)."""
        pnet = self.nets[0]
        sizes = [(int(h * s + 1), int(w * s + 1)) for s in scales]
        if not self.pack_levels or len(scales) < 2:
            for sh, sw in sizes:
                yield pnet(images.level(sh, sw))
            return
        levels = [images.level(sh, sw) for sh, sw in sizes]
        offsets = np.cumsum([0] + [sw + (sw & 1) for _, sw in sizes])
        shape = (levels[0].shape[0], 3, sizes[0][0], int(offsets[-1]))
        canvas = np.zeros(shape, np.float32) if isinstance(levels[0], np.ndarray) else levels[0].new_zeros(shape)
        for lv, off, (sh, sw) in zip(levels, offsets, sizes):
            canvas[:, :, :sh, off:off + sw] = lv
        reg, prob = pnet(canvas)
        for off, (sh, sw) in zip(offsets, sizes):
            rows, cols, c0 = (sh - 12) // 2 + 1, (sw - 12) // 2 + 1, off // 2
            yield reg[:, :, :rows, c0:c0 + cols], prob[:, :, :rows, c0:c0 + cols]

    def images(self, frames: np.ndarray):
        return TorchImages(frames, self.device) if self.backend == "torch" else CvImages(frames)

    def __call__(self, frames: Sequence[np.ndarray] | np.ndarray, min_size: float,
                 thresholds: Sequence[float], factor: float):
        """Run the cascade on same-sized RGB uint8 frames. Returns, per frame,
        (boxes float32 [N, 5]: x1, y1, x2, y2, score; landmarks float32 [N, 5, 2])."""
        frames = np.asarray(frames)
        bsz, h, w = frames.shape[:3]
        empty = [(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)) for _ in range(bsz)]
        scales = _pyramid_scales(h, w, min_size, factor)
        if not scales:
            return empty
        images = self.images(frames)
        pnet, rnet, onet = self.nets

        # Stage 1: P-Net over the pyramid.
        cands, cand_inds = [], []
        for scale, (reg, prob) in zip(scales, self._pnet_maps(images, h, w, scales)):
            boxes, inds = _generate(reg, prob[:, 1], scale, thresholds[0])
            keep = _nms(boxes[:, :4], boxes[:, 4], inds, 0.5)
            cands.append(boxes[keep])
            cand_inds.append(inds[keep])
        boxes, inds = np.concatenate(cands), np.concatenate(cand_inds)
        keep = _nms(boxes[:, :4], boxes[:, 4], inds, self.nms[0])
        boxes, inds = boxes[keep], inds[keep]
        bw = boxes[:, 2] - boxes[:, 0]
        bh = boxes[:, 3] - boxes[:, 1]
        boxes = _square(np.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                                  boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh,
                                  boxes[:, 4]], axis=1))
        c = _clipped(boxes, w, h)  # boxes that lie entirely outside the frame are dropped
        valid = (c[:, 2] > c[:, 0]) & (c[:, 3] > c[:, 1])
        boxes, inds = boxes[valid], inds[valid]
        if len(boxes) == 0:
            return empty

        # Stage 2: R-Net on 24x24 crops.
        reg, prob = rnet(images.crops(boxes, inds, 24))
        ok = prob[:, 1] > thresholds[1]
        boxes = np.concatenate([boxes[ok, :4], prob[ok, 1:2]], axis=1)
        inds, reg = inds[ok], reg[ok]
        if len(boxes) == 0:
            return empty
        keep = _nms(boxes[:, :4], boxes[:, 4], inds, self.nms[1])
        boxes = _square(_regress(boxes[keep], reg[keep]))
        inds = inds[keep]

        # Stage 3: O-Net on 48x48 crops, with landmarks.
        reg, pts, prob = onet(images.crops(boxes, inds, 48))
        ok = prob[:, 1] > thresholds[2]
        boxes = np.concatenate([boxes[ok, :4], prob[ok, 1:2]], axis=1)
        inds, reg, pts = inds[ok], reg[ok], pts[ok]
        if len(boxes) == 0:
            return empty
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = np.stack([bw * pts[:, :5] + boxes[:, 0:1] - 1, bh * pts[:, 5:10] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, reg).astype(np.float32)
        keep = _nms_min(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, landmarks, inds = boxes[keep], landmarks[keep].astype(np.float32), inds[keep]
        return [(boxes[inds == i], landmarks[inds == i]) for i in range(bsz)]
