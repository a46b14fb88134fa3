"""Face alignment (vidgan.faces.align), the translate job (vidgan.translate) and `vidgan translate`.

The generators here are real networks, only untrained (random weights saved in the shipping
format), or tiny fixed functions (negate colours, nearest x4 upscale) whose correct output is known,
so tiling, pasting and timing can be checked exactly."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import audio_packets, video_path, video_times

from vidgan.cli import main
from vidgan.faces import DetectorOptions, FaceDetector
from vidgan.faces.align import (align_matrix, crop_mask, invert, match_color, paste_back, similarity,
                                template_points, transform_points, warp_crop)
from vidgan.gan.nets import build_generator
from vidgan.gan.translator import Translator, save_translator
from vidgan.media import VideoReader
from vidgan.temporal import clip_warping_error
from vidgan.translate import FrameTranslator, TranslateOptions, Translation

torch.set_num_threads(2)


# -- alignment ------------------------------------------------------------------------------------


def similarity_matrix(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


@pytest.mark.parametrize("angle,scale,margin", [(0, 1.0, 0.0), (35, 2.5, 0.0), (-70, 0.4, 0.3)])
def test_alignment_round_trip_maps_landmarks_to_the_template_and_back(angle, scale, margin):
    size = 128
    tpl = template_points(size, margin)
    # a face placed in a frame by a known similarity: its landmarks are the template moved there
    landmarks = transform_points(tpl, similarity_matrix(angle, scale, 300.0, 200.0))
    m = align_matrix(landmarks, size, margin)
    assert np.allclose(transform_points(landmarks, m), tpl, atol=1e-6)
    assert np.allclose(transform_points(tpl, invert(m)), landmarks, atol=1e-6)
    # noisy landmarks still land within a pixel or two of the template
    rng = np.random.default_rng(0)
    noisy = landmarks + rng.normal(0, 0.5 * scale, landmarks.shape)
    assert np.abs(transform_points(noisy, align_matrix(noisy, size, margin)) - tpl).max() < 2.5


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The textbook SVD form (Umeyama 1991, no reflection), to check the closed form against."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / ((s ** 2).sum() / len(src))
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def test_similarity_is_umeyamas_least_squares_fit():
    rng = np.random.default_rng(3)
    for i in range(200):
        src = rng.normal(0, rng.uniform(1, 300), (5, 2)) + rng.uniform(-500, 500, 2)
        dst = rng.normal(0, 50, (5, 2)) if i % 3 == 0 else transform_points(src, similarity_matrix(
            rng.uniform(-180, 180), rng.uniform(0.05, 5), *rng.uniform(-300, 300, 2))) + rng.normal(0, 2, (5, 2))
        if i % 7 == 0:
            dst[:, 0] *= -1  # a mirrored set: still the best proper similarity, never a reflection
        assert np.allclose(similarity(src, dst), umeyama(src, dst), rtol=1e-9, atol=1e-7)
    assert np.array_equal(similarity(np.ones((5, 2)), np.zeros((5, 2)))[:, :2], np.eye(2))  # degenerate: no NaN


def test_margin_zooms_out_around_the_same_centre():
    tight, wide = template_points(100, 0.0), template_points(100, 0.25)
    eye_dist = lambda p: np.linalg.norm(p[1] - p[0])  # noqa: E731
    assert eye_dist(wide) == pytest.approx(eye_dist(tight) / 1.5)
    assert np.allclose((tight - 50) / 1.5 + 50, wide)


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32) * 255, (0, 0), 1.5)
    return np.clip((img - img.min()) / (img.max() - img.min()) * 255, 0, 255).astype(np.uint8)


def test_a_shrinking_crop_wholly_outside_the_frame_is_border_not_an_error():
    # a large face (crop zoom < 0.5: the anti-alias path) whose box a track carried off the frame;
    # `vidgan translate hall_1080p.mp4 --model face-age` stopped on one such box with an OpenCV error
    frame = textured(240, 320)
    m = align_matrix(transform_points(template_points(64), similarity_matrix(0, 4.0, 900, -600)), 64)
    crop = warp_crop(frame, m, 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert paste_back(frame, crop, m) is not None


def test_crop_then_paste_back_restores_the_frame_and_touches_only_the_footprint():
    frame = textured(240, 320)
    m = align_matrix(transform_points(template_points(96), similarity_matrix(20, 0.8, 120, 60)), 96)
    crop = warp_crop(frame, m, 96)
    alpha = np.zeros(frame.shape[:2], np.float32)
    out = paste_back(frame, crop, m, out_alpha=alpha)
    inside = alpha > 0.99
    assert inside.sum() > 1000
    # resampling twice blurs a little; nothing more
    assert np.abs(out[inside].astype(float) - frame[inside]).mean() < 6
    assert np.array_equal(out[alpha == 0], frame[alpha == 0])


def test_paste_back_into_a_window_equals_the_same_window_of_a_full_paste():
    frame = textured(240, 320)
    m = align_matrix(transform_points(template_points(96), similarity_matrix(20, 0.8, 120, 60)), 96)
    crop = textured(96, 96, seed=3)
    full = paste_back(frame, crop, m)
    for y0, y1, x0, x1 in ((40, 180, 90, 260), (0, 240, 0, 320), (100, 120, 150, 151), (0, 10, 0, 10)):
        win = paste_back(frame[y0:y1, x0:x1], crop, m, offset=(x0, y0))
        assert np.array_equal(win, full[y0:y1, x0:x1]), (y0, x0)


def test_paste_back_mask_is_feathered():
    mask = crop_mask(128, feather=0.15)
    assert mask[64, 64] == 1.0 and mask[0, 0] == 0.0 and mask[64, 0] < 0.05
    row = mask[64, 64:]
    assert np.all(np.diff(row) <= 1e-6)  # falls monotonically from the centre
    soft = ((row > 0.02) & (row < 0.98)).sum()
    assert 10 <= soft <= 30  # ~0.15 * 128 px of soft edge, not a hard step
    # pasted: a white crop on a black frame leaves a gradient at the edge, never a hard step
    frame = np.zeros((200, 200, 3), np.uint8)
    m = align_matrix(transform_points(template_points(128), similarity_matrix(0, 1.0, 36, 36)), 128)
    out = paste_back(frame, np.full((128, 128, 3), 255, np.uint8), m, mask)[100, :, 0].astype(int)
    assert out[100] == 255 and out[5] == 0
    assert np.abs(np.diff(out)).max() < 40
    box = crop_mask(64, feather=0.1, shape="box")
    assert box[32, 32] == 1 and box[5, 32] < box[10, 32] <= 1


def test_colour_matching_moves_the_crop_towards_the_reference():
    ref = np.full((64, 64, 3), (180, 120, 90), np.uint8)
    ref = np.clip(ref + np.random.default_rng(1).normal(0, 10, ref.shape), 0, 255).astype(np.uint8)
    crop = np.full((64, 64, 3), (60, 90, 200), np.uint8)
    out = match_color(crop, ref)
    assert np.abs(out.reshape(-1, 3).mean(0) - ref.reshape(-1, 3).mean(0)).max() < 6


def test_colour_matching_is_reinhards_transfer_and_a_uint8_mask_selects_like_a_0_1_float_mask():
    rng = np.random.default_rng(4)
    crop, src, ref = textured(64, 64, 1), textured(64, 64, 2), textured(64, 64, 3)
    ring = np.zeros((64, 64), np.float32)
    ring[5:20, 8:50] = 1
    ring[40:60, 2:30] = rng.uniform(0, 1, (20, 28)).astype(np.float32)  # weighted pixels too

    def lab(x):
        return cv2.cvtColor(x, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)

    w = ring.reshape(-1) / ring.sum()
    mu_s, mu_r = w @ lab(src), w @ lab(ref)
    sd_s, sd_r = np.sqrt(w @ (lab(src) - mu_s) ** 2), np.sqrt(w @ (lab(ref) - mu_r) ** 2)
    want = np.clip((lab(crop) - mu_s) * (sd_r / sd_s) + mu_r, 0, 255).reshape(64, 64, 3)
    got = cv2.cvtColor(match_color(crop, ref, ring, source=src), cv2.COLOR_RGB2LAB).astype(np.float64)
    expect = cv2.cvtColor(want.astype(np.uint8), cv2.COLOR_LAB2RGB)
    assert np.abs(match_color(crop, ref, ring, source=src).astype(int) - expect).max() <= 1
    assert np.abs(got - want).mean() < 1.0
    binary = (ring > 0.5).astype(np.float32)
    a, b = match_color(crop, ref, binary, source=src), match_color(crop, ref, binary.astype(np.uint8), source=src)
    assert np.abs(a.astype(int) - b).max() <= 1 and np.mean(a != b) < 0.01
    assert np.array_equal(match_color(crop, ref, binary > 0, source=src), b)


# -- generators for the job tests -----------------------------------------------------------------


class Negate(torch.nn.Module):
    """y = -x in the network's [-1, 1] range: colours inverted, exactly; works at any size."""

    multiple = 1

    def forward(self, x):
        return -x


