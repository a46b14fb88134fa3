"""GAN mode: every tracked face becomes a generated face of a different person (`--mode gan`).

Per frame, for every face box:

1. landmarks: the detector's 5 points when this box was detected; otherwise (interpolated, held,
   manual boxes) the track's last landmarks *relative to its box*, moved with the current box; a
   track never seen with landmarks uses the average face placed in the box (`align.BOX_TEMPLATE`).
2. temporal smoothing: the box-relative landmarks are an exponential moving average per track, so
   the alignment (a similarity: rotation, scale, shift) follows the smoothed box but not the
   landmark jitter, and the fake face does not swim.
3. align onto the generator's canonical crop, generate with the track's identity code z
   (`gan/deid_keys.py`: passcode + video + track -> z, the same in every frame), colour-match it to
   the original's light (the cast is measured on the ring of context around the interior: generator
   output against original there, so no statistic of the face's own pixels reaches the output either;
   tests/test_deid.py repaints the face and gets a bit-identical frame), paste back with the
   generator's feathered interior mask.
   All faces of a frame go through the network as one batch (on the GPU when there is one), in
   bfloat16 where the device computes it natively (`gan/amp.py`: a GPU, or a CPU with AVX-512 BF16).
   A generator with a prototype bank also gets the track's prototype: chosen once, when the track is
   first seen, among the 16 whose context is nearest to the face's (never its interior), in an order
   set by z (so by the passcode), skipping prototypes already given to another track of this video.
4. the pasted pixels are confined to the operation's mask patch (`Operation.patches`, the region
   the vault stores), so `restore` brings every changed pixel back.
5. optional flow-guided steadiness (`flow_alpha` > 0, `vidgan.temporal.TemporalSmoother`): the
   previous output frame is warped onto this one along the optical flow and blended into the covered
   faces, where the previous frame was covered too (a face never takes pixels from where the
   previous frame showed the input). The flow is computed on the frames with every mask patch
   painted grey: it follows the head and the scene around the face, never the face's own pixels.
   Off by default: with real donor faces in place of a generator it did not lower the flicker
   metric (docs/benchmarks.md, session 11).

A face that cannot be aligned usefully (smaller than `MIN_FACE` px, or a box mostly outside the
frame) is blurred instead: privacy first, a face is never left uncovered.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from ..faces.align import (BOX_TEMPLATE, align_matrix, match_color, transform_points, warp_back,
                           warp_crop)
from ..types import Frame, TrackBox
from .base import Operation
from .blur import Blur
from .masks import MaskOptions, blend

MIN_FACE = 16  # px: below this a generated face is meaningless; such faces are blurred


@dataclass
class _TrackState:
    rel: np.ndarray  # 5,2 landmarks as fractions of the box (smoothed)
    last: int        # frame index of the last update
    fake: Optional[np.ndarray] = None  # float32 generated crop of the previous frame (canonical frame)
    fake_at: int = -10


class GanFace(Operation):
    name = "gan"

    def __init__(self, mask: MaskOptions = MaskOptions(), model: object = "models/deid", key: Optional[bytes] = None,
                 device: str = "auto", smooth: float = 0.6, crop_alpha: float = 0.5, color_match: bool = True,
                 generator=None, flow_alpha: float = 0.0, bf16: bool = True):
        super().__init__(mask)
        from ..gan.deid import context_ring, load_deid
        from ..gan.deid_keys import TrackCodes, random_key

        if generator is None and not isinstance(model, (str, bytes, os.PathLike)):
            generator = model  # an in-memory generator (same interface as gan.deid.DeidGenerator)
        self.net = generator if generator is not None else load_deid(model, device)
        self.net.eval()
        self.size, self.margin = self.net.arch.size, self.net.arch.margin
        self.soft = self.net.soft[0, 0].cpu().numpy()
        a = self.net.arch  # colours are compared on the context around the interior, never inside
        self.ring = (context_ring(self.size, self.margin, tuple(a.interior_center),
                                  tuple(a.interior_axes)) > 0).astype(np.uint8)  # a 0/1 selection
        self.key = key if key is not None else random_key()
        self.codes = TrackCodes(self.key, b"", dim=self.net.arch.z_dim)
        self.smooth = smooth
        self.crop_alpha = crop_alpha
        self.color_match = color_match
        self.blur = Blur(mask)
        self.tracks: dict[int, _TrackState] = {}
        self.protos: dict[int, int] = {}  # track id -> prototype (kept for the whole video)
        self._proto_images: dict = {}  # prototype -> its image at the crop size (torch), least recently used first
        self.stats = {"generated": 0, "blurred": 0}
        self.flow_alpha = flow_alpha
        self.bf16 = bf16  # the generator in bfloat16 where the device computes it natively (gan/amp.py)
        self._smoother = None  # TemporalSmoother, made on first use
        self._prev_covered: Optional[np.ndarray] = None  # the previous frame's mask patches (HxW alpha)

    def start_file(self, input_path: str) -> None:
        """Called by the pipeline before each file: the per-video salt, fresh track state."""
        from ..gan.deid_keys import TrackCodes, video_salt

        self.codes = TrackCodes(self.key, video_salt(input_path), dim=self.net.arch.z_dim)
        self.tracks.clear()
        self.protos.clear()
        self._proto_images.clear()
        self._prev_covered = None

    # -- geometry
    def landmarks(self, tb: TrackBox, index: int) -> Optional[np.ndarray]:
        """Smoothed landmarks (frame pixels) for this box, or None when it cannot be aligned."""
        b = tb.box
        if min(b.width, b.height) < MIN_FACE:
            return None
        wh, org = np.array([b.width, b.height]), np.array([b.x1, b.y1])
        st = self.tracks.get(tb.track_id)
        if st is not None and index - st.last > self.GONE:  # gone for a while: start afresh
            st = None
        if tb.landmarks:
            rel = (np.asarray(tb.landmarks, np.float64).reshape(5, 2) - org) / wh
            if st is not None:
                rel = self.smooth * st.rel + (1 - self.smooth) * rel
        else:
            rel = st.rel if st is not None else BOX_TEMPLATE
        if tb.track_id >= 0:
            old = self.tracks.get(tb.track_id)
            self.tracks[tb.track_id] = _TrackState(rel, index, *((old.fake, old.fake_at) if old else ()))
        return rel * wh + org

    GONE = 5  # frames: a track unseen for longer starts afresh (landmarks, previous crop)

    def _forget_gone(self, index: int) -> None:
        """Drop the state of tracks unseen for more than GONE frames (it would not be used again):
        each holds a generated crop (192 KiB), and a long video of crowds has thousands of tracks.
        Their prototypes stay (`protos`): a track that comes back keeps its face."""
        for tid in [t for t, st in self.tracks.items() if index - st.last > self.GONE]:
            del self.tracks[tid]

    # -- the operation
    def apply(self, image: np.ndarray, boxes: Sequence[TrackBox], frame: Optional[Frame] = None) -> np.ndarray:
        if not boxes:
            self._prev_covered = None  # nothing covered here: the next frame starts afresh
            return image
        patches = self.patches(boxes, image.shape[1], image.shape[0])
        return self._steady(image, self._paint(image, patches, frame), patches)

    def _steady(self, image: np.ndarray, out: np.ndarray, patches: list) -> np.ndarray:
        """Step 5 of the module docstring: the previous output blended in along the flow."""
        if self.flow_alpha <= 0:
            return out
        from ..temporal import SmoothOptions, TemporalSmoother

        h, w = image.shape[:2]
        covered = np.zeros((h, w), np.float32)
        for _, patch in patches:
            np.maximum(covered[patch.slices], patch.alpha, out=covered[patch.slices])
        context = image.copy()
        context[covered > 0] = 128  # the flow sees the scene around the faces, not the faces
        if self._smoother is None:
            self._smoother = TemporalSmoother(SmoothOptions(alpha=self.flow_alpha), device=self.net.hard.device)
        prev, self._prev_covered = self._prev_covered, covered
        if prev is None:
            self._smoother.reset()
        return self._smoother.step(context, out, region=covered, prev_mask=prev)

    def _paint(self, image: np.ndarray, patches: list, frame: Optional[Frame]) -> np.ndarray:
        """Steps 1-4 of the module docstring: every face of this frame replaced on its own."""
        import torch

        from ..gan.amp import autocast
        from ..gan.deid import heatmaps

        h, w = image.shape[:2]
        index = frame.index if frame is not None else 0
        self._forget_gone(index)
        out = image.copy()
        todo = []  # (patch, matrix, crop, points in the crop, z, track id)
        untracked = 0  # boxes without a track id (hand-drawn): one code each, by their order in the frame
        for tb, patch in patches:
            lm = self.landmarks(tb, index)
            region = self.mask.region(tb.box)
            inside = (min(region.x2, w) - max(region.x1, 0)) * (min(region.y2, h) - max(region.y1, 0))
            if lm is None or inside < 0.3 * region.width * region.height:
                blend(out, patch, self.blur.replacement(out[patch.slices], patch, tb))
                self.stats["blurred"] += 1
                continue
            m = align_matrix(lm, self.size, self.margin)
            if tb.track_id >= 0:
                z = self.codes.code(tb.track_id)
            else:
                untracked += 1
                z = self.codes.code(-untracked)
            todo.append((patch, m, warp_crop(image, m, self.size), transform_points(lm, m), z, tb.track_id))
        if not todo:
            return out
        dev = self.net.hard.device  # a buffer every generator has (the interior mask)
        with torch.inference_mode(), autocast(dev, self.bf16):
            x = torch.from_numpy(np.stack([t[2] for t in todo])).to(dev).permute(0, 3, 1, 2).float() / 127.5 - 1
            heat = heatmaps(torch.from_numpy(np.stack([t[3] for t in todo]).astype(np.float32)).to(dev), self.size)
            z = torch.from_numpy(np.stack([t[4] for t in todo])).to(dev)
            proto = self._prototypes(x, [t[4] for t in todo], [t[5] for t in todo])
            raw, comp = self.net(x, heat, z, *(() if proto is None else (proto,)))
        # both to 8-bit HxWx3 on the device, then one copy to the host (rows contiguous for OpenCV)
        both = ((torch.stack((comp, raw)).float().clamp(-1, 1) + 1) * 127.5 + 0.5).byte()
        fakes, raws = both.permute(0, 1, 3, 4, 2).contiguous().cpu().numpy()

        def finish(job):
            """Colour match, temporal blend and the warp into the face's patch: per face, in worker
            threads (OpenCV and NumPy release the GIL; each face touches only its own track's state)."""
            (patch, m, crop, _, _, tid), fake, r = job
            if self.color_match:  # the cast measured around the face (raw output vs original), never inside
                fake = match_color(fake, crop, self.ring, source=r)
            fake = self._smooth_crop(tid, index, fake)
            h_p, w_p = patch.alpha.shape  # warped into this face's patch only: no whole-frame copy per face
            warped = warp_back(fake, m, w_p, h_p, mask=self.soft, offset=(patch.x0, patch.y0))
            if warped is None:
                return None
            (x0, y0, x1, y1), pixels, alpha = warped
            alpha *= patch.alpha[y0:y1, x0:x1] > 0  # never touch a pixel the vault does not store
            return (slice(y0, y1), slice(x0, x1)), pixels, alpha, 1.0 - alpha

        jobs = list(zip(todo, fakes, raws))
        warped = self._pool().map(finish, jobs) if len(jobs) > 1 else map(finish, jobs)
        for (patch, *_), w in zip(todo, warped):  # blended in frame order: overlapping faces as before
            self.stats["generated"] += 1
            if w is None:
                continue
            (rows, cols), pixels, alpha, rest = w
            roi = out[patch.slices][rows, cols]  # in place, one OpenCV pass (rounded like `blend`)
            roi[...] = cv2.blendLinear(pixels, np.ascontiguousarray(roi), alpha, rest)
        return out

    _workers: Optional[ThreadPoolExecutor] = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._workers is None:
            self._workers = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1),
                                               thread_name_prefix="vidgan-gan")
        return self._workers

    CANDIDATES = 16
    # Prototype images kept enlarged (3 x 128 x 128 float32, 192 KiB each): a crowd's many short
    # tracks could otherwise hold all 555 of the bank (~100 MiB) by the end of a long video.
    PROTO_CACHE = 64

    def _prototypes(self, x, codes: list[np.ndarray], track_ids: list[int]):
        """Prototype faces (N,3,S,S) for the batch, or None when the generator has no bank."""
        if not self.net.arch.n_proto:
            return None
        import torch

        new = [i for i, t in enumerate(track_ids) if t < 0 or t not in self.protos]
        chosen = {}
        if new:
            cand = self.net.candidates(x[new], self.CANDIDATES).cpu().numpy()
            for row, c in zip(new, cand):
                seed = int.from_bytes(hashlib.sha256(codes[row].tobytes()).digest()[:8], "big")
                order = c[np.random.default_rng(seed).permutation(len(c))]  # the passcode decides the order
                used = set(self.protos.values())
                pick = next((int(p) for p in order if p not in used), int(order[0]))
                if track_ids[row] >= 0:
                    self.protos[track_ids[row]] = pick
                chosen[row] = pick
        idx = [chosen[i] if i in chosen else self.protos[t] for i, t in enumerate(track_ids)]
        cache = self._proto_images  # enlarged once, not every frame; the most recently used are kept
        missing = sorted(set(idx) - cache.keys())
        if missing:
            cache.update(zip(missing, self.net.prototypes(torch.tensor(missing))))
        for i in idx:  # to the end: used now
            cache[i] = cache.pop(i)
        while len(cache) > max(self.PROTO_CACHE, len(set(idx))):
            del cache[next(iter(cache))]
        return torch.stack([cache[i] for i in idx]).to(x.device, x.dtype)

    def _smooth_crop(self, track_id: int, index: int, fake: np.ndarray) -> np.ndarray:
        """Blend in the track's previous generated crop (same canonical frame: the alignment is
        stabilised, so a crop pixel is the same point of the face) when it is from the frame before:
        the painted face does not flicker with small changes of the context."""
        st = self.tracks.get(track_id) if track_id >= 0 else None
        if st is None or self.crop_alpha <= 0:
            return fake
        cur = fake.astype(np.float32)
        if st.fake is not None and 0 < index - st.fake_at <= 2:
            cur = self.crop_alpha * st.fake + (1 - self.crop_alpha) * cur
        st.fake, st.fake_at = cur, index
        return np.clip(cur + 0.5, 0, 255).astype(np.uint8)
