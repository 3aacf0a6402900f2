"""`gankit theory`: train a small GAN on toy data and watch the theory hold.

At evenly spaced snapshots we estimate p_g with a KDE of 50,000 generator samples
(histogram + Gaussian blur on the grid) and compute, by integration on the grid, the
exact optimal discriminator D* = p_data/(p_data + p_g) for that G and the value of the
game at it, V(G, D*) = -log 4 + 2 JSD(p_data || p_g). Then G is frozen and a fresh D is
trained to convergence on it (objectives.converge_discriminator: full-batch Adam on the
population loss, the infinite-sample limit): Proposition 1 says it lands on D*, Theorem 1
that its value is -log 4 + 2 JSD, and both are measured (|D - D*| sup and mean,
V(G, D_converged) vs the bound). The D of the training loop itself is shown too: it is one
Adam step per G step behind a moving target, so it never reaches D* — which is why the
lab trains a converged one. The same is done for each loss gankit offers (LSGAN <->
Pearson chi2, hinge <-> total variation) at the first and last snapshot, and the
non-saturating vs minimax generator gradients are measured against the converged D.

Departures from the paper: G is trained with the non-saturating loss -log D(G(z)) (the
paper's own practical advice), and p_g is a KDE, so JSD is that of the smoothed p_g (the
bandwidth is a quarter of the data's mode std, so the blur is small).
"""
from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import GankitError
from ..figures import plt, save_figure
from .core import LOG4, TOYS, jsd, kde_on_grid, optimal_discriminator, toy, value, value_at_optimum
from .objectives import (OBJECTIVES, converge_discriminator, d_errors, generator_gradients, pearson_chi2,
                         population_loss, tv)

LAB_LOSSES = ("bce", "lsgan", "hinge")  # minimax shares bce's D loss


def _mlp(d_in: int, d_out: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, d_out))


def _converge(name, ctx, p_g, iters):
    mix = ctx["mix"]
    return converge_discriminator(name, ctx["grid"], ctx["p_data"], p_g, ctx["dx"], scale=1.2 / mix.std,
                                  iters=iters)


def _loss_check(name, ctx, p_g, iters) -> dict:
    """One loss at one frozen G: the trained D's loss vs the closed-form minimum (a divergence)."""
    obj, p_data, dx = OBJECTIVES[name], ctx["p_data"], ctx["dx"]
    t, _ = _converge(name, ctx, p_g, iters)
    t_star = obj.best(p_data, p_g)
    unit = lambda v: obj.to_unit(torch.as_tensor(v)).numpy()  # noqa: E731
    sup, mean = d_errors(unit(t), unit(t_star), p_data, p_g, dx)
    return {"loss": name, "divergence": obj.divergence, "closed_form_min": obj.minimum(p_data, p_g, dx),
            "loss_at_t_star": population_loss(name, t_star, p_data, p_g, dx),
            "trained_min": population_loss(name, t, p_data, p_g, dx), "d_sup_error": sup, "d_mean_error": mean}


@torch.no_grad()
def _snapshot(step, G, D, ctx, z_dim, rng_t, iters, losses, n_kde=50_000):
    mix, grid, dx, p_data = ctx["mix"], ctx["grid"], ctx["dx"], ctx["p_data"]
    samples = G(torch.randn(n_kde, z_dim, generator=rng_t)).numpy().astype(float)
    p_g = kde_on_grid(samples, mix, bandwidth=mix.std / 4)
    p_g = p_g / max(p_g.sum() * dx, 1e-300)  # the identities need densities of mass 1 on the grid
    d = torch.sigmoid(D(torch.as_tensor(grid, dtype=torch.float32))).squeeze(1).numpy().astype(float)
    d_star = optimal_discriminator(p_data, p_g)
    with torch.enable_grad():
        t_conv, D_conv = _converge("bce", ctx, p_g, iters)
        grads = generator_gradients(G, D_conv, torch.randn(4096, z_dim, generator=rng_t))
    d_conv = 1 / (1 + np.exp(-t_conv))
    sup, mean = d_errors(d_conv, d_star, p_data, p_g, dx)
    train_sup, train_mean = d_errors(d, d_star, p_data, p_g, dx)
    shares, near = mix.mode_shares(samples)
    covered = int(np.sum(shares >= 0.25 * mix.weights))  # a mode holding >= 1/4 of its fair share of all samples
    rec = {"step": step, "value": value(d, p_data, p_g, dx), "value_converged": value(d_conv, p_data, p_g, dx),
           "value_at_dstar": value_at_optimum(p_data, p_g, dx), "jsd": jsd(p_data, p_g, dx),
           "pearson_chi2": pearson_chi2(p_data, p_g, dx), "tv": tv(p_data, p_g, dx),
           "converged_d_sup_error": sup, "converged_d_mean_error": mean,
           "training_d_sup_error": train_sup, "training_d_mean_error": train_mean,
           "d_dstar_l1": float(np.sum(np.abs(d - d_star) * 0.5 * (p_data + p_g)) * dx),
           "g_grad_non_saturating": grads["non_saturating"], "g_grad_minimax": grads["minimax"],
           "mean_d_fake": grads["mean_d_fake"],
           "modes_covered": covered, "near_mode_share": near, "mode_shares": shares.round(4).tolist()}
    rec["bound"] = -LOG4 + 2 * rec["jsd"]
    with torch.enable_grad():
        rec["losses"] = [_loss_check(name, ctx, p_g, iters) for name in losses]
    return rec, {"p_g": p_g, "d": d, "d_conv": d_conv, "d_star": d_star, "samples": samples[:2000]}


