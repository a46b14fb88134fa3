"""vidgan.deepfake: pseudo-fakes, aggregation, scoring through the CLI, training loop and resume.

Uses the shipped model (models/deepfake/deepfake.pt) when it is there, else an untrained network of
the same architecture written to tmp (the CLI and schema checks do not depend on its accuracy; the
accuracy is measured by benchmarks/bench_deepfake.py)."""

from __future__ import annotations

import csv
import glob
import json
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported (the GUI panel test)

import cv2
import numpy as np
import pytest
import torch

from conftest import make_clip, shared_data_dir, video_path
from vidgan.cli import main
from vidgan.deepfake import robust_score, score_video, video_score
from vidgan.deepfake.crop import MARGIN, crop_face, crop_square
from vidgan.deepfake.model import Detector, default_model_path, export, load
from vidgan.deepfake.pseudofake import face_mask, face_swap, gan_blend, self_blend
from vidgan.deepfake.score import ScoreOptions, link_tracks, verdict
from vidgan.errors import Cancelled

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> str:
    shipped = default_model_path()
    if shipped.is_file():
        return str(shipped)
    torch.manual_seed(0)
    return str(export(Detector("resnet18"), 128, tmp_path_factory.mktemp("model") / "deepfake.pt",
                      {"note": "untrained, for tests"}))


@pytest.fixture(scope="module")
def faces():
    """Three UTKFace photos cut with the scoring recipe: (crop, landmarks in crop px, face box in crop px)."""
    from vidgan.faces import DetectorOptions, FaceDetector

    files = sorted(glob.glob(str(shared_data_dir() / "faces" / "utkface" / "*.jpg")))[100:103]
    if len(files) < 3:
        pytest.skip("UTKFace photos not found in the shared data")
    det = FaceDetector(DetectorOptions(device="cpu", min_face=40))
    out = []
    for f in files:
        img = cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB)
        d = max(det.detect([img])[0], key=lambda d: d.score)
        box = (d.box.x1, d.box.y1, d.box.x2, d.box.y2)
        crop, lms = crop_face(img, box, 160, landmarks=np.array(d.landmarks))
        x0, y0, side = crop_square(box, MARGIN)
        s = 160 / side
        fbox = ((box[0] - x0) * s, (box[1] - y0) * s, (box[2] - x0) * s, (box[3] - y0) * s)
        out.append((crop, lms, fbox))
    return out


# -- pseudo-fakes --------------------------------------------------------------------------------------
def _inside(mask: np.ndarray, box) -> bool:
    ys, xs = np.nonzero(mask > 0)
    x1, y1, x2, y2 = box
    return bool(len(xs)) and xs.min() >= x1 - 1 and xs.max() <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() <= y2 + 1


@pytest.mark.parametrize("strength", [1.0, 0.2])
def test_self_blend_changes_only_inside_a_mask_that_lies_on_the_face(faces, strength):
    for seed in range(8):
        for crop, lms, fbox in faces:
            rng = np.random.default_rng(seed)
            b = self_blend(crop, lms, rng, strength)
            assert b.image.shape == crop.shape and b.image.dtype == np.uint8
            assert _inside(b.mask, fbox), "mask leaves the detected face box"
            changed = np.any(b.image != crop, axis=2)
            assert changed.any(), "the pseudo-fake must differ from its source"
            assert not (changed & (b.mask == 0)).any(), "pixels outside the mask changed"
            # The mask covers the face's centre (between the eyes and the mouth).
            cx, cy = np.round(lms.mean(0)).astype(int)
            assert b.mask[cy, cx] > 0


def test_lower_face_blend_leaves_the_eyes_real(faces):
    # The reenactment-like variant: only the nose-mouth-chin region changes; the eyes stay real.
    for seed in range(8):
        for crop, lms, fbox in faces:
            b = self_blend(crop, lms, np.random.default_rng(seed), 0.5, lower=True)
            assert _inside(b.mask, fbox)
            changed = np.any(b.image != crop, axis=2)
            assert changed.any() and not (changed & (b.mask == 0)).any()
            mouth = np.round(lms[3:].mean(0)).astype(int)
            assert b.mask[mouth[1], mouth[0]] > 0
            for ex, ey in np.round(lms[:2]).astype(int):
                assert b.mask[ey, ex] == 0, "an eye is inside the lower-face mask"


