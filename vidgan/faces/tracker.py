"""Turn per-frame detections into tracks, and tracks into the boxes to cover in each frame.

The tracker is streaming with a lookahead window: frame t is only finalised once detections up to
t + lookahead are known. That lets it
  * bridge gaps both ways: a face seen at t-k and t+k (k <= max_gap) is covered in between
    (boxes interpolated);
  * cover a face from the first frame it is visible, not from the frame the detector first fires:
    every track is extended `backfill` frames into the past (and `hold` frames past its last
    detection), extrapolated with the track's own motion;
  * smooth boxes with a centred window — and still always cover the raw detection (the smoothed box
    is grown to contain it: when in doubt, cover).

Association is a linear assignment (scipy) on a cost built from IoU against each track's predicted
box, with a centre-distance fallback for fast motion.

When the detector skips frames, `observe` also says where to look for known faces in them (a
`Search`: back from a new track, forward from a lost one) and `follow` runs those searches through
a region detector (`FaceDetector.search`) one frame at a time until the face is not found, so the
frames where a face enters or leaves get real boxes instead of held guesses.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from ..types import Box, Detection, Track, TrackBox


@dataclass(frozen=True)
class TrackerOptions:
    max_gap: int = 15  # frames a track may miss and still be bridged by interpolation
    backfill: int = 10  # frames covered before a track's first detection
    hold: int = 10  # frames covered after a track's last detection
    smooth: int = 2  # half-width of the centred smoothing window (frames); 0 = off
    iou_threshold: float = 0.15  # minimum IoU to associate (centre fallback below)
    min_score: float = 0.0  # drop detections below this score before tracking
    # Held and backfilled boxes are guesses: each side grows by `drift` x the box size per frame
    # away from the detection (x SINGLE_DRIFT for a track seen once, whose motion is unknown),
    # up to one box size. Privacy first: a face leaving or entering fast stays covered.
    drift: float = 0.0

    SINGLE_DRIFT = 4.0

    def __post_init__(self):
        for name in ("max_gap", "backfill", "hold", "smooth", "drift"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def lookahead(self) -> int:
        return max(self.max_gap, self.backfill) + self.smooth + 1

    @staticmethod
    def for_fps(fps: float, **overrides) -> "TrackerOptions":
        """Windows in seconds turned into frames: gap 0.5 s, backfill 0.35 s, hold 0.35 s; guessed
        boxes grow by 1.5 box sizes per second on each side (0.06 per frame at 25 fps)."""
        fps = fps if fps and fps > 0 else 30.0
        base = dict(max_gap=max(2, round(0.5 * fps)), backfill=max(2, round(0.35 * fps)),
                    hold=max(2, round(0.35 * fps)), smooth=2 if fps >= 15 else 1, drift=1.5 / fps)
        base.update(overrides)
        return TrackerOptions(**base)


def _interp(a: Box, b: Box, t: float) -> Box:
    return Box(a.x1 + (b.x1 - a.x1) * t, a.y1 + (b.y1 - a.y1) * t,
               a.x2 + (b.x2 - a.x2) * t, a.y2 + (b.y2 - a.y2) * t)


def _shift(box: Box, dx: float, dy: float) -> Box:
    return Box(box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)


def _grow(box: Box, fraction: float) -> Box:
    if fraction <= 0:
        return box
    gx, gy = box.width * fraction, box.height * fraction
    return Box(box.x1 - gx, box.y1 - gy, box.x2 + gx, box.y2 + gy)


def _assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment (scipy's `linear_sum_assignment`). With one track or one detection that
    is simply the cheapest entry, so single-face videos never load scipy."""
    if 1 in cost.shape:
        k = int(np.argmin(cost))
        return np.array([k // cost.shape[1]]), np.array([k % cost.shape[1]])
    return _linear_sum_assignment()(cost)


_LSAP = None


def _linear_sum_assignment():
    """scipy's `linear_sum_assignment`, without the ~0.4-0.5 s that `import scipy.optimize` costs (it
    loads linalg, linprog, ...; on 2 cores that was ~1 % of the whole run on a short multi-face clip,
    per file): the function lives in scipy's C extension `scipy.optimize._lsap`, loaded here from its
    file. Any surprise in scipy's layout falls back to the public import."""
    global _LSAP
    if _LSAP is None:
        try:
            import importlib.machinery
            import importlib.util
            import os
            import sys

            name = "scipy.optimize._lsap"
            mod = sys.modules.get(name)
            if mod is None:  # found without running scipy's own __init__ either (10-25 ms: subprocess, ...)
                folder = os.path.join(os.path.dirname(importlib.util.find_spec("scipy").origin), "optimize")
                path = next(os.path.join(folder, "_lsap" + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES
                            if os.path.isfile(os.path.join(folder, "_lsap" + suffix)))
                spec = importlib.util.spec_from_file_location(name, path)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                sys.modules[name] = mod  # a later `import scipy.optimize` reuses it
            _LSAP = mod.linear_sum_assignment
        except Exception:  # noqa: BLE001 - any layout surprise: the public, slower import
            from scipy.optimize import linear_sum_assignment

            _LSAP = linear_sum_assignment
    return _LSAP


@dataclass
class Search:
    """Where to look for a track's face on frames the full-frame detector skipped or missed it.

    The search starts from `box` as seen in frame `origin`, moving at `velocity` px per frame
    (zero, unknown, for a new track). A lost track first looks in `probe` (the searched frame that
    missed it): found there, the track goes on and the frames before are interpolated as usual.
    Otherwise the search walks `frames` in order (nearest to the known detection first) until the
    face is not found; every find moves the start (`move`), so the guess follows the face."""

    track_id: int
    frames: list[int]
    box: Box
    origin: int
    velocity: tuple[float, float] = (0.0, 0.0)
    probe: Optional[int] = None
    forward: bool = True  # from a lost track (forward in time) or a new one (back)
    _step: int = field(default=0, repr=False)

    # A searched region is this many box sizes wide, plus a quarter box per frame from the start.
    REGION = 2.75
    REGION_PER_FRAME = 0.25

    def guess(self, index: int) -> Box:
        dt = index - self.origin
        return _shift(self.box, self.velocity[0] * dt, self.velocity[1] * dt)

    def region(self, index: int) -> Box:
        """The square searched in frame `index`, centred on the guess."""
        g = self.guess(index)
        side = max(g.width, g.height) * min(2 * self.REGION, self.REGION + self.REGION_PER_FRAME * abs(index - self.origin))
        cx, cy = g.center
        return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)

    def reach(self, index: int) -> float:
        """How far (in box sizes) a find's centre may lie from the guess: at least one box size, and
        anywhere a face of the guessed size fits inside the region (far from the last find, with an
        uncertain velocity, the face may be anywhere there)."""
        g = self.guess(index)
        ratio = self.region(index).width / max(g.width, g.height, 1.0)
        return max(1.0, (ratio - 1.0) / 2.0)

    def move(self, index: int, box: Box) -> None:
        dt = index - self.origin
        self.velocity = ((box.center[0] - self.box.center[0]) / dt, (box.center[1] - self.box.center[1]) / dt)
        self.box, self.origin = box, index

    def next_frame(self) -> Optional[int]:
        """The frame to search next (None: done)."""
        if self.probe is not None:
            return self.probe
        return self.frames[self._step] if self._step < len(self.frames) else None

    def found(self, hit: bool) -> None:
        """What the search of `next_frame()` gave."""
        if self.probe is not None:
            self.probe = None
            if hit:  # the track goes on: nothing to walk
                self._step = len(self.frames)
        elif hit:
            self._step += 1
        else:
            self._step = len(self.frames)


@dataclass
class _TrackState:
    track: Track
    velocity: tuple[float, float] = (0.0, 0.0)  # px per frame of the box centre
    sorted_frames: list[int] = field(default_factory=list)

    def add(self, index: int, det: Detection) -> None:
        obs = self.track.observations
        if self.sorted_frames:
            prev = self.sorted_frames[-1]
            pb = obs[prev].box
            dt = max(1, index - prev)
            vx = (det.box.center[0] - pb.center[0]) / dt
            vy = (det.box.center[1] - pb.center[1]) / dt
            a = 0.5  # exponential smoothing of the velocity
            self.velocity = (a * vx + (1 - a) * self.velocity[0], a * vy + (1 - a) * self.velocity[1])
        obs[index] = det
        self.sorted_frames.append(index)

    def insert(self, index: int, det: Detection) -> None:
        """A detection found later by a region search, possibly before frames already observed."""
        if not self.sorted_frames or index > self.sorted_frames[-1]:
            self.add(index, det)
        else:  # found back in time: the motion is now known from the newest few frames
            obs = self.track.observations
            obs[index] = det
            bisect.insort(self.sorted_frames, index)
            last = self.sorted_frames[-1]
            first = next(i for i in self.sorted_frames if i >= last - 6)
            if first < last:
                (ax, ay), (bx, by) = obs[first].box.center, obs[last].box.center
                self.velocity = ((bx - ax) / (last - first), (by - ay) / (last - first))

    def reach(self, index: int) -> float:
        """How far (box sizes) a detection's centre may lie from the predicted box: 0.6 a frame after
        the last detection, more the longer ago that was, more still while the motion is unknown (one
        detection so far): a face in a crowd seen twice 10 frames apart keeps its track."""
        dt = index - self.sorted_frames[-1]
        return min(2.0, 0.6 + (0.15 if len(self.sorted_frames) < 2 else 0.05) * max(0, dt - 1))

    def predict(self, index: int) -> Box:
        last = self.sorted_frames[-1]
        dt = index - last
        return _shift(self.track.observations[last].box, self.velocity[0] * dt, self.velocity[1] * dt)


class Tracker:
    """Streaming tracker. Feed `update(index, detections)` for frames 0, 1, 2, ... in order; it
    returns the frames that became final as `(index, [TrackBox, ...])`. Call `flush()` at the end."""

    def __init__(self, options: TrackerOptions = TrackerOptions()):
        self.options = options
        self._states: list[_TrackState] = []  # tracks that can still affect unrendered frames
        self._next_id = 1
        self._next_render = 0
        self._latest = -1
        self._searches: list[tuple[int, float]] = []  # recent searched frames: (index, smallest face looked for)
        self.summaries: dict[int, dict] = {}  # track id -> first/last/detections/max score

    # -- association -------------------------------------------------------------------------
    def _active(self, index: int) -> list[_TrackState]:
        return [s for s in self._states if index - s.sorted_frames[-1] <= self.options.max_gap + 1]

    def update(self, index: int, detections: Iterable[Detection],
               searched: bool = True) -> list[tuple[int, list[TrackBox]]]:
        """`observe` then `ready`, with no regions searched (the search requests are dropped)."""
        self.observe(index, detections, searched)
        return self.ready()

    def observe(self, index: int, detections: Iterable[Detection], searched: bool = True,
                min_face: float = 0.0) -> list[Search]:
        """Take frame `index`'s detections (`searched=False`: the detector skipped this frame) and
        return where to look for known faces: back from each new track through the frames skipped
        since the previous search that could have found it; for each track seen since then and
        missed here, in this frame and then forward. `min_face`: this frame's search looked only for
        faces of at least that many px (a search at reduced resolution); for a track smaller than
        SEEN times that, the frame counts as skipped. Answer with `follow` before calling `ready`."""
        if index != self._latest + 1:
            raise ValueError(f"frames must arrive in order: expected {self._latest + 1}, got {index}")
        self._latest = index
        if not searched:
            return []
        dets = [d for d in detections if d.score >= self.options.min_score]
        active = self._active(index)
        matched_dets: set[int] = set()
        matched_tracks: set[int] = set()
        if active and dets:
            cost = np.full((len(active), len(dets)), 10.0)
            for i, st in enumerate(active):
                pred, reach = st.predict(index), st.reach(index)
                for j, d in enumerate(dets):
                    cost[i, j] = self._cost(pred, d.box, reach)
            rows, cols = _assign(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < 10.0:
                    active[i].add(index, dets[j])
                    matched_dets.add(j)
                    matched_tracks.add(id(active[i]))
                    self._summarise(active[i].track.track_id, index, dets[j])
        born = []
        for j, d in enumerate(dets):
            if j not in matched_dets:
                st = _TrackState(Track(self._next_id))
                self._next_id += 1
                st.add(index, d)
                self._states.append(st)
                self._summarise(st.track.track_id, index, d)
                born.append(st)
        out = []
        for st in born:  # back through the frames no search could have found it in
            box = st.track.observations[index].box
            prev = self._last_search_for(max(box.width, box.height))
            skipped = list(range(max(prev + 1, self._next_render), index))
            if skipped:
                out.append(Search(st.track.track_id, skipped[::-1], box, index, forward=False))
        for st in active:  # seen since the previous search that could find it, missed here
            last = st.sorted_frames[-1]
            box = st.track.observations[last].box
            size = max(box.width, box.height)
            if id(st) in matched_tracks or last >= index or size < self.SEEN * min_face:
                continue
            if last >= self._last_search_for(size):
                out.append(Search(st.track.track_id, list(range(max(last + 1, self._next_render), index)),
                                  box, last, st.velocity, probe=index))
        self._searches.append((index, min_face))
        # older searches than a track can be missing for no longer matter (see _last_search_for)
        self._searches = [s for s in self._searches if s[0] >= index - self.options.max_gap - 2]
        return out

    # A search that looked for faces of at least `min_face` px is relied on for faces SEEN times that.
    SEEN = 1.5

    def _last_search_for(self, size: float) -> int:
        """The latest searched frame (before the current one) whose search could find a face of
        `size` px; -1 if there is none recent enough to matter."""
        for index, min_face in reversed(self._searches):
            if size >= self.SEEN * min_face:
                return index
        return -1

    def follow(self, searches: Sequence[Search], image: Callable[[int], np.ndarray],
               search_fn: Callable[[list, list], list]) -> int:
        """Answer `observe`'s searches: one frame per search per round, all regions of a round in one
        `search_fn(images, regions)` call (the detector's `search`). A walk stops at the first frame
        without its face (it has left or turned away there: from then on the track's held box covers
        it, as without a search). Returns how many frames got a detection."""
        added, alive = 0, [s for s in searches if s.next_frame() is not None]
        while alive:
            jobs = [(s, s.next_frame()) for s in alive]
            found = search_fn([image(i) for _, i in jobs], [s.region(i) for s, i in jobs])
            for (s, i), dets in zip(jobs, found):
                hit = self.extend(s, i, dets)
                s.found(hit)
                added += hit
            alive = [s for s in alive if s.next_frame() is not None]
        self._join_met(searches)
        return added

    def _join_met(self, searches: Sequence[Search]) -> None:
        """A lost track and a new one whose searches met (the lost one's last find right before the
        new one's first, boxes overlapping) are one face whose association failed: the new track's
        detections join the lost one, so the face keeps one id. Every detection stays covered; only the
        guesses around the seam go (the lost one's held boxes, the new one's back-fill)."""
        lost = [s for s in searches if s.forward]
        born = {s.track_id for s in searches if not s.forward}
        states = {st.track.track_id: st for st in self._states}
        for s in lost:
            a = states.get(s.track_id)
            if a is None:
                continue
            k = a.sorted_frames[-1]
            for b in [states[t] for t in born if t in states and t != s.track_id]:
                m = b.sorted_frames[0]
                if m == k + 1 and b.track.observations[m].box.iou(a.track.observations[k].box) >= 0.3:
                    for index in b.sorted_frames:
                        a.insert(index, b.track.observations[index])
                    self._states.remove(b)
                    del states[b.track.track_id]  # joined: no other lost track can take it
                    old = self.summaries.pop(b.track.track_id)
                    mine = self.summaries[a.track.track_id]
                    mine["first"], mine["last"] = min(mine["first"], old["first"]), max(mine["last"], old["last"])
                    mine["detections"] += old["detections"]
                    mine["max_score"] = max(mine["max_score"], old["max_score"])
                    break

    def extend(self, search: Search, index: int, dets: Sequence[Detection]) -> bool:
        """Add to `search`'s track the detection in frame `index` that fits its guessed box, unless
        another track already holds that face; the search's guess then follows the face."""
        st = next((s for s in self._states if s.track.track_id == search.track_id), None)
        if st is None or index < self._next_render or index in st.track.observations:
            return False
        pred = search.guess(index)
        others = [b.box for o in self._states if o is not st
                  for b in [self._box_at(o, index)] if b is not None and b.kind != "held"]
        best = None
        for d in dets:
            c = self._cost(pred, d.box, search.reach(index))
            if c < 10.0 and not any(d.box.iou(b) >= 0.4 for b in others) and (best is None or c < best[0]):
                best = (c, d)
        if best is None:
            return False
        search.move(index, best[1].box)
        st.insert(index, best[1])
        self._summarise(st.track.track_id, index, best[1])
        return True

    def ready(self) -> list[tuple[int, list[TrackBox]]]:
        """The frames that are final now, in order, with their boxes."""
        ready = []
        while self._next_render <= self._latest - self.options.lookahead:
            ready.append((self._next_render, self._render(self._next_render)))
            self._next_render += 1
        self._prune()
        return ready

    def _cost(self, pred: Box, box: Box, reach: float = 0.6) -> float:
        """Association cost of a detection against a track's predicted box (10: no match): a centre
        at most `reach` box sizes away (a region search's guess is rougher: `Search.reach`)."""
        iou = pred.iou(box)
        if iou >= self.options.iou_threshold:
            return 1.0 - iou
        size = max(pred.width, pred.height, 1.0)
        dx = box.center[0] - pred.center[0]
        dy = box.center[1] - pred.center[1]
        dist = (dx * dx + dy * dy) ** 0.5 / size
        ratio = max(box.width, 1.0) / max(pred.width, 1.0)
        if dist < reach and 0.5 < ratio < 2.0:
            return 1.0 + dist
        return 10.0

    def flush(self) -> list[tuple[int, list[TrackBox]]]:
        """Every frame not yet returned (the end of the input)."""
        ready = []
        while self._next_render <= self._latest:
            ready.append((self._next_render, self._render(self._next_render)))
            self._next_render += 1
        self._prune()
        return ready

    def _summarise(self, tid: int, index: int, det: Detection) -> None:
        s = self.summaries.setdefault(tid, {"id": tid, "first": index, "last": index,
                                            "detections": 0, "max_score": 0.0})
        s["first"], s["last"] = min(s["first"], index), max(s["last"], index)
        s["detections"] += 1
        s["max_score"] = round(max(s["max_score"], det.score), 4)

    def _prune(self) -> None:
        horizon = self._next_render
        o = self.options
        self._states = [s for s in self._states
                        if s.sorted_frames[-1] + o.hold >= horizon
                        or self._latest - s.sorted_frames[-1] <= o.max_gap + 1]

    # -- rendering ---------------------------------------------------------------------------
    def _smoothed(self, st: _TrackState, index: int) -> Box:
        obs = st.track.observations
        raw = obs[index].box
        k = self.options.smooth
        if k == 0:
            return raw
        window = [obs[i].box for i in range(index - k, index + k + 1) if i in obs]
        arr = np.array([[b.x1, b.y1, b.x2, b.y2] for b in window])
        m = arr.mean(axis=0)
        return Box(*m).union(raw)

    def _box_at(self, st: _TrackState, index: int) -> Optional[TrackBox]:
        o = self.options
        frames = st.sorted_frames
        first, last = frames[0], frames[-1]
        obs = st.track.observations
        tid = st.track.track_id
        if index in obs:
            d = obs[index]
            return TrackBox(tid, self._smoothed(st, index), d.score, "detected", d.landmarks)
        if first < index < last:
            pos = int(np.searchsorted(frames, index))
            a, b = frames[pos - 1], frames[pos]
            if b - a > o.max_gap + 1:
                return None
            t = (index - a) / (b - a)
            box = _interp(obs[a].box, obs[b].box, t)
            return TrackBox(tid, box, min(obs[a].score, obs[b].score), "interpolated")
        if first - o.backfill <= index < first:
            box = obs[first].box
            vx, vy = self._initial_velocity(st)
            dt = index - first
            box = _grow(box.union(_shift(box, vx * dt, vy * dt)), self._drift(st, dt))
            return TrackBox(tid, box, obs[first].score, "held")
        if last < index <= last + o.hold and index <= self._latest:
            box = obs[last].box
            dt = index - last
            vx, vy = st.velocity
            box = _grow(box.union(_shift(box, vx * dt, vy * dt)), self._drift(st, dt))
            return TrackBox(tid, box, obs[last].score, "held")
        return None

    def _drift(self, st: _TrackState, dt: int) -> float:
        rate = self.options.drift * (self.options.SINGLE_DRIFT if len(st.sorted_frames) < 2 else 1.0)
        return min(1.0, rate * abs(dt))

    def _initial_velocity(self, st: _TrackState) -> tuple[float, float]:
        frames = st.sorted_frames
        if len(frames) < 2:
            return (0.0, 0.0)
        a = frames[0]
        b = frames[min(len(frames) - 1, 3)]
        ca, cb = st.track.observations[a].box.center, st.track.observations[b].box.center
        return ((cb[0] - ca[0]) / (b - a), (cb[1] - ca[1]) / (b - a))

    def _render(self, index: int) -> list[TrackBox]:
        out = []
        for st in self._states:
            tb = self._box_at(st, index)
            if tb is not None:
                out.append(tb)
        return out