def toy_context(data: str) -> dict:
    """The toy data on its grid: the mixture, grid points, cell size and exact density."""
    if data not in TOYS:
        raise GankitError(f"unknown toy data '{data}': {' | '.join(TOYS)}")
    mix = toy(data)
    grid, dx = mix.grid()
    p_data = mix.pdf(grid)
    p_data = p_data / (p_data.sum() * dx)  # mass 1 on the grid (the tails beyond it are ~1e-30)
    return {"mix": mix, "grid": grid, "dx": dx, "p_data": p_data}


def train_toy(data: str = "mixture1d", steps: int = 2000, seed: int = 0, snapshots: int = 9, batch: int = 256,
              lr: float = 2e-4, d_iters: int = 300, progress: bool = False) -> tuple[list[dict], list[dict], dict]:
    """Train a small MLP GAN; return per-snapshot records, arrays and the fixed context.
    lr 2e-4 (the DCGAN rate): at 1e-3 the toy game oscillates and JSD stops falling after
    a few hundred steps."""
    if steps < 1:
        raise GankitError(f"--steps must be positive, got {steps}")
    if snapshots < 2:
        raise GankitError(f"--snapshots must be at least 2 (the start and the end), got {snapshots}")
    ctx = toy_context(data)
    mix = ctx["mix"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rng_t = torch.Generator().manual_seed(seed + 1)
    z_dim = 2
    G, D = _mlp(z_dim, mix.dim), _mlp(mix.dim, 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    at = sorted({round(i * steps / (snapshots - 1)) for i in range(snapshots)})
    checked = {at[0], at[-1]}  # every loss's exact check: at the start and at the end
    records, arrays = [], []
    bar = tqdm(total=steps, desc=f"theory {data}", unit="step", disable=not progress, dynamic_ncols=True,
               mininterval=1.0)
    for step in range(steps + 1):
        if step in at:
            bar.set_postfix_str(f"snapshot {len(records) + 1}/{len(at)}: training D to convergence")
            rec, arr = _snapshot(step, G, D, ctx, z_dim, rng_t, d_iters, LAB_LOSSES if step in checked else ())
            records.append(rec)
            arrays.append(arr)
            bar.set_postfix_str(f"JSD {rec['jsd']:.3f}, |D-D*| sup {rec['converged_d_sup_error']:.3f}")
        if step == steps:
            break
        real = torch.as_tensor(mix.sample(batch, rng), dtype=torch.float32)
        fake = G(torch.randn(batch, z_dim))
        lr_, lf = D(real), D(fake.detach())  # logits
        loss_d = F.softplus(-lr_).mean() + F.softplus(lf).mean()  # -log D(x) - log(1 - D(G(z)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fake)).mean()  # non-saturating: -log D(G(z))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        bar.update(1)
    bar.close()
    return records, arrays, ctx


def _legend_below(fig, ax, ncol: int = 3, **kw) -> None:
    """One legend under the axes, so it never covers a curve."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=ncol, fontsize=8, frameon=False, **kw)


def _figures(records, arrays, ctx, out: Path) -> list[Path]:
    mix, grid, p_data = ctx["mix"], ctx["grid"], ctx["p_data"]
    steps = [r["step"] for r in records]
    paths = []
    pick = sorted({0, len(records) // 2, len(records) - 1}) if mix.dim == 2 else list(range(len(records)))[:9]

    # 1. Proposition 1: converged D vs D*, per snapshot
    if mix.dim == 1:
        x = grid[:, 0]
        cols = 3
        rows = math.ceil(len(pick) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.5 * rows + 1.2), squeeze=False, sharex=True)
        for ax, i in zip(axes.ravel(), pick):
            a, r = arrays[i], records[i]
            ax.fill_between(x, p_data / p_data.max(), color="tab:blue", alpha=0.15, label="p_data (scaled)")
            ax.fill_between(x, a["p_g"] / max(a["p_g"].max(), 1e-12), color="tab:orange", alpha=0.2,
                            label="p_g (scaled)")
            ax.plot(x, a["d"], color="0.6", lw=1, label="D of the training loop")
            mass = p_data + a["p_g"]
            off = mass < 1e-2 * mass.max()  # D* is 0/0 off the mass: any D is optimal there
            ax.plot(x, np.where(off, np.nan, a["d_conv"]), "k", lw=2.2, label="D trained to convergence on frozen G")
            ax.plot(x, np.where(off, np.nan, a["d_star"]), color="red", ls="--", lw=1.3,
                    label="D* = p_data / (p_data + p_g)")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"step {r['step']}: sup|D-D*| {r['converged_d_sup_error']:.3f}, "
                         f"mean {r['converged_d_mean_error']:.4f}", fontsize=8.5)
        for ax in axes.ravel()[len(pick):]:
            ax.axis("off")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
        fig.suptitle("Proposition 1: with G frozen, D trained to convergence (black) lies on the optimal "
                     "D* (red dashed);\nthe training loop's D (grey) takes one step per G step and lags behind",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    else:
        n = mix.points
        fig, axes = plt.subplots(3, len(pick), figsize=(3.4 * len(pick) + 1, 11), squeeze=False)
        fig.subplots_adjust(hspace=0.45, top=0.9)  # room for each panel's two-line title
        ext = [mix.lo, mix.hi, mix.lo, mix.hi]
        for j, i in enumerate(pick):
            mass = p_data + arrays[i]["p_g"]
            off = mass < 1e-2 * mass.max()
            rows = [("d_conv", "D converged on frozen G"), ("d_star", "exact D* (blank: no mass)"),
                    ("d", "D of the training loop")]
            for r, (key, title) in enumerate(rows):
                im = axes[r, j].imshow(np.where(off, np.nan, arrays[i][key]).reshape(n, n), origin="lower",
                                       extent=ext, vmin=0, vmax=1, cmap="coolwarm")
                axes[r, j].set_title(f"{title}\nstep {records[i]['step']}", fontsize=8.5)
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="D(x)")
        fig.suptitle("Proposition 1: the converged D (top) matches D* (middle); the training loop's D "
                     "(bottom) lags", fontsize=10)
    paths.append(save_figure(fig, out / "d_vs_dstar.png", dpi=90, tight=False, bbox_inches="tight"))

    # 2. Theorem 1: V(G, D_converged) = -log 4 + 2 JSD, and how close each D gets to D*
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.4))
    a1.plot(steps, [r["bound"] for r in records], "-", color="red", lw=2, label="-log 4 + 2 JSD = V(G, D*)")
    a1.plot(steps, [r["value_converged"] for r in records], "ko", ms=6, label="V(G, D converged)")
    a1.plot(steps, [r["value"] for r in records], "x", color="0.5", label="V(G, D of the training loop)")
    a1.axhline(-LOG4, color="gray", lw=1, ls=":", label="-log 4 (reached when p_g = p_data)")
    a1.set_xlabel("step")
    a1.set_ylabel("nats")
    a1.set_title("Theorem 1: the converged D's value sits on -log 4 + 2 JSD,\nwhich falls towards -log 4 as G "
                 "improves", fontsize=9.5)
    a1.grid(alpha=0.3)
    _legend_below(fig, a1, ncol=2)
    a2.semilogy(steps, [r["converged_d_sup_error"] for r in records], "ko-", label="converged D: sup")
    a2.semilogy(steps, [r["converged_d_mean_error"] for r in records], "k^--", label="converged D: mean")
    a2.semilogy(steps, [r["training_d_sup_error"] for r in records], "o-", color="0.6", label="training D: sup")
    a2.semilogy(steps, [r["training_d_mean_error"] for r in records], "^--", color="0.6",
                label="training D: mean")
    a2.set_xlabel("step")
    a2.set_ylabel("|D - D*| (where the mass is)")
    a2.set_title("|D - D*|: small once D is trained to convergence", fontsize=9.5)
    a2.grid(alpha=0.3, which="both")
    _legend_below(fig, a2, ncol=2)
    paths.append(save_figure(fig, out / "value_vs_jsd.png", dpi=90, bbox_inches="tight"))

    # 3. generated vs data density
    if mix.dim == 1:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        ax.plot(grid[:, 0], p_data, label="p_data (exact)", lw=2.5, color="tab:blue")
        for i, c in zip(sorted({0, len(records) // 2, len(records) - 1}), ("0.75", "tab:orange", "k")):
            ax.plot(grid[:, 0], arrays[i]["p_g"], lw=1.2, color=c,
                    label=f"p_g at step {records[i]['step']} (JSD {records[i]['jsd']:.3f})")
        ax.set_xlabel("x")
        _legend_below(fig, ax, ncol=2)
    else:
        fig, ax = plt.subplots(figsize=(5, 5.6))
        n = mix.points
        ax.contour(grid[:, 0].reshape(n, n), grid[:, 1].reshape(n, n), p_data.reshape(n, n), levels=5, cmap="Blues")
        s = arrays[-1]["samples"]
        ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:orange", alpha=0.5,
                   label=f"G samples, step {records[-1]['step']}; blue contours: p_data")
        ax.set_aspect("equal")
        _legend_below(fig, ax, ncol=1)
    ax.set_title("generated density p_g approaching the data density", fontsize=10)
    paths.append(save_figure(fig, out / "density.png", dpi=90, bbox_inches="tight"))

    # 4. mode coverage over time
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(steps, [r["modes_covered"] for r in records], "o-")
    a1.axhline(len(mix.weights), color="gray", ls=":", lw=1)
    a1.set_ylim(-0.2, len(mix.weights) + 0.5)
    a1.set_title(f"modes covered of {len(mix.weights)} (>= 1/4 of their fair share)", fontsize=9)
    a1.set_xlabel("step")
    shares = np.array([r["mode_shares"] for r in records])  # (S, K)
    a2.stackplot(steps, shares.T, labels=[f"mode {k}" for k in range(shares.shape[1])])
    a2.set_title("share of samples within 3 std of each mode", fontsize=9)
    a2.set_xlabel("step")
    a2.set_ylim(0, 1)
    a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    paths.append(save_figure(fig, out / "modes.png", dpi=90, bbox_inches="tight"))

    # 5. every loss: its D lands on the closed-form optimum, a divergence
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.4))
    for key, label, top in (("jsd", "JSD / log 2 (bce, minimax)", math.log(2)),
                            ("pearson_chi2", "Pearson chi2 / 2 (lsgan)", 2.0), ("tv", "TV (hinge)", 1.0)):
        a1.plot(steps, [r[key] / top for r in records], "o-", label=label)
    a1.set_ylim(0, 1.05)
    a1.set_xlabel("step")
    a1.set_ylabel("share of its maximum")
    a1.set_title("the divergence each loss minimises, all falling as G improves", fontsize=9.5)
    a1.grid(alpha=0.3)
    _legend_below(fig, a1, ncol=3)
    checks = [(r["step"], c) for r in records for c in r.get("losses", [])]
    markers = {"bce": "o", "lsgan": "s", "hinge": "D"}
    for step, c in checks:
        a2.plot(c["closed_form_min"], c["trained_min"], markers[c["loss"]], ms=8, mfc="none",
                color="tab:blue" if step == steps[0] else "tab:red",
                label=f"{c['loss']} ({c['divergence']}), step {step}")
    lo = min([c["closed_form_min"] for _, c in checks] + [0])
    hi = max([c["closed_form_min"] for _, c in checks] + [1])
    a2.plot([lo, hi], [lo, hi], color="gray", lw=1, ls=":", label="trained = closed form")
    a2.set_xlabel("closed-form minimum of D's loss (the divergence)")
    a2.set_ylabel("D's loss after training to convergence")
    a2.set_title("each loss's D reaches its closed-form optimum:\nbce <-> JSD, lsgan <-> Pearson chi2, "
                 "hinge <-> total variation", fontsize=9.5)
    a2.grid(alpha=0.3)
    _legend_below(fig, a2, ncol=2)
    paths.append(save_figure(fig, out / "losses.png", dpi=90, bbox_inches="tight"))

    # 6. why the non-saturating G loss is the default
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.4))
    dg = np.logspace(-4, 0, 200)
    a1.loglog(dg, 1 - dg, lw=2, label="non-saturating -log D(G(z)): 1 - D")
    a1.loglog(dg, dg, lw=2, label="minimax log(1 - D(G(z))): D")
    for r, c in ((records[0], "k"), (records[-1], "tab:red")):
        a1.axvline(r["mean_d_fake"], color=c, ls=":", lw=1.2, label=f"mean D(G(z)) at step {r['step']}")
    a1.set_xlabel("D(G(z)) (D's belief that a fake is real)")
    a1.set_ylabel("|d loss_G / d logit|")
    a1.set_title("when D rejects fakes (left), the minimax gradient vanishes", fontsize=9.5)
    a1.grid(alpha=0.3, which="both")
    _legend_below(fig, a1, ncol=2)
    a2.semilogy(steps, [r["g_grad_non_saturating"] for r in records], "o-", label="non-saturating")
    a2.semilogy(steps, [r["g_grad_minimax"] for r in records], "s-", label="minimax")
    a2.set_xlabel("step")
    a2.set_ylabel("||grad of loss_G wrt G's weights||")
    a2.set_title("G's gradient against the converged D: non-saturating is larger\nwhile G is poor (why it is "
                 "gankit's default)", fontsize=9.5)
    a2.grid(alpha=0.3, which="both")
    _legend_below(fig, a2, ncol=2)
    paths.append(save_figure(fig, out / "gradients.png", dpi=90, bbox_inches="tight"))
    return paths


CAPTIONS = {
    "d_vs_dstar": "Proposition 1. At each snapshot G is frozen and a fresh discriminator is trained to convergence "
                  "on it (full-batch Adam on the population loss: the infinite-sample limit). It lands on the exact "
                  "D* computed from the densities.",
    "value_vs_jsd": "Theorem 1. The value of the game at the converged D equals -log 4 + 2 JSD(p_data || p_g) "
                    "(left), and |D - D*| of the converged D is small at every snapshot (right; sup over the grid "
                    "points holding mass, mean weighted by (p_data + p_g)/2).",
    "density": "What G generates, against the data.",
    "modes": "Mode coverage over training.",
    "losses": "The same exact check for each loss gankit offers: the minimum of D's loss is a divergence between "
              "p_data and p_g (bce: log 4 - 2 JSD; lsgan, gankit's a=0 b=1: 1/4 - chi2/8 with Mao et al.'s "
              "Pearson chi2(p_data + p_g || 2 p_g) = ∫ (p_data - p_g)^2 / (p_data + p_g); hinge: 2 - 2 TV). Right: "
              "a D trained to convergence reaches it, at the first and last snapshot.",
    "gradients": "The generator's gradient for the two BCE generator losses, against the converged D.",
}


def run_theory(out: str | Path, steps: int = 2000, seed: int = 0, data: str = "mixture1d",
               progress: bool = True, snapshots: int = 9, d_iters: int = 300) -> Path:
    """Train, measure, plot; writes PNGs, summary.json, summary.txt and report.html into `out`."""
    t0 = time.perf_counter()
    records, arrays, ctx = train_toy(data, steps, seed, snapshots=snapshots, d_iters=d_iters,
                                     progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(records, arrays, ctx, out)
    last = records[-1]
    loss_checks = [c for r in records for c in r["losses"]]
    checks = {  # the identities, on this run's own densities
        "max |V(G,D*) - (-log 4 + 2 JSD)| over snapshots": max(abs(r["value_at_dstar"] - r["bound"]) for r in records),
        "V(G,D) <= V(G,D*) at every snapshot": all(r["value"] <= r["value_at_dstar"] + 1e-9 for r in records),
        "0 <= JSD <= log 2 at every snapshot": all(-1e-12 <= r["jsd"] <= math.log(2) + 1e-12 for r in records),
        "max |V(G,D converged) - V(G,D*)| over snapshots":
            max(abs(r["value_converged"] - r["value_at_dstar"]) for r in records),
        "max converged |D-D*| sup over snapshots": max(r["converged_d_sup_error"] for r in records),
        "max converged |D-D*| mean over snapshots": max(r["converged_d_mean_error"] for r in records),
        "max |loss(t*) - closed-form divergence| over losses": max(abs(c["loss_at_t_star"] - c["closed_form_min"])
                                                                   for c in loss_checks),
        "max |trained D's loss - closed form| over losses": max(abs(c["trained_min"] - c["closed_form_min"])
                                                                for c in loss_checks),
        "non-saturating / minimax G gradient at step 0": records[0]["g_grad_non_saturating"]
                                                          / max(records[0]["g_grad_minimax"], 1e-30),
    }
    summary = {"data": data, "steps": steps, "seed": seed, "modes": len(ctx["mix"].weights),
               "kde": f"50,000 samples, Gaussian bandwidth {ctx['mix'].std / 4:g}",
               "converged_d": f"fresh FourierD per snapshot, {d_iters} full-batch Adam steps (lr 1e-2, cosine) on the "
                              "population loss over the grid; |D-D*| sup over points where (p_data+p_g)/2 >= 1% "
                              "of its peak, mean weighted by (p_data+p_g)/2",
               "checks": checks,
               "final": {k: last[k] for k in ("value", "value_converged", "bound", "jsd", "converged_d_sup_error",
                                              "converged_d_mean_error", "modes_covered", "near_mode_share")},
               "snapshots": records, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    modes = len(ctx["mix"].weights)
    lines = [f"gankit theory lab: {data}, {steps} steps, seed {seed}",
             "step  V(G,D_conv) -log4+2JSD    JSD  sup|D-D*| mean|D-D*|  V(G,D_train)  modes",
             *[f"{r['step']:>5} {r['value_converged']:10.4f} {r['bound']:10.4f} {r['jsd']:8.4f} "
               f"{r['converged_d_sup_error']:9.4f} {r['converged_d_mean_error']:10.4f} {r['value']:12.4f}"
               f"  {r['modes_covered']}/{modes}" for r in records],
             f"-log 4 = {-LOG4:.4f} (the value when p_g = p_data); D_conv: D trained to convergence on frozen G",
             "", "each loss's D at a frozen G: closed-form minimum vs trained D",
             "step  loss   divergence        closed form   trained   mean|D-D*|",
             *[f"{r['step']:>5} {c['loss']:6s} {c['divergence']:16s} {c['closed_form_min']:11.5f} "
               f"{c['trained_min']:9.5f} {c['d_mean_error']:10.4f}" for r in records for c in r["losses"]],
             "", "G's gradient norm vs the converged D: step  non-saturating  minimax  mean D(G(z))",
             *[f"  {r['step']:>5} {r['g_grad_non_saturating']:14.4g} {r['g_grad_minimax']:8.4g} "
               f"{r['mean_d_fake']:8.3g}" for r in records],
             "", *[f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in checks.items()]]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>gankit theory lab</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:1150px;margin:2rem auto}img{max-width:100%}"
            "pre{background:#f6f6f6;padding:.8rem;overflow-x:auto}</style></head><body>",
            f"<h1>Theory lab: {html.escape(data)}</h1>",
            "<p>For a fixed G the optimal discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and "
            "V(G, D*) = &minus;log 4 + 2&middot;JSD(p_data &#8214; p_g), minimal exactly when p_g = p_data "
            "(Goodfellow et al. 2014, Prop. 1 and Thm. 1). p_g is a KDE of generator samples; integrals are sums "
            "on a grid. At each snapshot G is frozen and a fresh D is trained to convergence on it.</p>",
            *[f"<h2>{html.escape(p.stem.replace('_', ' '))}</h2><p>{html.escape(CAPTIONS.get(p.stem, ''))}</p>"
              f"<img src='{p.name}' alt='{p.stem}'>" for p in figures],
            "<h2>numbers</h2>", f"<pre>{html.escape(text)}</pre>", "</body></html>"]
    (out / "report.html").write_text("\n".join(page), encoding="utf-8")
    return out
