"""GAN losses as pure functions of discriminator outputs (logits), chosen by name.

    loss_d = LOSSES[name].d(real_logits, fake_logits)
    loss_g = LOSSES[name].g(fake_logits)

`bce` uses the non-saturating generator loss -log D(G(z)) that Goodfellow et al. (2014)
recommend in practice; `minimax` is the literal log(1 - D(G(z))) of the value function
(saturates early in training; kept for the theory lab and for comparison).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import unknown


@dataclass(frozen=True)
class Loss:
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    doc: str
    prob: bool = True
    """D's output is the logit of P(real) (bce, minimax); False: a raw score (lsgan, hinge)"""
    reject: float = math.log(0.05 / 0.95)
    """D's raw output below which it rejects a fake with high confidence (diagnostics):
    P(real) < 0.05 for the logit losses"""


def _bce_d(real: Tensor, fake: Tensor) -> Tensor:
    # -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit), in the stable softplus form
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    # Mao et al. 2017, a=0 b=1, halved as in the CycleGAN / PyTorch-GAN reference code
    return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())


def _hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


LOSSES: dict[str, Loss] = {
    "bce": Loss(_bce_d, lambda fake: F.softplus(-fake).mean(),
                "binary cross-entropy, non-saturating G loss (Goodfellow et al. 2014)"),
    "minimax": Loss(_bce_d, lambda fake: -F.softplus(fake).mean(),
                    "binary cross-entropy, the original saturating G loss log(1 - D(G(z)))"),
    # LSGAN's optimal D (a=0, b=1) is p_data / (p_data + p_g), bce's probability: 0.05 reads the same
    "lsgan": Loss(_lsgan_d, lambda fake: (fake - 1).pow(2).mean(),
                  "least squares (Mao et al. 2017), as in PyTorch-GAN's cgan and CycleGAN", prob=False, reject=0.05),
    "hinge": Loss(_hinge_d, lambda fake: -fake.mean(), "hinge (Lim & Ye 2017; Miyato et al. 2018)",
                  prob=False, reject=-1.0),  # past the margin: no D gradient from that fake
}


@torch.no_grad()
def d_stats(loss: Loss, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
    """Mean D(x), D(G(z)) (probabilities, or raw scores for lsgan/hinge) and the share of fakes
    D rejects with high confidence, from D's outputs on a batch; device tensors, no sync."""
    real, fake = real.float(), fake.float()
    out = torch.sigmoid if loss.prob else (lambda x: x)
    return {"d_real": out(real).mean(), "d_fake": out(fake).mean(),
            "d_fake_rejected": (fake < loss.reject).float().mean()}


def get_loss(name: str) -> Loss:
    if name not in LOSSES:
        raise unknown("loss", name, LOSSES)
    return LOSSES[name]
