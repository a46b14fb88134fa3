"""GAN de-identification: the generator never sees the face interior, identity codes from the
passcode, a tiny model trains (and resumes exactly), the gan operation covers every face, and
restore after gan mode returns the originals. Tiny synthetic data only (32 px models)."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from vidgan.cli import main
from vidgan.gan.deid import DeidArch, DeidGenerator, canonical_points, heatmaps, interior_masks, load_deid, save_deid
from vidgan.gan.deid_keys import TrackCodes, passcode_key, video_salt
from vidgan.gan.deid_train import DeidConfig, DeidTrainer
from vidgan.gan.deid_train import batch as deid_batch
from vidgan.gan.nets import init_weights
from vidgan.keys import Passcode
from vidgan.ops import OPERATIONS, GanFace, MaskOptions
from vidgan.types import Box, Frame, TrackBox

ARCH = DeidArch(size=32, margin=0.1, ngf=8, n_down=3, n_res=1, z_dim=8)


def tiny_generator(seed: int = 0) -> DeidGenerator:
    torch.manual_seed(seed)
    g = init_weights(DeidGenerator(ARCH), "normal", 0.2)  # large init: a visibly non-trivial function
    for m in g.modules():
        if m.__class__.__name__ == "FiLM":
            torch.nn.init.normal_(m.fc.weight, 0, 0.5)  # make z matter without training
    return g.eval()


def inputs(n: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1
    pts = torch.from_numpy(canonical_points(32, ARCH.margin))[None].repeat(n, 1, 1)
    return x, heatmaps(pts, 32), torch.randn(n, ARCH.z_dim, generator=gen)


# -- the generator gets no pixel from inside the mask ------------------------------------------------


def test_masks_soft_covers_hard_and_interior_is_the_face():
    hard, soft = interior_masks(128, 0.1)
    assert set(np.unique(hard)) == {0.0, 1.0}
    assert (soft[hard > 0] == 1).all() and soft.max() == 1 and (soft[hard == 0] < 1).any()
    pts = canonical_points(128, 0.1)  # eyes, nose, mouth corners are all inside the interior
    assert all(hard[int(y), int(x)] == 1 for x, y in pts)
    assert hard[0, 64] == 0 and hard[125, 64] == 0 and hard[64, 2] == 0  # crop top, chin, ear stay context
    assert hard.mean() < 0.6  # context is left all round


def test_output_is_independent_of_masked_pixels():
    g = tiny_generator()
    x, h, z = inputs()
    inside = g.hard[0, 0] > 0
    with torch.no_grad():
        raw, comp = g(x, h, z)
        for fill in (torch.zeros_like, torch.ones_like, lambda t: torch.rand_like(t) * 2 - 1):
            x2 = x.clone()
            x2[:, :, inside] = fill(x2[:, :, inside])
            raw2, comp2 = g(x2, h, z)
            assert torch.equal(raw, raw2) and torch.equal(comp, comp2), "a masked pixel reached the output"
        # the check can fail: one pixel of context outside the mask does change the output
        x3 = x.clone()
        x3[:, :, 1, 1] = -x3[:, :, 1, 1]
        assert not torch.equal(g(x3, h, z)[1], comp)
        # and the code matters
        assert (g(x, h, torch.randn_like(z))[1] - comp).abs()[:, :, inside].mean() > 1e-3
        # outside the soft mask the composite is the input itself
        assert torch.equal(comp[:, :, g.soft[0, 0] == 0], x[:, :, g.soft[0, 0] == 0])


# -- identity codes ----------------------------------------------------------------------------------


def test_codes_deterministic_passcode_and_video_sensitive():
    k = passcode_key(Passcode("correct horse battery"))
    assert k == passcode_key(Passcode("correct horse battery")) and len(k) == 32
    a, b = TrackCodes(k, b"video-1"), TrackCodes(k, b"video-1")
    assert np.array_equal(a.code(3), b.code(3)) and np.array_equal(a.code(3), a.code(3))
    assert a.code(3).shape == (64,) and abs(float(a.code(3).std()) - 1) < 0.4  # a standard normal draw
    other = TrackCodes(passcode_key(Passcode("correct horse battery!")), b"video-1")
    assert np.linalg.norm(other.code(3) - a.code(3)) > 5
    assert np.linalg.norm(TrackCodes(k, b"video-2").code(3) - a.code(3)) > 5


def test_codes_track_distinct_with_minimum_distance():
    c = TrackCodes(b"k" * 32, b"salt", dim=8, min_distance=3.5)  # tight: forces re-derivations
    codes = [c.code(t) for t in range(12)]
    d = [np.linalg.norm(codes[i] - codes[j]) for i in range(12) for j in range(i)]
    assert min(d) >= 3.5
    again = TrackCodes(b"k" * 32, b"salt", dim=8, min_distance=3.5)
    assert all(np.array_equal(again.code(t), codes[t]) for t in range(12))


def test_video_salt_follows_content(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"x" * 1000)
    assert video_salt(str(a)) == video_salt(str(b))
    b.write_bytes(b"x" * 999 + b"y")
    assert video_salt(str(a)) != video_salt(str(b))


# -- training ----------------------------------------------------------------------------------------


def synthetic_faces(n: int, size: int = 32, seed: int = 0):
    """Smooth face-like images (skin ellipse, dark eyes and mouth, varying light) and landmarks."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    ims = []
    for _ in range(n):
        bg = rng.uniform(0.2, 0.8, 3)
        skin = rng.uniform(0.5, 0.9, 3)
        im = np.ones((size, size, 3)) * bg + 0.2 * (xs[..., None] - 0.5) * rng.uniform(-1, 1)
        face = ((xs - 0.5) / 0.4) ** 2 + ((ys - 0.5) / 0.48) ** 2 < 1
        im[face] = skin
        for ex, ey, r in ((0.33, 0.38, 0.05), (0.67, 0.38, 0.05), (0.5, 0.72, 0.07)):
            im[((xs - ex) ** 2 + (ys - ey) ** 2) < r ** 2] = skin * 0.3
        ims.append((np.clip(im, 0, 1) * 255).astype(np.uint8))
    x = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).contiguous()
    pts = torch.from_numpy(canonical_points(size, ARCH.margin))[None].repeat(n, 1, 1)
    return x, pts


