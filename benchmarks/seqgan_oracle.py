"""SeqGAN oracle learning curve (the paper's Figure 2): NLL-oracle vs epoch, MLE continuing
vs SeqGAN from the same pre-trained generator.

A seqgan run on oracle data logs `nll_oracle` (G) every `train.eval_every` steps and, once
adversarial training starts, `nll_oracle_mle_baseline` (a copy of the same pre-trained G
that keeps doing one MLE epoch per adversarial round). This script plots both against
generator epochs (MLE epochs, then adversarial rounds; D pre-training trains no G and is
left out of the x axis), writes RUN_DIR/figures/nll_oracle.png, rewrites the report and
prints the numbers as one JSON line.

    gankit train seqgan --data oracle:../shared/data/seqgan/oracle_lstm_params.npz --out runs/sg
    python benchmarks/seqgan_oracle.py runs/sg
    python benchmarks/seqgan_oracle.py runs/sg --train --set pretrain.g_epochs=15   # train first
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PAPER = {"random": 10.310, "MLE": 9.038, "SS": 8.985, "PG-BLEU": 8.946, "SeqGAN": 8.736}


def curve(run_dir: Path) -> dict:
    from gankit.runs import RunDir
    run = RunDir(run_dir)
    cfg = run.config()
    pre = cfg.extra["pretrain"]
    rows = [json.loads(line) for line in run.metrics_file.read_text().splitlines() if line.strip()]
    evals = [r for r in rows if r.get("eval") and "nll_oracle" in r]

    def epoch(step):  # G epochs: MLE epochs, then adversarial rounds (D pre-training trains no G)
        return step if step <= pre.g_epochs else max(step - pre.d_rounds, pre.g_epochs)
    mle = [(epoch(r["step"]), r["nll_oracle"]) for r in evals if r["step"] <= pre.g_epochs]
    pre_end = [r for r in evals if r["step"] <= pre.g_epochs + pre.d_rounds]
    start = pre_end[-1]["nll_oracle"] if pre_end else None
    seqgan = [(epoch(r["step"]), r["nll_oracle"]) for r in evals if r["step"] > pre.g_epochs + pre.d_rounds]
    base = [(epoch(r["step"]), r["nll_oracle_mle_baseline"]) for r in evals if "nll_oracle_mle_baseline" in r]
    return {"run": str(run_dir), "pretrain_epochs": pre.g_epochs, "mle": mle, "seqgan": seqgan,
            "mle_continuing": base, "nll_after_pretraining": start,
            "best_seqgan": min((v for _, v in seqgan), default=None),
            "best_mle_continuing": min((v for _, v in base), default=None),
            "elapsed_s": max((r.get("elapsed_s", 0) for r in rows), default=0)}


def plot(c: dict, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    ax.axhline(PAPER["SeqGAN"], color="tab:red", lw=0.5, ls="--", label="paper SeqGAN 8.736")
    ax.axhline(PAPER["MLE"], color="tab:blue", lw=0.5, ls="--", label="paper MLE 9.038")
    ax.set_xlabel("generator epochs (MLE epochs, then adversarial rounds)")
    ax.set_ylabel("NLL-oracle")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--train", action="store_true", help="train the run first (oracle from ../shared/data)")
    p.add_argument("--set", nargs="*", default=[], help="config overrides for --train")
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
    c["figure"] = str(plot(c, run_dir / "figures" / "nll_oracle.png"))
    from gankit.report import write_report
    write_report(run_dir)
    print(json.dumps(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