class Nearest4(torch.nn.Module):
    multiple = 1

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")


class Flicker(torch.nn.Module):
    """The identity plus a random brightness offset and noise per call: an unstable generator."""

    multiple = 1

    def __init__(self):
        super().__init__()
        self.g = torch.Generator().manual_seed(0)

    def forward(self, x):
        offset = torch.randn(x.shape[0], 1, 1, 1, generator=self.g) * 0.06
        noise = torch.randn(x.shape, generator=self.g) * 0.04
        return (x + offset + noise).clamp(-1, 1)


def fixed(net: torch.nn.Module, scale: int = 1, faces: bool = False, size: int = 64) -> Translator:
    return Translator(net=net.eval(), name="fixed", task="sr" if scale > 1 else "pix2pix", input_mode="rgb",
                      scale=scale, size=size, faces=faces, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """An untrained U-Net in the shipping format (8 base filters: ~0.7 M parameters)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny_unet.pt"
    net = build_generator("unet", size=128, ngf=8)
    save_translator(path, net, "unet", {"size": 128, "ngf": 8},
                    {"name": "tiny-unet", "task": "pix2pix", "input_mode": "rgb", "scale": 1, "size": 128,
                     "faces": False})
    return str(path)


@pytest.fixture(scope="module")
def tiny_sr(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny_sr.pt"
    net = build_generator("srresnet", n_blocks=1, nf=8, scale=4)
    save_translator(path, net, "srresnet", {"n_blocks": 1, "nf": 8, "scale": 4},
                    {"name": "tiny-sr", "task": "sr", "input_mode": "rgb", "scale": 4, "size": 128,
                     "faces": False})
    return str(path)


# -- whole frames ----------------------------------------------------------------------------------


def test_tiles_blend_to_the_untiled_result():
    img = textured(300, 410, seed=3)
    whole = FrameTranslator(fixed(Negate()), tile=0)(img)
    assert np.array_equal(whole, 255 - img)
    tiled = FrameTranslator(fixed(Negate()), tile=128, overlap=16, batch_size=3)(img)
    # blended in float and rounded once: tiles that agree give exactly their value, seams included
    assert np.array_equal(tiled, whole)
    ft = FrameTranslator(fixed(Nearest4(), scale=4), tile=96, overlap=16)
    for n in (96, 100, 150, 300, 410):  # each output pixel's tile weights add up to 1
        starts, w = ft._weights(n)
        total = np.zeros(n * 4, np.float32)
        for a, row in zip(starts, w):
            total[a * 4:(a + 96) * 4] += row
        assert np.allclose(total, 1.0, atol=1e-6) and starts[0] == 0 and starts[-1] == n - 96
    # a real convolutional net sees less context at tile edges; blending keeps the seams faint
    # (batch norm in eval mode: instance norm would normalise each tile with its own statistics)
    torch.manual_seed(0)
    net = fixed(build_generator("resnet", n_blocks=1, ngf=8, norm="batch"))
    a = FrameTranslator(net, tile=0)(img).astype(float)
    b = FrameTranslator(net, tile=128, overlap=32)(img).astype(float)
    assert np.abs(a - b).mean() < 2.0
    up = FrameTranslator(fixed(Nearest4(), scale=4), tile=96, overlap=16)(img[:100, :150])
    assert up.shape == (400, 600, 3)
    assert np.abs(up.astype(int) - np.repeat(np.repeat(img[:100, :150], 4, 0), 4, 1)).max() <= 1


def first_second(tmp_path, name: str = "talking_woman.mp4", seconds: float = 1.0) -> str:
    """The first `seconds` of a shared clip, packets copied (no re-encode): a short real clip."""
    src = video_path(name)
    out = str(tmp_path / f"cut_{name}")
    with av.open(src) as inp, av.open(out, "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(list(inp.streams)):
            if packet.stream.index not in streams or packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * Fraction(packet.time_base) >= seconds:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return out


def frames_of(path: str) -> list[np.ndarray]:
    with VideoReader(path) as r:
        return [f.image for f in r]


def test_translate_video_keeps_frame_count_timestamps_and_audio(tmp_path, tiny_model):
    clip = video_path("party_1s_h264_mp3.mp4")
    out = str(tmp_path / "party.tiny.mp4")
    # frames from 0.3 s on pass through (only re-encoded), to keep the test quick on a loaded CPU
    assert main(["translate", clip, "--model", tiny_model, "--whole-frame", "--tile", "256", "--end", "0.3",
                 "-o", out, "-q"]) == 0
    assert video_times(out) == video_times(clip)
    assert audio_packets(out) == audio_packets(clip)
    with av.open(out) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (640, 480)


def test_faces_only_changes_pixels_only_near_faces(tmp_path):
    clip = first_second(tmp_path, seconds=0.3)
    out = str(tmp_path / "neg.mp4")
    opts = TranslateOptions(model="-", faces_only=True, temporal_alpha=0.0, device="cpu", encode=_lossless())
    report = Translation(opts, translator=fixed(Negate(), faces=True)).translate(clip, out)
    assert report.frames == len(video_times(clip)) and report.covered_boxes >= report.frames
    src, dst = frames_of(clip), frames_of(out)
    det = FaceDetector(DetectorOptions(device="cpu"))
    for i in (0, len(src) // 2):
        face = max(det.detect([src[i]])[0], key=lambda d: d.box.area).box
        changed = np.abs(dst[i].astype(int) - src[i]).max(-1) > 40
        ys, xs = np.nonzero(changed)
        near = face.scaled(1.6)
        assert changed.sum() > 0.3 * face.area  # the face itself was translated
        assert ((xs >= near.x1) & (xs <= near.x2) & (ys >= near.y1) & (ys <= near.y2)).mean() > 0.995
        cx, cy = (int(v) for v in face.center)
        assert np.abs(dst[i][cy, cx].astype(int) - (255 - src[i][cy, cx].astype(int))).max() < 30
    # away from the faces every pixel is the input's own (its decoded YUV passes through to the
    # encoder; an RGB round trip moved ~98 % of them by a level or more), with smoothing too
    smoothed = str(tmp_path / "neg_smoothed.mp4")
    Translation(dataclasses.replace(opts, temporal_alpha=0.7),
                translator=fixed(Negate(), faces=True)).translate(clip, smoothed)
    for out_frames in (dst, frames_of(smoothed)):
        for i in range(len(src)):
            face = max(det.detect([src[i]])[0], key=lambda d: d.box.area).box.scaled(2.5)
            far = np.ones(src[i].shape[:2], bool)
            far[max(0, int(face.y1)):int(face.y2) + 1, max(0, int(face.x1)):int(face.x2) + 1] = False
            assert far.mean() > 0.3 and np.array_equal(out_frames[i][far], src[i][far])


def _lossless():
    from vidgan.media import EncodeOptions

    return EncodeOptions(crf=0)


def test_temporal_smoothing_on_by_default_halves_flicker(tmp_path):
    clip = first_second(tmp_path, "carphone_qcif.mp4", seconds=0.5)
    flick = fixed(Flicker())
    outs = {}
    default = TranslateOptions(model="-", faces_only=False, tile=0, device="cpu", encode=_lossless())
    assert default.temporal_alpha > 0  # smoothing is the default
    for opts in (dataclasses.replace(default, temporal_alpha=0.0), default):
        flick.net.g.manual_seed(0)
        o = str(tmp_path / f"flicker_{opts.temporal_alpha}.mp4")
        Translation(opts, translator=flick).translate(clip, o)
        outs[opts.temporal_alpha] = frames_of(o)
    inputs = frames_of(clip)
    per_frame = clip_warping_error(inputs, outs[0.0])
    smoothed = clip_warping_error(inputs, outs[default.temporal_alpha])
    assert smoothed <= 0.5 * per_frame


def test_start_end_pass_other_frames_through(tmp_path):
    clip = first_second(tmp_path, seconds=0.3)
    out = str(tmp_path / "range.mp4")
    times = video_times(clip)
    opts = TranslateOptions(model="-", faces_only=False, start=float(times[3]), end=float(times[6]), device="cpu",
                            encode=_lossless())
    Translation(opts, translator=fixed(Negate())).translate(clip, out)
    src, dst = frames_of(clip), frames_of(out)
    assert len(src) == len(dst)
    diff = [np.abs(a.astype(int) - b).mean() for a, b in zip(src, dst)]
    assert all(d < 3 for d in diff[:3] + diff[6:]) and all(d > 40 for d in diff[3:6])


class Tint(torch.nn.Module):
    """A 'colouriser': the (gray) input with a fixed tint added; blurred, like a small crop."""

    multiple = 1

    def forward(self, x):
        tint = torch.tensor([0.35, 0.0, -0.35]).view(1, 3, 1, 1)
        return (torch.nn.functional.avg_pool2d(x, 5, 1, 2) + tint).clamp(-1, 1)


def test_gray_models_keep_the_faces_own_lightness(tmp_path):
    from conftest import shared_data_dir

    photo = str(shared_data_dir() / "faces" / "photos" / "astronaut.png")
    t = Translator(net=Tint(), name="tint", task="pix2pix", input_mode="gray", scale=1, size=64, faces=True,
                   device=torch.device("cpu"))
    outs = {}
    for keep in (None, False):
        out = str(tmp_path / f"tint_{keep}.png")
        Translation(TranslateOptions(model="-", keep_luma=keep, device="cpu"), translator=t).translate(photo, out)
        outs[keep] = cv2.cvtColor(cv2.imread(out), cv2.COLOR_BGR2LAB).astype(int)
    src = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2LAB).astype(int)
    face = max(FaceDetector(DetectorOptions(device="cpu")).detect([cv2.imread(photo)[..., ::-1].copy()])[0],
               key=lambda d: d.box.area).box
    cx, cy = (int(v) for v in face.center)
    patch = (slice(cy - 10, cy + 10), slice(cx - 10, cx + 10))
    kept, model = outs[None][patch], outs[False][patch]
    assert np.abs(kept[..., 0] - src[patch][..., 0]).mean() < 3  # lightness of the original face
    # ... with the model's colour (Lab a, b), not the original's
    ab = lambda x: x[..., 1:].reshape(-1, 2).mean(0)  # noqa: E731
    assert np.abs(ab(kept) - ab(model)).max() < 0.3 * np.abs(ab(src[patch]) - ab(model)).max()
    assert np.abs(model[..., 0] - src[patch][..., 0]).mean() > np.abs(kept[..., 0] - src[patch][..., 0]).mean()
    far = (slice(0, 20), slice(0, 20))
    assert np.abs(outs[None][far] - src[far]).max() <= 1


def test_the_network_runs_in_its_own_thread_ahead_of_the_smoothing(tmp_path):
    """The network and the paste run in a stage thread, the smoothing and the encode on the caller's;
    every frame is written once, with its own timestamp."""
    import threading

    threads = set()

    class Recording(Negate):
        def forward(self, x):
            threads.add(threading.current_thread().name)
            return -x

    clip = first_second(tmp_path, "carphone_qcif.mp4", seconds=0.5)
    out = tmp_path / "staged.mp4"
    job = Translation(TranslateOptions(model="-", faces_only=False, device="cpu", tile=0), translator=fixed(Recording()))
    report = job.translate(clip, str(out))
    assert threads == {"vidgan-translate"} and report.frames > 1
    with VideoReader(clip) as r, VideoReader(str(out)) as o:
        pairs = list(zip(r, o))
    assert len(pairs) == report.frames and all(a.pts == b.pts for a, b in pairs)


def test_cancel_leaves_nothing_and_progress_counts(tmp_path):
    import threading

    from vidgan.errors import Cancelled

    clip = first_second(tmp_path, "carphone_qcif.mp4", seconds=0.5)
    out = tmp_path / "cancelled.mp4"
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done == 3:
            cancel.set()

    job = Translation(TranslateOptions(model="-", faces_only=False, device="cpu"), translator=fixed(Negate()))
    with pytest.raises(Cancelled):
        job.translate(clip, str(out), progress=progress, cancel=cancel)
    assert seen == [1, 2, 3]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".cancelled")]


# -- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_images_in_image_out(tmp_path, tiny_model, ext):
    src = tmp_path / f"in{ext}"
    cv2.imwrite(str(src), textured(90, 130, seed=5))
    out = tmp_path / f"out{ext}"
    assert main(["translate", str(src), "--model", tiny_model, "-o", str(out), "-q"]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (90, 130, 3)


def test_sr_model_gives_x4_or_keeps_size(tmp_path, tiny_sr):
    src = tmp_path / "small.png"
    cv2.imwrite(str(src), textured(40, 56, seed=6))
    assert main(["translate", str(src), "--model", tiny_sr, "--whole-frame", "--out-dir", str(tmp_path / "o"),
                 "-q"]) == 0
    assert cv2.imread(str(tmp_path / "o" / "small.tiny-sr.png")).shape == (160, 224, 3)
    assert main(["translate", str(src), "--model", tiny_sr, "--whole-frame", "--keep-size",
                 "-o", str(tmp_path / "same.png"), "-q"]) == 0
    assert cv2.imread(str(tmp_path / "same.png")).shape == (40, 56, 3)


def test_sr_faces_only_video_upscales_the_frame(tmp_path):
    clip = first_second(tmp_path, "carphone_qcif.mp4", seconds=0.3)  # 176x144, one small face
    out = str(tmp_path / "sr.mp4")
    opts = TranslateOptions(model="-", faces_only=True, device="cpu")
    report = Translation(opts, translator=fixed(Nearest4(), scale=4, faces=True, size=128)).translate(clip, out)
    assert report.covered_boxes >= report.frames > 0
    with av.open(out) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (704, 576)
    assert video_times(out) == video_times(clip)


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_model_is_a_one_line_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIDGAN_MODELS", str(tmp_path / "models"))
    (tmp_path / "models" / "face-x").mkdir(parents=True)
    torch.save({"format": "other"}, tmp_path / "models" / "face-x" / "generator.pt")
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), textured(32, 32))
    assert main(["translate", str(src), "--model", "nope", "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no model 'nope'" in err and "face-x" in err
    assert main(["translate", str(src), "--model", "face-x", "-o", str(tmp_path / "o.png")]) == 2
    assert "not a vidgan generator" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_bad_input_fails_that_file_only(tmp_path, tiny_model, capsys):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), textured(32, 32))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    assert main(["translate", str(bad), str(good), "--model", tiny_model, "--out-dir", str(tmp_path / "o"),
                 "-q"]) == 1
    assert "bad.mp4" in capsys.readouterr().err
    assert (tmp_path / "o" / "good.tiny-unet.png").exists()
