"""MTCNN cascade over a batch of frames, vectorised.

The three networks and their weights are facenet-pytorch's (P-Net, R-Net, O-Net); this module is
the glue between them, written for throughput on video:

* the image pyramid is built with OpenCV's area resize on the CPU (much faster than
  `F.interpolate(mode="area")`, which falls back to adaptive average pooling) and with
  `F.interpolate` on the GPU, where the frames already live;
* the candidate crops for R-Net and O-Net are cut and resized for all boxes of all frames in one
  `torchvision.ops.roi_align` call instead of one interpolate call per box (that per-box loop was a
  third of the detector's time on 1080p frames);
* non-maximum suppression is torchvision's batched NMS; the final "Min"-overlap NMS is vectorised;
* on the CPU the three networks run on OpenCV's DNN module (`CvNet`, the same weights exported to
  ONNX, see mtcnn_onnx/), 1.5-4x faster there than PyTorch's kernels for such small convolutions;
  on a GPU they stay PyTorch modules (`TorchNet`).

The cascade logic (candidate generation, regression, squaring, thresholds) follows the original
MTCNN as facenet-pytorch implements it, so the pretrained networks see what they were trained on.
"""

from __future__ import annotations

import os
import threading
from typing import Sequence

import cv2
import numpy as np
import torch
from torchvision.ops import batched_nms, roi_align


ONNX_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mtcnn_onnx")
_OUTPUTS = {"pnet": ("reg", "prob"), "rnet": ("reg", "prob"), "onet": ("reg", "landmarks", "prob")}


class TorchNet:
    """A facenet-pytorch network as the cascade calls it: NCHW float tensor in, tuple of tensors out."""

    pad_batches = True  # see _run_bucketed

    def __init__(self, net: torch.nn.Module, channels_last: bool):
        self.net = net
        self.channels_last = channels_last
        if channels_last:  # halves P-Net's time on the CPU: its convs and max-pool vectorise over channels
            net.to(memory_format=torch.channels_last)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return tuple(self.net(x))


class CvNet:
    """The same network on OpenCV's DNN module (CPU only), from the ONNX file in mtcnn_onnx/."""

    pad_batches = False

    def __init__(self, name: str):
        self.name = name
        self.outputs = list(_OUTPUTS[name])
        self.net = cv2.dnn.readNetFromONNX(os.path.join(ONNX_DIR, f"{name}.onnx"))
        self._lock = threading.Lock()  # setInput + forward is one call; a Net is not thread-safe

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self._lock:
            self.net.setInput(np.ascontiguousarray(x.numpy(), dtype=np.float32))
            return tuple(torch.from_numpy(o) for o in self.net.forward(self.outputs))


def cascade_nets(mtcnn, device: torch.device, backend: str = "auto"):
    """(pnet, rnet, onet) callables. backend: "opencv" (CPU only), "torch", or "auto" (OpenCV on the
    CPU when its ONNX files are there, else PyTorch)."""
    if backend not in ("auto", "opencv", "torch"):
        raise ValueError(f"unknown detector backend {backend!r}")
    have_onnx = all(os.path.isfile(os.path.join(ONNX_DIR, f"{n}.onnx")) for n in _OUTPUTS)
    if backend == "opencv" and (device.type != "cpu" or not have_onnx):
        raise ValueError("the opencv detector backend needs the CPU and the ONNX files in " + ONNX_DIR)
    if device.type == "cpu" and backend != "torch" and have_onnx:
        return tuple(CvNet(n) for n in _OUTPUTS)
    return tuple(TorchNet(getattr(mtcnn, n), channels_last=device.type == "cpu") for n in _OUTPUTS)


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


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _generate(reg: torch.Tensor, prob: torch.Tensor, scale: float, thresh: float):
    """P-Net output map -> candidate boxes (x1, y1, x2, y2, score, 4 regression values)."""
    mask = prob >= thresh
    idx = mask.nonzero()
    image_inds = idx[:, 0]
    score = prob[mask]
    r = reg.permute(0, 2, 3, 1)[mask]
    yx = idx[:, 1:].to(reg.dtype)
    xy = yx.flip(1)
    q1 = ((2 * xy + 1) / scale).floor()
    q2 = ((2 * xy + 12) / scale).floor()
    return torch.cat([q1, q2, score[:, None], r], dim=1), image_inds


