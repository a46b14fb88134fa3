"""Image quality measures used by the trainers' evaluation and the benchmarks. Images are float
N,3,H,W in [0, 1].

PSNR and SSIM reward being close to the target pixel by pixel, which favours a blurry average of the
plausible answers (MSE training). Sharpness (mean gradient magnitude, Laplacian variance) relative to
the ground truth shows the other side: a GAN's output has about the detail of a real image (ratio near
1) while an MSE model's ratio falls below 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB over all RGB pixels (values in [0, 1])."""
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2).float() / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM on luma (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, valid region)."""
    x, y = luma(x.float()), luma(y.float())
    w = _gauss().to(x)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx ** 2
    syy = F.conv2d(y * y, w) - my ** 2
    sxy = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Per-image mean |gradient| of luma (finite differences)."""
    g = luma(x.float())
    dx = g[..., :, 1:] - g[..., :, :-1]
    dy = g[..., 1:, :] - g[..., :-1, :]
    return (dx[..., :-1, :] ** 2 + dy[..., :, :-1] ** 2).sqrt().flatten(1).mean(1)


def laplacian_variance(x: torch.Tensor) -> torch.Tensor:
    """Per-image variance of the Laplacian of luma: the classic focus / blur measure."""
    k = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32, device=x.device).view(1, 1, 3, 3)
    return F.conv2d(luma(x.float()), k).flatten(1).var(1)