def tiny_config(out, steps=40) -> DeidConfig:
    return DeidConfig(data="synthetic", out=str(out), size=32, ngf=8, n_down=3, n_res=1, z_dim=8, ndf=8, n_layers=2,
                      batch_size=4, steps=steps, lr=1e-3, lossnet="none", device="cpu", log_every=5,
                      sample_every=1000, ckpt_every=1000)


def test_tiny_model_trains_and_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    data = (synthetic_faces(48), synthetic_faces(8, seed=1))
    full = DeidTrainer(tiny_config(tmp_path / "full", steps=80), log=lambda m: None, data=data)
    m = full.run()
    rows = list(csv.DictReader(open(tmp_path / "full" / "log.csv")))
    ctx = [float(r["ctx"]) for r in rows]
    assert np.mean(ctx[-2:]) < 0.8 * np.mean(ctx[:2]), ctx  # the context reconstruction is learned
    assert set(m) >= {"val_ctx_l1", "val_diversity", "val_interior_l1"}
    assert (tmp_path / "full" / "generator.pt").is_file() and (tmp_path / "full" / "samples").is_dir()
    # interrupted at step 20, resumed in a new trainer: the same weights as the run that never stopped
    part = DeidTrainer(tiny_config(tmp_path / "part", steps=80), log=lambda m: None, data=data)
    assert part.run(stop_at=20) == {}
    again = DeidTrainer(tiny_config(tmp_path / "part", steps=80), log=lambda m: None, data=data)
    assert again.resume() and again.step == 20
    again.run()
    for k, v in full.G.state_dict().items():
        assert torch.equal(v, again.G.state_dict()[k]), k
    g = load_deid(str(tmp_path / "full" / "generator.pt"), "cpu")
    assert g.arch == full.cfg.arch()