def _square(b: torch.Tensor) -> torch.Tensor:
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    side = torch.maximum(w, h)
    out = b.clone()
    out[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(b: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    out = b.clone()
    out[:, 0] = b[:, 0] + reg[:, 0] * w
    out[:, 1] = b[:, 1] + reg[:, 1] * h
    out[:, 2] = b[:, 2] + reg[:, 2] * w
    out[:, 3] = b[:, 3] + reg[:, 3] * h
    return out


def _crops(images: torch.Tensor, boxes: torch.Tensor, image_inds: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each box (clipped to its frame, as MTCNN does) and resize to size x size, all at once."""
    _, _, h, w = images.shape
    b = boxes[:, :4].trunc()
    x1 = b[:, 0].clamp(min=1) - 1
    y1 = b[:, 1].clamp(min=1) - 1
    x2 = b[:, 2].clamp(max=w)
    y2 = b[:, 3].clamp(max=h)
    rois = torch.stack([image_inds.to(images.dtype), x1, y1, x2, y2], dim=1)
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1,
                     aligned=True)


def _run_bucketed(net, crops: torch.Tensor):
    """Run R-Net/O-Net with the batch padded to a bucket size (powers of two up to 256, then
    multiples of 256) when the net asks for it (PyTorch's, not OpenCV's).

    oneDNN caches a compiled primitive (with buffers) per input shape; with a different number of
    candidates in every call that cache grows without bound (RSS rose ~1 GB over a 139 s clip).
    Padding to a bounded set of sizes keeps it flat at the cost of a little wasted compute."""
    n = crops.shape[0]
    if not getattr(net, "pad_batches", False):
        return net(crops)
    size = max(16, 1 << (n - 1).bit_length()) if n <= 256 else -(-n // 256) * 256
    if size != n:
        crops = torch.cat([crops, crops.new_zeros((size - n,) + tuple(crops.shape[1:]))])
    return tuple(o[:n] for o in net(crops))


def _nms_min(boxes: np.ndarray, scores: np.ndarray, inds: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS with intersection over the smaller box, per image."""
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


@torch.inference_mode()
def detect_faces(frames: Sequence[np.ndarray] | np.ndarray, pnet, rnet, onet, min_size: float,
                 thresholds: Sequence[float], factor: float, device: torch.device):
    """Run the cascade on same-sized RGB uint8 frames. The nets are `cascade_nets` callables.

    Returns, per frame, (boxes float32 [N, 5]: x1, y1, x2, y2, score; landmarks float32 [N, 5, 2]).
    """
    frames = np.asarray(frames) if not isinstance(frames, np.ndarray) else frames
    bsz, h, w = frames.shape[:3]
    empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
    scales = _pyramid_scales(h, w, min_size, factor)
    if not scales:
        return [empty for _ in range(bsz)]
    on_gpu = device.type != "cpu"
    images = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()

    # Stage 1: P-Net over the pyramid.
    cands, cand_inds = [], []
    for scale in scales:
        sh, sw = int(h * scale + 1), int(w * scale + 1)
        if on_gpu:
            level = torch.nn.functional.interpolate(images, size=(sh, sw), mode="area")
        else:
            level = torch.from_numpy(np.stack([cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
                                               for f in frames])).permute(0, 3, 1, 2).float()
        reg, prob = pnet(_normalise(level).contiguous())
        boxes, inds = _generate(reg, prob[:, 1], scale, thresholds[0])
        if len(boxes):
            keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.5)
            cands.append(boxes[keep])
            cand_inds.append(inds[keep])
    if not cands:
        return [empty for _ in range(bsz)]
    boxes = torch.cat(cands)
    inds = torch.cat(cand_inds)
    keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    boxes, inds = boxes[keep], inds[keep]
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    refined = torch.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                           boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh,
                           boxes[:, 4]], dim=1)
    boxes = _square(refined)

    # Stage 2: R-Net on 24x24 crops (boxes that lie entirely outside the frame are dropped).
    valid = (boxes[:, 2].trunc().clamp(max=w) > boxes[:, 0].trunc().clamp(min=1) - 1) \
        & (boxes[:, 3].trunc().clamp(max=h) > boxes[:, 1].trunc().clamp(min=1) - 1)
    boxes, inds = boxes[valid], inds[valid]
    if len(boxes) == 0:
        return [empty for _ in range(bsz)]
    return _stages_2_3(images, boxes, inds, rnet, onet, thresholds, bsz, h, w)


def _stages_2_3(images, boxes, inds, rnet, onet, thresholds, bsz, h, w):
    empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
    crops = _normalise(_crops(images, boxes, inds, 24))
    reg, prob = _run_bucketed(rnet, crops)
    score = prob[:, 1]
    ok = score > thresholds[1]
    boxes = torch.cat([boxes[ok, :4], score[ok, None]], dim=1)
    inds, reg = inds[ok], reg[ok]
    if len(boxes) == 0:
        return [empty for _ in range(bsz)]
    keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    boxes, inds, reg = boxes[keep], inds[keep], reg[keep]
    boxes = _square(_regress(boxes, reg))

    # Stage 3: O-Net on 48x48 crops, with landmarks.
    crops = _normalise(_crops(images, boxes, inds, 48))
    reg, pts, prob = _run_bucketed(onet, crops)
    score = prob[:, 1]
    ok = score > thresholds[2]
    boxes = torch.cat([boxes[ok, :4], score[ok, None]], dim=1)
    inds, reg, pts = inds[ok], reg[ok], pts[ok]
    if len(boxes) == 0:
        return [empty for _ in range(bsz)]
    bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    px = bw * pts[:, :5] + boxes[:, 0:1] - 1
    py = bh * pts[:, 5:10] + boxes[:, 1:2] - 1
    landmarks = torch.stack([px, py], dim=2)
    boxes = _regress(boxes, reg)
    b = boxes.cpu().numpy().astype(np.float32)
    lm = landmarks.cpu().numpy().astype(np.float32)
    ii = inds.cpu().numpy()
    keep = _nms_min(b[:, :4], b[:, 4], ii, 0.7)
    b, lm, ii = b[keep], lm[keep], ii[keep]
    return [(b[ii == i], lm[ii == i]) for i in range(bsz)]
