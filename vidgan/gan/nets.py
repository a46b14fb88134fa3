"""Networks of the GAN toolkit, in the order the lecture introduces them.

Generators map [-1, 1] RGB to [-1, 1] RGB (tanh output):
  - UNetGenerator: pix2pix encoder/decoder with skip connections (7 downsamplings at 128 px, 8 at 256).
  - ResnetGenerator: CycleGAN's 2 stride-2 convs, 6 or 9 residual blocks, 2 transposed convs.
  - SRResNet: x4 super-resolution (residual blocks + two PixelShuffle x2 stages), 3xHxW -> 3x4Hx4W.
Discriminators output raw logits (the loss decides vanilla / LSGAN / hinge):
  - NLayerDiscriminator: PatchGAN; n_layers=3 has a 70x70 receptive field.
  - PixelDiscriminator: 1x1 convs, a 1x1 patch GAN (judges colour statistics only).

`build_generator(arch, **kwargs)` is what saved translators are rebuilt with (see translator.py), so its
arch names and kwargs are a file format: add, don't rename.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn as nn

# ---------------------------------------------------------------------------------------------- norms


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """Instance norm (no running stats: train == eval, good for style transfer) or batch norm."""
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True)
    if kind == "none":
        return lambda c: nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (instance, batch, none)")


def uses_bias(kind: str) -> bool:
    # batch norm has its own affine shift, so a conv bias before it is redundant
    return kind != "batch"


# ------------------------------------------------------------------------------------------- U-Net


class UNetBlock(nn.Module):
    """One level of the U: down -> (inner levels) -> up, output concatenated with the input (skip)."""

    def __init__(self, outer: int, inner: int, in_ch: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch",
                 dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        in_ch = outer if in_ch is None else in_ch
        nl, bias = norm_layer(norm), uses_bias(norm)
        down = nn.Conv2d(in_ch, inner, 4, 2, 1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1)
            layers = [down, sub, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            # the bottleneck is 1x1: no norm there (instance norm of one pixel is zero)
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, nl(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nl(inner), sub, nn.ReLU(True), up, nl(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UNetGenerator(nn.Module):
    """pix2pix U-Net. `n_down` stride-2 levels bring size down to 1x1: 7 for 128 px, 8 for 256 px.
    Works on any input whose sides are multiples of 2**n_down."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, n_down: int = 7, ngf: int = 64,
                 norm: str = "batch", dropout: bool = True) -> None:
        super().__init__()
        if n_down < 5:
            raise ValueError("U-Net needs n_down >= 5")
        block = UNetBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(n_down - 5):
            block = UNetBlock(ngf * 8, ngf * 8, sub=block, norm=norm, dropout=dropout)
        block = UNetBlock(ngf * 4, ngf * 8, sub=block, norm=norm)
        block = UNetBlock(ngf * 2, ngf * 4, sub=block, norm=norm)
        block = UNetBlock(ngf, ngf * 2, sub=block, norm=norm)
        self.model = UNetBlock(out_ch, ngf, in_ch=in_ch, sub=block, outermost=True, norm=norm)
        self.multiple = 2 ** n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ------------------------------------------------------------------------------------------ ResNet


class ResnetBlock(nn.Module):
    def __init__(self, ch: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        nl, bias = norm_layer(norm), uses_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), nl(ch), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), nl(ch)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN generator (Johnson et al.): c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1-3.
    6 blocks for 128 px, 9 for 256 px. Input sides must be multiples of 4."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        nl, bias = norm_layer(norm), uses_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7, bias=bias), nl(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1, bias=bias), nl(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch, norm, dropout) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1, bias=bias), nl(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.multiple = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ---------------------------------------------------------------------------------------- SRResNet


