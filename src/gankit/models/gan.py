"""Vanilla GAN with MLP generator and discriminator.

Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
The small preset is the seed notebook's network (G 100->128->784, D 784->128->1);
`configs/gan-deep.yaml` is a deeper 256-512-1024 variant.
Departures from the paper: LeakyReLU(0.2) in D instead of maxout, no dropout by default,
and the non-saturating G loss (the paper's own practical recommendation).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from ..data.dataset import DataInfo
from ..errors import GankitError
from ..layers import Dropout
from .adversarial import AdversarialConfig, ImageGAN


@dataclass
class GANConfig(AdversarialConfig):
    hidden: list[int] = field(default_factory=lambda: [128])
    """G hidden widths (D uses them reversed)"""
    dropout: float = 0.0
    """dropout in D"""

    def validate(self):
        super().validate()
        if not self.hidden:
            raise GankitError("model.hidden must be non-empty")


class Generator(nn.Module):
    def __init__(self, z_dim: int, hidden: list[int], out_shape: tuple[int, int, int]):
        super().__init__()
        self.out_shape = out_shape
        layers, width = [], z_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Linear(width, out_shape[0] * out_shape[1] * out_shape[2]), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z).view(len(z), *self.out_shape)  # (B, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], hidden: list[int], dropout: float):
        super().__init__()
        layers, width = [], in_shape[0] * in_shape[1] * in_shape[2]
        for h in reversed(hidden):
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, inplace=True)]
            if dropout:
                layers.append(Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)  # (B,) logits


class GAN(ImageGAN):
    Config = GANConfig
    SAMPLE_LAYOUT = "fixed noise: the same z in every grid, so grids compare across steps"
    """how the sample grids are laid out (shown in the report)"""
    PAPER = "Goodfellow et al. 2014, Generative Adversarial Nets"

    def __init__(self, cfg: GANConfig, info: DataInfo, train):
        super().__init__(cfg, train)
        shape = (info.channels, info.size, info.size)
        self.G = Generator(cfg.z_dim, cfg.hidden, shape)
        self.D = Discriminator(shape, cfg.hidden, cfg.dropout)
