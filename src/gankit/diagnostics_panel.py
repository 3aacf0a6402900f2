"""The report's diagnostics panel: one figure of what gankit/diagnostics.py reads, plus the
hints as HTML. Image GANs: D(x) / D(G(z)) and the rejected share, gradient norms, class
coverage with the newest class histogram, nearest-training-image distances. SeqGAN: the
mean reward per token position over training (a heatmap), gradient norms, diversity."""
from __future__ import annotations

import html
import textwrap
from pathlib import Path

from .diagnostics import hints
from .figures import plt, save_figure



def _series(rows: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)]


def _panels(rows: list[dict], loss: str | None) -> list:
    """(title, draw(ax)) for every panel the records support, in reading order."""
    train = [r for r in rows if not r.get("eval")]
    evals = [r for r in rows if r.get("eval")]
    panels = []
    d_keys = [k for k in ("d_real", "d_fake") if _series(train, k)]
    if d_keys:
        scale = "probability" if loss in ("bce", "minimax") else f"D's raw score ({loss})"

        def draw_d(ax):
            for k, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))"), ("d_fake_rejected", "fakes rejected")):
                pts = _series(train, k)
                if pts:
                    ax.plot(*zip(*pts), label=label, ls="--" if k == "d_fake_rejected" else "-")
            ax.set_ylabel(scale)
            ax.legend(fontsize=7)
        panels.append(("D(x), D(G(z)), share of fakes rejected", draw_d))
    grad_keys = sorted({k for r in train for k in r if k.startswith("grad_norm_")})
    if grad_keys:
        def draw_grads(ax):
            for k in grad_keys:
                pts = [(s, v) for s, v in _series(train, k) if v > 0]
                if pts:
                    ax.plot(*zip(*pts), label=k.removeprefix("grad_norm_"), marker="." if len(pts) < 20 else None)
            ax.set_yscale("log")
            ax.set_ylabel("gradient L2 norm")
            ax.legend(fontsize=7)
        panels.append(("gradient norm per player", draw_grads))
    rewards = [(r["step"], r["reward_pos"]) for r in train if isinstance(r.get("reward_pos"), list)]
    if rewards:
        def draw_rewards(ax):
            steps = [s for s, _ in rewards]
            half = (steps[-1] - steps[0]) / max(len(steps) - 1, 1) / 2 or 0.5  # rows centred on their steps
            im = ax.imshow([v for _, v in rewards], aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                           extent=(0.5, len(rewards[0][1]) + 0.5, steps[0] - half, steps[-1] + half))
            ax.grid(False)
            ax.set_xlabel("token position")
            ax.set_ylabel("step")
            ax.figure.colorbar(im, ax=ax, label="mean reward Q")
        panels.append(("SeqGAN reward per token position", draw_rewards))
    if _series(train, "d_acc_fake"):  # SeqGAN: is D falling behind G? (docs/seqgan.md, issue 17)
        def draw_d_acc(ax):
            for k, label in (("d_acc_fake", "fresh fakes"), ("d_acc_real", "reals")):
                ax.plot(*zip(*_series(train, k)), label=label)
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel("D accuracy")
            ax.legend(fontsize=7)
        panels.append(("SeqGAN D accuracy, before its round's training", draw_d_acc))
    var_keys = [k for k in ("reward_var", "reward_rollout_var", "adv_sq") if _series(train, k)]
    if var_keys:
        def draw_var(ax):
            for k in var_keys:
                pts = [(s, v) for s, v in _series(train, k) if v > 0]
                if pts:
                    ax.plot(*zip(*pts), label=k)
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        panels.append(("SeqGAN reward variance, mean (Q - b)²", draw_var))
    if _series(evals, "classes_covered"):
        def draw_cover(ax):
            ax.plot(*zip(*_series(evals, "classes_covered")), marker=".", label="classes covered")
            k = max(r.get("num_classes") or 0 for r in evals)
            if k:
                ax.axhline(k, color="k", lw=0.5, ls=":")
                ax.axhline(0.8 * k, color="tab:red", lw=0.5, ls="--", label="collapse below")
                ax.set_ylim(0, k + 0.5)
            ax.legend(fontsize=7)
        panels.append(("mode coverage (domain classifier)", draw_cover))
        last = [r for r in evals if r.get("class_hist")][-1]

        def draw_hist(ax):
            hist = last["class_hist"]
            ax.bar(range(len(hist)), hist)
            ax.axhline(1 / len(hist), color="k", lw=0.5, ls=":")
            ax.set_xticks(range(len(hist)))
            ax.set_xlabel("predicted class")
            ax.set_ylabel("share of samples")
        panels.append((f"class histogram of samples, step {last['step']}", draw_hist))
    if _series(evals, "memo_nn_fake"):
        def draw_memo(ax):
            ax.plot(*zip(*_series(evals, "memo_nn_fake")), marker=".", label="samples")
            loo = any(r.get("memo_reference") == "train_leave_one_out" for r in evals)
            ax.plot(*zip(*_series(evals, "memo_nn_real")), marker=".",
                    label="training reals, each left out" if loo else "held-out reals")
            ax.set_ylabel("median distance to nearest\ntraining image (RMS pixel)")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=7)
        panels.append(("memorisation check (pixel space)", draw_memo))
    div_keys = [k for k in ("distinct_seqs", "distinct2", "self_bleu3") if len(_series(evals, k)) > 0]
    if div_keys and not _series(evals, "classes_covered"):
        def draw_div(ax):
            for k in div_keys:
                ax.plot(*zip(*_series(evals, k)), marker=".", label=k)
            ax.axhline(0.5, color="tab:red", lw=0.5, ls="--", label="collapse: distinct < 0.5")
            ax.set_ylim(0, 1.05)
            ax.legend(fontsize=7)
        panels.append(("diversity of samples", draw_div))
    return panels


def plot_diagnostics(rows: list[dict], out: Path, loss: str | None = None) -> Path | None:
    """figures/diagnostics.png, or None when the run logged no diagnostics."""
    panels = _panels(rows, loss)
    if not panels:
        return None
    cols = min(len(panels), 3)
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.1 * nrows), squeeze=False)
    for ax, (title, draw) in zip(axes.flat, panels):
        ax.grid(alpha=0.3)
        draw(ax)
        ax.set_title(title, fontsize=9)
        if not ax.get_xlabel():
            ax.set_xlabel("step")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if len(panels) < axes.size:  # a free slot: the hints, so the figure reads without the page
        found = hints(rows, loss)
        text = "\n\n".join(textwrap.fill(h.text, 48) for h in found) or "no diagnostics hint fired"
        axes.flat[len(panels)].text(0, 1, text, va="top", fontsize=7 if found else 9, transform=axes.flat[len(panels)].transAxes)
    save_figure(fig, out)
    return out


def hints_html(rows: list[dict], loss: str | None = None) -> str:
    found = hints(rows, loss)
    if not found:
        return "<p>No diagnostics hint fired (rules in <code>gankit/diagnostics.py</code>).</p>"
    return "<ul class='hints'>" + "".join(f"<li id='hint-{html.escape(h.code)}'>{html.escape(h.text)}</li>"
                                           for h in found) + "</ul>"
