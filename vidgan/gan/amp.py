"""Inference in bfloat16 where the hardware computes it natively.

A generator's convolutions under `torch.autocast(dtype=bfloat16)` take about half the time of float32
on a GPU and on CPUs with AVX-512 BF16 or AMX (2-core AMD EPYC here: GAN mode's 128 px generator,
8 faces, 330 -> 160 ms); elsewhere a CPU would emulate bfloat16 and be slower, so it stays float32.
The networks were trained under the same autocast on the GPU (`gan/train.py`, `gan/deid_train.py`).
"""

from __future__ import annotations

from functools import lru_cache

import torch


def bf16_native(device: torch.device | str) -> bool:
    """Whether bfloat16 convolutions run natively on `device` (CUDA, or a CPU with AVX-512 BF16 / AMX)."""
    return _native(torch.device(device).type)


@lru_cache(maxsize=None)
def _native(kind: str) -> bool:  # asked once per process and device type (called every frame)
    if kind == "cuda":
        return torch.cuda.is_bf16_supported()
    if kind == "cpu":  # torch.cpu's probes are private: absent in a torch without them = not native
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, p, lambda: False)()) for p in probes)
    return False


def autocast(device: torch.device | str, enabled: bool = True) -> torch.autocast:
    """bfloat16 autocast on `device` when `enabled` and native there (`bf16_native`), else a no-op."""
    dev = torch.device(device)
    kind = dev.type if dev.type in ("cuda", "cpu") else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=enabled and bf16_native(dev))
