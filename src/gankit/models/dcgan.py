"""DCGAN: deep convolutional GAN.

Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016. Transposed-conv G from a 4x4 seed, strided-conv
D, BatchNorm everywhere except G's output and D's input, ReLU in G, LeakyReLU(0.2) in D,
tanh output, weights N(0, 0.02), Adam 2e-4 beta1 0.5.

`model.channels=128` is the paper's 64x64 network (G 1024->512->256->128, D mirrored);
32x32 drops one level. Optional class conditioning (not in the paper): labels join z as an
embedding in G and enter D as one-hot planes concatenated to the image.

Small-data options, all off by default (models/augment.py): `model.diffaugment`,
`model.spectral_norm` (D without BatchNorm), `model.r1_gamma`; TTUR (Heusel et al. 2017)
is `train.lr_d` (D's rate) next to `train.lr` (G's).

Speed: the 4x4 stride-2 convs at the 8x8 <-> 4x4 end run as explicit GEMMs on CPU
(models/gemm_conv.py; the same arithmetic, faster: docs/benchmarks.md, "DCGAN-32 speed").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.dataset import DataInfo
from ..errors import GankitError
from ..layers import init_normal
from . import gemm_conv
from .adversarial import AdversarialConfig, ImageGAN
from .augment import DiffAugment, parse_policy, spectral_norm_convs


@dataclass
class DCGANConfig(AdversarialConfig):
    channels: int = 64
    """width of G's last hidden layer and D's first; doubles per level (paper: 128)"""
    conditional: bool = False
    """condition G and D on class labels"""
    init_std: float = 0.02
    diffaugment: str = ""
    """DiffAugment (Zhao et al. 2020): empty = off, or a comma list of color, translation, cutout;
    applied to every image D sees, in D's and G's updates"""
    spectral_norm: bool = False
    """spectral normalisation of every D conv; replaces D's BatchNorm, as in SNGAN and StudioGAN's DCGAN"""
    r1_gamma: float = 0.0
    """R1 penalty weight: gamma/2 * E||grad D(x)||^2 on reals, added at every D update (0 = off)"""

    def validate(self):
        super().validate()
        parse_policy(self.diffaugment)
        if self.channels <= 0:
            raise GankitError("model.channels must be positive")
        if self.r1_gamma < 0:
            raise GankitError(f"model.r1_gamma must not be negative, got {self.r1_gamma}")


def _levels(size: int) -> int:
    """Number of stride-2 stages between 4x4 and `size`."""
    levels = math.log2(size) - 2
    if size < 16 or not levels.is_integer():
        raise GankitError(f"dcgan needs a power-of-two image size >= 16 (32 or 64), got data.size={size}")
    return int(levels)


class Generator(nn.Module):
    def __init__(self, cfg: DCGANConfig, image_channels: int, size: int, num_classes: int):
        super().__init__()
        n = _levels(size)
        widths = [cfg.channels * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 1024, 512, 256, 128
        self.label_emb = nn.Embedding(num_classes, cfg.z_dim) if num_classes else None
        in_dim = cfg.z_dim * (2 if num_classes else 1)
        layers = [gemm_conv.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=False),  # (B, w0, 4, 4)
                  nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [gemm_conv.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out),
                       nn.ReLU(True)]
        layers += [gemm_conv.ConvTranspose2d(widths[-1], image_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.label_emb is not None:
            z = torch.cat([z, self.label_emb(labels)], dim=1)
        return self.net(z[:, :, None, None])  # (B, C, size, size)


class Discriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig, image_channels: int, size: int, num_classes: int):
        super().__init__()
        n = _levels(size)
        widths = [cfg.channels * 2 ** i for i in range(n)]  # e.g. 128, 256, 512, 1024
        self.num_classes = num_classes
        layers = [gemm_conv.Conv2d(image_channels + num_classes, widths[0], 4, 2, 1, bias=False),
                  nn.LeakyReLU(0.2, inplace=True)]  # no BatchNorm on D's input layer
        for w_in, w_out in zip(widths, widths[1:]):
            norm = [] if cfg.spectral_norm else [nn.BatchNorm2d(w_out)]  # SN takes BN's place
            layers += [gemm_conv.Conv2d(w_in, w_out, 4, 2, 1, bias=False), *norm, nn.LeakyReLU(0.2, inplace=True)]
        layers.append(gemm_conv.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.num_classes:
            planes = nn.functional.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, x.shape[2], x.shape[3])], dim=1)
        return self.net(x).flatten()  # (B,) logits


class DCGAN(ImageGAN):
    Config = DCGANConfig
    SAMPLE_LAYOUT = "the same noise in every grid; with model.conditional=true, one row per class label"
    """how the sample grids are laid out (shown in the report)"""
    PAPER = "Radford, Metz & Chintala 2016, Unsupervised Representation Learning with DCGANs"

    def __init__(self, cfg: DCGANConfig, info: DataInfo, train):
        if cfg.conditional and not info.num_classes:
            raise GankitError(f"model.conditional=true needs labelled data; '{info.source}' has none")
        super().__init__(cfg, train, info.num_classes if cfg.conditional else 0)
        self.G = Generator(cfg, info.channels, info.size, self.num_classes)
        self.D = Discriminator(cfg, info.channels, info.size, self.num_classes)
        init_normal(self, cfg.init_std)
        if cfg.spectral_norm:  # after the init: SN normalises the initialised weights
            spectral_norm_convs(self.D)
        if cfg.r1_gamma:  # R1 differentiates D's backward; the GEMM convs' backward is once-differentiable
            for m in self.D.modules():
                if isinstance(m, gemm_conv.Conv2d):
                    m.gemm = False
        self.augment = DiffAugment(cfg.diffaugment)
        self.r1_gamma = cfg.r1_gamma
