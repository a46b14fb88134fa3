"""Unit tests for the primitives (Box) and the covering stage (masks, Blur, Pixelate, Solid)."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidgan.ops import OPERATIONS, Blur, MaskOptions, Pixelate, Solid, parse_color
from vidgan.ops.masks import blend, mask_patch
from vidgan.types import Box, TrackBox

# -- helpers -----------------------------------------------------------------------------------------


def full_alpha(patch, width: int, height: int) -> np.ndarray:
    """The patch's alpha placed in a frame-sized array (0 outside the patch)."""
    a = np.zeros((height, width), np.float32)
    if patch is not None:
        a[patch.slices] = patch.alpha
    return a


def _inside(region: Box, shape: str, x: np.ndarray, y: np.ndarray, grow: float = 1.0) -> np.ndarray:
    """Whether points (x, y) lie strictly inside `region` (scaled by `grow`) for the mask shape."""
    cx, cy = region.center
    nx = (x - cx) / (region.width / 2.0 * grow)
    ny = (y - cy) / (region.height / 2.0 * grow)
    if shape == "ellipse":
        return nx * nx + ny * ny < 1.0
    return np.maximum(np.abs(nx), np.abs(ny)) < 1.0


def coverage(region: Box, shape: str, width: int, height: int, ss: int = 9,
             grow: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Supersampled per-pixel test against the region: (touched by it at all, entirely inside it).

    Each pixel [x, x+1) x [y, y+1) is sampled on an ss x ss grid (ss odd, so the centre is a sample).
    """
    offs = (np.arange(ss) + 0.5) / ss
    xs = np.arange(width)[:, None] + offs[None, :]  # (W, ss)
    ys = np.arange(height)[:, None] + offs[None, :]  # (H, ss)
    X = xs[None, :, None, :]
    Y = ys[:, None, :, None]
    inside = _inside(region, shape, X, Y, grow)  # (H, W, ss, ss)
    return inside.any(axis=(2, 3)), inside.all(axis=(2, 3))


def textured(height: int, width: int, cell: float, seed: int = 0) -> np.ndarray:
    """Random blocky RGB noise with square cells of `cell` px: detail at a chosen scale."""
    rng = np.random.default_rng(seed)
    cell = max(1.0, cell)
    sh, sw = int(math.ceil(height / cell)) + 1, int(math.ceil(width / cell)) + 1
    small = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
    big = cv2.resize(small, (int(sw * cell), int(sh * cell)), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(big[:height, :width])


coords = st.floats(min_value=-40, max_value=200, allow_nan=False, allow_infinity=False)
sizes = st.floats(min_value=0.5, max_value=120, allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw):
    x1, y1 = draw(coords), draw(coords)
    return Box(x1, y1, x1 + draw(sizes), y1 + draw(sizes))


# -- Box -------------------------------------------------------------------------------------------


def test_box_basic_geometry():
    b = Box(10, 20, 50, 100)
    assert (b.width, b.height) == (40, 80)
    assert b.center == (30, 60)
    assert b.area == 3200
    assert Box(5, 5, 1, 1).area == 0.0  # inverted box has no area
    assert Box.from_list(b.as_list()) == b


def test_iou_known_values():
    a = Box(0, 0, 10, 10)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert a.iou(Box(0, 0, 5, 5)) == pytest.approx(25 / 100)
    assert a.iou(Box(10, 0, 20, 10)) == 0.0  # touching edges
    assert a.iou(Box(30, 30, 40, 40)) == 0.0  # disjoint
    assert Box(3, 3, 3, 3).iou(Box(3, 3, 3, 3)) == 0.0  # degenerate: no division by zero


@settings(max_examples=200, deadline=None)
@given(boxes(), boxes())
def test_iou_properties(a, b):
    v = a.iou(b)
    assert 0.0 <= v <= 1.0 + 1e-9
    assert v == pytest.approx(b.iou(a))
    assert a.iou(a) == pytest.approx(1.0)
    u = a.union(b)
    # IoU can never exceed the smaller box's share of the union
    assert v <= min(a.area, b.area) / max(a.area, b.area) + 1e-9
    assert u.area >= max(a.area, b.area) - 1e-9


@settings(max_examples=200, deadline=None)
@given(boxes(), boxes())
def test_union_is_the_smallest_box_containing_both(a, b):
    u = a.union(b)
    assert u == b.union(a)
    for box in (a, b):
        assert u.x1 <= box.x1 and u.y1 <= box.y1 and u.x2 >= box.x2 and u.y2 >= box.y2
    assert u.x1 == min(a.x1, b.x1) and u.y1 == min(a.y1, b.y1)
    assert u.x2 == max(a.x2, b.x2) and u.y2 == max(a.y2, b.y2)


@settings(max_examples=200, deadline=None)
@given(boxes(), st.floats(min_value=0.1, max_value=5.0))
def test_scaled_keeps_centre_and_scales_size(box, factor):
    s = box.scaled(factor)
    assert s.center[0] == pytest.approx(box.center[0], abs=1e-6)
    assert s.center[1] == pytest.approx(box.center[1], abs=1e-6)
    assert s.width == pytest.approx(box.width * factor, rel=1e-6, abs=1e-9)
    assert s.height == pytest.approx(box.height * factor, rel=1e-6, abs=1e-9)
    if factor >= 1.0:
        assert s.x1 <= box.x1 + 1e-9 and s.y1 <= box.y1 + 1e-9
        assert s.x2 >= box.x2 - 1e-9 and s.y2 >= box.y2 - 1e-9


def test_scaled_identity_and_example():
    b = Box(10, 10, 30, 50)
    assert b.scaled(1.0) == b
    assert b.scaled(2.0) == Box(0, -10, 40, 70)
    assert b.scaled(0.5) == Box(15, 20, 25, 40)


# -- MaskOptions -----------------------------------------------------------------------------------


def test_mask_options_defaults_and_region():
    m = MaskOptions()
    assert m.shape == "ellipse"
    b = Box(100, 100, 140, 160)
    r = m.region(b)
    assert r.center == b.center
    assert r.width == pytest.approx(40 * (1 + 2 * m.margin) * m.scale)
    r2 = MaskOptions(margin=0.5, scale=2.0).region(b)
    assert r2.width == pytest.approx(40 * 2.0 * 2.0) and r2.height == pytest.approx(60 * 4.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.margin = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("kwargs", [
    dict(shape="box"), dict(shape="ellipse"),
    dict(margin=0.0), dict(margin=2.0), dict(scale=0.2), dict(scale=5.0),
    dict(feather=0.0), dict(feather=1.0),
])
def test_mask_options_accepts_bounds(kwargs):
    MaskOptions(**kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(shape="circle"), dict(shape=""),
    dict(margin=-0.01), dict(margin=2.01), dict(margin=float("nan")),
    dict(scale=0.19), dict(scale=5.01), dict(scale=float("nan")),
    dict(feather=-0.01), dict(feather=1.01), dict(feather=float("nan")),
])
def test_mask_options_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        MaskOptions(**kwargs)


# -- mask_patch ------------------------------------------------------------------------------------

W, H = 200, 160


@settings(max_examples=120, deadline=None)
@given(box=boxes(), shape=st.sampled_from(["ellipse", "box"]),
       margin=st.sampled_from([0.0, 0.1, 0.25, 0.6]), feather=st.sampled_from([0.0, 0.05, 0.15, 0.5]))
def test_mask_covers_every_pixel_the_region_touches(box, shape, margin, feather):
    opts = MaskOptions(shape=shape, margin=margin, feather=feather)
    alpha = full_alpha(mask_patch(box, opts, W, H), W, H)
    touched, _ = coverage(opts.region(box), shape, W, H)
    # every pixel the covered region overlaps at all is fully replaced: no half-covered face rim
    assert np.all(alpha[touched] == 1.0)


@settings(max_examples=120, deadline=None)
@given(box=boxes(), shape=st.sampled_from(["ellipse", "box"]),
       feather=st.sampled_from([0.05, 0.15, 0.5, 1.0]))
def test_mask_feather_lies_only_outside_the_region(box, shape, feather):
    opts = MaskOptions(shape=shape, feather=feather)
    patch = mask_patch(box, opts, W, H)
    alpha = full_alpha(patch, W, H)
    region = opts.region(box)
    touched, _ = coverage(region, shape, W, H)
    soft = (alpha > 0.0) & (alpha < 1.0)
    assert not np.any(soft & touched)
    # nothing is covered beyond the feather band (the region grown by `feather`, plus a pixel)
    outer = region.scaled(1.0 + feather)
    ys, xs = np.nonzero(alpha > 0)
    if len(xs):
        assert xs.min() >= math.floor(outer.x1) - 1 and xs.max() <= math.ceil(outer.x2) + 1
        assert ys.min() >= math.floor(outer.y1) - 1 and ys.max() <= math.ceil(outer.y2) + 1
    assert alpha.dtype == np.float32 and alpha.min() >= 0.0 and alpha.max() <= 1.0


@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_mask_has_a_monotone_soft_edge(shape):
    box = Box(60.3, 40.7, 140.2, 120.1)
    opts = MaskOptions(shape=shape, margin=0.1, feather=0.4)
    patch = mask_patch(box, opts, 400, 300)
    alpha = full_alpha(patch, 400, 300)
    soft = (alpha > 0) & (alpha < 1)
    assert soft.sum() > 100  # there is a real feather band
    # along the centre row, alpha never increases going outwards
    cy, cx = int(box.center[1]), int(box.center[0])
    right, left = alpha[cy, cx:], alpha[cy, cx::-1]
    assert np.all(np.diff(right) <= 1e-6) and np.all(np.diff(left) <= 1e-6)
    assert right[0] == 1.0 and right[-1] == 0.0 and left[-1] == 0.0


def test_mask_without_feather_is_binary():
    opts = MaskOptions(feather=0.0)
    alpha = mask_patch(Box(20.5, 20.5, 61.3, 70.9), opts, W, H).alpha
    assert set(np.unique(alpha)) <= {0.0, 1.0}
    assert (alpha == 1.0).any()


@settings(max_examples=150, deadline=None)
@given(box=boxes(), shape=st.sampled_from(["ellipse", "box"]),
       margin=st.sampled_from([0.0, 0.25]), feather=st.sampled_from([0.0, 0.15, 0.5, 1.0]))
def test_mask_alpha_is_the_documented_formula(box, shape, margin, feather):
    """mask_patch computes in place for speed; the values are those of the plain formula: 1 on every
    pixel the region touches, else (1 + feather - r) / feather clipped to [0, 1] (0 without feather)."""
    opts = MaskOptions(shape=shape, margin=margin, feather=feather)
    patch = mask_patch(box, opts, W, H)
    if patch is None:
        return
    region = opts.region(box)
    ax, ay = max(region.width / 2, 0.5), max(region.height / 2, 0.5)
    xs = (np.arange(patch.x0, patch.x1) + 0.5 - region.center[0]) / ax
    ys = (np.arange(patch.y0, patch.y1) + 0.5 - region.center[1]) / ay
    X, Y = np.meshgrid(xs, ys)
    r = np.hypot(X, Y) if shape == "ellipse" else np.maximum(abs(X), abs(Y))
    want = np.clip((1 + feather - r) / feather, 0, 1) if feather else np.zeros_like(r)
    # touched: the point of the pixel nearest to the centre lies inside the region
    NX, NY = np.maximum(abs(X) - 0.5 / ax, 0), np.maximum(abs(Y) - 0.5 / ay, 0)
    d = NX ** 2 + NY ** 2 if shape == "ellipse" else np.maximum(NX, NY)
    want[d < 1] = 1.0
    assert patch.alpha.dtype == np.float32 and patch.alpha.shape == want.shape
    # mask_patch works in float32: a pixel whose nearest point lies on the region's edge (to that
    # precision) may go either way, and the feather agrees to ~1e-4 (a 40th of an 8-bit level)
    sure = np.abs(d - 1) > 1e-4
    np.testing.assert_allclose(patch.alpha[sure], want[sure], atol=2e-4)


big_sizes = st.floats(min_value=20, max_value=400, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(x=coords, y=coords, w=big_sizes, h=big_sizes, shape=st.sampled_from(["ellipse", "box"]),
       feather=st.sampled_from([0.0, 0.15, 0.5]), seed=st.integers(0, 2**16))
def test_blend_equals_one_blend_of_the_whole_patch(x, y, w, h, shape, feather, seed):
    """blend copies a large patch's `inner` rectangle and blends only the bands around it: the same
    pixels as one blendLinear over the whole patch, and `inner` lies where alpha is exactly 1."""
    patch = mask_patch(Box(x, y, x + w, y + h), MaskOptions(shape=shape, feather=feather), 480, 400)
    if patch is None:
        return
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (400, 480, 3), dtype=np.uint8)
    repl = rng.integers(0, 256, patch.alpha.shape + (3,), dtype=np.uint8)
    if patch.inner is not None:
        ix0, iy0, ix1, iy1 = patch.inner
        assert ix1 > ix0 and iy1 > iy0 and (patch.alpha[iy0:iy1, ix0:ix1] == 1.0).all()
    a = patch.alpha
    want = image.copy()
    want[patch.slices] = cv2.blendLinear(repl, np.ascontiguousarray(image[patch.slices]), a, 1.0 - a)
    got = image.copy()
    blend(got, patch, repl)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_default_mask_covers_the_whole_face_box(shape):
    box = Box(50.4, 30.6, 91.2, 88.8)
    alpha = full_alpha(mask_patch(box, MaskOptions(shape=shape), W, H), W, H)
    _, inside = coverage(box, "box", W, H)
    touched, _ = coverage(box, "box", W, H)
    assert inside.any()
    assert np.all(alpha[touched] == 1.0)


@pytest.mark.parametrize("box", [
    Box(-30.3, -20.6, 25.2, 30.1),  # over the top-left corner
    Box(170.2, 120.7, 230.9, 190.4),  # over the bottom-right corner
    Box(-50.0, 60.0, 10.0, 100.0),  # mostly left of the frame
    Box(80.0, 140.5, 120.0, 200.0),  # mostly below the frame
])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_mask_clipped_at_frame_borders(box, shape):
    opts = MaskOptions(shape=shape)
    patch = mask_patch(box, opts, W, H)
    assert patch is not None
    assert 0 <= patch.x0 < patch.x1 <= W and 0 <= patch.y0 < patch.y1 <= H
    assert patch.alpha.shape == (patch.y1 - patch.y0, patch.x1 - patch.x0)
    # Same alpha as an unclipped mask: shift everything by whole pixels into a big frame and crop.
    off = 300
    big = mask_patch(Box(box.x1 + off, box.y1 + off, box.x2 + off, box.y2 + off), opts, 1000, 1000)
    ref = full_alpha(big, 1000, 1000)[off:off + H, off:off + W]
    got = full_alpha(patch, W, H)
    np.testing.assert_array_equal(got == 1.0, ref == 1.0)  # the same pixels fully covered
    np.testing.assert_array_equal(got == 0.0, ref == 0.0)  # ... and the same left alone
    np.testing.assert_allclose(got, ref, atol=1e-4)  # float32 rounding of the shifted centre
    assert ref.sum() < full_alpha(big, 1000, 1000).sum()  # something really was cut off


@pytest.mark.parametrize("box", [
    Box(-100, 10, -60, 50),  # left
    Box(260, 10, 300, 50),  # right
    Box(10, -90, 50, -50),  # above
    Box(10, 220, 50, 260),  # below
    Box(-300, -300, -200, -200),
])
def test_mask_none_when_outside_the_frame(box):
    for shape in ("ellipse", "box"):
        assert mask_patch(box, MaskOptions(shape=shape), W, H) is None


def test_mask_partially_visible_face_is_not_none():
    # only the margin of this face reaches into the frame; it must still be covered there
    box = Box(-45, 50, -2, 90)
    patch = mask_patch(box, MaskOptions(shape="box"), W, H)
    assert patch is not None and patch.x0 == 0 and (patch.alpha == 1.0).any()


# -- operations ------------------------------------------------------------------------------------

OPS = [
    pytest.param(lambda: Blur(), id="blur"),
    pytest.param(lambda: Pixelate(), id="pixelate"),
    pytest.param(lambda: Solid(color=(10, 200, 30)), id="solid"),
    pytest.param(lambda: Blur(MaskOptions(shape="box", feather=0.0)), id="blur-box-nofeather"),
    pytest.param(lambda: Pixelate(MaskOptions(margin=0.5, feather=0.5), blocks=4), id="pixelate-wide"),
]

FACE = TrackBox(1, Box(60.5, 40.2, 101.3, 91.7), 0.9)


@pytest.fixture
def image():
    return textured(160, 200, cell=3)


def _alpha_of(op, boxes, w, h):
    alpha = np.zeros((h, w), np.float32)
    for tb in boxes:
        alpha = np.maximum(alpha, full_alpha(mask_patch(tb.box, op.mask, w, h), w, h))
    return alpha


@pytest.mark.parametrize("make_op", OPS)
def test_operation_changes_the_region_and_nothing_else(make_op, image):
    op = make_op()
    before = image.copy()
    out = op.apply(image, [FACE])
    np.testing.assert_array_equal(image, before)  # input untouched
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    alpha = _alpha_of(op, [FACE], 200, 160)
    outside = alpha == 0.0
    np.testing.assert_array_equal(out[outside], image[outside])  # bit-identical outside the patch
    covered = alpha == 1.0
    assert covered.sum() > 1000
    changed = np.any(out != image, axis=2)
    assert changed[covered].mean() > 0.9
    # the covered region lost its detail (or is one colour)
    detail_after = out[covered].astype(float).std(axis=0).mean()  # per-channel spread
    detail_before = image[covered].astype(float).std(axis=0).mean()
    assert detail_after < 0.5 * detail_before


@pytest.mark.parametrize("make_op", OPS)
def test_operation_does_not_write_to_a_read_only_input(make_op, image):
    image.setflags(write=False)
    faces = [FACE, TrackBox(2, Box(-20, -20, 30, 35), 0.8), TrackBox(3, Box(170, 120, 240, 200), 0.7)]
    out = make_op().apply(image, faces)
    assert out.flags.writeable and out.shape == image.shape
    alpha = _alpha_of(make_op(), faces, 200, 160)
    np.testing.assert_array_equal(out[alpha == 0], image[alpha == 0])
    assert np.any(out[alpha == 1] != image[alpha == 1])


@pytest.mark.parametrize("make_op", OPS)
def test_operation_without_visible_boxes_leaves_image_equal(make_op, image):
    op = make_op()
    np.testing.assert_array_equal(op.apply(image, []), image)
    np.testing.assert_array_equal(op.apply(image, [TrackBox(1, Box(-300, -300, -200, -200), 0.9)]), image)


def test_solid_fills_the_region_with_the_colour(image):
    op = Solid(color=(10, 200, 30))
    out = op.apply(image, [FACE])
    alpha = _alpha_of(op, [FACE], 200, 160)
    assert np.all(out[alpha == 1.0] == np.array([10, 200, 30], np.uint8))
    # feather: a blend between the colour and the original, per channel
    soft = (alpha > 0) & (alpha < 1)
    assert soft.any()
    lo = np.minimum(image[soft], np.array([10, 200, 30])).astype(int) - 1
    hi = np.maximum(image[soft], np.array([10, 200, 30])).astype(int) + 1
    assert np.all((out[soft] >= lo) & (out[soft] <= hi))


def _blurred_detail(op, face_size: int) -> float:
    """Std of the face box after / before the operation, on detail at the face's own scale."""
    s = face_size
    img = textured(3 * s, 3 * s, cell=s / 12.0, seed=s)
    out = op.apply(img, [TrackBox(1, Box(s, s, 2 * s, 2 * s), 0.9)])
    sl = (slice(s, 2 * s), slice(s, 2 * s))
    return out[sl].astype(float).std() / img[sl].astype(float).std()


@pytest.mark.parametrize("face_size", [24, 40, 160, 400])
def test_blur_strength_scales_with_face_size(face_size):
    # The test picture has detail at 1/12 of the face size (like eyes and mouth). A fixed-size
    # kernel removes it from a small face but leaves a large face recognisable (a Gaussian with
    # sigma 3 keeps ~87% of it on a 320 px face); the face-relative blur removes it at every size.
    ratio = _blurred_detail(Blur(), face_size)
    assert ratio < 0.25


def test_blur_is_scale_invariant_and_strength_orders():
    small, large = _blurred_detail(Blur(), 32), _blurred_detail(Blur(), 320)
    assert abs(small - large) < 0.1
    weak, normal, strong = (_blurred_detail(Blur(strength=s), 120) for s in (0.5, 1.0, 3.0))
    assert weak > normal > strong


@pytest.mark.parametrize("w, h", [(40, 50), (301, 377), (600, 640), (1001, 333)])
def test_blur_shrinks_like_an_area_resize(w, h):
    """The blur's and pixelation's two-step shrink (a whole-number factor first: OpenCV's fast path)
    gives OpenCV's area average within a few levels, at the same size; small regions take the
    one-step path."""
    from vidgan.ops.resample import area_shrink

    img = textured(h, w, cell=max(w, h) / 12.0, seed=w)
    k = 10.0 / max(w, h)
    sw, sh = max(2, round(w * k)), max(2, round(h * k))
    ref = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA).astype(float)
    got = area_shrink(img, sw, sh)
    assert got.shape == ref.shape and got.dtype == np.uint8
    assert np.abs(got - ref).mean() < 5 and np.abs(got - ref).max() < 24  # random blocks: the harshest case
    if max(w, h) < 80:
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("strength", [0.0, 0.09, 10.5, -1])
def test_blur_strength_validated(strength):
    with pytest.raises(ValueError):
        Blur(strength=strength)


