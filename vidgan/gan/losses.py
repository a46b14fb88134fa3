"""Losses of the GAN toolkit: adversarial (vanilla / LSGAN / hinge), L1, cycle consistency, identity,
and the perceptual loss (feature reconstruction + Gram-matrix style) over a frozen loss network.

All images are in [-1, 1]; discriminators return raw logits.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

GAN_MODES = ("vanilla", "lsgan", "hinge")


class GANLoss(nn.Module):
    """One object for the three adversarial objectives.

    vanilla: BCE on logits (the original minimax, non-saturating for G),
    lsgan:   least squares towards 1 (real) / 0 (fake): smoother gradients, used by CycleGAN,
    hinge:   D: relu(1 - D(real)) + relu(1 + D(fake)); G: -D(fake).
    `for_discriminator` matters only for hinge, where G's loss is not D's loss with flipped labels."""

    def __init__(self, mode: str = "vanilla") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss {mode!r} ({', '.join(GAN_MODES)})")
        self.mode = mode

    def forward(self, pred: torch.Tensor, real: bool, for_discriminator: bool = True) -> torch.Tensor:
        pred = pred.float()
        if self.mode == "vanilla":
            target = torch.ones_like(pred) if real else torch.zeros_like(pred)
            return F.binary_cross_entropy_with_logits(pred, target)
        if self.mode == "lsgan":
            return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))
        if for_discriminator:
            return F.relu(1 - pred).mean() if real else F.relu(1 + pred).mean()
        return -pred.mean()


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).abs().mean()


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||G_B(G_A(a)) - a||_1: translating there and back must give the input again."""
    return l1(reconstructed, original)


def identity_loss(same: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """||G_A(b) - b||_1: a generator fed an image already in its target domain should leave it alone
    (keeps colours from drifting in CycleGAN)."""
    return l1(same, original)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Gram matrix of a feature map, normalised by its size: N,C,C channel correlations (style)."""
    n, c, h, w = f.shape
    f = f.float().reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


class PerceptualLoss(nn.Module):
    """Feature reconstruction + style loss (Johnson et al.) over a frozen network.

    `lossnet(x)` returns a list of feature maps for x in [-1, 1] (see lossnet.py). content_layers /
    style_layers index that list; each layer's error is relative to the target's energy there. Both terms are exactly zero for identical inputs and grow with the
    distortion of either image."""

    def __init__(self, lossnet: nn.Module, content_layers: Sequence[int] = (1,),
                 style_layers: Sequence[int] = (0, 1, 2, 3), content_weight: float = 1.0,
                 style_weight: float = 0.0) -> None:
        super().__init__()
        self.net = lossnet.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.content_weight, self.style_weight = content_weight, style_weight

    def train(self, mode: bool = True) -> "PerceptualLoss":  # the loss network stays frozen in eval mode
        super().train(mode)
        self.net.eval()
        return self

    @staticmethod
    def _relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """MSE divided by the target's mean square: every layer counts alike whatever its scale,
        and a weight of w means "w per 100 % feature error"."""
        a, b = a.float(), b.float()
        return F.mse_loss(a, b) / (b.pow(2).mean() + 1e-8)

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fx = self.net(x)
        with torch.no_grad():
            fy = self.net(y)
        zero = torch.zeros((), device=x.device)
        content = sum((self._relative(fx[i], fy[i]) for i in self.content_layers), zero)
        style = sum((self._relative(gram(fx[i]), gram(fy[i])) for i in self.style_layers), zero)
        return content, style

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        content, style = self.terms(x, y)
        return self.content_weight * content + self.style_weight * style
