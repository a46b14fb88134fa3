"""Re-export facenet-pytorch's MTCNN networks (P-Net, R-Net, O-Net) to ONNX for OpenCV's DNN module.

The weights are facenet-pytorch's (MIT licence, shipped inside its wheel); this only changes the file
format. On these CPUs OpenCV's DNN runs the three small networks 2-4x faster than PyTorch's oneDNN
kernels (measured in docs/benchmarks.md), so `vidgan.faces` uses these files on the CPU and the
PyTorch networks on a GPU. A test checks that both give the same outputs.

Run from the repository root (needs the `onnx` package, which only this export uses):
    python -m vidgan.faces.mtcnn_onnx.export
"""

from __future__ import annotations

import io
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUTS = {"pnet": ["reg", "prob"], "rnet": ["reg", "prob"], "onet": ["reg", "landmarks", "prob"]}
SAMPLE = {"pnet": (1, 3, 64, 80), "rnet": (4, 3, 24, 24), "onet": (4, 3, 48, 48)}


def export(name: str, net: torch.nn.Module) -> bytes:
    net.eval()
    buf = io.BytesIO()
    dynamic = {0: "n", 2: "h", 3: "w"} if name == "pnet" else {0: "n"}
    torch.onnx.export(net, (torch.randn(SAMPLE[name]),), buf, dynamo=False, opset_version=13,
                      input_names=["x"], output_names=OUTPUTS[name], dynamic_axes={"x": dynamic})
    return buf.getvalue()


def main() -> None:
    from facenet_pytorch import MTCNN

    m = MTCNN()
    for name in OUTPUTS:
        data = export(name, getattr(m, name))
        path = os.path.join(HERE, f"{name}.onnx")
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path}: {len(data)} bytes")


if __name__ == "__main__":
    main()
