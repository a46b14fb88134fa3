"""Unit tests for vidgan.faces.tracker on synthetic detections (no detector, no video)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidgan.faces.tracker import Tracker, TrackerOptions
from vidgan.types import Box, Detection

# -- helpers -----------------------------------------------------------------------------------------


def det(x1, y1, w=40.0, h=50.0, score=0.99) -> Detection:
    return Detection(Box(x1, y1, x1 + w, y1 + h), score)


def run(options: TrackerOptions, frames: list[list[Detection]]):
    """Feed every frame, flush; return ({index: [TrackBox]}, [indices in output order], per-update)."""
    tracker = Tracker(options)
    order, per_update, out = [], [], {}
    for i, dets in enumerate(frames):
        ready = tracker.update(i, dets)
        per_update.append([idx for idx, _ in ready])
        for idx, boxes in ready:
            order.append(idx)
            out[idx] = boxes
    for idx, boxes in tracker.flush():
        order.append(idx)
        out[idx] = boxes
    return out, order, per_update, tracker


def contains(outer: Box, inner: Box, tol: float = 1e-6) -> bool:
    return (outer.x1 <= inner.x1 + tol and outer.y1 <= inner.y1 + tol
            and outer.x2 >= inner.x2 - tol and outer.y2 >= inner.y2 - tol)


# -- options -----------------------------------------------------------------------------------------


def test_options_validation_and_lookahead():
    for name in ("max_gap", "backfill", "hold", "smooth", "drift"):
        with pytest.raises(ValueError):
            TrackerOptions(**{name: -1})
    o = TrackerOptions(max_gap=6, backfill=4, hold=3, smooth=2)
    assert o.lookahead == 6 + 2 + 1
    assert TrackerOptions(max_gap=2, backfill=9, smooth=0).lookahead == 10
    f30 = TrackerOptions.for_fps(30)
    assert (f30.max_gap, f30.backfill, f30.hold, f30.smooth) == (15, 10, 10, 2)
    assert f30.drift == pytest.approx(0.05)
    assert TrackerOptions.for_fps(10).smooth == 1
    assert TrackerOptions.for_fps(0) == TrackerOptions.for_fps(30)  # unknown rate -> 30 fps
    assert TrackerOptions.for_fps(30, hold=0).hold == 0


# -- gaps, backfill, hold ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4, 7])
@pytest.mark.parametrize("hold, backfill", [(0, 0), (3, 3)])
def test_face_seen_before_and_after_is_covered_between(k, hold, backfill):
    opts = TrackerOptions(max_gap=14, backfill=backfill, hold=hold, smooth=1)
    t, n = 30, 60
    frames = [[] for _ in range(n)]
    # a face moving right at 2 px per frame, detected only at t-k and t+k
    truth = {i: Box(100 + 2 * i, 80, 140 + 2 * i, 130) for i in range(n)}
    frames[t - k] = [Detection(truth[t - k], 0.9)]
    frames[t + k] = [Detection(truth[t + k], 0.95)]
    out, *_ = run(opts, frames)
    ids = set()
    for i in range(t - k + 1, t + k):
        assert len(out[i]) == 1, f"frame {i} not covered"
        tb = out[i][0]
        assert tb.kind == "interpolated"
        ids.add(tb.track_id)
        # linear motion: the interpolated box is where the face really is
        for a, b in zip(tb.box.as_list(), truth[i].as_list()):
            assert a == pytest.approx(b, abs=1e-6)
    for i in (t - k, t + k):
        assert [tb.kind for tb in out[i]] == ["detected"]
        ids.add(out[i][0].track_id)
    assert len(ids) == 1  # one track across the gap


@pytest.mark.parametrize("max_gap", [0, 1, 3, 8])
def test_max_gap_is_the_number_of_frames_a_track_may_miss(max_gap):
    opts = TrackerOptions(max_gap=max_gap, backfill=0, hold=0, smooth=0)
    for missing, bridged in ((max_gap, True), (max_gap + 1, False)):
        frames = [[] for _ in range(30)]
        for i in list(range(0, 10)) + list(range(10 + missing, 20 + missing)):
            frames[i] = [det(50, 50)]
        out, *_ = run(opts, frames)
        gap = range(10, 10 + missing)
        if bridged:
            assert all([tb.kind for tb in out[i]] == ["interpolated"] for i in gap)
            assert out[9][0].track_id == out[10 + missing][0].track_id
        else:
            assert all(out[i] == [] for i in gap)
            assert out[9][0].track_id != out[10 + missing][0].track_id


def test_backfill_and_hold_cover_around_the_detections():
    opts = TrackerOptions(max_gap=3, backfill=5, hold=4, smooth=1)
    frames = [[] for _ in range(50)]
    for i in range(20, 31):
        frames[i] = [det(60, 40)]
    out, *_ = run(opts, frames)
    for i in range(15, 20):
        assert [tb.kind for tb in out[i]] == ["held"], i
        assert contains(out[i][0].box, Box(60, 40, 100, 90))
    for i in range(20, 31):
        assert [tb.kind for tb in out[i]] == ["detected"]
    for i in range(31, 35):
        assert [tb.kind for tb in out[i]] == ["held"], i
        assert contains(out[i][0].box, Box(60, 40, 100, 90))
    assert out[14] == [] and out[35] == []
    assert len({tb.track_id for i in range(15, 35) for tb in out[i]}) == 1


def test_backfill_and_hold_follow_the_motion():
    opts = TrackerOptions(max_gap=3, backfill=6, hold=6, smooth=0)
    n = 60
    truth = {i: Box(100 + 3 * i, 50, 140 + 3 * i, 100) for i in range(n)}
    frames = [[] for _ in range(n)]
    for i in range(20, 40):
        frames[i] = [Detection(truth[i], 0.9)]
    out, *_ = run(opts, frames)
    for i in list(range(14, 20)) + list(range(40, 46)):
        (tb,) = out[i]
        assert tb.kind == "held"
        # the face is where its own motion takes it, and the held box covers it there
        assert contains(tb.box, truth[i], tol=0.5), (i, tb.box, truth[i])
    assert out[13] == [] and out[46] == []


@pytest.mark.parametrize("stride", [1, 3])
def test_a_fast_face_seen_once_stays_covered_while_held(stride):
    """Sparse detection (the detector on every 3rd frame) can see a fast face only once: its motion
    is unknown, so the held and backfilled boxes must grow to where it can have gone."""
    opts = TrackerOptions.for_fps(25)
    n = 40
    # 90 px face moving right at 22 px per frame (hall_1080p: someone walking past the camera)
    truth = {i: Box(1000 + 22 * i, 800, 1090 + 22 * i, 930) for i in range(n)}
    frames = [[] for _ in range(n)]
    frames[21] = [Detection(truth[21], 0.99)]
    out, *_ = run(opts, frames)
    margin = 0.25  # the default mask margin (fraction of the box on each side)
    for i in (18, 19, 20, 22, 23):
        (tb,) = out[i]
        assert tb.kind == "held"
        b = tb.box
        region = Box(b.x1 - margin * b.width, b.y1 - margin * b.height,
                     b.x2 + margin * b.width, b.y2 + margin * b.height)
        assert contains(region, truth[i]), (i, region, truth[i])
    # growth is bounded: never more than one box size on each side
    assert all(tb.box.width <= 3 * 90 + 1e-6 for i in range(n) for tb in out[i])


def test_backfill_at_the_start_and_hold_at_the_end_stay_in_range():
    opts = TrackerOptions(max_gap=2, backfill=5, hold=5, smooth=1)
    frames = [[] for _ in range(12)]
    for i in range(2, 12):
        frames[i] = [det(10, 10)]
    out, order, _, _ = run(opts, frames)
    assert order == list(range(12))
    assert [len(out[i]) for i in range(12)] == [1] * 12
    assert out[0][0].kind == "held" and out[11][0].kind == "detected"


# -- smoothing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("smooth", [1, 2, 4])
def test_smoothing_always_covers_the_raw_detection(smooth):
    rng = random.Random(smooth)
    opts = TrackerOptions(max_gap=5, backfill=2, hold=2, smooth=smooth)
    raw = {}
    frames = []
    for i in range(40):
        jitter = [rng.uniform(-4, 4) for _ in range(4)]
        b = Box(200 + i + jitter[0], 100 + jitter[1], 260 + i + jitter[2], 170 + jitter[3])
        raw[i] = b
        frames.append([Detection(b, 0.9)])
    out, *_ = run(opts, frames)
    differs = 0
    for i in range(40):
        (tb,) = out[i]
        assert tb.kind == "detected"
        assert contains(tb.box, raw[i]), (i, tb.box, raw[i])
        differs += tb.box != raw[i]
    assert differs > 20  # smoothing did change the boxes


def test_no_smoothing_gives_the_raw_boxes():
    opts = TrackerOptions(max_gap=3, backfill=0, hold=0, smooth=0)
    boxes = [Box(10 + i * 1.5, 20 - i * 0.3, 60 + i * 1.7, 80 + i * 0.1) for i in range(15)]
    out, *_ = run(opts, [[Detection(b, 0.8)] for b in boxes])
    assert [out[i][0].box for i in range(15)] == boxes


# -- association -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dy", [0.0, 6.0])
@pytest.mark.parametrize("speed", [4.0, 8.0])
def test_crossing_faces_keep_their_ids(dy, speed):
    opts = TrackerOptions(max_gap=5, backfill=0, hold=0, smooth=0)
    n = 50
    a = {i: Box(20 + speed * i, 100, 60 + speed * i, 150) for i in range(n)}  # moving right
    right_end = 20 + speed * (n - 1)
    b = {i: Box(right_end - speed * i, 100 + dy, right_end - speed * i + 40, 150 + dy)
         for i in range(n)}  # moving left, same size
    frames = []
    for i in range(n):
        dets = [Detection(a[i], 0.9), Detection(b[i], 0.91)]
        if i % 2:
            dets.reverse()  # detector order says nothing about identity
        frames.append(dets)
    out, *_ = run(opts, frames)
    id_of = {"a": set(), "b": set()}
    for i in range(n):
        assert len(out[i]) == 2
        assert out[i][0].track_id != out[i][1].track_id
        for tb in out[i]:
            face = "a" if tb.box == a[i] else "b" if tb.box == b[i] else None
            assert face is not None
            id_of[face].add(tb.track_id)
    assert len(id_of["a"]) == 1 and len(id_of["b"]) == 1
    assert id_of["a"] != id_of["b"]


def test_two_separate_faces_two_tracks_with_summaries():
    opts = TrackerOptions(max_gap=3, backfill=0, hold=0, smooth=0)
    frames = [[det(10, 10, score=0.8), det(300, 10, score=0.9)] for _ in range(10)]
    frames += [[det(300, 10, score=0.95)] for _ in range(5)]
    out, _, _, tracker = run(opts, frames)
    assert len({tb.track_id for i in range(15) for tb in out[i]}) == 2
    summaries = sorted(tracker.summaries.values(), key=lambda s: s["first"])
    assert [(s["first"], s["last"], s["detections"]) for s in summaries] == [(0, 9, 10), (0, 14, 15)]
    assert {s["max_score"] for s in summaries} == {0.8, 0.95}


def test_detections_below_min_score_are_dropped():
    opts = TrackerOptions(max_gap=3, backfill=2, hold=2, smooth=1, min_score=0.5)
    frames = [[det(10, 10, score=0.3), det(200, 10, score=0.6)] for _ in range(10)]
    out, _, _, tracker = run(opts, frames)
    for i in range(10):
        assert len(out[i]) == 1
        assert out[i][0].box.x1 >= 190  # only the confident face
    assert len(tracker.summaries) == 1
    assert next(iter(tracker.summaries.values()))["max_score"] == 0.6


def test_frames_must_arrive_in_order():
    t = Tracker(TrackerOptions())
    with pytest.raises(ValueError):
        t.update(1, [])
    t.update(0, [])
    with pytest.raises(ValueError):
        t.update(0, [])
    with pytest.raises(ValueError):
        t.update(2, [])
    t.update(1, [])  # still usable after a rejected call


# -- streaming contract (property-based) ----------------------------------------------------------


@st.composite
def scenarios(draw):
    opts = TrackerOptions(
        max_gap=draw(st.integers(0, 8)), backfill=draw(st.integers(0, 8)),
        hold=draw(st.integers(0, 8)), smooth=draw(st.integers(0, 3)),
        min_score=draw(st.sampled_from([0.0, 0.5])),
    )
    n = draw(st.integers(0, 45))
    # a few faces that wander, blink in and out, plus occasional spurious detections
    n_faces = draw(st.integers(0, 3))
    faces = []
    for _ in range(n_faces):
        x, y = draw(st.floats(0, 400)), draw(st.floats(0, 300))
        vx, vy = draw(st.floats(-12, 12)), draw(st.floats(-6, 6))
        size = draw(st.floats(8, 120))
        seen = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        faces.append((x, y, vx, vy, size, seen))
    frames = []
    for i in range(n):
        dets = []
        for x, y, vx, vy, size, seen in faces:
            if seen[i]:
                score = draw(st.sampled_from([0.3, 0.7, 0.99]))
                dets.append(det(x + vx * i, y + vy * i, size, size * 1.2, score))
        if draw(st.integers(0, 9)) == 0:
            dets.append(det(draw(st.floats(0, 500)), draw(st.floats(0, 400)), 20, 20, 0.6))
        frames.append(dets)
    return opts, frames


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_every_frame_once_in_order_with_fixed_delay_and_every_detection_covered(scenario):
    opts, frames = scenario
    out, order, per_update, _ = run(opts, frames)
    n = len(frames)
    assert order == list(range(n))  # every frame exactly once, in order
    lag = opts.lookahead
    for i, ready in enumerate(per_update):  # frame i - lookahead becomes final at update(i)
        assert ready == ([i - lag] if i >= lag else [])
    for i in range(n):
        ids = [tb.track_id for tb in out[i]]
        assert len(ids) == len(set(ids))  # a track covers a frame at most once
        assert all(tb.kind in ("detected", "interpolated", "held") for tb in out[i])
        for d in frames[i]:
            covered = any(contains(tb.box, d.box) for tb in out[i])
            if d.score >= opts.min_score:
                assert covered, (i, d, out[i])  # when in doubt, cover
        if all(d.score < opts.min_score for d in frames[i]):
            assert all(tb.kind != "detected" for tb in out[i])


def test_flush_on_an_empty_tracker_and_twice():
    t = Tracker(TrackerOptions())
    assert t.flush() == []
    for i in range(3):
        assert t.update(i, []) == []
    assert [i for i, _ in t.flush()] == [0, 1, 2]
    assert t.flush() == []


def test_single_row_or_column_assignment_matches_scipy():
    """The shortcut that keeps scipy.optimize out of single-face runs gives scipy's answer."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from vidgan.faces.tracker import _assign

    rng = np.random.default_rng(1)
    for n in range(1, 6):
        for shape in ((1, n), (n, 1)):
            for _ in range(50):
                c = rng.choice([0.1, 0.5, 1.2, 10.0], size=shape)
                r1, c1 = _assign(c)
                r2, c2 = linear_sum_assignment(c)
                assert len(r1) == len(r2) == 1 and c[r1, c1].sum() == c[r2, c2].sum()
    c = np.array([[0.2, 0.1], [0.1, 10.0]])  # more than one of each: the real Hungarian
    assert sorted(zip(*_assign(c))) == [(0, 1), (1, 0)]


