"""vidgan.gan: network shapes, losses, datasets, trainers (loss goes down, exact resume), the
generator file format, the CLI, and the shipped models (SR beats bicubic on held-out faces).

Everything trains on tiny synthetic images (32-64 px, widths of 8) so the file runs in well under
a minute on two cores; the shipped-model checks read ../shared/data and skip without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidgan.gan import nets
from vidgan.gan.amp import autocast, bf16_native
from vidgan.gan.data import (DataSpec, age_filter, build_dataset, is_val, split_files, to_gray3,
                             utk_labels)
from vidgan.gan.losses import GANLoss, PerceptualLoss, gram
from vidgan.gan.lossnet import FaceAttrNet, VGG16Features, age_bucket
from vidgan.gan.train import ImagePool, TrainConfig, make_trainer
from vidgan.gan.translator import find_model, load_translator, models_dir, save_translator

torch.set_num_threads(1)
MODELS = models_dir()


# ------------------------------------------------------------------------------------ tiny data


def _write(path: Path, im: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), im[:, :, ::-1])


def _blob(rng: np.random.Generator, side: int) -> np.ndarray:
    """A coloured disc on a gradient: sharp edges (something for SR to restore), easy to learn."""
    import cv2

    im = np.tile(np.linspace(0, 120, side, dtype=np.uint8)[None, :, None], (side, 1, 3)).copy()
    c = tuple(int(v) for v in rng.integers(60, 255, 3))
    cv2.circle(im, (int(rng.integers(side // 4, 3 * side // 4)),) * 2, int(rng.integers(side // 8, side // 3)), c, -1)
    return im


def _stripes(rng: np.random.Generator, side: int) -> np.ndarray:
    """Square-wave stripes of period 16 px: bicubic x4 from 16 px rounds them into sinusoids; a few
    SR steps learn to square them again."""
    x = ((np.arange(side) + int(rng.integers(16))) // 8) % 2
    im = np.where(x[None, :, None] == 1, rng.integers(150, 255, 3), rng.integers(0, 100, 3)) * np.ones((side, 1, 1))
    return (im if rng.random() < 0.5 else im.transpose(1, 0, 2)).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """faces/: 48 UTKFace-named 64 px images (ages 10..86); sbs/{train,val}/: side-by-side pairs;
    stripes/: 48 striped images for SR."""
    root = tmp_path_factory.mktemp("gan")
    rng = np.random.default_rng(0)
    for i in range(48):
        im = _blob(rng, 64)
        _write(root / "faces" / f"{10 + (i * 37) % 77}_{i % 2}_0_2017{i:06d}.jpg.chip.jpg", im)
        _write(root / "sbs" / ("val" if i < 8 else "train") / f"{i}.jpg", np.concatenate([im, 255 - im], 1))
        _write(root / "stripes" / f"{i}.png", _stripes(rng, 64))
    return root


def _cfg(tiny: Path, out: Path, task: str, **kw) -> TrainConfig:
    spec = {"sr": DataSpec(kind="sr", root=str(tiny / "stripes"), size=64, crop=32, val_fraction=0.2),
            "pix2pix": DataSpec(kind="side-by-side", root=str(tiny / "sbs"), size=32, direction="AtoB"),
            "cyclegan": DataSpec(kind="age", root=str(tiny / "faces"), size=32, val_fraction=0.2,
                                 young_max=45, old_min=45)}[task]
    arch = {"sr": dict(arch="srresnet", ngf=8, n_blocks=2), "pix2pix": dict(arch="unet", ngf=8),
            "cyclegan": dict(arch="resnet", ngf=8, n_blocks=1, pool_size=3)}[task]
    base = dict(task=task, data=spec, out=str(out), steps=6, batch_size=4, ndf=8, lr=1e-3, log_every=1,
                sample_every=1000, ckpt_every=1000, seed=3)
    base.update(arch)
    base.update(kw)
    return TrainConfig(**base)


def _quiet(*a) -> None:
    pass


# ------------------------------------------------------------------------------------- networks


@pytest.mark.parametrize("size", [128, 256])
def test_unet_shapes_and_depth(size):
    g = nets.build_generator("unet", size=size, ngf=4)
    assert g.multiple == size  # 7 downsamplings at 128, 8 at 256: down to 1x1
    y = g(torch.randn(1, 3, size, size))
    assert y.shape == (1, 3, size, size) and y.abs().max() <= 1


@pytest.mark.parametrize("blocks", [6, 9])
def test_resnet_shapes(blocks):
    g = nets.build_generator("resnet", n_blocks=blocks, ngf=8)
    assert sum(isinstance(m, nets.ResnetBlock) for m in g.modules()) == blocks
    assert g(torch.randn(2, 3, 48, 64)).shape == (2, 3, 48, 64)


def test_srresnet_x4_pixelshuffle():
    g = nets.build_generator("srresnet", n_blocks=2, nf=8).eval()
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in g.modules()) == 2
    y = g(torch.rand(2, 3, 16, 24) * 2 - 1)
    assert y.shape == (2, 3, 64, 96) and y.abs().max() <= 1


def test_discriminators():
    assert nets.receptive_field(3) == 70  # the 70x70 PatchGAN
    d = nets.build_discriminator("patch", in_ch=6, ndf=8, n_layers=3)
    assert d(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    d1 = nets.build_discriminator("patch", ndf=8, n_layers=1)
    assert nets.receptive_field(1) == 16  # fewer layers: smaller patches, more of them
    assert d1(torch.randn(1, 3, 256, 256)).shape[-1] == 126
    p = nets.build_discriminator("pixel", ndf=8)
    assert p(torch.randn(2, 3, 20, 20)).shape == (2, 1, 20, 20)


@pytest.mark.parametrize("kind", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_weights(kind):
    torch.manual_seed(0)
    g = nets.init_weights(nets.build_generator("resnet", n_blocks=1, ngf=8, norm="batch"), kind)
    w = g.model[1].weight
    assert w.std() > 0 and torch.isfinite(w).all()
    if kind == "normal":
        assert abs(float(w.detach().std()) - 0.02) < 0.005
    with pytest.raises(ValueError):
        nets.init_weights(g, "nope")


def test_norms_and_unknown_arch():
    assert isinstance(nets.norm_layer("instance")(4), torch.nn.InstanceNorm2d)
    assert isinstance(nets.norm_layer("batch")(4), torch.nn.BatchNorm2d)
    with pytest.raises(ValueError):
        nets.build_generator("vae")


# --------------------------------------------------------------------------------------- losses


def test_gan_losses():
    hi, lo = torch.full((2, 1, 4, 4), 2.0), torch.full((2, 1, 4, 4), -0.5)
    for mode in ("vanilla", "lsgan", "hinge"):
        loss = GANLoss(mode)
        # a discriminator that is right has a lower loss than one that is wrong
        assert loss(hi, True) < loss(lo, True) and loss(lo, False) < loss(hi, False)
        # the generator's loss falls as D believes its fakes
        assert loss(hi, True, for_discriminator=False) < loss(lo, True, for_discriminator=False)
    assert float(GANLoss("hinge")(hi, True)) == 0.0 and float(GANLoss("hinge")(hi, True, False)) == -2.0
    assert float(GANLoss("lsgan")(torch.ones(3), True)) == 0.0


@pytest.mark.parametrize("net_name", ["face-attr-random", "face-attr-shipped"])
def test_perceptual_and_style_zero_then_growing(net_name):
    torch.manual_seed(0)
    if net_name == "face-attr-shipped":
        if not (MODELS / "face-attr" / "lossnet.pt").is_file():
            pytest.skip("models/face-attr not trained yet")
        from vidgan.gan.lossnet import load_face_attr
        net = load_face_attr()
    else:
        net = FaceAttrNet(width=8).eval()
    ploss = PerceptualLoss(net, content_layers=(0, 1, 2), style_layers=(0, 1, 2, 3))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    c0, s0 = ploss.terms(x, x.clone())
    assert float(c0) == 0.0 and float(s0) == 0.0
    noise = torch.randn_like(x)
    cs, ss = [], []
    for eps in (0.05, 0.2, 0.6):
        c, s = ploss.terms((x + eps * noise).clamp(-1, 1), x)
        cs.append(float(c))
        ss.append(float(s))
    assert 0 < cs[0] < cs[1] < cs[2] and 0 < ss[0] < ss[1] < ss[2]
    blurred = torch.nn.functional.avg_pool2d(x, 5, 1, 2)
    assert ploss.terms(blurred, x)[0] > 0


def test_gram_matrix():
    f = torch.randn(2, 4, 5, 5)
    g = gram(f)
    assert g.shape == (2, 4, 4) and torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(gram(f[:, torch.randperm(4)]).diagonal(dim1=1, dim2=2).sort(1).values,
                          g.diagonal(dim1=1, dim2=2).sort(1).values)


def test_vgg_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        VGG16Features()


def test_vgg_weights_from_a_local_file(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    path = tmp_path / "vgg.pth"  # torchvision's key names; the classifier part is not needed
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"])[:23].state_dict().items()}, path)
    feats = VGG16Features(path)(torch.zeros(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]


# ------------------------------------------------------------------------------------------ data


def test_split_is_deterministic_and_disjoint(tiny):
    files = sorted((tiny / "faces").iterdir())
    tr, va = split_files(files, "train", 0.25), split_files(files, "val", 0.25)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == len(files) and va
    assert split_files(list(reversed(files)), "val", 0.25) == list(reversed(va))  # order-independent
    assert is_val("x.jpg", 1.0) and not is_val("x.jpg", 0.0)


def test_utk_labels_and_age_filter():
    assert utk_labels("61_1_3_20170109150557335.jpg.chip.jpg") == (61, 1)
    assert utk_labels("61_3_20170109150557335.jpg.chip.jpg") is None  # malformed names exist
    young, old = age_filter(hi=30), age_filter(lo=60)
    assert young(Path("29_0_0_x.jpg")) and not young(Path("30_0_0_x.jpg"))
    assert old(Path("60_0_0_x.jpg")) and not old(Path("59_0_0_x.jpg"))
    assert [age_bucket(a) for a in (5, 13, 29, 30, 69, 70, 101)] == [0, 1, 2, 3, 6, 7, 7]


def test_datasets(tiny):
    gen = torch.Generator().manual_seed(0)
    sbs = build_dataset(DataSpec(kind="side-by-side", root=str(tiny / "sbs"), size=32, direction="AtoB"))
    a, b = sbs.fixed(2)
    assert torch.allclose(a + b, torch.zeros_like(a), atol=0.08)  # right half is the negative of the left
    assert len(build_dataset(DataSpec(kind="side-by-side", root=str(tiny / "sbs"), size=32), "val")) == 8
    sr = build_dataset(DataSpec(kind="sr", root=str(tiny / "faces"), size=64, crop=32))
    lr, hr = sr.sample(3, gen)
    assert lr.shape == (3, 3, 8, 8) and hr.shape == (3, 3, 32, 32)
    gray = build_dataset(DataSpec(kind="gray", root=str(tiny / "faces"), size=32))
    g, c = gray.sample(2, gen)
    assert torch.equal(g, to_gray3(c)) and torch.equal(g[:, 0], g[:, 1])
    edges = build_dataset(DataSpec(kind="edges", root=str(tiny / "faces"), size=64))
    e, _ = edges.fixed(4)
    assert set(torch.unique(e).tolist()) <= {-1.0, 1.0} and (e > 0).any()
    age = build_dataset(DataSpec(kind="age", root=str(tiny / "faces"), size=32, young_max=45, old_min=45))
    assert not age.paired and len(age.a) > 0 and len(age.b) > 0


def test_image_pool_keeps_history():
    pool, gen = ImagePool(2), torch.Generator().manual_seed(0)
    first = pool.query(torch.zeros(2, 3, 4, 4), gen)
    assert torch.equal(first, torch.zeros(2, 3, 4, 4)) and len(pool.images) == 2
    out = pool.query(torch.ones(64, 3, 4, 4), gen)
    assert (out.flatten(1).mean(1) == 0).any()  # some old images come back out


# ----------------------------------------------------------------------------------------- training


def _eval_loss(trainer, task: str) -> float:
    """Reconstruction error on fixed training images (what the steps should reduce)."""
    with torch.no_grad():
        a, b = trainer.train_set.fixed(8)
        if task == "cyclegan":
            return float((trainer.nets["G_B"](trainer.nets["G"](a)) - a).abs().mean())
        g = trainer.nets["G"]
        g.eval()
        err = float((g(a) - b).abs().mean())
        g.train()
        return err


@pytest.mark.parametrize("task,steps", [("pix2pix", 20), ("cyclegan", 15), ("sr", 60)])
def test_training_lowers_the_loss(tiny, tmp_path, task, steps):
    extra = {"sr": dict(lr=2e-3, decay_from=1.0)}.get(task, {})
    t = make_trainer(_cfg(tiny, tmp_path / task, task, steps=steps, **extra), log=_quiet)
    before = _eval_loss(t, task)
    m = t.run()
    after = _eval_loss(t, task)
    # SR starts at bicubic (it predicts a residual), so its margin is smaller
    assert after < (0.92 if task == "sr" else 0.8) * before, (before, after)
    rows = (tmp_path / task / "log.csv").read_text().splitlines()
    assert len(rows) == steps + 1 and rows[0].startswith("step,lr,")
    assert (tmp_path / task / "samples" / f"step_{steps:06d}.png").is_file()
    assert m["steps"] == steps and json.loads((tmp_path / task / "metrics.json").read_text()) == m


@pytest.mark.parametrize("task", ["pix2pix", "cyclegan", "sr"])
def test_resume_equals_uninterrupted(tiny, tmp_path, task):
    extra = {"sr": dict(adv_weight=1e-3)}.get(task, {})  # SR with a discriminator: every state in play
    whole = make_trainer(_cfg(tiny, tmp_path / "whole", task, **extra), log=_quiet)
    whole.run()
    part = make_trainer(_cfg(tiny, tmp_path / "part", task, **extra), log=_quiet)
    assert part.run(stop_at=3) == {}  # "interrupted" after 3 of 6 steps
    torch.manual_seed(12345)  # a fresh process would have different RNG state: resume must restore it
    resumed = make_trainer(_cfg(tiny, tmp_path / "part", task, **extra), log=_quiet)
    assert resumed.resume() and resumed.step == 3
    resumed.run()
    for k, net in whole.nets.items():
        for (name, p), q in zip(net.state_dict().items(), resumed.nets[k].state_dict().values()):
            assert torch.equal(p, q), f"{k}.{name} differs after resume"
    assert whole.opts["G"].param_groups[0]["lr"] == resumed.opts["G"].param_groups[0]["lr"]
    log_steps = [r.split(",")[0] for r in (tmp_path / "part" / "log.csv").read_text().splitlines()[1:]]
    assert log_steps == [str(i) for i in range(1, 7)]


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_lr_decays_linearly(tiny, tmp_path):  # steps the schedule alone, which torch warns about
    t = make_trainer(_cfg(tiny, tmp_path, "pix2pix", steps=10, decay_from=0.5), log=_quiet)
    lrs = []
    for _ in range(10):
        lrs.append(t.opts["G"].param_groups[0]["lr"])
        t.scheds["G"].step()
    assert lrs[:5] == [1e-3] * 5 and lrs[5] > lrs[6] > lrs[9] > 0


# ---------------------------------------------------------------------------------- export / load


def test_export_and_load_translator(tiny, tmp_path, monkeypatch):
    t = make_trainer(_cfg(tiny, tmp_path / "run", "sr", steps=2, export=str(tmp_path / "models" / "tiny-sr"),
                          faces=True), log=_quiet)
    t.run()
    d = tmp_path / "models" / "tiny-sr"
    assert {"generator.pt", "samples.jpg", "README.md"} <= {p.name for p in d.iterdir()}
    assert "gain_db" in (d / "README.md").read_text()
    monkeypatch.setenv("VIDGAN_MODELS", str(tmp_path / "models"))
    tr = load_translator("tiny-sr", "cpu", bf16=False)
    assert (tr.task, tr.scale, tr.faces, tr.input_mode) == ("sr", 4, True, "rgb")
    x = torch.rand(2, 3, 12, 16)
    y = tr(x)
    with torch.no_grad():
        ref = ((t.nets["G"].eval()(x * 2 - 1) + 1) / 2).clamp(0, 1)
    assert y.shape == (2, 3, 48, 64) and torch.allclose(y, ref, atol=1e-6)
    # by default in bfloat16 where this CPU computes it natively: close to float32, not equal
    y16 = load_translator("tiny-sr", "cpu")(x)
    assert torch.allclose(y16, ref, atol=0.03) and (bf16_native("cpu") or torch.equal(y16, y))
    with pytest.raises(FileNotFoundError, match="tiny-sr"):
        find_model("no-such-model")


def test_bf16_autocast_only_where_native():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad(), autocast("cpu"):
        y = conv(x)
    assert y.dtype == (torch.bfloat16 if bf16_native("cpu") else torch.float32)
    with torch.no_grad(), autocast("cpu", enabled=False):
        assert conv(x).dtype == torch.float32
    assert bf16_native("cuda") == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert not bf16_native("meta")


def test_face_generators_run_on_openvino_from_a_cache(tmp_path, monkeypatch):
    """On the CPU a face model's network runs on OpenVINO (gan/ovgen.py): converted once, kept in
    $VIDGAN_CACHE under the checkpoint's hash, read from there next time (a damaged entry is converted
    again); the same outputs as PyTorch's within bfloat16's rounding; pictures above OV_MAX_PIXELS
    and whole-frame models stay in PyTorch."""
    pytest.importorskip("openvino")
    from vidgan.gan import ovgen, translator as T

    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))
    g = nets.build_generator("resnet", n_blocks=1, ngf=8).eval()
    meta = {"name": "f", "task": "pix2pix", "input_mode": "rgb", "scale": 1, "size": 32, "faces": True}
    save_translator(tmp_path / "f.pt", g, "resnet", {"n_blocks": 1, "ngf": 8}, meta)
    tr = load_translator(str(tmp_path / "f.pt"), "cpu")
    assert tr.ov is not None and tr.ov.precision == ("bf16" if bf16_native("cpu") else "f32")
    kept = sorted(p.name for p in (tmp_path / "cache" / "openvino").iterdir())
    assert len(kept) == 2 and kept[0].endswith(".bin") and kept[1].endswith(".xml")
    ref = load_translator(str(tmp_path / "f.pt"), "cpu", bf16=False, backend="torch")
    assert ref.ov is None
    for shape in ((1, 3, 32, 32), (3, 3, 48, 40)):  # any batch and size (traced on 1 x 3 x 32 x 32)
        x = torch.rand(*shape)
        assert torch.allclose(tr(x), ref(x), atol=0.03)
        assert torch.allclose(load_translator(str(tmp_path / "f.pt"), "cpu", bf16=False)(x), ref(x), atol=1e-4)

    def no_conversion(*args):
        raise AssertionError("converted again")
    monkeypatch.setattr(ovgen, "_convert", no_conversion)
    assert load_translator(str(tmp_path / "f.pt"), "cpu").ov is not None  # read from the cache
    monkeypatch.undo()
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))
    xml = next((tmp_path / "cache" / "openvino").glob("*.xml"))
    xml.write_text("<not a model")
    assert load_translator(str(tmp_path / "f.pt"), "cpu").ov is not None and "<net" in xml.read_text()

    calls = []
    monkeypatch.setattr(ovgen.OvGenerator, "__call__", lambda self, x: calls.append(x.shape) or x)
    tr(torch.rand(1, 3, 128, 128))  # up to OV_MAX_PIXELS: OpenVINO
    tr(torch.rand(1, 3, 128, 132))  # larger: PyTorch
    assert calls == [(1, 3, 128, 128)]
    whole = dict(meta, faces=False)
    save_translator(tmp_path / "w.pt", g, "resnet", {"n_blocks": 1, "ngf": 8}, whole)
    assert load_translator(str(tmp_path / "w.pt"), "cpu").ov is None
    assert load_translator(str(tmp_path / "w.pt"), "cpu", backend="openvino").ov is not None
    with pytest.raises(ValueError, match="backend"):
        load_translator(str(tmp_path / "w.pt"), "cpu", backend="onnx")
    assert T.OV_MAX_PIXELS == 128 * 128


def test_gray_translator_sees_what_training_saw(tmp_path):
    g = nets.build_generator("unet", size=32, ngf=4).eval()
    save_translator(tmp_path / "g.pt", g, "unet", {"size": 32, "ngf": 4},
                    {"name": "g", "task": "pix2pix", "input_mode": "gray", "scale": 1, "size": 32, "faces": True})
    tr = load_translator(str(tmp_path / "g.pt"), "cpu", bf16=False)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = (g(to_gray3(x * 2 - 1)) + 1) / 2
    assert torch.allclose(tr(x), ref.clamp(0, 1), atol=1e-5)
    with pytest.raises(ValueError):
        save_translator(tmp_path / "bad.pt", g, "unet", {}, {"name": "g"})
    meta = {"name": "g", "task": "pix2pix", "input_mode": "gray", "scale": 1, "size": 32, "faces": True}
    save_translator(tmp_path / "h.pt", g, "unet", {"size": 32, "ngf": 4}, meta, half=True)
    assert (tmp_path / "h.pt").stat().st_size < 0.6 * (tmp_path / "g.pt").stat().st_size
    assert torch.allclose(load_translator(str(tmp_path / "h.pt"), "cpu", bf16=False)(x), ref.clamp(0, 1), atol=2e-3)


def test_cli_train_pix2pix_exports(tiny, tmp_path):
    from vidgan.cli import main

    rc = main(["train", "pix2pix", "--data", str(tiny / "sbs"), "--size", "32", "--ngf", "4", "--ndf", "4",
               "--steps", "3", "--batch-size", "2", "--device", "cpu", "--out", str(tmp_path / "run"),
               "--export", str(tmp_path / "m" / "facades-tiny")])
    assert rc == 0
    tr = load_translator(str(tmp_path / "m" / "facades-tiny" / "generator.pt"), "cpu")
    assert tr.input_mode == "labels" and tr(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert main(["train", "sr", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2"),
                 "--device", "cpu"]) == 1


# ----------------------------------------------------------------------------------- shipped models


def _shipped(name: str) -> Path:
    p = MODELS / name / "generator.pt"
    if not p.is_file():
        pytest.skip(f"models/{name} not trained yet")
    return p


@pytest.mark.parametrize("name", ["face-sr4x-mse", "face-sr4x", "face-colorize", "face-age", "face-age-young",
                                  "facades"])
def test_shipped_models_load_and_have_cards(name):
    path = _shipped(name)
    assert path.stat().st_size < 25e6
    tr = load_translator(name, "cpu")
    card = (MODELS / name / "README.md").read_text()
    assert "Command:" in card and "Metrics" in card and (MODELS / name / "samples.jpg").is_file()
    side = 32 if tr.task == "sr" else tr.size  # U-Nets need multiples of their training size
    assert tr(torch.rand(1, 3, side, side)).shape == (1, 3, side * tr.scale, side * tr.scale)


def test_shipped_sr_beats_bicubic_on_held_out_faces():
    """Acceptance: the MSE SRResNet is >= 2 dB above bicubic on held-out UTKFace crops (32 -> 128)."""
    from conftest import shared_data_dir

    from vidgan.gan.train import evaluate_sr

    _shipped("face-sr4x-mse")
    from vidgan.gan.data import PairSet, list_images, load_folder

    root = shared_data_dir() / "faces" / "utkface"
    val = split_files(list_images(root), "val", 0.1)  # the split the trainer held out
    pick = [val[int(i)] for i in np.linspace(0, len(val) - 1, 96)]  # spread over all ages (names sort by age)
    ds = PairSet(None, load_folder(pick, 128), make_a="sr", scale=4, flip=False)
    tr = load_translator("face-sr4x-mse", "cpu")
    batches = (ds.batch(torch.arange(i, i + 32), torch.arange(i, i + 32), None, "cpu") for i in range(0, 96, 32))
    m = evaluate_sr(tr.net, batches, 4)
    assert m["gain_db"] >= 2.0, m


def test_val_folder_copies_of_training_files_are_dropped(tiny, tmp_path):
    import shutil

    shutil.copytree(tiny / "sbs", tmp_path / "sbs")
    shutil.copy(tmp_path / "sbs" / "train" / "20.jpg", tmp_path / "sbs" / "val" / "copy-of-20.jpg")
    val = build_dataset(DataSpec(kind="side-by-side", root=str(tmp_path / "sbs"), size=32), "val")
    assert len(val) == 8 and "copy-of-20.jpg" not in val.names
