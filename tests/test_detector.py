"""The detector's two network backends (OpenCV DNN on the CPU, PyTorch elsewhere) must agree: the
ONNX files in vidgan/faces/mtcnn_onnx/ are facenet-pytorch's weights in another format, and the
cascade must find the same faces with either."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import video_path
from vidgan.faces import DetectorOptions, FaceDetector
from vidgan.faces.mtcnn import CvNet, TorchNet, cascade_nets


@pytest.fixture(scope="module")
def mtcnn():
    from facenet_pytorch import MTCNN

    return MTCNN(device="cpu").eval()


@pytest.mark.parametrize("name,shape", [("pnet", (2, 3, 57, 91)), ("rnet", (5, 3, 24, 24)),
                                        ("onet", (3, 3, 48, 48))])
def test_onnx_networks_match_facenet_weights(mtcnn, name, shape):
    x = torch.rand(shape) * 2 - 1
    with torch.no_grad():
        ref = TorchNet(getattr(mtcnn, name), channels_last=False)(x)
    got = CvNet(name)(x)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        assert torch.allclose(g, r, atol=1e-4), float((g - r).abs().max())


def test_auto_backend_is_opencv_on_cpu_and_torch_on_request(mtcnn):
    assert all(isinstance(n, CvNet) for n in cascade_nets(mtcnn, torch.device("cpu")))
    assert all(isinstance(n, TorchNet) for n in cascade_nets(mtcnn, torch.device("cpu"), "torch"))
    with pytest.raises(ValueError):
        cascade_nets(mtcnn, torch.device("cpu"), "tensorrt")


def test_backends_find_the_same_faces_on_a_real_clip():
    import av

    frames = []
    with av.open(video_path("party_1s_h264_mp3.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 6 == 0:
                frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == 4:
                break
    results = {be: FaceDetector(DetectorOptions(device="cpu", backend=be)).detect(frames)
               for be in ("torch", "opencv")}
    assert sum(map(len, results["opencv"])) >= 4  # the party has faces in every frame
    for a, b in zip(results["torch"], results["opencv"]):
        assert len(a) == len(b)
        for da, db in zip(sorted(a, key=lambda d: d.box.x1), sorted(b, key=lambda d: d.box.x1)):
            assert np.allclose([da.box.x1, da.box.y1, da.box.x2, da.box.y2],
                               [db.box.x1, db.box.y1, db.box.x2, db.box.y2], atol=0.05)
            assert abs(da.score - db.score) < 1e-3