# -- region searches between sparse detections ------------------------------------------------------


def sparse_run(truth: dict[int, list[Box]], n: int, stride: int, full_misses: frozenset = frozenset(),
               period: int = 0, coarse_min_face: float = 0.0):
    """The pipeline's loop on made-up faces: the full-frame detector runs on every `stride`-th frame
    (and misses the frames in `full_misses`); with `period`, only every `period`-th frame's search
    is at full resolution, the others find only faces of at least `coarse_min_face` px; a region
    search finds every true face whose centre lies in the region. Returns ({index: [TrackBox]},
    [(frame, region)] searched)."""
    period = period or stride
    tracker = Tracker(TrackerOptions.for_fps(30, max_gap=2 * period))
    searched: list = []

    def search_fn(images, regions):
        out = []
        for i, r in zip(images, regions):
            searched.append((i, r))
            out.append([Detection(b, 0.99) for b in truth.get(i, [])
                        if r.x1 <= b.center[0] <= r.x2 and r.y1 <= b.center[1] <= r.y2])
        return out

    out = {}
    for i in range(n):
        on = i % stride == 0 or i == n - 1
        min_face = coarse_min_face if on and i % period and i != n - 1 else 0.0
        dets = [Detection(b, 0.99) for b in truth.get(i, []) if max(b.width, b.height) >= min_face] \
            if on and i not in full_misses else []
        searches = tracker.observe(i, dets, searched=on, min_face=min_face)
        tracker.follow(searches, lambda k: k, search_fn)
        out.update(dict(tracker.ready()))
    out.update(dict(tracker.flush()))
    return out, searched