def test_cli_train_deid_on_a_folder(tmp_path):
    import cv2

    folder = tmp_path / "faces"
    folder.mkdir()
    x, _ = synthetic_faces(12, size=64)
    for i, im in enumerate(x.permute(0, 2, 3, 1).numpy()):
        cv2.imwrite(str(folder / f"{20 + i}_0_0_x.jpg.chip.jpg"), im[..., ::-1])
    out = tmp_path / "run"
    code = main(["train", "deid", "--data", str(folder), "--out", str(out), "--size", "32", "--ngf", "8",
                 "--n-down", "3", "--n-res", "1", "--z-dim", "8", "--ndf", "8", "--n-layers", "2", "--steps", "3",
                 "--batch-size", "2", "--val-fraction", "0.2", "--lossnet", "none", "--device", "cpu",
                 "--export", str(tmp_path / "model"), "--threads", "1", "--cache", str(tmp_path / "cache")])
    assert code == 0
    assert (tmp_path / "model" / "generator.pt").is_file() and (tmp_path / "model" / "README.md").is_file()
    assert json.loads((out / "metrics.json").read_text())["steps"] == 3
    with np.load(tmp_path / "cache" / "deid_landmarks_faces.npz") as z:
        assert len(z["names"]) == 12 and z["landmarks"].shape == (12, 5, 2)  # detected once, cached


# -- the operation -----------------------------------------------------------------------------------


def frame_with_faces(w=160, h=120):
    rng = np.random.default_rng(0)
    im = (rng.random((h, w, 3)) * 60 + 100).astype(np.uint8)
    return im


def op(key=b"k" * 32, **kw) -> GanFace:
    return GanFace(MaskOptions(), key=key, generator=tiny_generator(), **kw)


def changed(a, b):
    return np.any(a != b, axis=2)


def test_gan_registered():
    assert OPERATIONS["gan"] is GanFace and GanFace.name == "gan"


def test_op_covers_every_face_inside_the_patch():
    im = frame_with_faces()
    lms = ((40.0, 42.0), (60.0, 42.0), (50.0, 52.0), (42.0, 62.0), (58.0, 62.0))
    boxes = [TrackBox(1, Box(30, 25, 70, 75), 0.99, "detected", lms),       # with landmarks
             TrackBox(2, Box(95, 30, 135, 80), 0.9, "interpolated"),        # never had landmarks
             TrackBox(3, Box(140, 100, 150, 110), 0.9, "held")]             # too small: blurred
    o = op()
    out = o.apply(im, boxes, Frame(0, 0, 0.0, im))
    assert o.stats == {"generated": 2, "blurred": 1}
    ch = changed(out, im)
    allowed = np.zeros(im.shape[:2], bool)
    for _, p in o.patches(boxes, im.shape[1], im.shape[0]):
        allowed[p.slices] |= p.alpha > 0
    assert not (ch & ~allowed).any(), "a pixel outside the stored mask patch changed"
    for b in boxes:  # every face's centre area is replaced
        cx, cy = int(b.box.center[0]), int(b.box.center[1])
        assert ch[cy - 2:cy + 3, cx - 2:cx + 3].mean() > 0.8, b


def test_op_codes_stable_per_track_and_follow_the_key(tmp_path):
    im = frame_with_faces()
    box = TrackBox(7, Box(50, 25, 100, 85), 0.99, "detected")
    src = tmp_path / "v.mp4"
    src.write_bytes(b"some video")
    a, b, c = op(), op(), op(key=b"j" * 32)
    for o in (a, b, c):
        o.start_file(str(src))
    fa = [a.apply(im, [box], Frame(i, i, i / 30, im)) for i in range(3)]
    assert all(np.array_equal(f, fa[0]) for f in fa), "same track, same frame content -> same fake"
    assert np.array_equal(b.apply(im, [box], Frame(0, 0, 0, im)), fa[0]), "same key and video -> same fake"
    assert not np.array_equal(c.apply(im, [box], Frame(0, 0, 0, im)), fa[0]), "another key -> another fake"
    other = TrackBox(8, box.box, 0.99, "detected")
    assert not np.array_equal(a.apply(im, [other], Frame(3, 3, 0.1, im)), fa[0]), "another track -> another fake"


