"""SeqGAN oracle learning curve (the paper's Figure 2): NLL-oracle vs epoch, MLE continuing
vs SeqGAN from the same pre-trained generator.

A seqgan run on oracle data logs `nll_oracle` (G) every `train.eval_every` steps and, once
adversarial training starts, `nll_oracle_mle_baseline` (a copy of the same pre-trained G
that keeps doing one MLE epoch per adversarial round). The run's report draws both against
generator epochs (RUN_DIR/figures/nll_oracle.png, `gankit.report.oracle_curve`); this
script (re)draws it, optionally trains first, and prints the numbers as one JSON line.

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

def curve(run_dir: Path) -> dict:
    from gankit.report import oracle_curve
    from gankit.runs import RunDir
    run = RunDir(run_dir)
    rows = run.metrics()
    c = oracle_curve(rows, run.config().extra["pretrain"])
    if c is None:
        raise SystemExit(f"{run_dir}: no NLL-oracle logged (is it a seqgan run on oracle data?)")
    return {"run": str(run_dir), **c, "elapsed_s": max((r.get("elapsed_s", 0) for r in rows), default=0)}


def random_generator_nll(run_dir: Path) -> float:
    """The paper's "random" row: NLL-oracle of a freshly initialised G on the run's oracle."""
    import torch
    from gankit.runs import RunDir
    from gankit.trainer import build_model
    cfg = RunDir(run_dir).config()
    torch.manual_seed(cfg.train.seed)
    net, _ = build_model(cfg, torch.device("cpu"))
    net.eval()
    return net.nll_oracle()


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
    c["random_generator"] = random_generator_nll(run_dir)
    from gankit.report import write_report
    write_report(run_dir)  # draws RUN_DIR/figures/nll_oracle.png
    c["figure"] = str(run_dir / "figures" / "nll_oracle.png")
    print(json.dumps(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
