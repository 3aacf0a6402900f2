"""Each loss gankit offers, with G frozen: D's best response, found two ways.

The proofs of Goodfellow et al. 2014 (Prop. 1), Mao et al. 2017 (LSGAN, Thm. 1) and the
hinge loss's total-variation bound all minimise D's loss *pointwise*: with G fixed, D's
population loss is  ∫ p_data(x) r(D(x)) + p_g(x) f(D(x)) dx  for a per-sample loss on
reals r and on fakes f, and each x can be optimised on its own. So:

- in closed form: the pointwise minimiser t*(x) and the minimum, a divergence:
    bce / minimax  sigmoid(t*) = p_data / (p_data + p_g)   min = log 4 - 2 JSD
    lsgan          t*          = p_data / (p_data + p_g)   min = 1/4 - chi2 / 8
                   (chi2 = ∫ (p_data - p_g)^2 / (p_data + p_g): Mao et al.'s Pearson
                   chi2(p_data + p_g || 2 p_g); gankit's lsgan is their a=0, b=1)
    hinge          t*          = sign(p_data - p_g)        min = 2 - 2 TV
- by training (`converge_discriminator`): a network D fitted by full-batch Adam to the
  same integral on the grid — the infinite-sample limit, so what it reaches is limited by
  the network and the optimiser, not by minibatch noise. The lab checks that it lands on
  the closed form, which is Proposition 1 (and its analogues) actually happening.

The per-sample terms below must equal LOSSES[name].d in gankit.losses term by term
(tests/test_theory.py checks it), so this is the theory of the losses gankit trains with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import LOSSES
from .core import LOG4, jsd, optimal_discriminator


def tv(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    """Total variation distance (1/2) ∫ |p - q|, in [0, 1]."""
    return float(0.5 * np.sum(np.abs(np.asarray(p, float) - np.asarray(q, float))) * dx)


def pearson_chi2(p_data: np.ndarray, p_g: np.ndarray, dx: float) -> float:
    """Mao et al.'s chi2_Pearson(p_data + p_g || 2 p_g) = ∫ (p_data - p_g)^2 / (p_data + p_g), in [0, 2]."""
    p, q = np.asarray(p_data, float), np.asarray(p_g, float)
    total = p + q
    ratio = np.divide((p - q) ** 2, total, out=np.zeros_like(total), where=total > 0)
    return float(np.sum(ratio) * dx)


@dataclass(frozen=True)
class Objective:
    """D's loss split into per-sample terms on real and fake outputs t (D's raw output)."""
    real: Callable[[Tensor], Tensor]
    fake: Callable[[Tensor], Tensor]
    best: Callable[[np.ndarray, np.ndarray], np.ndarray]  # pointwise minimiser t*(x) of p_d r(t) + p_g f(t)
    minimum: Callable[[np.ndarray, np.ndarray, float], float]  # its integral, as a divergence
    divergence: str
    to_unit: Callable[[Tensor], Tensor]  # t -> the [0, 1] "D(x)" the figures show


def _bce_best(p_data, p_g):
    d = np.clip(optimal_discriminator(p_data, p_g), 1e-12, 1 - 1e-12)
    return np.log(d) - np.log1p(-d)  # the logit of D*


def _sign(p_data, p_g):
    return np.sign(np.asarray(p_data, float) - np.asarray(p_g, float))


OBJECTIVES: dict[str, Objective] = {
    "bce": Objective(lambda t: F.softplus(-t), lambda t: F.softplus(t), _bce_best,
                     lambda p, q, dx: LOG4 - 2 * jsd(p, q, dx), "log 4 - 2 JSD", torch.sigmoid),
    "lsgan": Objective(lambda t: 0.5 * (t - 1) ** 2, lambda t: 0.5 * t ** 2, optimal_discriminator,
                       lambda p, q, dx: 0.25 - pearson_chi2(p, q, dx) / 8, "1/4 - chi2/8",
                       lambda t: t.clamp(0, 1)),
    "hinge": Objective(lambda t: F.relu(1 - t), lambda t: F.relu(1 + t), _sign,
                       lambda p, q, dx: 2 - 2 * tv(p, q, dx), "2 - 2 TV", lambda t: (t.clamp(-1, 1) + 1) / 2),
}
OBJECTIVES["minimax"] = OBJECTIVES["bce"]  # same D loss; only G's loss differs


