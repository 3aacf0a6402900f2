"""The README's quick start and Python API example, run as written and judged per label.

Trains `gankit train cgan` (the quick start, 3,000 steps) and the API example
(`train.steps=1500`, `model.loss=lsgan`), then draws 64 samples of every digit from the EMA
generator and from the raw one, and reports per-label accuracy under the built-in digits
classifier (the one `gankit eval` uses) and the mean pairwise RMS distance between samples
of one label (0 would mean identical samples). Writes the sevens grids next to the runs.

    python benchmarks/quickstart_check.py --out /tmp/qs-check
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from gankit import build_config, load_run, train
from gankit.data.transforms import save_grid
from gankit.evaluate import default_digits_classifier
from gankit.metrics.features import ClassifierFeatures


def judge(run_dir: Path, out: Path, tag: str) -> dict:
    net = ClassifierFeatures(default_digits_classifier(), "cpu")
    result = {}
    for ema in (True, False):
        run = load_run(run_dir, ema=ema)
        accuracy, spread = [], []
        for label in range(10):
            x = run.sample(64, label=label, seed=100 + label)
            _, logits = net(x)
            accuracy.append(float((logits.argmax(1) == label).float().mean()))
            flat = x.flatten(1)
            spread.append(float(torch.pdist(flat).mean() / flat.shape[1] ** 0.5))
            if label == 7:
                save_grid(x, out / f"{tag}_sevens_{'ema' if ema else 'raw'}.png", nrow=8)
        result["ema" if ema else "raw"] = {
            "accuracy_per_label": [round(a, 3) for a in accuracy], "mean_accuracy": round(sum(accuracy) / 10, 4),
            "min_label_accuracy": min(accuracy), "mean_pairwise_rms_distance": round(sum(spread) / 10, 4)}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/quickstart-check"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "gankit", "train", "cgan", "--out", str(args.out / "qs"), "--overwrite",
                    "--no-progress"], check=True)
    result = {"quick_start_s": round(time.time() - t0, 1), "quick_start": judge(args.out / "qs", args.out, "qs")}
    cfg = build_config("cgan", overrides=["train.steps=1500", "model.loss=lsgan", "train.progress=false"])
    api_run = train(cfg, out=args.out / "api", overwrite=True)
    result["api_example"] = judge(api_run, args.out, "api")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