def walker(first: int, last: int, x0=100.0, speed=22.0) -> dict[int, list[Box]]:
    """A 90 px face crossing the frame at `speed` px per frame, visible in frames first..last."""
    return {i: [Box(x0 + speed * i, 300, x0 + 90 + speed * i, 420)] for i in range(first, last + 1)}


def test_a_new_face_is_followed_back_to_its_first_frame():
    """Seen first at frame 12 (detector on every 6th frame), a face that entered at frame 10 is
    searched for in 11, 10 (found: real boxes there, not guesses) and 9 (not found: the search ends)."""
    truth = walker(10, 40)
    out, searched = sparse_run(truth, 42, 6)
    assert [i for i, _ in searched][:3] == [11, 10, 9]
    for i in (10, 11):
        (tb,) = out[i]
        assert tb.kind == "detected" and tb.box.iou(truth[i][0]) > 0.7
    # before its first frame the face is held (backfilled) from there, as without a search
    assert [tb.kind for tb in out[9]] == ["held"]


def test_a_face_that_leaves_is_followed_to_its_last_frame():
    """Seen at 24 and gone at 30: the search looks at 30 first, then walks 25, 26, 27 (found) and 28
    (not found), so the face is covered where it really was, not where a held box guesses."""
    truth = walker(0, 27)
    out, searched = sparse_run(truth, 42, 6)
    walk = [i for i, _ in searched if i > 24]
    assert walk == [30, 25, 26, 27, 28]
    for i in (25, 26, 27):
        (tb,) = out[i]
        assert tb.kind == "detected" and tb.box.iou(truth[i][0]) > 0.7
    assert all(tb.kind == "held" for tb in out[28])


