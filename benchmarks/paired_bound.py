"""The paired upper bound of cyclegan-facades: how far photo->label pixel accuracy can get in
the same CPU time when the pairs are *used* (issue 13 asks >= 0.55; the unpaired run got 0.23).

    python benchmarks/paired_bound.py --minutes 45 --threads 1 --out runs/paired-bound \\
        --set model.ngf=32 train.amp=true

It builds the cyclegan-facades model exactly as `reproduce.py cyclegan-facades` does (the
shipped config, data.size=128, the same --set overrides) and trains its photo->label
generator G_AB alone on the aligned training pairs with pix2pix's L1 term (Isola et al. 2017)
and no discriminator: one random 1.12x crop and flip shared by photo and label, Adam with the
config's LR and betas, constant LR, batch train.batch_size. pix2pix reports L1 alone as at
least as good as L1 + cGAN on per-pixel label accuracy, so this is the stronger bound for that
metric. It scores with CycleGAN's own evaluate() on the same held-out pairs, so every number
is comparable with the unpaired run's curve. The clock counts training steps only.

Writes OUT/curve.json in reproduce.py's format (benchmarks/overlay.py draws it beside the
unpaired run: --key AtoB_label_acc) and OUT/curve.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import reproduce  # noqa: E402
from gankit import build_config  # noqa: E402
from gankit.data import load_data  # noqa: E402
from gankit.data.transforms import random_crop_flip  # noqa: E402
from gankit.layers import adam  # noqa: E402
from gankit.models import MODELS  # noqa: E402

KEYS = ["AtoB_label_acc", "AtoB_class_acc", "AtoB_label_miou"]  # the curve's panels


def paired_batches(data, batch_size: int, size: int, augment: bool):
    """Endless aligned (photo, label) batches: the paired loader reads A and B from the same
    A|B files, so index i of both domains is one pair; crop and flip them as one image."""
    a, b = data.tensors["a"], data.tensors["b"]
    while True:
        i = torch.randint(len(a), (batch_size,))
        pair = torch.cat([a[i], b[i]], dim=1)  # (B, 6, H, W): one crop for both halves
        if augment:
            pair = random_crop_flip(pair, size)
        yield pair.chunk(2, dim=1)


def train_paired(cfg, data, minutes: float, evals: int, log=print) -> list[dict]:
    """Train G_AB with L1 on the pairs for `minutes` of step time; evaluate() `evals` times."""
    model = MODELS[cfg.name](cfg.model, data.info, cfg.train)
    G = model.G_AB
    opt = adam(list(G.parameters()), cfg.train, cfg.train.lr)
    batches = paired_batches(data, cfg.train.batch_size, data.info.size, cfg.data.augment)
    marks = [minutes * 60 * (k + 1) / evals for k in range(evals)]
    points, step, spent = [], 0, 0.0
    while marks:
        start = time.perf_counter()
        photo, label = next(batches)
        with torch.autocast("cpu", torch.bfloat16, enabled=cfg.train.amp):
            loss = F.l1_loss(G(photo).float(), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        spent += time.perf_counter() - start
        if spent >= marks[0]:
            marks.pop(0)
            G.eval()
            scores = model.evaluate(data, directions=("AtoB",))  # G_BA is never trained here
            G.train()
            points.append({"step": step, "minutes": round(spent / 60, 3),
                           "images_seen": step * cfg.train.batch_size, "loss_l1": float(loss.detach()),
                           **scores, "final": not marks})
            log(json.dumps(points[-1]))
    return points


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, required=True, help="training minutes (evaluation not counted)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--evals", type=int, default=6, help="evaluations over the run (the last is the result)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--set", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides, as reproduce.py --set (e.g. model.ngf=32 train.amp=true)")
    args = p.parse_args(argv)
    exp = reproduce.EXPERIMENTS["cyclegan-facades"]
    overrides = [*exp.sets, *(s for group in args.set for s in group)]
    cfg = build_config(exp.model, [reproduce.CONFIGS / "cyclegan-facades.yaml"], overrides)
    cfg.data.spec = exp.data.format(root=args.data_root)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_data(cfg.data, "unpaired")
    if not data.info.paired_eval:
        raise SystemExit(f"{cfg.data.spec}: the bound needs aligned pairs (paired:DIR)")
    points = train_paired(cfg, data, args.minutes, args.evals, log=lambda s: print(s, flush=True))
    final = points[-1]
    result = {"experiment": "cyclegan-facades paired bound (G_AB, L1 only)",
              "metrics": {k: v for k, v in final.items() if k.startswith("AtoB")},
              "minutes": final["minutes"], "steps": final["step"], "images_seen": final["images_seen"],
              "machine": reproduce.machine(args.threads), "overrides": overrides, "seed": args.seed,
              "command": "python benchmarks/paired_bound.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": date.today().isoformat()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps({"result": result, "points": points}, indent=1))
    reproduce.plot_curve(points, KEYS, "cyclegan-facades paired bound: G_AB trained with L1 on the pairs",
                         args.out / "curve.png")
    print(json.dumps(result["metrics"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