def test_detail_loss_blend_smooths_the_face_inside_the_mask_only(faces):
    # The decoder-like variant: inside the mask the face has lost fine detail (less Laplacian energy
    # than the real face there), outside it every pixel is the real one.
    for seed in range(8):
        for crop, lms, fbox in faces:
            b = self_blend(crop, lms, np.random.default_rng(seed), 0.2, detail=True)
            changed = np.any(b.image != crop, axis=2)
            assert _inside(b.mask, fbox) and changed.any() and not (changed & (b.mask == 0)).any()
            inner = b.mask >= b.mask.max() - 1e-6  # the mask's core (its opacity may be below 1)

            def detail(img):
                grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
                return np.abs(cv2.Laplacian(grey, cv2.CV_32F))[inner].mean()
            assert detail(b.image) < 0.9 * detail(crop), (seed, detail(b.image) / detail(crop))


def test_face_swap_blends_another_face_inside_the_mask(faces):
    (a, la, box_a), (b, lb, _), _ = faces
    for seed in range(5):
        s = face_swap(a, la, b, lb, np.random.default_rng(seed), 0.5)
        changed = np.any(s.image != a, axis=2)
        assert _inside(s.mask, box_a)
        assert not (changed & (s.mask == 0)).any()
        inner = s.mask > 0.9
        # Inside the mask the picture is mostly the other person's: a large mean difference.
        assert np.abs(s.image[inner].astype(int) - a[inner].astype(int)).mean() > 5


def test_gan_fakes_render_each_crop_and_blend_it_inside_the_mask(faces, tmp_path):
    # The shipped super-resolution GAN re-renders each crop from a quarter-size copy; the blend puts
    # that rendering inside a face mask and leaves every other pixel real.
    from vidgan.deepfake.ganfakes import load_gan_pack, pack_gan, render
    from vidgan.gan.translator import load_translator

    crops = np.stack([c for c, _, _ in faces])
    out = render(load_translator("face-sr4x", "cpu"), crops)
    assert out.shape == crops.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - crops.astype(int)).mean()
    assert 1 < diff < 40, diff  # a rendering of the same face: close, but not a copy
    for seed in range(6):
        for (crop, lms, fbox), rendered in zip(faces, out):
            b = gan_blend(crop, rendered, lms, np.random.default_rng(seed), 0.5)
            changed = np.any(b.image != crop, axis=2)
            assert b.kind == "gan" and changed.any() and _inside(b.mask, fbox)
            assert not (changed & (b.mask == 0)).any(), "pixels outside the mask changed"

    path = pack_gan(tmp_path / "gan.npz", crops, ["face-sr4x", "face-age"], device="cpu")
    images = load_gan_pack(path, len(crops), ["face-sr4x", "face-age"])
    assert images.shape == crops.shape and not np.array_equal(images, crops)
    with pytest.raises(ValueError, match="another face pack"):
        load_gan_pack(path, len(crops), ["face-sr4x"])
    with pytest.raises(ValueError, match="another face pack"):
        load_gan_pack(path, len(crops) + 1, ["face-sr4x", "face-age"])


@pytest.mark.parametrize("side", [64, 65])
def test_h264_roundtrip_compresses_like_a_video_frame(faces, side):
    from vidgan.deepfake.dataset import augment_photometric, h264_roundtrip

    img = cv2.resize(faces[0][0], (side, side), interpolation=cv2.INTER_AREA)
    errors = []
    for qp in (18, 32, 18):  # the cached encoder is reused for the second qp 18
        out = h264_roundtrip(img, qp)
        assert out.shape == img.shape and out.dtype == np.uint8
        errors.append(np.abs(out.astype(int) - img.astype(int)).mean())
    assert 0 < errors[0] < errors[1] < 12, errors  # lossy, more so at a higher qp, still the picture
    assert errors[2] == errors[0]  # no state carried from call to call (exact resume)
    out = augment_photometric(img, np.random.default_rng(0), video_prob=1.0)
    assert out.shape == img.shape