def test_a_face_the_full_frame_search_missed_is_found_by_the_probe():
    """The full-frame detector misses the face at frame 12: one region search in frame 12 finds it,
    and the frames between 6 and 12 are interpolated as usual (no walk)."""
    truth = walker(0, 41, speed=5.0)
    out, searched = sparse_run(truth, 42, 6, full_misses=frozenset({12}))
    assert [i for i, _ in searched] == [12]
    (tb,) = out[12]
    assert tb.kind == "detected"
    assert [tb.kind for tb in out[9]] == ["interpolated"]
    assert len({tb.track_id for i in range(42) for tb in out[i]}) == 1


def test_a_search_does_not_take_another_tracks_face():
    """Two faces side by side; one leaves at frame 26. Its forward search sees the other face in its
    region every frame, but that face belongs to the other track: the search ends at once."""
    stay = {i: [Box(400, 300, 490, 420)] for i in range(42)}
    leave = {i: [Box(250, 300, 340, 420)] for i in range(0, 27)}
    truth = {i: stay.get(i, []) + leave.get(i, []) for i in range(42)}
    out, searched = sparse_run(truth, 42, 6)
    ids = {tb.track_id for i in range(42) for tb in out[i]}
    assert len(ids) == 2
    for i in range(42):  # no frame has a box of the leaving track on the staying face
        for tb in out[i]:
            if tb.kind == "detected":
                assert any(tb.box.iou(b) > 0.7 for b in truth[i])
    last_detected = max(i for i in range(42) for tb in out[i] if tb.kind == "detected" and tb.box.x1 < 350)
    assert last_detected == 26


