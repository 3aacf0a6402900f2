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

from ..data.dataset import DataInfo
from ..errors import GankitError
from ..layers import Dropout
from .adversarial import AdversarialConfig, ImageGAN


@dataclass
class CGANConfig(AdversarialConfig):
    g_hidden: list[int] = field(default_factory=lambda: [128, 256, 512, 1024])
    """G widths (the first block has no BatchNorm, as in the reference)"""
    d_hidden: list[int] = field(default_factory=lambda: [512, 512, 512])
    dropout: float = 0.4
    """dropout in D after every hidden layer but the first"""
    bn_eps: float = 0.8

    def validate(self):
        super().validate()
        if not self.g_hidden or not self.d_hidden:
            raise GankitError("model.g_hidden and model.d_hidden must be non-empty")


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


class CGAN(ImageGAN):
    Config = CGANConfig
    SAMPLE_LAYOUT = "one row per class label (0, 1, 2, ... top to bottom), the same noise in every grid"
    """how the sample grids are laid out (shown in the report)"""
    PAPER = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets"

    def __init__(self, cfg: CGANConfig, info: DataInfo, train):
        if not info.num_classes:
            raise GankitError(f"cgan needs labelled data; '{info.source}' has no labels "
                              "(use class subfolders with folder:DIR)")
        super().__init__(cfg, train, info.num_classes)
        shape = (info.channels, info.size, info.size)
        self.G = Generator(cfg, self.num_classes, shape)
        self.D = Discriminator(cfg, self.num_classes, shape)
