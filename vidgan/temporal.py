"""Temporal consistency for per-frame video processing: optical flow, backward warping, occlusion
masks, flow-guided blending, and the warping-error metric.

A network applied to each frame on its own flickers: small changes in the input give different
textures and colours from one frame to the next. The cure used here is the classic one: warp the
previous *output* onto the current frame along the optical flow of the *input* frames and blend it
with the current output where the flow can be trusted (not occluded, and the input itself did not
change there). Flow comes from OpenCV (DIS or Farneback) on small gray frames on the CPU; warping
and blending run on the GPU (torch `grid_sample`) when there is one, else with OpenCV `remap`.

Flow convention: `flow` lives on the grid of the *current* frame and points into the *previous*
one: current(p) ~ previous(p + flow(p)) ("backward" flow), which is what backward warping needs.

The metric (Lai et al. 2018, "Learning blind video temporal consistency"): warping error = mean
|out_t - warp(out_{t-1})| over non-occluded pixels, with the flow and occlusion computed on the
*input* frames, so the original clip, the per-frame translation and the smoothed translation are
measured against the same motion. The metric uses its own flow (Farneback at a higher resolution)
so that smoothing is not graded with the very flow field it blended along.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

Array = Union[np.ndarray, torch.Tensor]

# -- optical flow -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowOptions:
    method: str = "dis"  # dis (fast, good on large motion) | farneback
    max_side: int = 384  # frames are shrunk so the longer side is at most this before the flow
    dis_preset: str = "medium"  # ultrafast | fast | medium

    def __post_init__(self):
        if self.method not in ("dis", "farneback"):
            raise ValueError(f"flow method must be dis or farneback, got {self.method!r}")
        if self.dis_preset not in ("ultrafast", "fast", "medium"):
            raise ValueError(f"DIS preset must be ultrafast, fast or medium, got {self.dis_preset!r}")
        if self.max_side < 16:
            raise ValueError("max_side must be at least 16")


class FlowEstimator:
    """OpenCV optical flow on downscaled gray frames. `gray(image)` prepares a frame once;
    `flow(cur_gray, prev_gray)` returns the backward flow on the small grid (in small pixels);
    `flows(pairs)` several at once, side by side on the machine's cores.

    A DIS object holds its working buffers, so each thread gets its own (same preset, same result)."""

    def __init__(self, options: FlowOptions = FlowOptions()):
        self.options = options
        self._local = threading.local()  # .dis: this thread's DIS object

    def _dis(self):
        dis = getattr(self._local, "dis", None)
        if dis is None:
            preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                      "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                      "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[self.options.dis_preset]
            dis = self._local.dis = cv2.DISOpticalFlow_create(preset)
            dis.setUseSpatialPropagation(True)
        return dis

    def gray(self, image: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        h, w = g.shape
        s = min(1.0, self.options.max_side / max(h, w))
        if s < 1.0:
            g = cv2.resize(g, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(g)

    def flow(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Backward flow (H, W, 2) float32: cur(p) ~ prev(p + flow(p)). Arguments from `gray`."""
        if self.options.method == "dis":
            return self._dis().calc(cur, prev, None)
        return cv2.calcOpticalFlowFarneback(cur, prev, None, pyr_scale=0.5, levels=4, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.2, flags=0)

    def flows(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """`flow(cur, prev)` of each pair, the same arrays, computed side by side: this thread and
        up to FLOW_HELPERS helper threads each take the next pair (OpenCV lets the GIL go while it
        computes a flow). The two flows of a smoothing step were most of `vidgan translate`'s
        caller thread, one after the other on one core."""
        return _side_by_side([lambda c=c, p=p: self.flow(c, p) for c, p in pairs])


# Helper threads for `FlowEstimator.flows` besides the calling one: one fewer than the cores (at
# most 3); none on one core. Started for each call and joined before it returns (~0.1 ms a thread,
# against ~10 ms a flow): nothing is left running between calls.
FLOW_HELPERS = max(0, min(3, (os.cpu_count() or 1) - 1))


def _side_by_side(tasks: list) -> list:
    """Run the callables `tasks`, the calling thread and the helpers each taking the next one;
    their results in order (the first error is raised after all have finished)."""
    n = len(tasks)
    helpers = min(FLOW_HELPERS, n - 1)
    if helpers <= 0:
        return [t() for t in tasks]
    results: list = [None] * n
    errors: list = []
    order = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(order, None)
            if i is None:
                return
            try:
                results[i] = tasks[i]()
            except BaseException as exc:  # noqa: BLE001 - raised on the calling thread below
                errors.append(exc)

    threads = [threading.Thread(target=work, name="vidgan-flow", daemon=True) for _ in range(helpers)]
    for t in threads:
        t.start()
    work()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flow on another grid: resampled, and its vectors scaled to the new pixel size."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


# -- warping ------------------------------------------------------------------------------------


def warp(image: Array, flow: Array, origin: tuple[int, int] = (0, 0)) -> Array:
    """Backward warp: out(p) = image(origin + p + flow(p)), bilinear, edges repeated.

    numpy: `image` HxW or HxWxC (any dtype), `flow` hxwx2 -> cv2.remap (float32 out for float in,
    same dtype otherwise); `flow` may cover only the rectangle of the output grid starting at
    `origin` (x, y), and the result is that rectangle (cheap when only a face matters). torch:
    `image` C,H,W or N,C,H,W float, `flow` H,W,2 -> grid_sample on the image's device."""
    if isinstance(image, torch.Tensor):
        return _warp_torch(image, flow)
    flow = np.asarray(flow, np.float32)
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(origin[0], origin[0] + w, dtype=np.float32),
                         np.arange(origin[1], origin[1] + h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def bbox(mask: np.ndarray, pad: int = 2) -> Optional[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) around the pixels where `mask` > 0, grown by `pad`; None when empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    h, w = mask.shape[:2]
    return (max(0, int(cols[0]) - pad), max(0, int(rows[0]) - pad),
            min(w, int(cols[-1]) + pad + 1), min(h, int(rows[-1]) + pad + 1))


def _warp_torch(image: torch.Tensor, flow: Array) -> torch.Tensor:
    squeeze = image.ndim == 3
    x = image[None] if squeeze else image
    f = torch.as_tensor(flow, dtype=torch.float32, device=x.device)
    h, w = f.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=torch.float32),
                            torch.arange(w, device=x.device, dtype=torch.float32), indexing="ij")
    # pixel coordinates -> [-1, 1] with corners on pixel centres (align_corners=True)
    gx = (xs + f[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + f[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], -1)[None].expand(x.shape[0], -1, -1, -1)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0] if squeeze else out


