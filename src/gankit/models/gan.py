"""Vanilla GAN with MLP generator and discriminator.

Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
The small preset is the seed notebook's network (G 100->128->784, D 784->128->1);
`configs/gan-deep.yaml` is a deeper 256-512-1024 variant.
Departures from the paper: LeakyReLU(0.2) in D instead of maxout, no dropout by default,
and the non-saturating G loss (the paper's own practical recommendation).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..losses import get_loss
from .common import Dropout, adversarial_step, check_updates, fixed_inputs, gan_optimizers


@dataclass
class GANConfig:
    z_dim: int = 100
    """noise dimension"""
    hidden: list[int] = field(default_factory=lambda: [128])
    """G hidden widths (D uses them reversed)"""
    loss: str = "bce"
    """bce | minimax | lsgan | hinge"""
    d_steps: int = 1
    """k: discriminator updates per generator update"""
    updates: str = "alternating"
    """alternating (the paper: k D updates, then G on fresh noise) | simultaneous (both players'
    gradients at the same point from one batch of fakes, as the reference scripts compute; needs d_steps=1;
    cheaper, but trained cgan clearly worse in docs/benchmarks.md)"""
    reuse_fakes: bool = False
    """alternating: G's update reuses the last D update's fakes instead of fresh noise (one G forward
    fewer per step, as PyTorch's DCGAN example does). simultaneous always does"""
    dropout: float = 0.0
    """dropout in D"""

    def validate(self):
        get_loss(self.loss)
        check_updates(self.updates, self.d_steps)
        if self.z_dim <= 0 or self.d_steps <= 0 or not self.hidden:
            from ..errors import GankitError
            raise GankitError("model.z_dim and model.d_steps must be positive and model.hidden non-empty")


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


class GAN(nn.Module):
    Config = GANConfig
    GENERATORS = ("G",)
    """the networks whose weights `train.ema` averages"""
    SAMPLE_LAYOUT = "fixed noise: the same z in every grid, so grids compare across steps"
    """how the sample grids are laid out (shown in the report)"""
    DATA_KIND = "image"
    PAPER = "Goodfellow et al. 2014, Generative Adversarial Nets"

    def __init__(self, cfg: GANConfig, data, train):
        super().__init__()
        self.cfg, self.train_cfg = cfg, train
        shape = (data.info["channels"], data.info["size"], data.info["size"])
        self.G = Generator(cfg.z_dim, cfg.hidden, shape)
        self.D = Discriminator(shape, cfg.hidden, cfg.dropout)
        self.loss = get_loss(cfg.loss)
        self.reals_per_step = cfg.d_steps

    def configure_optimizers(self):
        return gan_optimizers(self.G, self.D, self.train_cfg)

    def train_step(self, batch, update):
        return adversarial_step(self.G, self.D, self.loss, batch["image"], None,
                                self.cfg.z_dim, self.cfg.d_steps, update,
                                self.cfg.updates, self.cfg.reuse_fakes)

    def fixed_inputs(self, n: int, generator: torch.Generator):
        return fixed_inputs(n, self.cfg.z_dim, 0, generator)

    @torch.no_grad()
    def render(self, fixed):
        return self.G(fixed["z"].to(self.device)), int(fixed["nrow"])

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None) -> Tensor:
        if label is not None:
            from ..errors import GankitError
            raise GankitError("this model is not conditional: --label needs cgan or a conditional dcgan")
        return self.G(torch.randn(n, self.cfg.z_dim, device=self.device))

    @property
    def device(self):
        return next(self.parameters()).device