def test_face_ellipse_mask_without_landmarks():
    rng = np.random.default_rng(1)
    for _ in range(10):
        m = face_mask((128, 128), None, rng, 0.5)
        ys, xs = np.nonzero(m)
        assert m[64, 64] > 0 and m.max() <= 1.0
        assert xs.min() > 10 and xs.max() < 118 and ys.min() > 10 and ys.max() < 123


# -- aggregation ---------------------------------------------------------------------------------------
def test_one_odd_frame_does_not_flip_a_real_video():
    real = [0.1, 0.15, 0.05, 0.2] * 8  # 32 frames
    odd = real[:]
    odd[7] = 0.99
    assert robust_score(odd) < 0.5
    assert verdict(video_score([odd], 32), 0.5) == "likely real"
    # Two odd frames in 32 still do not.
    odd[20] = 0.97
    assert verdict(video_score([odd], 32), 0.5) == "likely real"


def test_several_confident_fake_frames_count():
    frames = [0.1] * 24 + [0.95] * 8  # a quarter of the frames clearly manipulated
    assert robust_score(frames) >= 0.5
    assert verdict(video_score([frames], 32), 0.5) == "likely fake"
    assert robust_score([0.9] * 32) == pytest.approx(0.9)
    assert robust_score([0.7]) == pytest.approx(0.7)  # a photo: its one score
    assert robust_score([]) is None


def test_video_score_takes_the_worst_long_track_and_ignores_glimpses():
    real_person = [0.1] * 30
    swapped_person = [0.8] * 20 + [0.2] * 10
    glimpse = [0.99]  # one detection in one frame (a passer-by, a false detection)
    assert video_score([real_person, swapped_person], 32) >= 0.5
    assert video_score([real_person, glimpse], 32) < 0.5
    assert video_score([glimpse], 1) == pytest.approx(0.99)  # a photo with one face
    assert video_score([], 32) is None
    assert verdict(None, 0.5) == "no face found"


def test_link_tracks_follows_moving_faces():
    frames = [[(0, 0, 40, 40), (200, 0, 240, 40)],
              [(205, 3, 245, 43), (10, 2, 50, 42)],
              [],
              [(20, 4, 60, 44)]]
    ids = link_tracks(frames)
    assert ids[0] == [0, 1] and ids[1] == [1, 0] and ids[3] == [0]


# -- scoring and the CLI -------------------------------------------------------------------------------
def _check_entry(entry, kind, frames):
    assert set(entry) >= {"input", "fake_probability", "verdict", "frames", "tracks", "kind"}
    assert entry["kind"] == kind and entry["frames_sampled"] == frames == len(entry["frames"])
    p = entry["fake_probability"]
    assert 0.0 <= p <= 1.0
    assert entry["verdict"] == ("likely fake" if p >= entry["threshold"] else "likely real")
    assert entry["tracks"] and entry["faces_scored"] >= 1
    for f in entry["frames"]:
        assert set(f) >= {"index", "time", "score", "faces"}
        for face in f["faces"]:
            assert 0.0 <= face["score"] <= 1.0 and len(face["box"]) == 4
    # The per-video probability follows from the per-frame face scores by the documented rule.
    by_track = {}
    for f in entry["frames"]:
        for face in f["faces"]:
            by_track.setdefault(face["track"], []).append(face["score"])
    assert p == pytest.approx(video_score(list(by_track.values()), frames), abs=1e-3)


def test_cli_on_a_shared_clip_writes_json_and_plot(model_file, tmp_path, capsys):
    clip = video_path("talking_woman.mp4")
    out = tmp_path / "r.json"
    rc = main(["deepfake", clip, "--frames", "4", "--json", str(out), "--report", str(tmp_path / "rep"),
               "--model", model_file, "--device", "cpu", "-q"])
    assert rc == 0
    entry, = json.loads(out.read_text())
    assert entry["input"] == clip
    _check_entry(entry, "video", 4)
    assert len(entry["tracks"]) >= 1 and max(t["frames"] for t in entry["tracks"]) == 4  # one talking head
    times = [f["time"] for f in entry["frames"]]
    assert times == sorted(times) and times[-1] > 5.0  # spread over the 6.6 s clip
    png = cv2.imread(entry["report_png"])
    assert png is not None and png.shape[1] == 900 and png.shape[0] > 320
    assert "talking_woman.mp4: likely" in capsys.readouterr().out