class SRResBlock(nn.Module):
    def __init__(self, nf: int, norm: str = "none") -> None:
        super().__init__()
        nl = norm_layer(norm)
        self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), nl(nf), nn.PReLU(nf),
                                  nn.Conv2d(nf, nf, 3, 1, 1), nl(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """SRGAN's generator (Ledig et al.), x4 by two conv + PixelShuffle(2) stages. Batch norm is left
    out by default (as in EDSR/ESRGAN: it adds artefacts and costs memory). The network predicts a
    residual over the bicubic upsampling, which makes the MSE baseline converge in far fewer steps
    than learning the whole image (important for CPU training)."""

    def __init__(self, n_blocks: int = 16, nf: int = 64, scale: int = 4, norm: str = "none",
                 residual: bool = True) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError("scale must be 2, 4 or 8")
        self.scale, self.residual = scale, residual
        self.head = nn.Sequential(nn.Conv2d(3, nf, 9, 1, 4), nn.PReLU(nf))
        self.body = nn.Sequential(*[SRResBlock(nf, norm) for _ in range(n_blocks)],
                                  nn.Conv2d(nf, nf, 3, 1, 1), norm_layer(norm)(nf))
        ups: list[nn.Module] = []
        for _ in range({2: 1, 4: 2, 8: 3}[scale]):
            ups += [nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(nf)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(nf, 3, 9, 1, 4)
        self.multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        y = self.tail(self.up(h + self.body(h)))
        if self.residual:
            base = nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
            y = base + y
            # no clamp while training: a clamped pixel would get no gradient back into range
            return y if self.training else y.clamp(-1, 1)
        return torch.tanh(y)


# ---------------------------------------------------------------------------------- discriminators


class NLayerDiscriminator(nn.Module):
    """PatchGAN: every output logit judges one overlapping patch (70x70 for n_layers=3).
    For conditional GANs (pix2pix) pass in_ch = input channels + output channels."""

    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        nl, bias = norm_layer(norm), uses_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias), nl(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias), nl(ndf * mult), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel's colour on its own (no spatial structure)."""

    def __init__(self, in_ch: int = 3, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        nl, bias = norm_layer(norm), uses_bias(norm)
        self.model = nn.Sequential(nn.Conv2d(in_ch, ndf, 1), nn.LeakyReLU(0.2, True),
                                   nn.Conv2d(ndf, ndf * 2, 1, bias=bias), nl(ndf * 2), nn.LeakyReLU(0.2, True),
                                   nn.Conv2d(ndf * 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def receptive_field(n_layers: int) -> int:
    """Receptive field of NLayerDiscriminator's output pixels (70 for n_layers=3)."""
    rf = 1
    for k, s in reversed([(4, 2)] * n_layers + [(4, 1), (4, 1)]):
        rf = (rf - 1) * s + k
    return rf


# ---------------------------------------------------------------------------------------- init


def init_weights(net: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    """pix2pix/CycleGAN init: conv weights N(0, 0.02) (or xavier/kaiming/orthogonal), norm weights N(1, 0.02)."""
    def fn(m: nn.Module) -> None:
        name = type(m).__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in name or "Linear" in name):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif kind == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise ValueError(f"unknown init {kind!r} (normal, xavier, kaiming, orthogonal)")
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in name and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    net.apply(fn)
    return net


# ------------------------------------------------------------------------------------ factories

GENERATORS = ("unet", "resnet", "srresnet")


def build_generator(arch: str, **kw) -> nn.Module:
    """Rebuild a generator from its saved description.
    unet: size (128 -> 7 downsamplings, 256 -> 8) or n_down, ngf, norm, dropout, in_ch, out_ch.
    resnet: n_blocks (6|9), ngf, norm, dropout, in_ch, out_ch.
    srresnet: n_blocks, nf, scale, norm, residual."""
    kw = dict(kw)
    if arch == "unet":
        size = kw.pop("size", None)
        if "n_down" not in kw:
            kw["n_down"] = 7 if size is None else int(size).bit_length() - 1  # down to 1x1
        return UNetGenerator(**kw)
    if arch == "resnet":
        kw.pop("size", None)
        return ResnetGenerator(**kw)
    if arch == "srresnet":
        kw.pop("size", None)
        return SRResNet(**kw)
    raise ValueError(f"unknown generator arch {arch!r} ({', '.join(GENERATORS)})")


def build_discriminator(arch: str = "patch", **kw) -> nn.Module:
    """patch: NLayerDiscriminator (n_layers=3 -> 70x70); pixel: PixelDiscriminator."""
    if arch == "patch":
        return NLayerDiscriminator(**kw)
    if arch == "pixel":
        kw.pop("n_layers", None)
        return PixelDiscriminator(**kw)
    raise ValueError(f"unknown discriminator arch {arch!r} (patch, pixel)")


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