def test_op_output_does_not_depend_on_the_face_interior():
    """The whole operation, colour matching included, never consults the face's own pixels: paint
    the middle of the face differently and the output frame is bit-identical."""
    im = frame_with_faces()
    lms = ((40.0, 42.0), (60.0, 42.0), (50.0, 52.0), (42.0, 62.0), (58.0, 62.0))
    box = TrackBox(1, Box(30, 25, 70, 75), 0.99, "detected", lms)
    outs = []
    for fill in (None, 0, 255):
        frame = im.copy()
        if fill is not None:
            frame[44:60, 42:58] = fill  # eyes to mouth
        outs.append(op().apply(frame, [box], Frame(0, 0, 0.0, frame)))
    assert not np.array_equal(outs[0], im)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_op_landmarks_carried_and_smoothed():
    o = op(smooth=0.5)
    lm = np.array([(40.0, 42.0), (60.0, 42.0), (50.0, 52.0), (42.0, 62.0), (58.0, 62.0)])
    b0 = TrackBox(1, Box(30, 25, 70, 75), 0.99, "detected", tuple(map(tuple, lm)))
    assert np.allclose(o.landmarks(b0, 0), lm)
    b1 = TrackBox(1, Box(40, 25, 80, 75), 0.99, "interpolated")  # moved right by 10, no landmarks
    assert np.allclose(o.landmarks(b1, 1), lm + [10, 0])
    b2 = TrackBox(1, Box(40, 25, 80, 75), 0.99, "detected", tuple(map(tuple, lm + [14, 0])))
    assert np.allclose(o.landmarks(b2, 2), lm + [12, 0])  # EMA halfway between carried (+10) and new (+14)


# -- restore after gan mode --------------------------------------------------------------------------


def test_restore_after_gan_mode_returns_the_originals(tmp_path):
    import cv2

    im = frame_with_faces(160, 120)
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), im[..., ::-1])
    model = tmp_path / "generator.pt"
    save_deid(model, tiny_generator(), {"note": "test"})
    tracks = tmp_path / "t.json"
    tracks.write_text(json.dumps({"version": 1, "tracks": [], "frames": [{"index": 0, "faces": [
        {"track": 1, "box": [30, 25, 70, 75], "landmarks": [[40, 42], [60, 42], [50, 52], [42, 62], [58, 62]]},
        {"track": 2, "box": [95, 30, 135, 80]}]}]}))
    pw = tmp_path / "pass.txt"
    pw.write_text("correct horse battery\n")
    out, back = tmp_path / "anon.png", tmp_path / "back.png"
    assert main(["anonymize", str(src), "-o", str(out), "--mode", "gan", "--gan-model", str(model), "--tracks",
                 str(tracks), "--passcode-file", str(pw), "--lossless", "--quiet", "--device", "cpu"]) == 0
    anon = cv2.imread(str(out))[..., ::-1]
    assert changed(anon, im)[40:60, 40:60].mean() > 0.8 and changed(anon, im)[45:65, 105:125].mean() > 0.8
    assert main(["restore", str(out), "-o", str(back), "--passcode-file", str(pw), "--quiet"]) == 0
    assert np.array_equal(cv2.imread(str(back))[..., ::-1], im), "restore returns the original pixels"
    # the same passcode gives the same fakes again; none given: a random key, other fakes
    out2, out3 = tmp_path / "anon2.png", tmp_path / "anon3.png"
    main(["anonymize", str(src), "-o", str(out2), "--mode", "gan", "--gan-model", str(model), "--tracks",
          str(tracks), "--passcode-file", str(pw), "--lossless", "--quiet", "--device", "cpu",
          "--vault", str(tmp_path / "v2.vault")])
    main(["anonymize", str(src), "-o", str(out3), "--mode", "gan", "--gan-model", str(model), "--tracks",
          str(tracks), "--quiet", "--device", "cpu"])
    assert np.array_equal(cv2.imread(str(out2)), cv2.imread(str(out)))
    assert not np.array_equal(cv2.imread(str(out3)), cv2.imread(str(out)))


