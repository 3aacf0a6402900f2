"""`gankit theory`: train a small GAN on toy data and watch the theory hold.

At evenly spaced snapshots we estimate p_g with a KDE of 50,000 generator samples
(histogram + Gaussian blur on the grid), compute the analytic D* = p_data/(p_data + p_g)
for that G, and compare it with the learned D; and we compare the value of the game
V(G, D) with its maximum over D, -log 4 + 2 JSD(p_data || p_g), both by numerical
integration on the grid. V(G, D) <= -log 4 + 2 JSD must hold at every snapshot (D* is
the pointwise maximiser) and the gap shows how far D is from optimal. Departures from
the paper: G is trained with the non-saturating loss -log D(G(z)) (the paper's own
practical advice), and p_g is a KDE, so JSD is that of the smoothed p_g (the bandwidth is
a quarter of the data's mode std, so the blur is small).
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

from ..errors import GankitError
from .core import LOG4, TOYS, jsd, optimal_discriminator, toy, value, value_at_optimum


def _mlp(d_in: int, d_out: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, d_out))


@torch.no_grad()
def _snapshot(step, G, D, mix, grid, dx, p_data, z_dim, rng_t, n_kde=50_000):
    from .core import kde_on_grid
    samples = G(torch.randn(n_kde, z_dim, generator=rng_t)).numpy().astype(float)
    p_g = kde_on_grid(samples, mix, bandwidth=mix.std / 4)
    p_g = p_g / max(p_g.sum() * dx, 1e-300)  # the identities need densities of mass 1 on the grid
    d = torch.sigmoid(D(torch.as_tensor(grid, dtype=torch.float32))).squeeze(1).numpy().astype(float)
    d_star = optimal_discriminator(p_data, p_g)
    weight = 0.5 * (p_data + p_g)  # where the mass is: D only matters there
    shares, near = mix.mode_shares(samples)
    covered = int(np.sum(shares >= 0.25 * mix.weights))  # a mode holding >= 1/4 of its fair share of all samples
    rec = {"step": step, "value": value(d, p_data, p_g, dx), "value_at_dstar": value_at_optimum(p_data, p_g, dx),
           "jsd": jsd(p_data, p_g, dx), "d_dstar_l1": float(np.sum(np.abs(d - d_star) * weight) * dx),
           "modes_covered": covered, "near_mode_share": near, "mode_shares": shares.round(4).tolist()}
    rec["bound"] = -LOG4 + 2 * rec["jsd"]
    return rec, {"p_g": p_g, "d": d, "d_star": d_star, "samples": samples[:2000]}


def train_toy(data: str = "mixture1d", steps: int = 2000, seed: int = 0, snapshots: int = 9, batch: int = 256,
              lr: float = 1e-3) -> tuple[list[dict], list[dict], dict]:
    """Train a small MLP GAN; return per-snapshot records, arrays and the fixed context."""
    if data not in TOYS:
        raise GankitError(f"unknown toy data '{data}': {' | '.join(TOYS)}")
    if steps < 1:
        raise GankitError(f"--steps must be positive, got {steps}")
    mix = toy(data)
    grid, dx = mix.grid()
    p_data = mix.pdf(grid)
    p_data = p_data / (p_data.sum() * dx)  # mass 1 on the grid (the tails beyond it are ~1e-30)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rng_t = torch.Generator().manual_seed(seed + 1)
    z_dim = 2
    G, D = _mlp(z_dim, mix.dim), _mlp(mix.dim, 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    at = sorted({round(i * steps / (snapshots - 1)) for i in range(snapshots)})
    records, arrays = [], []
    for step in range(steps + 1):
        if step in at:
            rec, arr = _snapshot(step, G, D, mix, grid, dx, p_data, z_dim, rng_t)
            records.append(rec)
            arrays.append(arr)
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
    return records, arrays, {"mix": mix, "grid": grid, "dx": dx, "p_data": p_data}


def _figures(records, arrays, ctx, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mix, grid, p_data = ctx["mix"], ctx["grid"], ctx["p_data"]
    steps = [r["step"] for r in records]
    paths = []
    pick = sorted({0, len(records) // 2, len(records) - 1}) if mix.dim == 2 else list(range(len(records)))[:9]

    # 1. D vs D* over training
    if mix.dim == 1:
        x = grid[:, 0]
        cols = 3
        rows = math.ceil(len(pick) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
        for ax, i in zip(axes.ravel(), pick):
            ax.fill_between(x, p_data / p_data.max(), color="tab:blue", alpha=0.15, label="p_data (scaled)")
            ax.fill_between(x, arrays[i]["p_g"] / max(arrays[i]["p_g"].max(), 1e-12), color="tab:orange", alpha=0.15,
                            label="p_g (scaled)")
            ax.plot(x, arrays[i]["d"], "k", lw=1.5, label="learned D(x)")
            mass = p_data + arrays[i]["p_g"]
            d_star = np.where(mass > 1e-3 * mass.max(), arrays[i]["d_star"], np.nan)  # D* is arbitrary off the mass
            ax.plot(x, d_star, "r--", lw=1.2, label="D*(x)")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"step {records[i]['step']}", fontsize=9)
        for ax in axes.ravel()[len(pick):]:
            ax.axis("off")
        axes[0, 0].legend(fontsize=7, loc="upper left")
    else:
        n = mix.points
        fig, axes = plt.subplots(2, len(pick), figsize=(3.6 * len(pick), 6.6), squeeze=False)
        ext = [mix.lo, mix.hi, mix.lo, mix.hi]
        for j, i in enumerate(pick):
            mass = p_data + arrays[i]["p_g"]
            shown = {"d": arrays[i]["d"], "d_star": np.where(mass > 1e-3 * mass.max(), arrays[i]["d_star"], np.nan)}
            for r, (key, title) in enumerate([("d", "learned D"), ("d_star", "D* (blank: no mass)")]):
                im = axes[r, j].imshow(shown[key].reshape(n, n), origin="lower", extent=ext, vmin=0, vmax=1,
                                       cmap="coolwarm")
                axes[r, j].set_title(f"{title}, step {records[i]['step']}", fontsize=9)
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle("learned D vs the optimal D* = p_data / (p_data + p_g) for the current G", fontsize=10)
    paths.append(_save(fig, out / "d_vs_dstar.png", plt, tight=mix.dim == 1))

    # 2. value vs the JSD bound
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(steps, [r["value"] for r in records], "o-", label="V(G, D) (learned D)")
    ax.plot(steps, [r["bound"] for r in records], "s--", label="-log 4 + 2 JSD(p_data || p_g) = V(G, D*)")
    ax.axhline(-LOG4, color="gray", lw=1, ls=":", label="-log 4 (p_g = p_data)")
    ax.set_xlabel("step")
    ax.set_ylabel("nats")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / "value_vs_jsd.png", plt))

    # 3. generated vs data density
    if mix.dim == 1:
        fig, ax = plt.subplots(figsize=(7, 3.4))
        ax.plot(grid[:, 0], p_data, label="p_data (exact)", lw=2)
        for i in sorted({0, len(records) // 2, len(records) - 1}):
            ax.plot(grid[:, 0], arrays[i]["p_g"], lw=1, label=f"p_g at step {records[i]['step']} (KDE)")
        ax.set_xlabel("x")
        ax.legend(fontsize=8)
    else:
        fig, ax = plt.subplots(figsize=(5, 5))
        n = mix.points
        ax.contour(grid[:, 0].reshape(n, n), grid[:, 1].reshape(n, n), p_data.reshape(n, n), levels=5, cmap="Blues")
        s = arrays[-1]["samples"]
        ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:orange", alpha=0.5, label=f"G samples, step {records[-1]['step']}")
        ax.set_aspect("equal")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_title("generated density vs data density", fontsize=10)
    paths.append(_save(fig, out / "density.png", plt))

    # 4. mode coverage over time
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    a1.plot(steps, [r["modes_covered"] for r in records], "o-")
    a1.axhline(len(mix.weights), color="gray", ls=":", lw=1)
    a1.set_ylim(-0.2, len(mix.weights) + 0.5)
    a1.set_title("modes covered (>= 1/4 of their fair share)", fontsize=9)
    a1.set_xlabel("step")
    shares = np.array([r["mode_shares"] for r in records])  # (S, K)
    a2.stackplot(steps, shares.T, labels=[f"mode {k}" for k in range(shares.shape[1])])
    a2.set_title("share of samples within 3 std of each mode", fontsize=9)
    a2.set_xlabel("step")
    a2.set_ylim(0, 1)
    a2.legend(fontsize=6, loc="upper left", ncol=2)
    paths.append(_save(fig, out / "modes.png", plt))
    return paths


def _save(fig, path: Path, plt, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_theory(out: str | Path, steps: int = 2000, seed: int = 0, data: str = "mixture1d") -> Path:
    """Train, measure, plot; writes PNGs, summary.json, summary.txt and report.html into `out`."""
    t0 = time.perf_counter()
    records, arrays, ctx = train_toy(data, steps, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(records, arrays, ctx, out)
    last = records[-1]
    checks = {  # the identities, on this run's own densities
        "max |V(G,D*) - (-log 4 + 2 JSD)| over snapshots": max(abs(r["value_at_dstar"] - r["bound"]) for r in records),
        "V(G,D) <= V(G,D*) at every snapshot": all(r["value"] <= r["value_at_dstar"] + 1e-9 for r in records),
        "0 <= JSD <= log 2 at every snapshot": all(-1e-12 <= r["jsd"] <= math.log(2) + 1e-12 for r in records),
    }
    summary = {"data": data, "steps": steps, "seed": seed, "modes": len(ctx["mix"].weights),
               "kde": f"50,000 samples, Gaussian bandwidth {ctx['mix'].std / 4:g}", "checks": checks,
               "final": {k: last[k] for k in ("value", "bound", "jsd", "d_dstar_l1", "modes_covered", "near_mode_share")},
               "snapshots": records, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    lines = [f"gankit theory lab: {data}, {steps} steps, seed {seed}",
             "step   V(G,D)   -log4+2JSD   JSD     |D-D*|  modes",
             *[f"{r['step']:>5} {r['value']:8.4f} {r['bound']:10.4f} {r['jsd']:8.4f} {r['d_dstar_l1']:7.4f}"
               f"  {r['modes_covered']}/{len(ctx['mix'].weights)}" for r in records],
             f"-log 4 = {-LOG4:.4f} (the value when p_g = p_data)",
             *[f"{k}: {v}" for k, v in checks.items()]]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>gankit theory lab</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto}img{max-width:100%}"
            "pre{background:#f6f6f6;padding:.8rem}</style></head><body>",
            f"<h1>Theory lab: {html.escape(data)}</h1>",
            "<p>For a fixed G the optimal discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and "
            "V(G, D*) = &minus;log 4 + 2&middot;JSD(p_data &#8214; p_g), minimal exactly when p_g = p_data "
            "(Goodfellow et al. 2014, Prop. 1 and Thm. 1). p_g is a KDE of generator samples; integrals are sums "
            "on a grid.</p>", f"<pre>{html.escape(text)}</pre>",
            *[f"<h2>{html.escape(p.stem.replace('_', ' '))}</h2><img src='{p.name}' alt='{p.stem}'>" for p in figures],
            "</body></html>"]
    (out / "report.html").write_text("\n".join(page), encoding="utf-8")
    return out
