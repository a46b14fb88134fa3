"""The detector's network backends (OpenVINO or OpenCV DNN on the CPU, PyTorch elsewhere) must agree:
the ONNX files in vidgan/faces/mtcnn_onnx/ are facenet-pytorch's weights in another format, and the
cascade must find the same faces with any of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import video_path
from vidgan.faces import DetectorOptions, FaceDetector
from vidgan.faces.mtcnn import Cascade, CvNet, OvNet, TorchNet
from vidgan.types import Box


@pytest.fixture(scope="module")
def mtcnn():
    from facenet_pytorch import MTCNN

    return MTCNN(device="cpu").eval()


@pytest.mark.parametrize("net", [CvNet, OvNet])
@pytest.mark.parametrize("name,shape", [("pnet", (2, 3, 57, 91)), ("rnet", (5, 3, 24, 24)),
                                        ("onet", (3, 3, 48, 48)), ("rnet", (1, 3, 24, 24)),
                                        ("onet", (37, 3, 48, 48)), ("onet", (150, 3, 48, 48))])
def test_onnx_networks_match_facenet_weights(mtcnn, net, name, shape):
    """Both ONNX runtimes give facenet-pytorch's outputs, row for row (OpenVINO splits a batch across
    its streams and joins the parts, and pads a batch of more than 16 rows to a multiple of 16: a
    single row, odd sizes, 37 rows; 150 rows run as parts of 16, more parts than streams)."""
    x = torch.rand(shape) * 2 - 1
    with torch.no_grad():
        ref = TorchNet(getattr(mtcnn, name), channels_last=False)(x)
    got = net(name)(x.numpy())
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        assert np.allclose(g, r, atol=1e-4), float(np.abs(g - r).max())


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name,shapes", [("pnet", [(1, 3, 12, 12), (2, 3, 57, 91), (9, 3, 130, 33)]),
                                         ("rnet", [(1, 3, 24, 24), (2, 3, 24, 24), (77, 3, 24, 24)]),
                                         ("onet", [(1, 3, 48, 48), (13, 3, 48, 48)])])
def test_torch_nets_run_as_one_call_and_match_the_module(mtcnn, name, shapes, channels_last):
    """TorchNet runs the network as a trace: the same numbers as the module for any batch (and, for
    P-Net, any image size; traced on one of each), and no Python function runs inside a call, so it
    takes the GIL back once instead of once a layer (beside busy threads each take waits up to the
    switch interval)."""
    import sys

    module = getattr(mtcnn, name)
    eager, traced = TorchNet(module, channels_last, trace=False), TorchNet(module, channels_last)
    assert isinstance(traced.net, torch.jit.ScriptModule) and eager.net is module
    for shape in shapes:
        x = torch.rand(shape) * 2 - 1
        for r, t in zip(eager(x), traced(x)):
            assert r.shape == t.shape and np.array_equal(r, t)
    calls = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_name)
    for net, expect_python in ((traced, False), (eager, True)):
        calls.clear()
        sys.setprofile(profile)
        try:
            net.net(x)
        finally:
            sys.setprofile(None)
        assert any(c == "forward" for c in calls) == expect_python, calls


def test_openvino_nets_serve_several_threads_at_once():
    """One compiled model per network, a set of inference requests per call in flight: the full-frame
    detector and the region searches call the same networks from two threads."""
    from concurrent.futures import ThreadPoolExecutor

    net = OvNet("rnet")
    rng = np.random.default_rng(1)
    inputs = [rng.uniform(-1, 1, (n, 3, 24, 24)).astype(np.float32) for n in (7, 33, 2, 64, 150) * 4]
    alone = [net(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(net, inputs))
    for a, b in zip(alone, together):
        for x, y in zip(a, b):
            assert np.array_equal(x, y)
    assert 1 <= len(net._free) <= 4  # sets are reused, not made per call


def test_openvino_batches_run_as_a_few_shapes():
    """Every new input shape costs the plugin ~5 ms of kernel preparation, and the number of R-Net and
    O-Net crops differs in almost every call: the parts a batch runs as take a handful of sizes
    whatever the batch (here 1 to 1,000 rows), and cover its rows in order, once."""
    net = OvNet("rnet")
    sizes = set()
    for n in range(1, 1001):
        parts = net.parts(n)
        assert parts[0][0] == 0 and all(b == c for (_, b), (c, _) in zip(parts, parts[1:]))
        assert n <= parts[-1][1] < n + net.ROWS  # the padding stays under ROWS rows
        if n > net.STREAMS * net.ROWS:
            assert {b - a for a, b in parts} == {net.ROWS}
        sizes |= {b - a for a, b in parts}
    # 7 sizes with 4 streams (2 cores); 66 when every batch was split into one part per stream
    assert len(sizes) <= net.ROWS, sorted(sizes)


def test_openvino_nets_work_again_after_a_failed_call():
    """An inference that fails (here crops of the wrong size, in fewer and in more parts than
    streams) raises; OpenVINO then repeats that error on every later inference of the same compiled
    model, so the network is compiled again: the next calls, from this instance and from another
    one sharing the model (the region searches' cascade), give the right outputs."""
    net, other = OvNet("rnet"), OvNet("rnet")
    x = np.random.default_rng(2).uniform(-1, 1, (150, 3, 24, 24)).astype(np.float32)
    expected, expected7 = net(x), net(x[:7])
    other(x)
    for n in (5, 150):
        with pytest.raises(RuntimeError):
            net(np.zeros((n, 3, 30, 30), np.float32))
        for got, want in ((net(x), expected), (other(x), expected), (net(x[:7]), expected7)):
            for a, b in zip(got, want):
                assert np.array_equal(a, b)


def test_auto_backend_is_openvino_on_cpu_and_the_others_on_request(monkeypatch):
    from vidgan.faces import mtcnn

    assert Cascade("cpu").backend == "openvino"
    assert all(isinstance(n, OvNet) for n in Cascade("cpu").nets)
    assert all(isinstance(n, CvNet) for n in Cascade("cpu", "opencv").nets)
    assert all(isinstance(n, TorchNet) for n in Cascade("cpu", "torch").nets)
    with pytest.raises(ValueError):
        Cascade("cpu", "tensorrt")
    monkeypatch.setattr(mtcnn, "openvino_available", lambda: False)  # a machine without OpenVINO
    assert Cascade("cpu").backend == "opencv"
    with pytest.raises(ValueError, match="OpenVINO"):
        Cascade("cpu", "openvino")


def test_the_cpu_detector_does_not_import_torch(tmp_path):
    """Importing torch + torchvision + facenet-pytorch costs seconds, most of a short clip's run: the
    CPU path (detect, track, blur, encode) must not need them."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from vidgan.faces import DetectorOptions, FaceDetector\n"
            "import vidgan.pipeline, vidgan.batch\n"
            "d = FaceDetector(DetectorOptions(device='auto'))\n"
            "d.detect([np.zeros((120, 160, 3), np.uint8)])\n"
            "print(d.device, sorted(m for m in ('torch', 'torchvision', 'facenet_pytorch') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""}).stdout.split()
    assert out == ["cpu", "[]"]


def test_openvino_loads_without_its_model_converter():
    """The detector imports OpenVINO without the model converter and the telemetry client its package
    imports on the way (~65 ms a run); `openvino.convert_model` still works, imported on first use."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from vidgan.faces.mtcnn import _import_openvino\n"
            "ov = _import_openvino()\n"
            "print(sorted(m for m in ('openvino.tools.ovc', 'openvino_telemetry') if m in sys.modules))\n"
            "from openvino import convert_model\n"
            "print(callable(convert_model), 'openvino.tools.ovc' in sys.modules, hasattr(ov, 'Core'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "True", "True", "True"]


def test_warm_up_compiles_the_openvino_nets_the_detector_then_uses(monkeypatch):
    from vidgan.faces import warm_up

    monkeypatch.setattr(OvNet, "_compiled", {})  # as in a fresh process
    thread = warm_up(DetectorOptions(device="cpu"))
    assert thread is not None and not thread.daemon  # an exiting process waits for it
    thread.join()
    compiled = dict(OvNet._compiled)
    assert set(compiled) == {"pnet", "rnet", "onet"}
    detector = FaceDetector(DetectorOptions(device="cpu"))
    assert all(net.compiled is compiled[net.name] for net in detector.cascade.nets)  # not compiled again
    assert warm_up(DetectorOptions(device="cpu", backend="opencv")) is None
    assert warm_up(DetectorOptions(device="cpu", backend="torch")) is None
    assert warm_up(DetectorOptions(device="cpu", backend="tensorrt")) is None  # FaceDetector reports it
    with pytest.raises(ValueError):
        FaceDetector(DetectorOptions(device="cpu", backend="tensorrt"))


def party_frames(step: int, count: int) -> list[np.ndarray]:
    """Every `step`-th frame of the shared 1 s party clip (faces in every frame), RGB."""
    import av

    frames = []
    with av.open(video_path("party_1s_h264_mp3.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def test_backends_find_the_same_faces_on_a_real_clip():
    frames = party_frames(6, 4)
    results = {be: FaceDetector(DetectorOptions(device="cpu", backend=be)).detect(frames)
               for be in ("torch", "opencv", "openvino")}
    assert sum(map(len, results["opencv"])) >= 4  # the party has faces in every frame
    for a, b in [*zip(results["torch"], results["opencv"]), *zip(results["torch"], results["openvino"])]:
        assert len(a) == len(b)
        for da, db in zip(sorted(a, key=lambda d: d.box.x1), sorted(b, key=lambda d: d.box.x1)):
            assert np.allclose([da.box.x1, da.box.y1, da.box.x2, da.box.y2],
                               [db.box.x1, db.box.y1, db.box.x2, db.box.y2], atol=0.05)
            assert abs(da.score - db.score) < 1e-3


def test_device_path_finds_the_same_faces(monkeypatch):
    """The GPU path (pyramid by F.interpolate, crops by one roi_align on the device) run on the CPU:
    CI has no GPU, and this is the only place that code runs there."""
    from vidgan.faces import mtcnn

    frames = party_frames(8, 3)

    def device_images(self, frames):
        im = mtcnn.TorchImages(frames, "cpu")
        im.cpu = None
        im.images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        return im

    ref = FaceDetector(DetectorOptions(device="cpu", backend="torch")).detect(frames)
    monkeypatch.setattr(mtcnn.Cascade, "images", device_images)
    got = FaceDetector(DetectorOptions(device="cpu", backend="torch")).detect(frames)
    assert sum(map(len, ref)) >= 6
    for a, b in zip(ref, got):
        # Different resampling (bilinear/area crops vs roi_align), same faces.
        assert abs(len(a) - len(b)) <= 1
        for da in a:
            if da.score > 0.95:
                assert max(da.box.iou(db.box) for db in b) > 0.7


def test_region_search_finds_the_face_a_full_frame_search_found():
    """`search` looks only inside a region (where the tracker expects a known face): around each face
    of a full-frame detection it finds that face again, in frame coordinates, and around an empty
    patch of the frame it finds nothing. Regions may reach outside the frame."""
    frames = party_frames(6, 2)
    det = FaceDetector(DetectorOptions(device="cpu"))
    full = det.detect(frames)
    faces = [(k, d) for k, dets in enumerate(full) for d in dets if d.score > 0.95]
    assert len(faces) >= 2
    found = det.search([frames[k] for k, _ in faces], [d.box.scaled(3.0) for _, d in faces])
    for (_, d), dets in zip(faces, found):
        best = max(dets, key=lambda e: e.box.iou(d.box))
        assert best.box.iou(d.box) > 0.6, (d.box, best.box)
        assert best.landmarks is not None and len(best.landmarks) == 5
    h, w = frames[0].shape[:2]
    corner = Box(-40.0, h - 60.0, 60.0, h + 40.0)  # half outside the frame, on the floor
    assert det.search([frames[0]], [corner]) == [[]]
    assert det.search([], []) == []
    # plain floats, as from detect (boxes go to JSON track files)
    assert all(type(v) is float for dets in found for d in dets
               for v in (d.box.x1, d.box.y2, d.score, *d.landmarks[0]))


def test_packed_pnet_levels_equal_one_call_per_level():
    """Region searches run P-Net once over all pyramid levels laid side by side: each level's map must
    be what P-Net gives on that level alone (every window that lies inside the level), on both
    backends."""
    from vidgan.faces.mtcnn import _pyramid_scales

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 80, 80, 3), dtype=np.uint8)
    scales = _pyramid_scales(80, 80, 12, 0.709)
    assert len(scales) >= 5
    for backend in ("openvino", "opencv", "torch"):  # torch: the GPU's path (a canvas tensor), run here on the CPU
        plain, packed = Cascade("cpu", backend), Cascade("cpu", backend, pack_levels=True)
        pairs = list(zip(plain._pnet_maps(plain.images(frames), 80, 80, scales),
                         packed._pnet_maps(packed.images(frames), 80, 80, scales)))
        assert len(pairs) == len(scales)
        for (reg_a, prob_a), (reg_b, prob_b) in pairs:
            rows, cols = prob_b.shape[2:]
            assert prob_a.shape[2] - rows in (0, 1) and prob_a.shape[3] - cols in (0, 1)
            assert np.allclose(prob_a[:, :, :rows, :cols], prob_b, atol=1e-4), backend
            assert np.allclose(reg_a[:, :, :rows, :cols], reg_b, atol=1e-4), backend


def test_coarse_detection_finds_the_larger_faces():
    """`detect(coarse=True)` works at half the working resolution: it looks for faces of at least twice
    the minimum size, and finds those the full search finds (same boxes). Where the working image is
    small, the pipeline does not use it (`coarse_pays`)."""
    frames = party_frames(6, 2)
    det = FaceDetector(DetectorOptions(device="cpu"))
    h, w = frames[0].shape[:2]
    assert det.smallest_face(w, h) == 20.0 and det.smallest_face(w, h, coarse=True) == 40.0
    assert det.coarse_pays(w, h) and not det.coarse_pays(176, 144)
    full, coarse = det.detect(frames), det.detect(frames, coarse=True)
    big = [(k, d) for k, dets in enumerate(full) for d in dets if d.score > 0.95 and max(d.box.width, d.box.height) >= 60]
    assert len(big) >= 2
    for k, d in big:
        assert max((e.box.iou(d.box) for e in coarse[k]), default=0.0) > 0.6, d.box
    for k, dets in enumerate(coarse):  # nothing the full search does not find
        for e in dets:
            assert max((d.box.iou(e.box) for d in full[k]), default=0.0) > 0.5, e.box