def test_pipeline_takes_an_in_memory_generator(tmp_path):
    """The Python API accepts a loaded generator (any module with DeidGenerator's interface and its
    `hard`/`soft` buffers, parameters or not: benchmarks/bench_deid.py --donors passes one without)."""
    import cv2

    from vidgan.pipeline import AnonymizeOptions, Pipeline

    class Flat(torch.nn.Module):  # paints mid-grey inside the interior; no parameters
        def __init__(self, arch):
            super().__init__()
            self.arch = arch
            hard, soft = interior_masks(arch.size, arch.margin)
            self.register_buffer("hard", torch.from_numpy(hard)[None, None])
            self.register_buffer("soft", torch.from_numpy(soft)[None, None])

        def forward(self, x, heat, z):
            raw = torch.zeros_like(x)
            return raw, self.soft * raw + (1 - self.soft) * x

    im = frame_with_faces(160, 120)
    src, out = tmp_path / "photo.png", tmp_path / "anon.png"
    cv2.imwrite(str(src), im[..., ::-1])
    tracks = tmp_path / "t.json"
    tracks.write_text(json.dumps({"version": 1, "tracks": [], "frames": [{"index": 0, "faces": [
        {"track": 1, "box": [30, 25, 70, 75], "landmarks": [[40, 42], [60, 42], [50, 52], [42, 62], [58, 62]]}]}]}))
    opts = AnonymizeOptions(mode="gan", gan_model=Flat(ARCH), tracks_file=str(tracks))
    Pipeline(opts).anonymize(str(src), str(out))
    anon = cv2.imread(str(out))[..., ::-1].astype(int)
    # the face centre is now flat (a constant colour-matched to the original's mean), the noise gone
    assert im[45:55, 45:55].std((0, 1)).min() > 10 and anon[45:55, 45:55].std((0, 1)).max() < 3


def test_missing_model_is_a_usage_error(tmp_path, capsys):
    src = tmp_path / "p.png"
    import cv2

    cv2.imwrite(str(src), frame_with_faces())
    code = main(["anonymize", str(src), "-o", str(tmp_path / "o.png"), "--mode", "gan", "--gan-model",
                 str(tmp_path / "nope"), "--quiet", "--device", "cpu"])
    assert code == 2
    assert "de-identification model" in capsys.readouterr().err


def test_op_blends_the_previous_fake_of_the_track():
    a = frame_with_faces()
    b = np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8)  # the light changed
    box = TrackBox(1, Box(50, 25, 100, 85), 0.99, "detected")
    steady, raw = op(crop_alpha=0.5, color_match=False), op(crop_alpha=0.0, color_match=False)
    outs = {}
    for name, o in (("steady", steady), ("raw", raw)):
        f0 = o.apply(a, [box], Frame(0, 0, 0, a))
        f1 = o.apply(b, [box], Frame(1, 1, 0.03, b))
        outs[name] = np.abs(f1.astype(int) - f0.astype(int))[45:65, 65:85].mean()
    assert outs["steady"] < 0.8 * outs["raw"], outs


def test_time_budget_cuts_the_run_and_still_exports(tmp_path):
    # --time-budget: after 60 warm steps the step count is fitted to the budget (a lent GPU's minutes);
    # the run then ends like a finished one: metrics, generator.pt.
    torch.set_num_threads(1)
    data = (synthetic_faces(48), synthetic_faces(8, seed=1))
    cfg = tiny_config(tmp_path / "run", steps=3000)
    cfg.time_budget = 2.0
    trainer = DeidTrainer(cfg, log=lambda m: None, data=data)
    m = trainer.run()
    assert 61 <= m["steps"] < 3000 and trainer.cfg.steps == m["steps"]
    assert m["train_seconds"] < 30
    assert (tmp_path / "run" / "generator.pt").is_file()


