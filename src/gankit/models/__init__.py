"""The model registry. Every entry implements the whole `GANModel` protocol
(models/protocol.py); tests are parametrised over this dict, so a new model gets them too."""
from __future__ import annotations

from .cgan import CGAN
from .cyclegan import CycleGAN
from .dcgan import DCGAN
from .gan import GAN
from .protocol import GANModel, Phase, Update
from .seqgan import SeqGAN

MODELS: dict[str, type[GANModel]] = {"gan": GAN, "cgan": CGAN, "dcgan": DCGAN, "cyclegan": CycleGAN,
                                     "seqgan": SeqGAN}

__all__ = ["MODELS", "GANModel", "Phase", "Update"]
