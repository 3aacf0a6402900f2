"""What the diagnostics cost a training step (gankit/diagnostics.py), measured interleaved.

For each image model's shipped config on the built-in digits: full training steps (the
trainer's own `build_model` and `Updater`) timed in alternating blocks of
  plain     the step without D(x) / D(G(z)) statistics, no gradient norm
  stats     the step as gankit runs it on all but the last step of a log interval (D stats)
  measured  the last step of an interval: D stats and both players' gradient norms
and one row per model: median ms per step of each, and the evaluation-time diagnostics
(class coverage with the built-in classifier, memorisation) on `train.diag_samples` samples.

    python benchmarks/diagnostics_cost.py [--models gan cgan dcgan] [--steps 40] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from gankit import build_config
from gankit.distributed import Dist
from gankit.metrics.diagnostics import diagnostics_classifier, image_diagnostics
from gankit.models import common
from gankit.trainer import Updater, build_model, evaluating


def time_steps(model, update, batches, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_step(next(batches), update)
    return (time.perf_counter() - t0) / steps * 1e3


def run(name: str, steps: int, rounds: int) -> dict:
    cfg = build_config(name, overrides=["train.progress=false"])
    model, data = build_model(cfg, torch.device("cpu"))
    update = Updater(model.configure_optimizers(), Dist.from_env("cpu"), cfg.train.grad_clip)
    batches = data.batches(cfg.train.batch_size * getattr(model, "reals_per_step", 1), 0)
    real_stats = common.d_stats
    times = {"plain": [], "stats": [], "measured": []}
    time_steps(model, update, batches, 5)  # warm-up
    for _ in range(rounds):
        for mode in times:
            common.d_stats = real_stats if mode != "plain" else (lambda loss, real, fake: {})
            update.measure = mode == "measured"
            times[mode].append(time_steps(model, update, batches, steps))
            update.norms = {}
    common.d_stats, update.measure = real_stats, False
    with evaluating(model):
        clf = diagnostics_classifier(cfg, data)
        t0 = time.perf_counter()
        image_diagnostics(model, data, cfg.train.diag_samples, clf)
        eval_s = time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, **{f"{k}_ms": round(v, 2) for k, v in med.items()},
            "stats_overhead_pct": round(100 * (med["stats"] / med["plain"] - 1), 1),
            "norms_overhead_pct": round(100 * (med["measured"] / med["stats"] - 1), 1),
            "eval_diagnostics_s": round(eval_s, 2), "diag_samples": cfg.train.diag_samples,
            "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["gan", "cgan", "dcgan"])
    p.add_argument("--steps", type=int, default=40, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=5, help="blocks per mode, interleaved")
    args = p.parse_args(argv)
    for name in args.models:
        print(json.dumps(run(name, args.steps, args.rounds)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