def test_style_perceptual_term_ignores_the_facial_layout(tmp_path):
    # --perc style keeps only Gram statistics of the loss network's features: a face shifted by a
    # quarter of the crop keeps its texture statistics (small loss) while its feature layout (what
    # `content` compares, and what would pull a fake towards the original's face) changes (large loss).
    torch.set_num_threads(1)
    data = (synthetic_faces(16), synthetic_faces(4, seed=1))
    x = data[0][0][:8].float() / 127.5 - 1
    moved = torch.roll(x, shifts=(8, 8), dims=(2, 3))
    terms = {}
    for mode in ("content", "style"):
        cfg = tiny_config(tmp_path / mode, steps=1)
        cfg.lossnet, cfg.perc_mode = "face-attr", mode  # the shipped loss network
        trainer = DeidTrainer(cfg, log=lambda m: None, data=data)
        assert trainer.perc is not None
        with torch.no_grad():
            assert float(trainer.perc(x, x)) == 0.0
            terms[mode] = float(trainer.perc(moved, x))
    assert terms["style"] < 0.25 * terms["content"], terms


# -- identity prototypes (k-Same bank) ---------------------------------------------------------------


def test_bank_keeps_clusters_of_k_and_averages_them():
    from vidgan.gan.deid_train import build_bank, neighbour_prototypes

    # 3 well separated groups of 5, 4 and 1 faces (features = a group centre + small noise)
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 10
    groups = [0] * 5 + [1] * 4 + [2]
    feats = torch.stack([centres[c] for c in groups]) + 0.01 * torch.randn(10, 3, generator=g)
    imgs = torch.stack([torch.full((3, 4, 4), 10.0 * (i + 1)) for i in range(10)])
    bank = build_bank(feats, imgs, n=3, k=4, seed=0)
    assert bank.dtype == torch.uint8 and len(bank) == 2  # the single face makes no prototype
    assert sorted(int(b[0, 0, 0]) for b in bank) == [30, 75]  # means of faces 1-5 (10..50) and 6-9 (60..90)
    # the training condition of a face is the average of its k nearest *other* faces
    cond = neighbour_prototypes(feats, feats, imgs, k=1, exclude_self=True)
    assert all(int(cond[i, 0, 0, 0]) != 10 * (i + 1) for i in range(10))
    assert int(cond[0, 0, 0, 0]) in (20, 30, 40, 50)  # from its own group


def bank_generator(n_proto: int = 40, seed: int = 0, fit: bool = False) -> DeidGenerator:
    torch.manual_seed(seed)
    arch = dataclasses.replace(ARCH, n_proto=n_proto, proto_size=16, proto_fit=fit)
    g = init_weights(DeidGenerator(arch), "normal", 0.2)
    gen = torch.Generator().manual_seed(seed)
    g.set_bank((torch.rand(n_proto, 3, 16, 16, generator=gen) * 255).byte())
    return g.eval()


@pytest.mark.parametrize("fit", [False, True])
def test_bank_generator_needs_a_prototype_and_ignores_masked_pixels(tmp_path, fit):
    g = bank_generator(fit=fit)
    x, h, z = inputs()
    p = g.prototypes(g.candidates(x, 4)[:, 0])
    inside = g.hard[0, 0] > 0
    with torch.no_grad():
        raw, comp = g(x, h, z, p)
        x2 = x.clone()
        x2[:, :, inside] = 0.7
        assert torch.equal(g(x2, h, z, p)[1][:, :, inside], comp[:, :, inside])
        assert torch.equal(g.candidates(x2, 4), g.candidates(x, 4)), "the choice never looks inside"
        p2 = p.clone()
        # only the prototype's interior is used (and, when it is recoloured, its ring's mean colour)
        p2[:, :, ~inside & ~(g.ring[0, 0] > 0) if fit else ~inside] = -1
        assert torch.equal(g(x, h, z, p2)[1], comp)
        assert not torch.equal(g(x, h, z, g.prototypes(g.candidates(x, 4)[:, 1]))[1], comp)
    try:
        g(x, h, z)
        raise AssertionError("no prototype accepted")
    except ValueError:
        pass
    save_deid(tmp_path / "g.pt", g, {}, half=True)
    back = load_deid(str(tmp_path / "g.pt"), "cpu")
    assert torch.equal(back.bank, g.bank) and back.arch == g.arch


