"""Conditional GAN: G and D both see the class label.

Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014, in the widely used
reference architecture (PyTorch-GAN's cgan.py): a label embedding concatenated with z,
G 110->128->256->512->1024->C*H*W with BatchNorm and LeakyReLU(0.2), tanh out; D on
[image, label embedding] ->512->512->512->1 with dropout 0.4.
Departures: the loss is selectable — `bce` (the paper) or `lsgan` (what the reference
code uses); BatchNorm eps defaults to the reference's 0.8 (its positional-argument
quirk, kept so results match; set model.bn_eps=1e-5 for the textbook value).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import GankitError
from ..losses import get_loss
from .common import Dropout, adversarial_step, check_updates, fixed_inputs, gan_optimizers, sample_labels


@dataclass
class CGANConfig:
    z_dim: int = 100
    """noise dimension"""
    g_hidden: list[int] = field(default_factory=lambda: [128, 256, 512, 1024])
    """G widths (the first block has no BatchNorm, as in the reference)"""
    d_hidden: list[int] = field(default_factory=lambda: [512, 512, 512])
    dropout: float = 0.4
    """dropout in D after every hidden layer but the first"""
    bn_eps: float = 0.8
    loss: str = "bce"
    """bce (the paper) | lsgan (the reference implementation) | minimax | hinge"""
    d_steps: int = 1
    """k: discriminator updates per generator update"""
    updates: str = "alternating"
    """alternating (the paper: k D updates, then G on fresh noise) | simultaneous (both players'
    gradients at the same point from one batch of fakes, as the reference scripts compute; needs d_steps=1;
    cheaper, but trained cgan clearly worse in docs/benchmarks.md)"""
    reuse_fakes: bool = False
    """alternating: G's update reuses the last D update's fakes instead of fresh noise (one G forward
    fewer per step, as PyTorch's DCGAN example does). simultaneous always does"""

    def validate(self):
        get_loss(self.loss)
        check_updates(self.updates, self.d_steps)
        if self.z_dim <= 0 or self.d_steps <= 0 or not self.g_hidden or not self.d_hidden:
            raise GankitError("model.z_dim, model.d_steps must be positive; hidden lists non-empty")


class Generator(nn.Module):
    def __init__(self, cfg: CGANConfig, num_classes: int, out_shape: tuple[int, int, int]):
        super().__init__()
        self.out_shape = out_shape
        self.label_emb = nn.Embedding(num_classes, num_classes)
        layers, width = [], cfg.z_dim + num_classes
        for i, h in enumerate(cfg.g_hidden):
            layers.append(nn.Linear(width, h))
            if i > 0:
                layers.append(nn.BatchNorm1d(h, eps=cfg.bn_eps))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width = h
        layers += [nn.Linear(width, out_shape[0] * out_shape[1] * out_shape[2]), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        h = torch.cat([self.label_emb(labels), z], dim=1)  # (B, classes + z_dim)
        return self.net(h).view(len(z), *self.out_shape)


class Discriminator(nn.Module):
    def __init__(self, cfg: CGANConfig, num_classes: int, in_shape: tuple[int, int, int]):
        super().__init__()
        self.label_emb = nn.Embedding(num_classes, num_classes)
        layers, width = [], num_classes + in_shape[0] * in_shape[1] * in_shape[2]
        for i, h in enumerate(cfg.d_hidden):
            layers.append(nn.Linear(width, h))
            if i > 0 and cfg.dropout:
                layers.append(Dropout(cfg.dropout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = torch.cat([x.flatten(1), self.label_emb(labels)], dim=1)
        return self.net(h).squeeze(1)  # (B,) logits


class CGAN(nn.Module):
    Config = CGANConfig
    GENERATORS = ("G",)
    """the networks whose weights `train.ema` averages"""
    SAMPLE_LAYOUT = "one row per class label (0, 1, 2, ... top to bottom), the same noise in every grid"
    """how the sample grids are laid out (shown in the report)"""
    DATA_KIND = "image"
    PAPER = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets"

    def __init__(self, cfg: CGANConfig, data, train):
        super().__init__()
        self.cfg, self.train_cfg = cfg, train
        self.num_classes = data.info.get("num_classes", 0)
        if not self.num_classes:
            raise GankitError(f"cgan needs labelled data; '{data.info.get('source')}' has no labels "
                              "(use class subfolders with folder:DIR)")
        shape = (data.info["channels"], data.info["size"], data.info["size"])
        self.G = Generator(cfg, self.num_classes, shape)
        self.D = Discriminator(cfg, self.num_classes, shape)
        self.loss = get_loss(cfg.loss)
        self.reals_per_step = cfg.d_steps

    def configure_optimizers(self):
        return gan_optimizers(self.G, self.D, self.train_cfg)

    def train_step(self, batch, update):
        return adversarial_step(self.G, self.D, self.loss, batch["image"], batch["label"],
                                self.cfg.z_dim, self.cfg.d_steps, update,
                                self.cfg.updates, self.cfg.reuse_fakes)

    def fixed_inputs(self, n: int, generator: torch.Generator):
        return fixed_inputs(n, self.cfg.z_dim, self.num_classes, generator)

    @torch.no_grad()
    def render(self, fixed):
        return self.G(fixed["z"].to(self.device), fixed["label"].to(self.device)), int(fixed["nrow"])

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None) -> Tensor:
        if label is not None and not 0 <= label < self.num_classes:
            raise GankitError(f"--label must be in 0..{self.num_classes - 1}, got {label}")
        labels = sample_labels(n, self.num_classes, label, self.device)
        return self.G(torch.randn(n, self.cfg.z_dim, device=self.device), labels)

    @property
    def device(self):
        return next(self.parameters()).device
