"""Generators on OpenVINO's CPU plugin: where a face model runs on the CPU and OpenVINO is installed
(as `pip install vidgan` does), its network runs there instead of in PyTorch, for pictures up to
`translator.OV_MAX_PIXELS` (`load_translator` decides).

Measured on the project's 2-core AMD EPYC (session 19; networks alone, against PyTorch under bfloat16
autocast): face-age 3.4 / 6.4 ms for one face, 7.1 / 11.3 for two, 24.8 / 33.0 for eight; face-sr4x
390 / 505 ms for 4 faces of 128 px; facades 6.3 / 7.1 ms for 4 tiles of 128 px, but 125 / 89 ms for
4 tiles of 512 px (hence the limit); outputs 56-73 dB PSNR from float32's (PyTorch's bfloat16:
55-78 dB). The precision is what `amp.bf16_native` says for the CPU: bfloat16 where it is native
(AVX-512 BF16 or AMX), float32 elsewhere.

The PyTorch module is converted once (`openvino.convert_model`, 1-2 s a model) and the result kept
under `cache_dir()` (`$VIDGAN_CACHE/openvino`, by default `~/.cache/vidgan/openvino`), named by the
checkpoint's SHA-256 and OpenVINO's version, so a later run reads it in ~0.1-0.2 s. The converted
model takes any batch and picture size (the networks are fully convolutional); each new input shape
costs one slower call (~10-20 ms) while the plugin prepares its kernels. Anything that goes wrong
(no OpenVINO, a network it cannot convert, an unwritable cache) leaves the network in PyTorch.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .amp import bf16_native

log = logging.getLogger(__name__)

CONVERSION = 1  # part of the cache key: bump when what is converted changes


def cache_dir() -> Path:
    """Where converted models are kept: $VIDGAN_CACHE/openvino, else $XDG_CACHE_HOME (or ~/.cache)/vidgan/openvino."""
    env = os.environ.get("VIDGAN_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidgan"
    return base / "openvino"


class OvGenerator:
    """A converted network compiled for the CPU: N,C,H,W float tensor in, float32 tensor out (as the
    module's forward). One inference request, used by one caller at a time."""

    def __init__(self, compiled, precision: str):
        self.compiled = compiled
        self.precision = precision
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        with self._lock:
            self._request.infer({0: a})
            out = self._request.get_output_tensor(0).data.copy()  # the request's buffer is reused
        return torch.from_numpy(out)


def openvino_generator(net: torch.nn.Module, digest: str, bf16: bool = True,
                       side: int = 64) -> Optional[OvGenerator]:
    """`net` (the module loaded from a checkpoint whose SHA-256 is `digest`, hex; in eval mode on the
    CPU) on OpenVINO's CPU plugin, converted (traced on a `side` x `side` picture, a size it accepts)
    or read from the cache, in bfloat16 where `bf16` and native, else float32; None where that cannot
    be done (then use `net` itself)."""
    from ..faces.mtcnn import _import_openvino, openvino_available, openvino_core

    if not openvino_available():
        return None
    try:
        ov = _import_openvino()
        folder = cache_dir()
        stem = f"{digest[:32]}-{ov.get_version().split('-')[0]}-{CONVERSION}"
        xml = folder / f"{stem}.xml"
        core = openvino_core()
        model = None
        if xml.is_file():
            try:
                model = core.read_model(str(xml))
            except Exception:  # noqa: BLE001 - a damaged cache entry: convert again
                log.debug("cached OpenVINO model %s unreadable; converting again", xml, exc_info=True)
        if model is None:
            model = _convert(ov, net, side)
            _save(ov, model, folder, stem)
        precision = "bf16" if bf16 and bf16_native("cpu") else "f32"
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                     "PERFORMANCE_HINT": "LATENCY"})
        return OvGenerator(compiled, precision)
    except Exception:  # noqa: BLE001 - PyTorch still runs the network
        log.debug("OpenVINO could not take generator %s; it stays in PyTorch", digest[:12], exc_info=True)
        return None


def _convert(ov, net: torch.nn.Module, side: int):
    channels = next(m.in_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    example = torch.zeros((1, channels, side, side))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on the module
        model = ov.convert_model(net, example_input=example)
    # any batch and picture size (the example only guided the trace)
    model.reshape({model.inputs[0]: ov.PartialShape([-1, channels, -1, -1])})
    return model


def _save(ov, model, folder: Path, stem: str) -> None:
    """Write the converted model as folder/stem.xml + .bin, whole or not at all (a temporary folder
    beside them, renamed into place, weights first); a cache that cannot be written is skipped."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=folder))
        try:
            ov.save_model(model, str(tmp / "m.xml"), compress_to_fp16=False)
            os.replace(tmp / "m.bin", folder / f"{stem}.bin")
            os.replace(tmp / "m.xml", folder / f"{stem}.xml")
        finally:
            for p in tmp.glob("*"):
                p.unlink(missing_ok=True)
            tmp.rmdir()
    except OSError:
        log.debug("could not keep the converted model in %s", folder, exc_info=True)