def test_op_prototype_per_track_stable_distinct_and_keyed(tmp_path):
    im = frame_with_faces()
    lms = ((40.0, 42.0), (60.0, 42.0), (50.0, 52.0), (42.0, 62.0), (58.0, 62.0))
    a = TrackBox(1, Box(30, 25, 70, 75), 0.99, "detected", lms)
    b = TrackBox(2, Box(30, 25, 70, 75), 0.99, "detected", lms)  # same place and context as a
    src = tmp_path / "v.mp4"
    src.write_bytes(b"some video")

    def run(key, frames):
        o = GanFace(MaskOptions(), key=key, generator=bank_generator())
        o.start_file(str(src))
        for i, boxes in enumerate(frames):
            o.apply(im, boxes, Frame(i, i, i / 30, im))
        return o.protos

    p = run(b"k" * 32, [[a, b], [a], [], [], [], [], [], [], [a, b]])  # a gap of 7 frames
    assert p[1] != p[2], "two people of one video never share a prototype"
    again = run(b"k" * 32, [[a, b]])
    assert again == p, "same key, same video -> same prototypes"
    others = [run(bytes([i]) * 32, [[a]])[1] for i in range(6)]
    assert len(set(others)) > 1, "the key decides which of the candidates a track gets"


def test_op_forgets_the_state_of_tracks_gone_for_good():
    # a long video of crowds: thousands of short tracks, each holding a generated crop while kept
    im = frame_with_faces()
    lms = ((40.0, 42.0), (60.0, 42.0), (50.0, 52.0), (42.0, 62.0), (58.0, 62.0))
    o = GanFace(MaskOptions(), key=b"k" * 32, generator=tiny_generator())
    o.start_file("clip.mp4")
    for i in range(40):  # a new track every frame
        o.apply(im, [TrackBox(i, Box(30, 25, 70, 75), 0.99, "detected", lms)], Frame(i, i, i / 30, im))
        assert len(o.tracks) <= GanFace.GONE + 1
    assert set(o.tracks) == set(range(40 - GanFace.GONE - 1, 40))


def test_op_keeps_a_bounded_cache_of_enlarged_prototypes(monkeypatch):
    g = bank_generator()
    o = GanFace(MaskOptions(), key=b"k" * 32, generator=g)
    monkeypatch.setattr(GanFace, "PROTO_CACHE", 4)
    x = inputs()[0]
    codes = [np.full(ARCH.z_dim, t, np.float32) for t in range(len(x))]
    with torch.inference_mode():
        for start in range(0, 30, 2):  # 30 tracks, a few at a time, as a crowd of short tracks
            ids = [start + k for k in range(len(x))]
            got = o._prototypes(x, codes, ids)
            assert torch.equal(got, g.prototypes(torch.tensor([o.protos[t] for t in ids])))
            assert len(o._proto_images) <= max(4, len(set(o.protos[t] for t in ids)))


