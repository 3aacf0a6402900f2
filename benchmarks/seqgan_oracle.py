"""SeqGAN oracle learning curve (the paper's Figure 2): NLL-oracle vs epoch, MLE continuing
vs SeqGAN from the same pre-trained generator.

A seqgan run on oracle data logs `nll_oracle` (G) every `train.eval_every` steps and, once
adversarial training starts, `nll_oracle_mle_baseline` (a copy of the same pre-trained G
that keeps doing one MLE epoch per adversarial round). The run's report draws both against
generator epochs (RUN_DIR/figures/nll_oracle.png, `gankit.models.seqgan_figures`); this
script (re)draws it, optionally trains first, and prints the numbers as one JSON line.

    gankit train seqgan --data oracle:../shared/data/seqgan/oracle_lstm_params.npz --out runs/sg
    python benchmarks/seqgan_oracle.py runs/sg
    python benchmarks/seqgan_oracle.py runs/sg --train --set pretrain.g_epochs=15   # train first
    python benchmarks/seqgan_oracle.py runs/s0/shipped --diversity --compare runs/s0/prefix_mean runs/s1/shipped
    python benchmarks/seqgan_oracle.py runs/s0/shipped --temperatures 1 0.9 0.85   # vs the MLE copy, sharpened
    python benchmarks/seqgan_oracle.py runs/s0/shipped --temperatures 1 0.9 --checkpoint runs/s0/shipped/checkpoints/step_0000100.pt
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

def curve(run_dir: Path) -> dict:
    from gankit import run_config
    from gankit.models.seqgan_figures import oracle_curve
    from gankit.runs import RunDir
    rows = RunDir(run_dir).metrics()
    pretrain = run_config(run_dir).model.pretrain
    c = oracle_curve(rows, pretrain.g_epochs, pretrain.d_rounds)
    if c is None:
        raise SystemExit(f"{run_dir}: no NLL-oracle logged (is it a seqgan run on oracle data?)")
    kept = [(r["step"], r["nll_oracle_best"]) for r in rows if r.get("eval") and "nll_oracle_best" in r]
    if kept:  # model.keep_best: the copy `gankit sample` draws from (x: global step)
        c |= {"kept_copy": kept, "last_kept_copy": kept[-1][1]}
    return {"run": str(run_dir), **c, "elapsed_s": max((r.get("elapsed_s", 0) for r in rows), default=0)}


def random_generator_nll(run_dir: Path) -> float:
    """The paper's "random" row: NLL-oracle of a freshly initialised G on the run's oracle."""
    import torch
    from gankit import run_config
    from gankit.trainer import build_model
    cfg = run_config(run_dir)
    torch.manual_seed(cfg.train.seed)
    net, data = build_model(cfg, torch.device("cpu"))
    net.eval()
    return net.nll_oracle(data.oracle)


def load(run_dir: Path, checkpoint: Path | None = None):
    """The run's newest checkpoint, or `checkpoint`, with its data: what `diversity` and
    `temperatures` sample from (loaded once when both are asked for)."""
    from gankit.api import load_run
    return load_run(run_dir, with_data=True, checkpoint=checkpoint)


def diversity(run, n: int = 1000) -> dict:
    """What NLL-oracle cannot see: how varied the samples are. For a `load()`ed checkpoint (G,
    and the MLE-continuing copy when there is one) and for held-out oracle samples as the
    reference: the fraction of distinct sequences, of exact copies of a training sequence,
    distinct-1..3 and Self-BLEU-3 over n sequences."""
    import torch
    from gankit.metrics.text import distinct_n, self_bleu
    model, train = run.model, {tuple(r) for r in run.data.tensors["tokens"].tolist()}

    def stats(tokens) -> dict:
        seqs = [tuple(r) for r in tokens.tolist()]
        words = [[str(t) for t in s] for s in seqs]
        return {"unique": len(set(seqs)) / len(seqs), "copies_of_training": sum(s in train for s in seqs) / len(seqs),
                **distinct_n(words), **self_bleu(words, orders=(3,))}
    torch.manual_seed(0)
    with torch.no_grad():
        out = {"step": run.step, "G": stats(model.G.sample(n, model.seq_len))}
        if model.G_mle is not None and int(model.adv_started):
            out["G_mle_continuing"] = stats(model.G_mle.sample(n, model.seq_len))
        if model.G_best is not None and int(model.adv_started):
            out["G_kept_copy"] = stats(model.G_best.sample(n, model.seq_len))  # model.keep_best
    out["oracle_held_out"] = stats(run.data.held_out["tokens"][:n])
    return {k: ({kk: round(vv, 4) for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in out.items()}


def temperatures(run, temps: list[float], n: int = 1000) -> dict:
    """NLL-oracle (model.eval_samples sequences) and diversity (n) of the generators of a
    `load()`ed checkpoint sampled at each temperature. A lower temperature alone lowers
    NLL-oracle and diversity, so the fair reference for an adversarial gain is the MLE copy at
    matched diversity (docs/benchmarks.md, the issue 17 probe)."""
    import torch
    from gankit.metrics.text import distinct_n, self_bleu
    m = run.model
    gens = {"G": m.G}
    if m.G_mle is not None and int(m.adv_started):
        gens["G_mle_continuing"] = m.G_mle
    if m.G_best is not None and int(m.adv_started):
        gens["G_kept_copy"] = m.G_best
    out = {"step": run.step}
    for name, G in gens.items():
        out[name] = {}
        for t in temps:
            torch.manual_seed(0)
            nll = m.nll_oracle(run.data.oracle, G, t)  # the loaded model's config stays as it was
            ids = [[str(x) for x in r] for r in G.sample(n, m.seq_len, t).tolist()]
            div = distinct_n(ids) | self_bleu(ids, orders=(3,))
            out[name][str(t)] = {"nll_oracle": round(nll, 4), **{k: round(v, 4) for k, v in div.items()}}
    return out


def plot_frontier(temps: dict, out: Path, target_nll: float = 8.60, diversity_band: float = 0.10) -> Path:
    """NLL-oracle against Self-BLEU-3 for each generator of `temperatures()` over its
    temperatures: the quality-diversity frontier sharpening alone traces (the MLE copy), with
    the region issue 17 asks for shaded (NLL-oracle <= target_nll, Self-BLEU-3 within
    `diversity_band` of the MLE copy's at temperature 1). A generator left of and below the
    MLE copy's line beats sharpening; one on or above it does not."""
    from gankit.figures import plt, save_figure
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, points) in enumerate((k, v) for k, v in temps.items() if isinstance(v, dict)):
        ts = sorted(points, key=float, reverse=True)
        xs, ys = [points[t]["self_bleu3"] for t in ts], [points[t]["nll_oracle"] for t in ts]
        ax.plot(xs, ys, "o-", color=f"C{i}", label=name)
        for t, x, y in zip(ts, xs, ys):
            ax.annotate(f"T={float(t):g}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    mle = temps.get("G_mle_continuing", {}).get("1.0")
    if mle:
        x0, x1 = ax.get_xlim()
        y0 = ax.get_ylim()[0]
        ax.fill_between([x0, mle["self_bleu3"] * (1 + diversity_band)], min(y0, target_nll - 0.1), target_nll,
                        color="tab:green", alpha=0.15, label=f"issue 17 target (NLL <= {target_nll}, "
                                                                f"Self-BLEU-3 <= +{diversity_band:.0%})")
        ax.set_xlim(x0, x1)
    ax.set_xlabel("Self-BLEU-3 (lower = more diverse)")
    ax.set_ylabel("NLL-oracle (lower = better samples)")
    ax.set_title(f"temperature sweep at step {temps.get('step')}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, out, dpi=110)


def plot_variants(curves: dict[str, dict], out: Path) -> Path:
    """Several runs (variants, seeds) in one figure: each run's SeqGAN curve and, dashed, its
    MLE-continuing copy, against generator epochs (the axis of the run's own figure)."""
    from gankit.figures import plt, save_figure
    from gankit.models.seqgan_figures import PAPER_ORACLE_NLL
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, c) in enumerate(curves.items()):
        color = f"C{i % 10}"
        start = [(c["pretrain_epochs"], c["nll_after_pretraining"])] if c["nll_after_pretraining"] else []
        if c["seqgan"]:
            ax.plot(*zip(*(start + c["seqgan"])), ".-", color=color, label=name)
        if c["mle_continuing"]:
            ax.plot(*zip(*(start + c["mle_continuing"])), "--", color=color, lw=0.8, label=f"{name}: MLE continuing")
    ax.axhline(PAPER_ORACLE_NLL["SeqGAN"], color="k", lw=0.5, ls=":", label="paper SeqGAN 8.736")
    ax.set_xlabel("generator epochs (MLE epochs, then adversarial rounds)")
    ax.set_ylabel("NLL-oracle")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    return save_figure(fig, out, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--train", action="store_true", help="train the run first (oracle from ../shared/data)")
    p.add_argument("--set", nargs="*", default=[], help="config overrides for --train")
    p.add_argument("--diversity", action="store_true",
                   help="also sample 1,000 sequences from the newest checkpoint: distinct / copied fractions, "
                        "distinct-n, Self-BLEU-3 (what NLL-oracle cannot see)")
    p.add_argument("--compare", nargs="*", default=[], metavar="RUN",
                   help="more runs (variants, seeds): their curves with this run's in one figure, "
                        "RUN_DIR/figures/nll_oracle_variants.png, and their numbers under 'compare'")
    p.add_argument("--temperatures", nargs="*", type=float, default=[], metavar="T",
                   help="also NLL-oracle and diversity of the newest G (and its MLE copy) sampled at "
                        "these temperatures, e.g. 1 0.9 0.85: the MLE copy at matched diversity; draws "
                        "RUN_DIR/figures/temperature_frontier.png (NLL-oracle vs Self-BLEU-3)")
    p.add_argument("--checkpoint", type=Path, metavar="PT",
                   help="--diversity and --temperatures on this checkpoint instead of the newest, e.g. "
                        "RUN/checkpoints/step_0000105.pt: the best round (kept with train.keep_checkpoints)")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    if args.train:
        from gankit import build_config, train
        npz = Path(__file__).resolve().parents[2] / "shared" / "data" / "seqgan" / "oracle_lstm_params.npz"
        cfg = build_config("seqgan", overrides=[f"data.spec=oracle:{npz}", *args.set])
        t0 = time.perf_counter()
        train(cfg, out=run_dir, overwrite=True)
        print(f"trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    c = curve(run_dir)
    c["random_generator"] = random_generator_nll(run_dir)
    run = load(run_dir, args.checkpoint) if args.diversity or args.temperatures else None
    if args.diversity:
        c["diversity"] = diversity(run)
    if args.temperatures:
        c["temperatures"] = temperatures(run, args.temperatures)
        name = f"temperature_frontier_step{c['temperatures']['step']}.png" if args.checkpoint else "temperature_frontier.png"
        c["frontier_figure"] = str(plot_frontier(c["temperatures"], run_dir / "figures" / name))
    from gankit.report import write_report
    write_report(run_dir)  # draws RUN_DIR/figures/nll_oracle.png
    c["figure"] = str(run_dir / "figures" / "nll_oracle.png")
    if args.compare:
        label = lambda r: "/".join(Path(r).resolve().parts[-2:])  # noqa: E731  (runs/s0/x vs runs/s1/x)
        others = {label(r): curve(Path(r)) for r in args.compare}
        c["compare"] = {name: {k: o.get(k) for k in ("best_seqgan", "last_seqgan", "last_mle_continuing",
                                                     "last_kept_copy", "elapsed_s")} for name, o in others.items()}
        c["variants_figure"] = str(plot_variants({label(run_dir): c, **others},
                                                 run_dir / "figures" / "nll_oracle_variants.png"))
    print(json.dumps(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
