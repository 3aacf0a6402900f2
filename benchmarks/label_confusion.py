"""Where a CycleGAN's photo->label pixel accuracy goes: the confusion matrix of its G_AB on the
held-out pairs, per class, against three baselines (every pixel the largest class; two
independent maps with the same class shares; the best one-to-one renaming of G's colours):

    python benchmarks/label_confusion.py RUN_DIR [--palette facades|FILE]

RUN_DIR is a `gankit train cyclegan` run on paired data whose B domain is label maps.
"""
import argparse
import json
import sys

import torch
from scipy.optimize import linear_sum_assignment

from gankit.metrics.paired import label_confusion, label_scores, load_palette


def analyse(hist: torch.Tensor, names: list[str]) -> dict:
    """hist: (K, K) counts, row = true class, column = predicted."""
    h = hist.double()
    total = h.sum()
    rows, cols = linear_sum_assignment(-h.numpy())  # the renaming that puts most counts on the diagonal
    renamed = torch.zeros_like(h)
    renamed[:, torch.as_tensor(rows)] = h[:, torch.as_tensor(cols)]
    return {
        **label_scores(hist),
        "largest_class_everywhere": float(h.sum(1).max() / total),
        "independent_same_shares": float((h.sum(1) * h.sum(0)).sum() / total ** 2),
        "best_renaming_label_acc": label_scores(renamed)["label_acc"],
        "classes": {n: {"true_share": float(h[i].sum() / total), "predicted_share": float(h[:, i].sum() / total),
                        "recall": float(h[i, i] / h[i].sum()) if h[i].sum() else None}
                    for i, n in enumerate(names)},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--palette", default="facades", help="a shipped palette name or a palette JSON file")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from gankit.api import load_run
    torch.set_num_threads(args.threads)
    palette = load_palette(args.palette)
    run = load_run(args.run, with_data=True)
    held = run.data.held_out
    if not held or "b" not in held:
        raise SystemExit(f"{args.run}: no held-out pairs to score (paired data needed)")
    with torch.no_grad():
        fake = torch.cat([run.model.G_AB(held["a"][i:i + 8]) for i in range(0, len(held["a"]), 8)])
    hist = label_confusion(fake, held["b"], palette["colours"])
    print(json.dumps({"run": args.run, "step": run.step, **analyse(hist, palette["classes"])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
