"""vidgan.temporal: optical flow, warping, occlusion masks, flow-guided smoothing and the
warping-error metric, on synthetic sequences whose true motion is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidgan.temporal import (FlowEstimator, FlowOptions, SmoothOptions, TemporalSmoother, WarpingError,
                             clip_warping_error, flow_boxes, motion, occlusion_mask, pair_warping_error, resize_flow,
                             warp)


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (blurred noise): plenty of structure for optical flow."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32) * 255
    img = cv2.GaussianBlur(noise, (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8)


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """img moved by (dx, dy): out(x, y) = img(x - dx, y - dy)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_recovers_a_known_shift_and_warping_undoes_it(method):
    prev = texture(120, 160)
    cur = shifted(prev, 3.0, -2.0)
    est = FlowEstimator(FlowOptions(method=method, max_side=160))
    flow = est.flow(est.gray(cur), est.gray(prev))
    inner = flow[20:-20, 20:-20]
    # cur(p) = prev(p - (3, -2)): the backward flow is (-3, +2) everywhere
    assert np.median(inner[..., 0]) == pytest.approx(-3.0, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(2.0, abs=0.25)
    back = warp(prev, flow)
    err_warped = np.abs(back.astype(float) - cur)[20:-20, 20:-20].mean()
    err_raw = np.abs(prev.astype(float) - cur)[20:-20, 20:-20].mean()
    assert err_warped < 0.25 * err_raw


def test_flow_on_a_downscaled_grid_scales_back_up():
    prev = texture(240, 320, seed=1)
    cur = shifted(prev, 6.0, 4.0)
    est = FlowEstimator(FlowOptions(max_side=160))
    small = est.flow(est.gray(cur), est.gray(prev))
    assert small.shape[:2] == (120, 160)
    full = resize_flow(small, 240, 320)
    assert np.median(full[40:-40, 40:-40, 0]) == pytest.approx(-6.0, abs=0.5)
    assert np.median(full[40:-40, 40:-40, 1]) == pytest.approx(-4.0, abs=0.5)


def test_torch_grid_sample_warp_matches_opencv_remap():
    img = texture(50, 70, seed=2).astype(np.float32)
    rng = np.random.default_rng(3)
    flow = (rng.random((50, 70, 2)).astype(np.float32) - 0.5) * 6
    a = warp(img, flow)
    b = warp(torch.from_numpy(img).permute(2, 0, 1), flow).permute(1, 2, 0).numpy()
    assert np.abs(a - b)[3:-3, 3:-3].max() < 0.05


def test_occlusion_mask_marks_inconsistent_and_outside_flow():
    h, w = 40, 60
    bw = np.zeros((h, w, 2), np.float32)
    fw = np.zeros((h, w, 2), np.float32)
    # in the previous frame a block at x 20..30 moved right by 8; in the current frame the strip
    # x 20..28 shows background again (its backward flow is 0, but prev's flow there says +8)
    fw[10:30, 20:30, 0] = 8.0
    bw[10:30, 28:38, 0] = -8.0  # the block itself, now at x 28..38, consistent
    bw[:, 55:, 0] = 10.0  # flow that leaves the frame
    valid = occlusion_mask(bw, fw)
    assert valid[10:30, 20:28].max() == 0  # disoccluded
    assert valid[10:30, 30:37].min() == 1  # moved but consistent
    assert valid[:, 55:].max() == 0  # leaves the frame
    assert valid[35:, :50].min() == 1  # static background


def test_estimated_occlusion_finds_disoccluded_background():
    bg = texture(120, 160, seed=4)
    fg = texture(40, 40, seed=5)
    prev, cur = bg.copy(), bg.copy()
    prev[40:80, 40:80] = fg
    cur[40:80, 52:92] = fg  # the square moved 12 px right: x 40..52 is background again
    est = FlowEstimator(FlowOptions(max_side=160))
    m = motion(est.gray(cur), est.gray(prev), est)
    assert m.valid[44:76, 42:50].mean() < 0.5
    assert m.valid[5:30, 5:150].mean() > 0.9


def flickering_sequence(n: int = 10, h: int = 96, w: int = 128):
    """Inputs: a texture panning 2 px per frame. 'Per-frame translation': the input with a random
    global brightness flicker and fresh per-pixel noise each frame (what an unstable network does)."""
    base = texture(h, w + 2 * n, seed=6)
    rng = np.random.default_rng(7)
    inputs, clean, noisy = [], [], []
    for t in range(n):
        frame = np.ascontiguousarray(base[:, 2 * t:2 * t + w])
        inputs.append(frame)
        target = 255 - frame  # a deterministic "translation"
        clean.append(target)
        flicker = rng.normal(0, 8) + rng.normal(0, 6, target.shape)
        noisy.append(np.clip(target + flicker, 0, 255).astype(np.uint8))
    return inputs, clean, noisy


def test_smoothing_halves_the_warping_error_of_a_flickering_sequence():
    inputs, clean, noisy = flickering_sequence()
    smoother = TemporalSmoother(SmoothOptions(alpha=0.7))
    smoothed = [smoother.step(i, o) for i, o in zip(inputs, noisy)]
    e_clean = clip_warping_error(inputs, clean)
    e_noisy = clip_warping_error(inputs, noisy)
    e_smooth = clip_warping_error(inputs, smoothed)
    assert e_clean < 0.3 * e_noisy  # the metric sees the flicker, not the motion
    assert e_smooth < 0.5 * e_noisy
    # ... and smoothing moved the output toward the clean translation, not away (no ghosting)
    dist = lambda seq: np.mean([np.abs(a.astype(float) - b)[8:-8, 8:-8].mean()  # noqa: E731
                                for a, b in zip(seq[3:], clean[3:])])
    assert dist(smoothed) < dist(noisy)


def test_warping_error_tracks_several_versions_with_one_flow():
    inputs, clean, noisy = flickering_sequence(n=5)
    we = WarpingError(["clean", "noisy"])
    for i, c, o in zip(inputs, clean, noisy):
        we.update(i, {"clean": c, "noisy": o})
    res = we.mean()
    assert len(we.errors["noisy"]) == 4
    assert res["clean"] < res["noisy"]
    assert res["noisy"] == pytest.approx(clip_warping_error(inputs, noisy))


def test_region_limits_blending_and_alpha_zero_is_identity():
    inputs, _, noisy = flickering_sequence(n=4)
    region = np.zeros(noisy[0].shape[:2], np.float32)
    region[30:60, 40:80] = 1.0
    smoother = TemporalSmoother(SmoothOptions(alpha=0.8))
    outs = [smoother.step(i, o, region=region) for i, o in zip(inputs, noisy)]
    outside = region == 0
    for o, n in zip(outs, noisy):
        assert np.array_equal(o[outside], n[outside])
    assert not np.array_equal(outs[-1][30:60, 40:80], noisy[-1][30:60, 40:80])
    plain = TemporalSmoother(SmoothOptions(alpha=0.0))
    assert all(np.array_equal(plain.step(i, o), o) for i, o in zip(inputs, noisy))


def test_smoothing_stays_float32_and_a_region_blends_as_the_whole_frame_does_inside_it():
    # the weights were float64 once (NumPy promoted them): twice the memory traffic, and the
    # whole-frame path's previous output became float64 after its first blend
    inputs, _, noisy = flickering_sequence(n=4)
    region = np.zeros(noisy[0].shape[:2], np.float32)
    region[25:65, 35:85] = 1.0
    whole, inside = TemporalSmoother(SmoothOptions(alpha=0.7)), TemporalSmoother(SmoothOptions(alpha=0.7))
    for i, o in zip(inputs, noisy):
        a, b = whole.step(i, o), inside.step(i, o, region=region)
        assert whole._prev_out.dtype == inside._prev_out.dtype == np.float32
    # after the first blend the two differ (the region's previous output is the input outside it);
    # on the second frame the region's pixels are blended exactly as the whole frame's
    w2, r2 = TemporalSmoother(SmoothOptions(alpha=0.7)), TemporalSmoother(SmoothOptions(alpha=0.7))
    for i, o in zip(inputs[:2], noisy[:2]):
        a, b = w2.step(i, o), r2.step(i, o, region=region)
    assert np.array_equal(a[25:65, 35:85], b[25:65, 35:85])
    assert np.array_equal(b[region == 0], noisy[1][region == 0])


def test_flow_boxes_are_the_parts_of_the_region_on_the_flow_grid_with_a_margin():
    region = np.zeros((400, 800), np.float32)  # an output twice the flow grid's size
    region[100:140, 200:280] = 0.5
    # on the 200 x 400 grid: x 100..140, y 50..70; margin max(24, 0.25 * 40) = 24 on each side
    assert flow_boxes(region, (200, 400)) == [(76, 26, 164, 94)]
    assert flow_boxes(region, (200, 400), margin=1.0) == [(60, 10, 180, 110)]  # 40 px a side
    region[300:320, 700:720] = 1.0  # a second face far away: a rectangle of its own
    assert sorted(flow_boxes(region, (200, 400))) == [(76, 26, 164, 94), (326, 126, 384, 184)]
    region[200:220, 320:340] = 1.0  # a third whose margin overlaps the first's: joined with it
    assert sorted(flow_boxes(region, (200, 400))) == [(76, 26, 194, 134), (326, 126, 384, 184)]
    region[:] = 0
    assert flow_boxes(region, (200, 400)) == []  # no region: nothing to compute
    region[0:300, 0:700] = 1  # nearly everything: the whole grid
    assert flow_boxes(region, (200, 400)) is None
    region[:] = 0
    region[390:400, 790:800] = 1  # a corner: clipped to the grid
    assert flow_boxes(region, (200, 400)) == [(371, 171, 400, 200)]
    region[:] = 0
    region[0, 0] = 0.01  # one output pixel still makes its grid cell count
    assert flow_boxes(region, (200, 400)) == [(0, 0, 25, 25)]


def test_flows_side_by_side_are_the_flows_one_by_one(monkeypatch):
    """`FlowEstimator.flows` runs its pairs on this thread and helper threads at once (each thread
    with its own DIS object): the same arrays as one after the other, in order."""
    import threading

    import vidgan.temporal as temporal

    inputs, _, _ = flickering_sequence(n=4)
    est = FlowEstimator()
    g = [est.gray(i) for i in inputs]
    pairs = [(g[k + 1], g[k]) for k in range(3)] + [(g[k], g[k + 1]) for k in range(3)]
    alone = [FlowEstimator().flow(c, p) for c, p in pairs]
    monkeypatch.setattr(temporal, "FLOW_HELPERS", 1)
    assert all(np.array_equal(a, b) for a, b in zip(est.flows(pairs), alone))
    # really at once: two tasks that each wait for the other to start
    meet = threading.Barrier(2, timeout=10)
    assert temporal._side_by_side([meet.wait, meet.wait]) is not None
    # every task runs and the error comes back after them
    ran = []

    def boom():
        raise ValueError("bad pair")

    with pytest.raises(ValueError, match="bad pair"):
        temporal._side_by_side([boom] + [lambda k=k: ran.append(k) for k in range(5)])
    assert sorted(ran) == list(range(5))
    monkeypatch.setattr(temporal, "FLOW_HELPERS", 0)  # one core: one after the other here
    assert all(np.array_equal(a, b) for a, b in zip(est.flows(pairs), alone))


def test_motion_in_boxes_is_the_motion_of_those_crops_and_nothing_outside():
    inputs, _, _ = flickering_sequence(n=2)
    est = FlowEstimator()
    cur, prev = est.gray(inputs[1]), est.gray(inputs[0])
    boxes = [(20, 10, 70, 60), (90, 30, 150, 80)]
    m = motion(cur, prev, est, boxes)
    assert m.flow.shape == cur.shape + (2,) and m.boxes == boxes
    outside = np.ones(cur.shape, bool)
    valid_sum = 0.0
    for x0, y0, x1, y1 in boxes:
        crop = motion(np.ascontiguousarray(cur[y0:y1, x0:x1]), np.ascontiguousarray(prev[y0:y1, x0:x1]), est)
        assert np.array_equal(m.flow[y0:y1, x0:x1], crop.flow) and np.array_equal(m.valid[y0:y1, x0:x1], crop.valid)
        assert np.array_equal(m.change[y0:y1, x0:x1], crop.change)
        outside[y0:y1, x0:x1] = False
        valid_sum += float(crop.valid.sum())
        assert crop.trusted == float(crop.valid.mean())
    assert not m.valid[outside].any() and not m.flow[outside].any()
    assert m.trusted == pytest.approx(valid_sum / (50 * 50 + 60 * 50))


def test_faces_only_smoothing_computes_the_flow_around_the_faces_only(monkeypatch):
    """The two flows are most of a step: with a region, they run on its box and a margin (the
    motion there as on the whole frame); without a face in the frame, not at all."""
    base = texture(240, 320, seed=3)
    inputs = [shifted(base, 2 * k, 0) for k in range(4)]
    rng = np.random.default_rng(4)
    noisy = [np.clip(i.astype(np.int16) + rng.integers(-12, 13, i.shape), 0, 255).astype(np.uint8) for i in inputs]
    region = np.zeros((240, 320), np.float32)
    region[100:140, 140:180] = 1.0
    sizes = []

    class Counting(FlowEstimator):
        def flow(self, cur, prev):
            sizes.append(cur.shape)
            return super().flow(cur, prev)

    import vidgan.temporal as temporal

    box = TemporalSmoother(SmoothOptions(alpha=0.7))
    box.estimator = Counting()
    for i, o in zip(inputs, noisy):
        a = box.step(i, o, region)
    assert sizes == [(88, 88)] * 6  # 40 px + 24 on each side, two flows a step after the first
    sizes.clear()
    monkeypatch.setattr(temporal, "flow_boxes", lambda *args, **kw: None)  # as before: the whole frame's flow
    whole = TemporalSmoother(SmoothOptions(alpha=0.7))
    whole.estimator = Counting()
    for i, o in zip(inputs, noisy):
        b = whole.step(i, o, region)
    assert sizes == [(240, 320)] * 6
    monkeypatch.undo()
    sizes.clear()
    inside = (slice(100, 140), slice(140, 180))
    assert np.abs(a[inside].astype(int) - b[inside]).mean() < 0.5  # the same motion in there
    assert np.array_equal(a[region == 0], noisy[-1][region == 0])
    empty = np.zeros_like(region)
    assert all(np.array_equal(box.step(i, o, empty), o) for i, o in zip(inputs, noisy)) and sizes == []


def test_a_scene_cut_resets_instead_of_blending():
    a, b = texture(96, 128, seed=8), texture(96, 128, seed=9)
    smoother = TemporalSmoother(SmoothOptions(alpha=0.8))
    smoother.step(a, a)
    out = smoother.step(b, b)
    assert np.array_equal(out, b)
    assert smoother.cuts == 1


def test_smoothing_an_upscaled_output_uses_the_scaled_flow():
    inputs, clean, noisy = flickering_sequence(n=6, h=48, w=64)
    up = [cv2.resize(x, (256, 192), interpolation=cv2.INTER_CUBIC) for x in noisy]
    smoother = TemporalSmoother(SmoothOptions(alpha=0.7))
    outs = [smoother.step(i, o) for i, o in zip(inputs, up)]
    assert outs[-1].shape == (192, 256, 3)
    assert clip_warping_error(inputs, outs) < 0.6 * clip_warping_error(inputs, up)


def test_options_are_validated():
    with pytest.raises(ValueError):
        SmoothOptions(alpha=1.0)
    with pytest.raises(ValueError):
        FlowOptions(method="lucas")


def test_torch_smoothing_path_matches_the_opencv_path():
    """The GPU path (torch warp and blend) run on the CPU gives the same frames as OpenCV's."""
    inputs, _, noisy = flickering_sequence(n=5)
    region = np.zeros(noisy[0].shape[:2], np.float32)
    region[20:70, 30:90] = 1.0
    region = cv2.GaussianBlur(region, (0, 0), 4)
    for reg in (None, region):  # full frame; only inside a region (OpenCV blends its bounding box only)
        a = TemporalSmoother(SmoothOptions(alpha=0.7))
        b = TemporalSmoother(SmoothOptions(alpha=0.7), use_torch=True)
        for i, o in zip(inputs, noisy):
            oa, ob = a.step(i, o, reg), b.step(i, o, reg)
            assert np.abs(oa.astype(int) - ob)[4:-4, 4:-4].max() <= 1


def test_masked_warping_error_is_the_error_inside_the_mask():
    inputs, _, noisy = flickering_sequence(n=2)
    est = FlowEstimator(FlowOptions(method="farneback", max_side=512))
    m = motion(est.gray(inputs[1]), est.gray(inputs[0]), est)
    full = pair_warping_error(noisy[0], noisy[1], m)
    assert pair_warping_error(noisy[0], noisy[1], m, np.ones(noisy[1].shape[:2], np.float32)) == pytest.approx(full)
    mask = np.zeros(noisy[1].shape[:2], np.float32)
    mask[30:60, 40:90] = 1
    flow, valid = m.at(*mask.shape)
    diff = np.abs(noisy[1].astype(np.float32) - warp(noisy[0].astype(np.float32), flow)).mean(-1)
    sel = (valid * mask) > 0
    assert pair_warping_error(noisy[0], noisy[1], m, mask) == pytest.approx(float(diff[sel].mean()), rel=1e-4)
