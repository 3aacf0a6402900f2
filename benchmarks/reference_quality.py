"""Quality at equal time against the reference (issue 13): train the faithful reference DCGAN
(benchmarks/reference/dcgan_ref.py, the pytorch/examples loop: fp32, D real + D fake + G
through D, `.item()` every step) on CIFAR-10 for M minutes of training, scored as
`reproduce.py dcgan-cifar10` scores gankit, and both curves on one figure.

    python benchmarks/reference_quality.py --minutes 90 --out runs/ref-cifar10 --threads 2 \\
        --metric inception --eval-n 1000 --against runs/repro/dcgan-cifar10

The clock counts training steps only (evaluations stop it), as reproduce.py's does. The
generator is sampled in eval mode (BatchNorm's running statistics), as gankit's checkpoints
are; the final evaluation uses the full protocol (10k samples vs the 10k test images).
Writes curve.json / curve.png, final.png (64 fixed-noise samples) and, with --against (a
reproduce.py output folder), compare.png: FID vs training minutes and images seen for both
(benchmarks/overlay.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `benchmarks.reference` when run as a script

from benchmarks.overlay import plot as plot_overlay  # noqa: E402
from benchmarks.reference import dcgan_ref  # noqa: E402
from benchmarks.reproduce import (CONFIGS, EXPERIMENTS, budget_arguments, fit_feature_classifier,  # noqa: E402
                                  machine, plot_curve)
from gankit import build_config  # noqa: E402
from gankit.config import DataConfig  # noqa: E402
from gankit.data import load_data  # noqa: E402
from gankit.evaluate import evaluate_generator  # noqa: E402
from gankit.data.transforms import save_grid  # noqa: E402


def sampler(netG: torch.nn.Module):
    """`evaluate_generator`'s sample(n, label, seed) for the reference's generator, in eval mode."""
    def sample(n: int, label=None, seed=None):
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        netG.eval()
        with torch.no_grad():
            out = netG(torch.randn(n, dcgan_ref.NZ, 1, 1, generator=g))
        netG.train()
        return out
    return sample


def score(netG, data_cfg: DataConfig, args, ctx: dict, n: int) -> dict:
    """One evaluation in the feature space reproduce.py uses (ctx["classifier"] unless --metric inception)."""
    classifier = ctx.get("classifier")
    return evaluate_generator(sampler(netG), data_cfg, features=classifier and str(classifier),
                              inception=args.metric == "inception", protocol=EXPERIMENTS["dcgan-cifar10"].eval_protocol,
                              n=n, threads=args.threads)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    budget_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--against", help="a reproduce.py dcgan-cifar10 output folder: both curves on one figure")
    args = p.parse_args(argv)
    exp = EXPERIMENTS["dcgan-cifar10"]
    root = Path(args.data_root).resolve()
    data_spec = exp.data.format(root=root)
    if not (root / "cifar10").is_dir():
        raise SystemExit(f"the reference comparison needs {root / 'cifar10'} (see --data-root)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mach = machine(args.threads)
    ctx = {}
    if args.metric == "classifier":
        ctx["classifier"] = fit_feature_classifier(exp.classifier.format(root=root))

    # the data config gankit's dcgan-cifar10 run resolves to (32x32, 3 channels), so that both
    # train on the same images and are scored against one cached reference
    data_cfg = build_config(exp.model, [CONFIGS / "dcgan-cifar10.yaml"], [f"data.spec={data_spec}"]).data
    images = load_data(dataclasses.replace(data_cfg, augment=False)).tensors["image"]
    step, batch = dcgan_ref.build("cpu", images=images, size=data_cfg.size, width=128)
    netG = step.netG
    fixed = torch.randn(64, dcgan_ref.NZ, 1, 1, generator=torch.Generator().manual_seed(0))
    budget, spent, steps, points = args.minutes * 60, 0.0, 0, []
    for i in range(1, args.evals + 1):
        until = budget * i / args.evals
        t0 = time.perf_counter()
        while spent + time.perf_counter() - t0 < until:
            step()
            steps += 1
        spent += time.perf_counter() - t0
        final = i == args.evals
        rec = score(netG, data_cfg, args, ctx, (args.final_n or exp.final_n) if final else args.eval_n)
        point = {"step": steps, "minutes": round(spent / 60, 3), "images_seen": steps * batch,
                 **{k: v for k, v in rec.items() if isinstance(v, (int, float)) and k != "eval"},
                 "n": rec["protocol"]["n_fake"], "final": final}
        points.append(point)
        print(json.dumps(point), file=sys.stderr, flush=True)
        torch.save(netG.state_dict(), out / "generator.pt")  # a plain state dict: loads with weights_only=True

    netG.eval()
    with torch.no_grad():
        save_grid(netG(fixed), out / "final.png", nrow=8)
    last = points[-1]
    result = {"experiment": "dcgan-cifar10 (reference)", "metrics": {k: last[k] for k in exp.keys if k in last},
              "minutes": last["minutes"], "steps": last["step"], "images_seen": last["images_seen"],
              "protocol": {"description": exp.protocol, "final_n": last["n"], "interval_n": args.eval_n,
                           "feature_space": rec["protocol"]["feature_network"],
                           "clock": "training steps only (evaluations excluded)"},
              "machine": mach, "command": "python benchmarks/reference_quality.py " + " ".join(
                  argv if argv is not None else sys.argv[1:]), "date": datetime.date.today().isoformat()}
    (out / "curve.json").write_text(json.dumps({"result": result, "points": points}, indent=1))
    plot_curve(points, exp.keys, f"reference DCGAN on CIFAR-10: {result['protocol']['feature_space']}",
               out / "curve.png")
    if args.against:
        theirs = json.loads((Path(args.against) / "curve.json").read_text())["points"]
        plot_overlay({"reference (pytorch/examples loop, fp32)": points, "gankit (dcgan-cifar10.yaml)": theirs}, "fid",
                     out / "compare.png", f"CIFAR-10, equal training time, {result['protocol']['feature_space']}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
