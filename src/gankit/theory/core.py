"""The identities of Goodfellow et al. 2014, section 4, as pure functions on a grid.

For a fixed G the optimal discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x))
(Proposition 1), and at D* the value function is
    V(G, D*) = E_data[log D*] + E_g[log(1 - D*)] = -log 4 + 2 JSD(p_data || p_g)
(Theorem 1), minimal (= -log 4) exactly when p_g = p_data. Densities are arrays sampled
on a regular grid with cell size `dx` (a scalar: the cell's length, or area in 2-D);
integrals are Riemann sums. 0 log 0 = 0 throughout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOG4 = math.log(4.0)


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """D*(x) = p_data / (p_data + p_g); 1/2 where both densities are 0 (any D is optimal there)."""
    p_data, p_g = np.asarray(p_data, float), np.asarray(p_g, float)
    total = p_data + p_g
    return np.divide(p_data, total, out=np.full_like(total, 0.5), where=total > 0)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y) with 0 log(anything) = 0."""
    # y is floored at the smallest normal float: a denormal x can have an underflowed y = x/2
    return np.where(x > 0, x * np.log(np.maximum(np.where(x > 0, y, 1.0), np.finfo(float).tiny)), 0.0)


def kl(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    return float(np.sum(_xlogy(p, p) - _xlogy(p, q)) * dx)


def jsd(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    """Jensen-Shannon divergence (nats) of two densities on a grid; in [0, log 2], symmetric."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m, dx) + 0.5 * kl(q, m, dx)


def value(d: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, dx: float, eps: float = 1e-12) -> float:
    """V(G, D) = ∫ p_data log D + p_g log(1 - D) dx for a discriminator D given on the grid."""
    d = np.clip(np.asarray(d, float), eps, 1 - eps)
    return float(np.sum(_xlogy(p_data, d) + _xlogy(p_g, 1 - d)) * dx)


def value_at_optimum(p_data: np.ndarray, p_g: np.ndarray, dx: float) -> float:
    """V(G, D*) by direct integration (equals -log 4 + 2 JSD; tests check that it does)."""
    d_star = optimal_discriminator(p_data, p_g)
    return float(np.sum(_xlogy(p_data, d_star) + _xlogy(p_g, 1 - d_star)) * dx)


def jsd_bound(p_data: np.ndarray, p_g: np.ndarray, dx: float) -> float:
    """-log 4 + 2 JSD(p_data || p_g): the value of the game at the optimal discriminator."""
    return -LOG4 + 2 * jsd(p_data, p_g, dx)


def gaussian_pdf(x: np.ndarray, mean, std: float) -> np.ndarray:
    """Isotropic normal density; x is (..., d), mean is (d,)."""
    x = np.asarray(x, float)
    mean = np.atleast_1d(np.asarray(mean, float))
    d = mean.shape[0]
    r2 = np.sum((x - mean) ** 2, axis=-1) / std ** 2
    return np.exp(-0.5 * r2) / (2 * math.pi * std ** 2) ** (d / 2)


@dataclass
class Mixture:
    """An isotropic Gaussian mixture: the toy data."""
    name: str
    means: np.ndarray   # (K, d)
    std: float
    weights: np.ndarray  # (K,)
    lo: float           # grid covers [lo, hi]^d
    hi: float
    points: int         # grid points per dimension

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return sum(w * gaussian_pdf(x, m, self.std) for w, m in zip(self.weights, self.means))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        return self.means[k] + self.std * rng.standard_normal((n, self.dim))

    def grid(self) -> tuple[np.ndarray, float]:
        """Grid points (P, d) — for 2-D, row-major over (y, x) — and the cell size dx."""
        axis = np.linspace(self.lo, self.hi, self.points)
        step = axis[1] - axis[0]
        if self.dim == 1:
            return axis[:, None], step
        yy, xx = np.meshgrid(axis, axis, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel()], 1), step ** 2

    def mode_shares(self, samples: np.ndarray, radius: float = 3.0) -> tuple[np.ndarray, float]:
        """Share of samples within `radius` std of each mode, and the share near any mode."""
        dist = np.linalg.norm(samples[:, None, :] - self.means[None], axis=-1)  # (N, K)
        near = dist.min(1) <= radius * self.std
        nearest = dist.argmin(1)
        shares = np.array([np.mean(near & (nearest == k)) for k in range(len(self.means))])
        return shares, float(near.mean())


def toy(name: str) -> Mixture:
    if name == "mixture1d":  # three unequal modes: enough to see D* and mode dropping in 1-D
        return Mixture(name, np.array([[-3.0], [0.0], [3.0]]), 0.4, np.array([0.3, 0.4, 0.3]), -6.0, 6.0, 1201)
    if name == "ring2d":  # the 8-Gaussian ring (radius 2) of the mode-collapse literature
        angles = np.arange(8) * 2 * math.pi / 8
        means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
        return Mixture(name, means, 0.1, np.full(8, 1 / 8), -3.0, 3.0, 181)
    raise ValueError(f"unknown toy data '{name}': mixture1d | ring2d")


TOYS = ("mixture1d", "ring2d")


def kde_on_grid(samples: np.ndarray, mix: Mixture, bandwidth: float) -> np.ndarray:
    """Gaussian KDE of `samples` evaluated on mix.grid(): histogram on the grid, then a
    separable Gaussian blur — O(grid) instead of O(samples x grid). Returns (P,) densities."""
    axis = np.linspace(mix.lo, mix.hi, mix.points)
    step = axis[1] - axis[0]
    edges = np.concatenate([axis - step / 2, [axis[-1] + step / 2]])
    half = int(math.ceil(4 * bandwidth / step))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * step / bandwidth) ** 2)
    kernel /= kernel.sum()
    if mix.dim == 1:
        hist, _ = np.histogram(samples[:, 0], bins=edges)
        dens = np.convolve(hist.astype(float), kernel, mode="same") / (len(samples) * step)
        return dens
    hist, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=[edges, edges])  # rows = y
    blur = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 0, hist)
    blur = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, blur)
    return (blur / (len(samples) * step ** 2)).ravel()