def test_cli_rejects_negative_budget_and_bank_size(tmp_path, capsys):
    for flag, value in (("--time-budget", "-1"), ("--proto", "-3")):
        code = main(["train", "deid", "--data", str(tmp_path), "--out", str(tmp_path / "run"), flag, value])
        assert code == 2 and f"argument {flag}" in capsys.readouterr().err
    code = main(["train", "deid", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--target", "prototype"])
    assert code == 2 and "--target prototype needs a prototype bank" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("target", ["original", "prototype"])
def test_prototype_target_never_reads_the_original_interior(tmp_path, target):
    """With `target="prototype"` the interior and perceptual terms compare the fake with the prototype
    pasted into the face, so the generator's losses are the same whatever the unseen interior holds."""
    torch.set_num_threads(1)
    data = (synthetic_faces(24), synthetic_faces(6, seed=1))
    cfg = dataclasses.replace(tiny_config(tmp_path / target, steps=5), proto=4, proto_k=2, target=target)
    a = DeidTrainer(cfg, log=lambda m: None, data=data)
    b = DeidTrainer(cfg, log=lambda m: None, data=data)
    x, h, pr = deid_batch(a.x, a.pts, torch.arange(4), None, a.device, a.cond)
    x2 = x.clone()
    x2[:, :, a.G.hard[0, 0] > 0] = 0.9  # another face inside the mask
    la, lb = a.train_step(x, h, pr), b.train_step(x2, h, pr)
    assert la["ctx"] == lb["ctx"]
    assert (la["in"] == lb["in"]) == (target == "prototype"), (la, lb)
    assert la["d"] != lb["d"]  # the discriminator does see real faces


def test_prototypes_take_the_colour_of_the_face_context():
    g = bank_generator(fit=True)
    x, _, _ = inputs()
    p = g.prototypes(g.candidates(x, 4)[:, 0])
    ring = g.ring[0, 0] > 0
    fitted = g.fit_prototypes(p, x)
    # the prototype's ring now has the face's ring colour (up to clipping at the range's ends)
    assert torch.allclose(fitted[:, :, ring].mean(-1), x[:, :, ring].mean(-1), atol=0.03)
    assert not torch.allclose(p[:, :, ring].mean(-1), x[:, :, ring].mean(-1), atol=0.03)
    # only the ring is read: another interior leaves it unchanged; a darker context darkens it
    x2 = x.clone()
    x2[:, :, g.hard[0, 0] > 0] = -0.9
    assert torch.equal(g.fit_prototypes(p, x2), fitted)
    assert (g.fit_prototypes(p, x * 0.5 - 0.5) < fitted).float().mean() > 0.9


def test_op_steadies_faces_along_the_flow_of_the_context():
    """Flow-guided steadiness: with a steady scene the previous output is blended into the face
    (its change between frames shrinks); the flow never reads the faces, so repainting the face
    interior in both frames leaves both outputs bit-identical; pixels outside the mask patches are
    the input's; and a face that was not covered in the previous frame takes nothing from it."""
    a = frame_with_faces()
    b = np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8)  # the light changed
    box = TrackBox(1, Box(50, 25, 100, 85), 0.99, "detected")
    diffs, outs = {}, {}
    for alpha in (0.0, 0.7):
        o = op(crop_alpha=0.0, color_match=False, flow_alpha=alpha)
        f0 = o.apply(a, [box], Frame(0, 0, 0, a))
        f1 = o.apply(b, [box], Frame(1, 1, 0.03, b))
        diffs[alpha] = np.abs(f1.astype(int) - f0.astype(int))[45:65, 65:85].mean()
        outs[alpha] = (f0, f1)
    assert diffs[0.7] < 0.5 * diffs[0.0], diffs
    assert np.array_equal(outs[0.7][0], outs[0.0][0])  # the first frame has nothing to blend
    outside = np.ones(b.shape[:2], bool)  # outside the mask patches (what the vault stores) ...
    for _, patch in op().patches([box], b.shape[1], b.shape[0]):
        outside[patch.slices] &= patch.alpha == 0
    assert np.array_equal(outs[0.7][1][outside], b[outside])  # ... every pixel is the input's
    runs = []
    for fill in (None, 0, 255):
        o = op(crop_alpha=0.0, flow_alpha=0.7)
        fa, fb = a.copy(), b.copy()
        if fill is not None:
            fa[45:65, 65:85] = fill
            fb[45:65, 65:85] = 255 - fill
        runs.append((o.apply(fa, [box], Frame(0, 0, 0, fa)), o.apply(fb, [box], Frame(1, 1, 0.03, fb))))
    for r in runs[1:]:
        assert np.array_equal(r[0], runs[0][0]) and np.array_equal(r[1], runs[0][1])
    # a face that appears: the previous frame had no face covered there, so nothing is blended in,
    # even where that frame's input looked like a masked one (flat grey: a steady "scene" for the flow)
    other = TrackBox(2, Box(110, 30, 150, 80), 0.99, "detected")
    per_frame, steadied = op(crop_alpha=0.0, flow_alpha=0.0), op(crop_alpha=0.0, flow_alpha=0.7)
    grey = a.copy()
    grey[10:100, 100:160] = 128
    for o in (per_frame, steadied):
        o.apply(grey, [box], Frame(0, 0, 0, grey))
    g0, g1 = (o.apply(grey, [box, other], Frame(1, 1, 0.03, grey)) for o in (per_frame, steadied))
    assert steadied._smoother.cuts == 0  # it did blend (the same frame twice: a steady scene)
    assert np.array_equal(g0[30:80, 120:150], g1[30:80, 120:150])  # (left of 120: the first face's patch)
