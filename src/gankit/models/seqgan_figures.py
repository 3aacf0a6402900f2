"""SeqGAN's figures for a run's report: the oracle learning curve (the paper's Figure 2) with
the paper's Table 1 figures as reference lines. Pure functions of a run's metrics rows."""
from __future__ import annotations

from pathlib import Path

from ..figures import plt, save_figure




# Yu et al. 2017, Table 1, on the same oracle (the paper's figures for comparison lines)
PAPER_ORACLE_NLL = {"random": 10.310, "MLE": 9.038, "SS": 8.985, "PG-BLEU": 8.946, "SeqGAN": 8.736}


def oracle_curve(rows: list[dict], g_epochs: int, d_rounds: int) -> dict | None:
    """SeqGAN's oracle learning curve (the paper's Figure 2) from a run's metrics: NLL-oracle
    against generator epochs (MLE epochs, then adversarial rounds; D pre-training trains no G
    and is left off the axis) for SeqGAN and for the MLE-continuing copy of the same
    pre-trained G. None for runs that log no NLL-oracle (text data, other models)."""
    evals = [r for r in rows if r.get("eval") and r.get("nll_oracle") is not None]
    if not evals:
        return None

    def epoch(step):
        return step if step <= g_epochs else max(step - d_rounds, g_epochs)
    pre_end = [r for r in evals if r["step"] <= g_epochs + d_rounds]
    seqgan = [(epoch(r["step"]), r["nll_oracle"]) for r in evals if r["step"] > g_epochs + d_rounds]
    base = [(epoch(r["step"]), r["nll_oracle_mle_baseline"]) for r in evals
            if r.get("nll_oracle_mle_baseline") is not None]
    return {"pretrain_epochs": g_epochs,
            "mle": [(epoch(r["step"]), r["nll_oracle"]) for r in evals if r["step"] <= g_epochs],
            "seqgan": seqgan, "mle_continuing": base,
            "nll_after_pretraining": pre_end[-1]["nll_oracle"] if pre_end else None,
            "best_seqgan": min((v for _, v in seqgan), default=None),
            "best_mle_continuing": min((v for _, v in base), default=None),
            "last_seqgan": seqgan[-1][1] if seqgan else None,
            "last_mle_continuing": base[-1][1] if base else None}


def plot_oracle_curve(c: dict, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x0 = c["pretrain_epochs"]
    start = [(x0, c["nll_after_pretraining"])] if c["nll_after_pretraining"] is not None else []
    if c["mle"]:
        ax.plot(*zip(*c["mle"]), ".-", color="grey", label="MLE pre-training")
    if c["mle_continuing"]:
        ax.plot(*zip(*(start + c["mle_continuing"])), ".-", color="tab:blue", label="MLE continuing")
    if c["seqgan"]:
        ax.plot(*zip(*(start + c["seqgan"])), ".-", color="tab:red", label="SeqGAN")
    ax.axvline(x0, color="k", lw=0.5, ls=":")
    ax.axhline(PAPER_ORACLE_NLL["SeqGAN"], color="tab:red", lw=0.5, ls="--", label="paper SeqGAN 8.736")
    ax.axhline(PAPER_ORACLE_NLL["MLE"], color="tab:blue", lw=0.5, ls="--", label="paper MLE 9.038")
    ax.set_xlabel("generator epochs (MLE epochs, then adversarial rounds)")
    ax.set_ylabel("NLL-oracle")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, out, dpi=110)
    return out


def report_figures(rows: list[dict], config: dict, out_dir: Path) -> list[Path]:
    """The oracle curve, for runs that logged NLL-oracle."""
    pretrain = config.get("pretrain") or {}
    curve = oracle_curve(rows, int(pretrain.get("g_epochs", 0)), int(pretrain.get("d_rounds", 0)))
    if curve and (curve["seqgan"] or curve["mle"]):
        return [plot_oracle_curve(curve, out_dir / "nll_oracle.png")]
    return []