def test_a_face_that_speeds_up_keeps_one_track():
    """The face speeds up from 10 to 40 px a frame after frame 6: at frame 12 the whole-frame detection
    is too far from the prediction and starts a new track. The lost track's forward search and the new
    track's backward search meet in between; they are one face, so they become one track (one id,
    e.g. one fake identity in gan mode), with real boxes on the frames in between."""
    def x(i):
        return 100 + 10 * min(i, 6) + 40 * max(0, i - 6)

    truth = {i: [Box(x(i), 300, x(i) + 90, 420)] for i in range(0, 19)}
    out, searched = sparse_run(truth, 19, 6)
    ids = {tb.track_id for i in range(19) for tb in out[i]}
    assert len(ids) == 1
    for i in range(19):
        (tb,) = out[i]
        assert contains(tb.box, truth[i][0], tol=0.5), (i, tb)  # smoothed boxes are grown, never cut
        if 7 <= i <= 11:  # the frames in between were searched: real boxes, not interpolated
            assert tb.kind == "detected"


def test_a_small_new_face_is_followed_back_past_a_coarse_search():
    """Full-resolution searches at 0, 12, 24 and coarse ones (faces of 150 px and more) at 6, 18: a
    face 120 px tall that entered at frame 4 is first found at 12. Frame 6's search could not have seen
    it, so the walk back goes on past 6 down to 4 (found) and 3 (not found)."""
    truth = walker(4, 40)
    out, searched = sparse_run(truth, 42, 6, period=12, coarse_min_face=150.0)
    assert [i for i, _ in searched][:9] == [11, 10, 9, 8, 7, 6, 5, 4, 3]
    for i in range(4, 12):
        (tb,) = out[i]
        assert tb.kind == "detected" and tb.box.iou(truth[i][0]) > 0.7


