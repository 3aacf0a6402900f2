"""The identities of Goodfellow et al. 2014 (Prop. 1, Thm. 1) on known densities, each
loss's closed-form optimum (LSGAN <-> Pearson chi2, hinge <-> TV), a D trained to
convergence landing on D*, and `gankit theory` writing its figures."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from gankit.theory import jsd, jsd_bound, kde_on_grid, optimal_discriminator, toy, value, value_at_optimum
import torch
from torch import nn

from gankit.losses import LOSSES
from gankit.theory.core import gaussian_pdf
from gankit.theory.objectives import (OBJECTIVES, converge_discriminator, d_errors, generator_gradients,
                                      pearson_chi2, population_loss, tv)

X = np.linspace(-15, 15, 30001)[:, None]
DX = float(X[1, 0] - X[0, 0])


def normal(mean, std):
    p = gaussian_pdf(X, [mean], std)
    return p / (p.sum() * DX)  # the identities assume mass 1 on the grid (N(0, 3) loses 6e-7 past +-15)


def test_equal_densities_give_half_and_minus_log4():
    p = normal(0.0, 1.0)
    assert np.allclose(optimal_discriminator(p, p), 0.5)
    assert value_at_optimum(p, p, DX) == pytest.approx(-math.log(4), abs=1e-6)
    assert jsd(p, p, DX) == pytest.approx(0.0, abs=1e-9)


def test_optimal_discriminator_of_two_gaussians_is_a_logistic():
    # N(a, 1) vs N(b, 1): D*(x) = sigmoid((a - b) x + (b^2 - a^2) / 2), exactly.
    a, b = 1.0, -0.5
    x = X[:, 0]
    expected = 1 / (1 + np.exp(-((a - b) * x + (b * b - a * a) / 2)))
    got = optimal_discriminator(normal(a, 1.0), normal(b, 1.0))
    mask = (normal(a, 1.0) + normal(b, 1.0)) > 1e-200
    assert np.allclose(got[mask], expected[mask], atol=1e-9)


def test_value_at_optimum_is_minus_log4_plus_2_jsd():
    for (m1, s1), (m2, s2) in [((0, 1), (2, 1)), ((0, 1), (0, 3)), ((-3, 0.5), (4, 2))]:
        p, q = normal(m1, s1), normal(m2, s2)
        assert value_at_optimum(p, q, DX) == pytest.approx(jsd_bound(p, q, DX), abs=1e-8)


def test_any_discriminator_does_worse_than_dstar():
    p, q = normal(0, 1), normal(1.5, 1)
    best = value_at_optimum(p, q, DX)
    for d in (np.full_like(p, 0.5), optimal_discriminator(p, q) ** 2, 1 / (1 + np.exp(-X[:, 0]))):
        assert value(d, p, q, DX) <= best + 1e-12


def test_jsd_symmetric_bounded_and_log2_for_disjoint_supports():
    p, q = normal(0, 1), normal(1, 2)
    assert jsd(p, q, DX) == pytest.approx(jsd(q, p, DX), abs=1e-12)
    assert 0 < jsd(p, q, DX) < math.log(2)
    far = jsd(normal(-10, 0.3), normal(10, 0.3), DX)
    assert far == pytest.approx(math.log(2), abs=1e-6)
    assert value_at_optimum(normal(-10, 0.3), normal(10, 0.3), DX) == pytest.approx(0.0, abs=1e-5)


def test_jsd_of_equal_variance_gaussians_matches_monte_carlo():
    # Independent check of the grid integral: JSD = E_p[log 2p/(p+q)]/2 + E_q[log 2q/(p+q)]/2 by sampling.
    rng = np.random.default_rng(0)
    xp, xq = rng.normal(0, 1, 400_000), rng.normal(1, 1, 400_000)
    pdf = lambda x, m: np.exp(-0.5 * (x - m) ** 2) / math.sqrt(2 * math.pi)  # noqa: E731
    mc = 0.5 * np.mean(np.log(2 * pdf(xp, 0) / (pdf(xp, 0) + pdf(xp, 1)))) + \
        0.5 * np.mean(np.log(2 * pdf(xq, 1) / (pdf(xq, 0) + pdf(xq, 1))))
    assert jsd(normal(0, 1), normal(1, 1), DX) == pytest.approx(mc, abs=3e-3)


@pytest.mark.parametrize("name", ["mixture1d", "ring2d"])
def test_toy_density_integrates_to_one_and_kde_recovers_it(name):
    mix = toy(name)
    grid, dx = mix.grid()
    p = mix.pdf(grid)
    assert p.sum() * dx == pytest.approx(1.0, abs=1e-3)
    est = kde_on_grid(mix.sample(100_000, np.random.default_rng(0)), mix, bandwidth=mix.std / 4)
    assert jsd(p, est, dx) < 0.02


def test_mode_shares_count_a_collapsed_generator():
    mix = toy("ring2d")
    rng = np.random.default_rng(0)
    shares, near = mix.mode_shares(mix.means[0] + mix.std * rng.standard_normal((1000, 2)))
    assert shares[0] > 0.95 and shares[1:].sum() == 0 and near > 0.95


def test_ring2d_lab_runs_in_process(tmp_path):
    from gankit.theory import run_theory
    out = run_theory(tmp_path / "ring", steps=10, data="ring2d", progress=False, snapshots=2, d_iters=20)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["snapshots"]) == 2 and "converged_d_sup_error" in summary["snapshots"][-1]
    assert (out / "d_vs_dstar.png").is_file() and (out / "losses.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("toy_name", ["mixture1d"])
def test_gankit_theory_writes_figures_and_summary(tmp_path, toy_name):
    out = tmp_path / "theory"
    subprocess.run([sys.executable, "-m", "gankit", "theory", "--out", str(out), "--steps", "50", "--toy", toy_name,
                    "--snapshots", "3", "--no-progress"],
                   check=True, capture_output=True)
    for name in ("d_vs_dstar.png", "value_vs_jsd.png", "density.png", "modes.png", "losses.png", "gradients.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checks"]["max |V(G,D*) - (-log 4 + 2 JSD)| over snapshots"] < 1e-6
    assert summary["checks"]["V(G,D) <= V(G,D*) at every snapshot"] is True
    assert all(r["value"] <= r["bound"] + 1e-9 for r in summary["snapshots"])
    for r in summary["snapshots"]:  # Proposition 1 and Theorem 1 at every snapshot of the lab's own run
        assert r["converged_d_sup_error"] < 0.1 and r["converged_d_mean_error"] < 0.01
        assert r["value_converged"] == pytest.approx(r["bound"], abs=2e-3)
    assert summary["checks"]["max |loss(t*) - closed-form divergence| over losses"] < 1e-8
    assert {c["loss"] for c in summary["snapshots"][0]["losses"]} == {"bce", "lsgan", "hinge"}
    page = (out / "report.html").read_text()
    assert "value_vs_jsd.png" in page and "V(G,D)" in (out / "summary.txt").read_text()


# ---------------------------------------------------------------- D trained to convergence

def _toy_and_generator():
    """mixture1d's exact density and a poor generator's (one broad Gaussian), on its grid."""
    mix = toy("mixture1d")
    grid, dx = mix.grid()
    p = mix.pdf(grid)
    q = gaussian_pdf(grid, [0.7], 1.6)
    return grid, dx, p / (p.sum() * dx), q / (q.sum() * dx)


def test_discriminator_trained_to_convergence_reaches_dstar():
    # Proposition 1 happening: a D fitted to the population loss lands on p_data / (p_data + p_g)
    grid, dx, p, q = _toy_and_generator()
    t, _ = converge_discriminator("bce", grid, p, q, dx, scale=3.0)
    d = 1 / (1 + np.exp(-t))
    sup, mean = d_errors(d, optimal_discriminator(p, q), p, q, dx)
    assert sup < 0.05 and mean < 0.01
    assert value(d, p, q, dx) == pytest.approx(jsd_bound(p, q, dx), abs=2e-3)  # Theorem 1


def test_an_untrained_discriminator_is_far_from_dstar():
    # the check above can fail: a constant D is measured as far off
    _, dx, p, q = _toy_and_generator()
    sup, mean = d_errors(np.full_like(p, 0.5), optimal_discriminator(p, q), p, q, dx)
    assert sup > 0.3 and mean > 0.1


# ----------------------------------------------------------- every loss gankit offers

@pytest.mark.parametrize("name", ["bce", "minimax", "lsgan", "hinge"])
def test_objective_terms_are_gankits_d_losses(name):
    real, fake = torch.randn(64) * 3, torch.randn(48) * 3
    obj = OBJECTIVES[name]
    expected = obj.real(real).mean() + obj.fake(fake).mean()
    assert float(LOSSES[name].d(real, fake)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("name", ["bce", "lsgan", "hinge"])
def test_closed_form_minimum_is_the_divergence_and_is_minimal(name):
    p, q = normal(0, 1), normal(1.2, 1.5)
    obj = OBJECTIVES[name]
    t_star = obj.best(p, q)
    best = population_loss(name, t_star, p, q, DX)
    assert best == pytest.approx(obj.minimum(p, q, DX), abs=1e-8)
    rng = np.random.default_rng(0)
    for _ in range(5):  # any other D does worse
        assert population_loss(name, t_star + 0.3 * rng.standard_normal(len(t_star)), p, q, DX) > best


def test_tv_and_pearson_chi2_limits():
    p = normal(0, 1)
    assert tv(p, p, DX) == pytest.approx(0, abs=1e-12) and pearson_chi2(p, p, DX) == pytest.approx(0, abs=1e-12)
    far_p, far_q = normal(-10, 0.3), normal(10, 0.3)
    assert tv(far_p, far_q, DX) == pytest.approx(1, abs=1e-6)
    assert pearson_chi2(far_p, far_q, DX) == pytest.approx(2, abs=1e-6)
    # Mao et al.'s form: chi2_Pearson(p + q || 2q) = ∫ (2q - (p + q))^2 / (p + q)
    q = normal(1, 2)
    direct = float(np.sum((2 * q - (p + q)) ** 2 / (p + q)) * DX)
    assert pearson_chi2(p, q, DX) == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize("name", ["lsgan", "hinge"])
def test_trained_discriminator_reaches_each_losss_optimum(name):
    grid, dx, p, q = _toy_and_generator()
    t, _ = converge_discriminator(name, grid, p, q, dx, scale=3.0, iters=400)
    closed = OBJECTIVES[name].minimum(p, q, dx)
    assert population_loss(name, t, p, q, dx) == pytest.approx(closed, abs=0.03 * max(closed, 0.1))


def test_non_saturating_gradient_survives_where_minimax_vanishes():
    torch.manual_seed(0)
    G = nn.Linear(2, 1)
    z = torch.randn(512, 2)
    confident = generator_gradients(G, lambda x: -8.0 - x, z)  # D rejects every fake: D(G(z)) ~ 3e-4
    assert confident["mean_d_fake"] < 1e-3
    assert confident["non_saturating"] > 100 * confident["minimax"]
    undecided = generator_gradients(G, lambda x: x - x.detach(), z)  # D(G(z)) = 1/2: both losses agree
    assert undecided["non_saturating"] == pytest.approx(undecided["minimax"], rel=1e-5)