def population_loss(name: str, t: np.ndarray | Tensor, p_data, p_g, dx: float) -> float:
    """∫ p_data r(t) + p_g f(t) dx for D outputs t given on the grid."""
    obj = OBJECTIVES[name]
    t = torch.as_tensor(np.asarray(t, float))
    return float((torch.as_tensor(p_data) * obj.real(t) + torch.as_tensor(p_g) * obj.fake(t)).sum() * dx)


class FourierD(nn.Module):
    """x -> [x, sin(xB), cos(xB)] -> MLP -> D's raw output. A plain small MLP learns sharp
    functions slowly (spectral bias, Rahaman et al. 2019) and would stay far from D* at its
    steep edges, measuring its own capacity rather than Proposition 1; random Fourier
    features (Tancik et al. 2020) at the data's length scale remove that."""

    def __init__(self, dim: int, scale: float, freqs: int = 16, hidden: int = 64, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(dim, freqs, generator=gen) * scale)
        self.net = nn.Sequential(nn.Linear(dim + 2 * freqs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:  # (N, dim) -> (N, 1)
        h = x @ self.B
        return self.net(torch.cat([x, torch.sin(h), torch.cos(h)], 1))


def converge_discriminator(name: str, grid: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, dx: float,
                           scale: float, iters: int = 300, lr: float = 1e-2, seed: int = 0
                           ) -> tuple[np.ndarray, FourierD]:
    """Train a fresh FourierD on G frozen (its density p_g) to convergence on the population
    loss; return its raw outputs t on the whole grid, and D. Full batch with a cosine-decayed LR:
    the loss is a fixed function, so it settles instead of jittering. Grid points with
    (almost) no mass are left out of the fit — they weigh nothing in the loss. The global
    torch RNG is left as it was (a caller's training run must not notice the fit)."""
    obj = OBJECTIVES[name]
    mass = p_data + p_g
    keep = mass > 1e-4 * mass.max()
    x = torch.as_tensor(grid[keep], dtype=torch.float32)
    w_real = torch.as_tensor(p_data[keep] * dx, dtype=torch.float32)
    w_fake = torch.as_tensor(p_g[keep] * dx, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        D = FourierD(grid.shape[1], scale, seed=seed)
    opt = torch.optim.Adam(D.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    with torch.enable_grad():
        for _ in range(iters):
            t = D(x).squeeze(1)
            loss = (w_real * obj.real(t)).sum() + (w_fake * obj.fake(t)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    D.requires_grad_(False)
    with torch.no_grad():
        return D(torch.as_tensor(grid, dtype=torch.float32)).squeeze(1).double().numpy(), D


def d_errors(d: np.ndarray, d_star: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, dx: float) -> tuple[float, float]:
    """(sup, mean) of |D - D*|: the sup over the grid points that hold mass (the mixture
    (p_data + p_g)/2 at >= 1% of its peak; elsewhere D* is 0/0 and any D is optimal), the
    mean weighted by that mixture (the error where D is used)."""
    m = 0.5 * (p_data + p_g)
    err = np.abs(d - d_star)
    support = m >= 1e-2 * m.max()
    return float(err[support].max()), float(np.sum(err * m) * dx)


def generator_gradients(G: nn.Module, D: Callable[[Tensor], Tensor], z: Tensor) -> dict[str, float]:
    """‖∇θ loss_G‖ for the non-saturating and the minimax G loss (gankit.losses) at one
    (G, D), plus the mean D(G(z)). Where D rejects fakes confidently (D(G(z)) -> 0, the
    start of training), d/dt log(1 - sigmoid(t)) = -sigmoid(t) -> 0 while
    d/dt -log sigmoid(t) = -(1 - sigmoid(t)) -> -1: minimax's gradient vanishes."""
    out = {}
    for name in ("bce", "minimax"):
        G.zero_grad(set_to_none=True)
        logits = D(G(z)).squeeze(-1)
        LOSSES[name].g(logits).backward()
        norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in G.parameters() if p.grad is not None))
        out["non_saturating" if name == "bce" else "minimax"] = norm
    with torch.no_grad():
        out["mean_d_fake"] = float(torch.sigmoid(D(G(z))).mean())
    G.zero_grad(set_to_none=True)
    return out