@pytest.mark.parametrize("face_size", [24, 60, 300])
@pytest.mark.parametrize("blocks", [4, 8, 16])
def test_pixelate_cells_follow_the_face_size(face_size, blocks):
    s = face_size
    img = textured(3 * s, 3 * s, cell=1, seed=blocks)
    op = Pixelate(blocks=blocks)
    box = Box(s, s, 2 * s, 2 * s)
    out = op.apply(img, [TrackBox(1, box, 0.9)])
    alpha = _alpha_of(op, [TrackBox(1, box, 0.9)], 3 * s, 3 * s)
    row = int(box.center[1])
    cols = np.nonzero(alpha[row] == 1.0)[0]
    line = out[row, cols[0]:cols[-1] + 1].astype(int)
    runs = 1 + int(np.count_nonzero(np.any(np.diff(line, axis=0) != 0, axis=1)))
    # the covered region is about `blocks` cells across whatever the face size
    assert blocks - 2 <= runs <= blocks + 2


@pytest.mark.parametrize("blocks", [1, 65, 0])
def test_pixelate_blocks_validated(blocks):
    with pytest.raises(ValueError):
        Pixelate(blocks=blocks)


def test_operations_registry():
    assert set(OPERATIONS) >= {"blur", "pixelate", "solid"}
    for name, cls in OPERATIONS.items():
        assert cls.name == name


# -- parse_color -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, rgb", [
    ("#ff0000", (255, 0, 0)), ("00FF00", (0, 255, 0)), ("#0a0B0c", (10, 11, 12)),
    ("255,128,0", (255, 128, 0)), (" 1, 2 ,3 ", (1, 2, 3)), ("0,0,0", (0, 0, 0)),
    ("black", (0, 0, 0)), ("White", (255, 255, 255)), ("gray", (128, 128, 128)),
    ("GREY", (128, 128, 128)), ("  #FFFFFF  ", (255, 255, 255)),
])
def test_parse_color_accepts(text, rgb):
    value = parse_color(text)
    assert value == rgb and isinstance(value, tuple) and all(isinstance(c, int) for c in value)


@pytest.mark.parametrize("text", [
    "", "red", "#fff", "#ff00000", "256,0,0", "-1,0,0", "1,2", "1,2,3,4", "zzzzzz", "#12345g",
    "1,a,3", "1.5,2,3", ",,", "#", "#-1-1-1", "1,,2,3",
])
def test_parse_color_rejects_with_a_clear_message(text):
    with pytest.raises(ValueError, match="not a colour"):
        parse_color(text)