def test_cli_on_an_image(model_file, tmp_path):
    photo = shared_data_dir() / "faces" / "utkface"
    photo = sorted(photo.glob("*.jpg"))[0]
    out = tmp_path / "r.json"
    assert main(["deepfake", str(photo), "--json", str(out), "--model", model_file, "--device", "cpu", "-q"]) == 0
    entry, = json.loads(out.read_text())
    _check_entry(entry, "image", 1)


def test_no_face_is_not_a_guess(model_file, tmp_path):
    synthetic = make_clip(tmp_path / "noface.mp4", frames=12, width=160, height=120)
    inputs = [synthetic]
    try:
        inputs.append(video_path("no_face_walker.mp4"))
    except pytest.skip.Exception:
        pass
    out = tmp_path / "r.json"
    assert main(["deepfake", *inputs, "--frames", "4", "--json", str(out), "--report", str(tmp_path / "rep"),
                 "--model", model_file, "--device", "cpu", "-q"]) == 0
    for entry in json.loads(out.read_text()):
        assert entry["fake_probability"] is None and entry["verdict"] == "no face found"
        assert entry["tracks"] == [] and all(f["score"] is None for f in entry["frames"])
        assert os.path.isfile(entry["report_png"])


def test_unreadable_input_fails_that_input_only(model_file, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    good = make_clip(tmp_path / "ok.mp4", frames=4, width=64, height=48)
    out = tmp_path / "r.json"
    rc = main(["deepfake", str(bad), good, "--frames", "2", "--json", str(out), "--model", model_file, "-q"])
    assert rc == 1
    results = json.loads(out.read_text())
    assert [r["verdict"] for r in results] == ["error", "no face found"]
    assert "vidgan: error:" in capsys.readouterr().err


def test_usage_errors(tmp_path, capsys):
    assert main(["deepfake", "x.mp4", "--frames", "0"]) == 2
    assert main(["deepfake", "x.mp4", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "no deepfake model" in capsys.readouterr().err
    out = str(tmp_path / "run")
    assert main(["train", "deepfake", "--gan-prob", "0.3", "--gan-models", "face-sr4x,nosuch", "--out", out]) == 2
    assert "--gan-models" in capsys.readouterr().err
    assert main(["train", "deepfake", "--gan-prob", "1.5", "--out", out]) == 2
    assert not os.path.exists(out)


def test_score_video_gui_api_progress_and_cancel(model_file, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=10, width=64, height=48)
    seen = []
    res = score_video(clip, progress=lambda d, t: seen.append((d, t)),
                      options=ScoreOptions(frames=3, model=model_file, device="cpu"))
    assert seen[-1] == (3, 3) and res["fake_probability"] is None
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        score_video(clip, cancel=cancel, options=ScoreOptions(frames=3, model=model_file, device="cpu"))


def test_gui_deepfake_panel_scores_a_clip(model_file, monkeypatch, qtbot):
    """The app's Deepfake panel through its adapter (`gui.features.score_video`), as a user runs it;
    the default scorer is swapped for one with 6 frames to keep the test short."""
    pytest.importorskip("PySide6")
    pytest.importorskip("pytestqt")
    import vidgan.deepfake.score as score_mod
    from gui import features
    from gui.deepfake_panel import DeepfakePanel

    assert features.deepfake().available
    monkeypatch.setattr(score_mod, "_default_scorer",
                        score_mod.Scorer(ScoreOptions(frames=6, model=model_file, device="cpu")))
    panel = DeepfakePanel()
    qtbot.addWidget(panel)
    panel.set_path(video_path("asl_again.mkv"))
    panel.run()
    qtbot.waitUntil(lambda: panel.task is not None and not panel.task.is_running()
                    and panel.button.isEnabled(), timeout=120000)
    assert "fake probability" in panel.verdict.text(), panel.verdict.text()
    assert len(panel.plot.points) == 6


# -- training ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A data folder with 6 UTKFace photos and 8 ffpp crops (links, not copies)."""
    src = shared_data_dir()
    root = tmp_path_factory.mktemp("data")
    (root / "faces" / "utkface").mkdir(parents=True)
    for f in sorted((src / "faces" / "utkface").glob("*.jpg"))[:6]:
        os.symlink(f, root / "faces" / "utkface" / f.name)
    for t in ("df", "nt"):
        for label in ("real", "fake"):
            for split in ("train", "test"):
                d = root / "deepfake" / "ffpp_crops_256" / t / split / label
                d.mkdir(parents=True)
                f = sorted((src / "deepfake" / "ffpp_crops_256" / t / split / label).glob("*.png"))[0]
                os.symlink(f, d / f.name)
    from vidgan.deepfake.dataset import pack_faces

    pack = pack_faces(root / "pack.npz", root, device="cpu", include_videos=False)
    return root, pack


def _opts(root, pack, out, steps, **kw):
    from vidgan.deepfake.train import TrainOptions

    return TrainOptions(out=str(out), data=str(root), pack=str(pack), size=64, steps=steps, batch_size=2,
                        val_every=2, workers=0, device="cpu", warmup=1, **kw)


def test_train_resume_is_exact_and_logs_validation(tiny_data, tmp_path):
    from vidgan.deepfake.train import export_checkpoint, train

    root, pack = tiny_data
    mix = dict(detail_prob=0.3, video_prob=0.5)  # H.264 round trips must not break exact resume either
    train(_opts(root, pack, tmp_path / "a", 4, **mix))
    train(_opts(root, pack, tmp_path / "b", 4, stop_at=2, **mix))  # interrupted half-way ...
    train(_opts(root, pack, tmp_path / "b", 4, resume=True, **mix))  # ... and resumed
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    rows = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(0.0 <= float(r["ffpp_auc"]) <= 1.0 for r in rows)
    shipped = export_checkpoint(tmp_path / "a" / "best.pt", tmp_path / "export")
    m = load(shipped)
    assert m.size == 64 and next(m.net.parameters()).dtype == torch.float32
    assert os.path.getsize(shipped) < os.path.getsize(tmp_path / "a" / "last.pt")


def test_time_budget_fits_the_schedule(tiny_data, tmp_path, monkeypatch):
    # --time-budget: steps 50-150 (here 2-6, to keep the test short) set the pace, then `steps` (and
    # with it the lr and the curriculum) is cut to what fits; the run ends there with a validation and
    # a checkpoint, as a finished one.
    from vidgan.deepfake import train as train_module
    from vidgan.deepfake.train import train

    monkeypatch.setattr(train_module, "PACE_STEPS", (2, 6))
    root, pack = tiny_data
    opts = _opts(root, pack, tmp_path / "t", 2000, time_budget=1.0)
    opts.val_every = 1000
    train(opts)
    last = torch.load(tmp_path / "t" / "last.pt", weights_only=True)
    assert 6 <= last["step"] < 2000 and opts.steps == last["step"]
    rows = list(csv.DictReader(open(tmp_path / "t" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [last["step"]]  # the final validation


def test_train_with_gan_fakes_renders_them_once(tiny_data, tmp_path):
    from vidgan.deepfake.train import train

    root, pack = tiny_data
    gan_pack = pack.parent / "deepfake_gan.npz"
    train(_opts(root, pack, tmp_path / "g", 2, gan_prob=0.5, gan_models="face-sr4x"))
    assert gan_pack.is_file()
    stamp = gan_pack.stat().st_mtime_ns
    train(_opts(root, pack, tmp_path / "g", 4, gan_prob=0.5, gan_models="face-sr4x", resume=True))
    assert gan_pack.stat().st_mtime_ns == stamp  # reused, not rendered again
    assert torch.load(tmp_path / "g" / "last.pt", weights_only=True)["step"] == 4


def test_init_accepts_a_plain_torchvision_state_dict(tiny_data, tmp_path):
    """A user's own torchvision checkpoint (e.g. ImageNet weights; here random ones) initialises the
    detector's backbone; another architecture or a foreign dict is refused with a clear error."""
    import torchvision

    from vidgan.deepfake.pretrain import load_backbone
    from vidgan.deepfake.train import train

    root, pack = tiny_data
    torch.manual_seed(3)
    tv = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(tv, tmp_path / "resnet18.pth")
    state = load_backbone(tmp_path / "resnet18.pth", "resnet18")
    assert "layer4.1.bn2.running_var" in state and not any(k.startswith("fc.") for k in state)
    train(_opts(root, pack, tmp_path / "d", 1, init=str(tmp_path / "resnet18.pth"), lr=0.0))
    last = torch.load(tmp_path / "d" / "last.pt", weights_only=True)["state_dict"]
    assert torch.equal(last["net.conv1.weight"], tv["conv1.weight"])
    assert torch.equal(last["net.layer3.0.downsample.0.weight"], tv["layer3.0.downsample.0.weight"])
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(ValueError, match="not of a torchvision resnet18"):
        load_backbone(tmp_path / "resnet34.pth", "resnet18")
    torch.save({"w": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not of a torchvision"):
        load_backbone(tmp_path / "other.pth", "resnet18")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="neither"):
        load_backbone(tmp_path / "list.pth", "resnet18")


def test_utk_targets_parse_only_wellformed_utkface_names():
    from vidgan.deepfake.pretrain import utk_targets

    names = np.array(["utk/25_1_3_20170116.jpg.chip.jpg", "utk/75_0_0_x.jpg.chip.jpg", "video/party.mp4",
                      "utk/61_3_20170109150557335.jpg.chip.jpg", "utk/39_1_20170116174525125.jpg.chip.jpg"])
    t = utk_targets(names)
    assert t[0].tolist() == [2, 1, 3] and t[1].tolist() == [7, 0, 0]
    assert (t[2:] == -1).all()  # a clip, a gender out of range, a name without the ethnicity field


def test_backbone_pretraining_resumes_and_initialises_the_detector(tiny_data, tmp_path, capsys):
    from vidgan.deepfake.pretrain import PretrainOptions, load_backbone, pretrain
    from vidgan.deepfake.train import train

    root, pack = tiny_data
    opts = PretrainOptions(out=str(tmp_path / "bb"), pack=str(pack), size=64, epochs=1, batch_size=2,
                           device="cpu")
    path = pretrain(opts)
    first = torch.load(tmp_path / "bb" / "ckpt.pt", weights_only=True)["net"]
    pretrain(PretrainOptions(**{**vars(opts), "out": str(tmp_path / "bb1"), "workers": 1}))
    with_worker = torch.load(tmp_path / "bb1" / "ckpt.pt", weights_only=True)["net"]
    assert all(torch.equal(v, with_worker[k]) for k, v in first.items())  # same batches either way
    opts.epochs = 2  # a rerun continues after the finished epoch
    pretrain(opts)
    rows = list(csv.DictReader(open(tmp_path / "bb" / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(0 <= float(r["gender_acc"]) <= 1 for r in rows)
    state = load_backbone(path, "resnet18")
    assert "conv1.weight" in state and not any(k.startswith("fc.") for k in state)
    with pytest.raises(ValueError, match="resnet18 backbone"):
        load_backbone(path, "resnet34")

    train(_opts(root, pack, tmp_path / "d", 1, init=str(path), lr=0.0))  # lr 0: weights stay as loaded
    last = torch.load(tmp_path / "d" / "last.pt", weights_only=True)["state_dict"]
    assert torch.equal(last["net.conv1.weight"], state["conv1.weight"])
    assert torch.equal(last["net.layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])

    capsys.readouterr()
    assert main(["train", "deepfake", "--init", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "--init" in capsys.readouterr().err
    assert main(["train", "deepfake-backbone", "--pack", str(tmp_path / "nope.npz"),
                 "--out", str(tmp_path / "y")]) == 2