def test_a_coarse_search_does_not_count_as_missing_a_small_face():
    """A face 120 px tall is too small for the coarse searches (6, 18, 30; faces of 130 px and more):
    not finding it there is no sign it left, so no region search is made, and it keeps one track,
    interpolated between the full-resolution detections. A 200 px face the coarse search misses is
    looked for there."""
    small = walker(0, 41, speed=3.0)
    out, searched = sparse_run(small, 42, 6, period=12, coarse_min_face=130.0)
    assert searched == []
    assert len({tb.track_id for i in range(42) for tb in out[i]}) == 1
    assert all(out[i] for i in range(42))
    big = {i: [Box(100 + 3 * i, 100, 300 + 3 * i, 300)] for i in range(42)}
    out, searched = sparse_run(big, 42, 6, full_misses=frozenset({18}), period=12, coarse_min_face=130.0)
    assert [i for i, _ in searched] == [18]
    assert out[18][0].kind == "detected"


def test_a_face_seen_once_keeps_its_track_across_a_long_gap():
    """Seen once at frame 0 (motion unknown), a 90x120 px face has moved 120 px (1 box size) when the
    next whole-frame search runs at frame 10: close enough to keep its track, so no region search is
    needed and one id covers it."""
    truth = walker(0, 20, speed=12.0)
    out, searched = sparse_run(truth, 21, 10)
    assert searched == []
    assert len({tb.track_id for i in range(21) for tb in out[i]}) == 1
    assert [tb.kind for tb in out[5]] == ["interpolated"]


def test_assignment_is_scipys_without_importing_scipy_optimize():
    """The tracker's assignment is scipy's linear_sum_assignment, loaded from its C extension alone:
    the same answers as the public function, and `scipy.optimize` (0.4-0.5 s to import) stays unloaded,
    scipy's own package too (10-25 ms); importing scipy.optimize later still works."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from vidgan.faces.tracker import _assign; "
            "r = _assign(np.array([[4., 1., 3.], [2., 0., 5.], [3., 2., 2.]])); "
            "print([r[0].tolist(), r[1].tolist()], 'scipy.optimize' in sys.modules, 'scipy' in sys.modules); "
            "import scipy.optimize; print(scipy.optimize.linear_sum_assignment(np.eye(2))[1].tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert " ".join(out) == "[[0, 1, 2], [1, 0, 2]] False False [1, 0]"
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from vidgan.faces.tracker import _assign

    rng = np.random.default_rng(0)
    for shape in [(2, 2), (3, 5), (6, 4), (12, 12)]:
        cost = rng.random(shape)
        a, b = _assign(cost), linear_sum_assignment(cost)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