def occlusion_mask(flow_bw: np.ndarray, flow_fw: np.ndarray, alpha1: float = 0.01,
                   alpha2: float = 0.5) -> np.ndarray:
    """1 where the flow is trusted, 0 where it is not (float32, grid of `flow_bw`).

    Forward-backward consistency (Sundaram et al. 2010): following `flow_bw` (current -> previous)
    and then `flow_fw` (previous -> current) back must return to the start, up to
    alpha1 * (|a|^2 + |b|^2) + alpha2 pixels^2. Pixels that fail were occluded (or disoccluded) or
    the flow is wrong there. Pixels whose flow leaves the frame are masked too."""
    fw_at = warp(np.ascontiguousarray(flow_fw, np.float32), flow_bw)
    diff = flow_bw + fw_at

    def sq(v: np.ndarray) -> np.ndarray:  # |v|^2 per pixel, the two channels added (as .sum(-1), ~3x faster)
        return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]

    lhs = sq(diff)
    rhs = alpha1 * (sq(flow_bw) + sq(fw_at)) + alpha2
    h, w = flow_bw.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + flow_bw[..., 0], gy + flow_bw[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return ((lhs <= rhs) & inside).astype(np.float32)


Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), end exclusive


@dataclass
class Motion:
    """Motion from the previous input frame to the current one, on the flow grid (where `boxes` are
    given, only inside those rectangles: flow 0 and nothing trusted outside them)."""

    flow: np.ndarray  # backward flow, small grid
    valid: np.ndarray  # occlusion mask, small grid (1 trusted)
    change: np.ndarray  # |cur - warp(prev)| of the gray inputs, 0..255, small grid
    boxes: Optional[list[Box]] = None  # rectangles of the small grid that do not overlap; None: all of it

    _sized: dict = field(default_factory=dict, repr=False)

    @property
    def trusted(self) -> float:
        """The fraction of the pixels (inside `boxes`) whose flow is trusted."""
        if self.boxes is None:
            return float(self.valid.mean())
        area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in self.boxes)
        return sum(float(self.valid[y0:y1, x0:x1].sum()) for x0, y0, x1, y1 in self.boxes) / max(1, area)

    def at(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow, valid) resampled to a frame of this size (computed once per size)."""
        if (height, width) not in self._sized:
            flow = resize_flow(self.flow, height, width)
            valid = cv2.resize(self.valid, (width, height), interpolation=cv2.INTER_LINEAR)
            self._sized[(height, width)] = (flow, (valid > 0.999).astype(np.float32))
        return self._sized[(height, width)]


def motion(cur_gray: np.ndarray, prev_gray: np.ndarray, estimator: FlowEstimator,
           boxes: Optional[Sequence[Box]] = None) -> Motion:
    """Backward flow, its occlusion mask and the warped input change between two gray frames; with
    `boxes` (rectangles of their grid that do not overlap), computed on those rectangles of both only
    (the flows cost in proportion to the area), the rest of the grid untrusted."""
    if boxes is None:
        boxes_given, boxes = None, [(0, 0, cur_gray.shape[1], cur_gray.shape[0])]
    else:
        boxes_given = boxes = list(boxes)
    parts = [(np.ascontiguousarray(cur_gray[y0:y1, x0:x1]), np.ascontiguousarray(prev_gray[y0:y1, x0:x1]))
             for x0, y0, x1, y1 in boxes]
    # both flows of every rectangle at once (backward, forward)
    flows = estimator.flows([pair for cur, prev in parts for pair in ((cur, prev), (prev, cur))])
    results = []
    for k, (cur, prev) in enumerate(parts):
        bw, fw = flows[2 * k], flows[2 * k + 1]
        change = np.abs(cur.astype(np.float32) - warp(prev.astype(np.float32), bw))
        results.append((bw, occlusion_mask(bw, fw), change))
    if boxes_given is None:
        return Motion(*results[0])
    h, w = cur_gray.shape[:2]
    flow, valid, change = (np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32),
                           np.zeros((h, w), np.float32))
    for (x0, y0, x1, y1), (bw, ok, ch) in zip(boxes, results):
        flow[y0:y1, x0:x1], valid[y0:y1, x0:x1], change[y0:y1, x0:x1] = bw, ok, ch
    return Motion(flow, valid, change, boxes_given)


def flow_boxes(region: np.ndarray, grid: tuple[int, int], margin: float = 0.25, min_margin: int = 24,
               most: float = 0.6) -> Optional[list[Box]]:
    """The rectangles of the flow grid (h, w) to compute motion on for blending inside `region` (on
    the output grid; > 0 where blending may happen): each part of the region (each face, or faces
    that touch) on the grid, grown on each side by `margin` times its longer side (at least
    `min_margin` grid pixels) for the motion and the flow's context; rectangles that then overlap
    are joined. None (the whole grid) where they would cover more than `most` of it; [] for an
    empty region."""
    gh, gw = grid
    # on the grid; a cell is in when any of its pixels is (an area average of 255s stays above 0)
    small = cv2.resize((region > 0).astype(np.uint8) * np.uint8(255), (gw, gh), interpolation=cv2.INTER_AREA)
    _, _, stats, _ = cv2.connectedComponentsWithStats((small > 0).astype(np.uint8), connectivity=8)
    boxes = []
    for x, y, w, h, _area in stats[1:]:
        pad = max(min_margin, margin * max(w, h))
        boxes.append([max(0, int(math.floor(x - pad))), max(0, int(math.floor(y - pad))),
                      min(gw, int(math.ceil(x + w + pad))), min(gh, int(math.ceil(y + h + pad)))])
    joined = True
    while joined:  # join overlapping rectangles until none overlap
        joined = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    joined = True
                    break
            if joined:
                break
    if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) > most * gh * gw:
        return None
    return [tuple(b) for b in boxes]


# -- smoothing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmoothOptions:
    alpha: float = 0.7  # weight of the warped previous output where the flow is trusted
    flow: FlowOptions = field(default_factory=FlowOptions)
    input_tol: float = 10.0  # gray levels: where the input itself changed by this much, weight halves
    cut_below: float = 0.3  # fewer trusted pixels than this (fraction) = a scene cut: no blending

    def __post_init__(self):
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"temporal alpha must be in [0, 1), got {self.alpha}")
        if self.input_tol <= 0:
            raise ValueError("input_tol must be positive")


class TemporalSmoother:
    """Feed frames in order: `step(input, output)` returns the output blended with the previous
    smoothed output warped along the input's flow. Inputs are RGB uint8 (the decoded frame); outputs
    RGB uint8 of any size (a x4 super-resolved frame works: the flow is scaled up).

    `region` (optional, HxW float32 on the output grid) limits blending to where it is > 0, e.g.
    the pasted faces in faces-only mode, so pixels the model never touched stay bit-identical; the
    motion is then computed around its parts only (`flow_boxes`; nothing where the region is empty)."""

    def __init__(self, options: SmoothOptions = SmoothOptions(), device: Union[str, torch.device] = "cpu",
                 use_torch: Optional[bool] = None):
        self.options = options
        self.device = torch.device(device)
        # warp and blend with torch on a GPU (the flow itself is always OpenCV on the CPU)
        self.use_torch = self.device.type != "cpu" if use_torch is None else use_torch
        self.estimator = FlowEstimator(options.flow)
        self.reset()

    def reset(self) -> None:
        self._prev_gray: Optional[np.ndarray] = None
        self._prev_out: Optional[Array] = None
        self._out_shape: Optional[tuple] = None
        self.cuts = 0
        self.last_trusted = 1.0

    def step(self, inp: np.ndarray, out: np.ndarray, region: Optional[np.ndarray] = None,
             prev_mask: Optional[np.ndarray] = None) -> np.ndarray:
        """`prev_mask` (optional, HxW float32 on the previous output's grid): where the previous output
        may be blended in, carried along the flow; e.g. the faces covered in the previous frame, so a
        face that is covered now never takes pixels from where the previous frame showed the input."""
        gray = self.estimator.gray(inp)
        o = self.options
        prev_gray, prev_out = self._prev_gray, self._prev_out
        self._prev_gray = gray
        prev_shape, self._out_shape = self._out_shape, out.shape
        if prev_gray is None or prev_out is None or o.alpha == 0 or prev_gray.shape != gray.shape \
                or prev_shape != out.shape:
            self._keep(out)
            return out
        if region is not None and not region.any():  # nothing to blend (faces only, no face here)
            self._keep(out)
            return out
        # with a region (faces only), the motion around its parts only: the two flows are most of a step
        m = motion(gray, prev_gray, self.estimator, None if region is None else flow_boxes(region, gray.shape[:2]))
        trusted = m.trusted
        self.last_trusted = trusted
        if trusted < o.cut_below:
            self.cuts += 1
            self._keep(out)
            return out
        # float32 throughout (np.log(2.0), a NumPy float64, made these weights float64: twice the traffic)
        weight_small = o.alpha * m.valid * np.exp(-(m.change / o.input_tol) ** 2 * math.log(2.0))
        h, w = out.shape[:2]
        flow = resize_flow(m.flow, h, w)
        weight = cv2.resize(weight_small, (w, h), interpolation=cv2.INTER_LINEAR)
        if prev_mask is not None:
            weight = weight * np.clip(warp(np.asarray(prev_mask, np.float32), flow), 0.0, 1.0)
        if region is not None:
            if not self.use_torch:
                return self._blend_inside(out, prev_out, flow, weight, region)
            weight = weight * np.clip(region, 0.0, 1.0)
        if self.use_torch:
            cur = torch.from_numpy(out).to(self.device).permute(2, 0, 1).float()
            wt = torch.from_numpy(weight).to(self.device)[None]
            blended = cur + (warp(prev_out, flow) - cur) * wt
            self._prev_out = blended
            return blended.round_().clamp_(0, 255).byte().permute(1, 2, 0).cpu().numpy()
        cur = out.astype(np.float32)
        self._prev_out = blended = _lerp(cur, warp(prev_out, flow), weight)
        return _round_u8(blended, scratch=cur)

    def _blend_inside(self, out: np.ndarray, prev_out: np.ndarray, flow: np.ndarray, weight: np.ndarray,
                      region: np.ndarray) -> np.ndarray:
        """Blend only inside the bounding box of the faces (`region` > 0; the weight is the flow's
        times the region there, 0 elsewhere): the rest is `out` as is."""
        kept = out.astype(np.float32)
        result = out.copy()
        box = bbox(region > 0)
        if box is not None:
            x0, y0, x1, y1 = box
            wt = weight[y0:y1, x0:x1] * np.clip(region[y0:y1, x0:x1], 0.0, 1.0)
            cur = kept[y0:y1, x0:x1]
            cur[...] = blended = _lerp(cur, warp(prev_out, flow[y0:y1, x0:x1], (x0, y0)), wt)
            result[y0:y1, x0:x1] = _round_u8(blended, scratch=blended)
        self._prev_out = kept
        return result

    def _keep(self, out: np.ndarray) -> None:
        if self.use_torch:
            self._prev_out = torch.from_numpy(out).to(self.device).permute(2, 0, 1).float()
        else:
            self._prev_out = out.astype(np.float32)


def _lerp(cur: np.ndarray, warped: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """cur + (warped - cur) * weight (HxW), computed in `warped`'s memory: frame-sized float arrays
    (~10^7 floats a 1080p step) are not allocated again for each step (fresh ones cost page faults)."""
    np.subtract(warped, cur, out=warped)
    np.multiply(warped, weight[..., None], out=warped)
    return np.add(warped, cur, out=warped)


def _round_u8(x: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """`x` rounded (+0.5, then truncated) and clipped to uint8, through `scratch` (may be `x`)."""
    np.add(x, 0.5, out=scratch)
    return np.clip(scratch, 0, 255, out=scratch).astype(np.uint8)


# -- the metric ---------------------------------------------------------------------------------

METRIC_FLOW = FlowOptions(method="farneback", max_side=512)


def pair_warping_error(prev_out: np.ndarray, cur_out: np.ndarray, m: Motion,
                       mask: Optional[np.ndarray] = None) -> float:
    """Mean |cur - warp(prev)| (0..255, over channels) on the trusted pixels of motion `m`
    (and, given a `mask` on the output grid, only where it is > 0.5: e.g. the translated faces)."""
    h, w = cur_out.shape[:2]
    flow, valid = m.at(h, w)
    x0, y0, x1, y1 = 0, 0, w, h
    if mask is not None:
        valid = valid * (mask > 0.5)
        box = bbox(valid > 0, pad=0)
        if box is None:
            return float("nan")
        x0, y0, x1, y1 = box
    flow, valid = flow[y0:y1, x0:x1], valid[y0:y1, x0:x1]
    # only the part of the previous frame the flow can reach is converted and sampled
    reach = int(np.ceil(np.abs(flow).max())) + 2 if flow.size else 2
    sx0, sy0 = max(0, x0 - reach), max(0, y0 - reach)
    src = prev_out[sy0:min(h, y1 + reach), sx0:min(w, x1 + reach)].astype(np.float32)
    diff = np.abs(cur_out[y0:y1, x0:x1].astype(np.float32) - warp(src, flow, (x0 - sx0, y0 - sy0)))
    if diff.ndim == 3:
        diff = diff.mean(-1)
    n = float(valid.sum())
    return float((diff * valid).sum() / n) if n > 0 else float("nan")


class WarpingError:
    """Streaming warping error of one or more processed versions of the same input clip.

    >>> we = WarpingError(["original", "smoothed"])
    >>> for inp, out in frames: we.update(inp, {"original": inp, "smoothed": out})
    >>> we.mean()  # {"original": ..., "smoothed": ...}
    """

    def __init__(self, names: Sequence[str], flow: FlowOptions = METRIC_FLOW):
        self.names = list(names)
        self.estimator = FlowEstimator(flow)
        self.errors: dict[str, list[float]] = {n: [] for n in self.names}
        self.trusted: list[float] = []
        self._prev_gray: Optional[np.ndarray] = None
        self._prev: dict[str, np.ndarray] = {}

    def update(self, inp: np.ndarray, outputs: dict[str, np.ndarray], mask: Optional[np.ndarray] = None) -> None:
        """Add frame t: the input and each version's output; `mask` (output grid) limits the
        measurement to part of the frame (the same pixels for every version)."""
        gray = self.estimator.gray(inp)
        if self._prev_gray is not None:
            m = motion(gray, self._prev_gray, self.estimator)
            self.trusted.append(float(m.valid.mean()))
            for n in self.names:
                out = outputs[n]
                mk = mask if mask is None or mask.shape == out.shape[:2] else \
                    cv2.resize(mask, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_LINEAR)
                e = pair_warping_error(self._prev[n], out, m, mk)
                if e == e:  # not NaN (no trusted pixel at all)
                    self.errors[n].append(e)
        self._prev_gray = gray
        self._prev = {n: outputs[n] for n in self.names}

    def mean(self) -> dict[str, float]:
        return {n: float(np.mean(v)) if v else float("nan") for n, v in self.errors.items()}


def clip_warping_error(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
                       flow: FlowOptions = METRIC_FLOW) -> float:
    """Warping error of `outputs` (one per input frame) measured with the inputs' motion."""
    we = WarpingError(["out"], flow)
    for i, o in zip(inputs, outputs):
        we.update(i, {"out": o})
    return we.mean()["out"]
