"""The image-quality benchmark: gan, cgan and conditional dcgan (dcgan-mnist.yaml) on real
MNIST digits, each trained for the same CPU time, next to the real-vs-real floor; then the
same on built-in `digits`. A thin user of `gankit compare` (gankit/compare.py), which does
the training, the equal budgets, the evaluation and the table.

    python benchmarks/quality.py --budget-s 150 --digits-budget-s 40   # regenerates docs/benchmarks.md's section
    python benchmarks/quality.py --budget-s 30 --digits-budget-s 10 --no-doc   # a quick look

Protocol (MNIST): the 10,000 t10k digits of ../shared/data/mnist; the GANs train on the
first 8,000 (`data.holdout=2000`), no EMA, for `--budget-s` CPU seconds each (compare's
`clock="cpu"`: training time times the CPU share the run got, so a busy machine does not
shorten it). Every metric uses n = 2,000 generated samples against the 8,000 training digits;
the floor row scores the 2,000 held-out real digits the same way (same counts), the smallest
FID a perfect generator could expect here. The feature network is the small CNN compare fits
once on the data (`gankit fit-classifier`, 20% held out for its accuracy); `digits` uses the
built-in digits classifier. The runs live in OUT/mnist and OUT/digits: rerunning the same
command keeps finished runs (compare's resume) and only rewrites the tables and the doc.
Skips cleanly (exit 0) when ../shared/data/mnist is absent (unless --digits-only).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Image quality (MNIST)"
RUNS = ["gan", "cgan", "dcgan-mnist"]  # dcgan-mnist: src/gankit/configs/dcgan-mnist.yaml, conditional DCGAN
FLOOR = "real vs real (floor)"


def bench(name: str, data: str, holdout: int, n: int, budget_s: float, args) -> dict:
    """One compare on `data` plus its floor row: the table (Markdown) and what the doc cites."""
    from gankit.compare import Plan, compare, markdown_table, real_floor
    # train.ema=0: the table measures the raw generator (cgan.yaml samples from an EMA by default)
    plan = Plan(data=data, runs=args.runs, seeds=args.seeds, budget_s=budget_s, clock="cpu", evals=args.evals, n=n,
                sets=[f"data.holdout={holdout}", f"train.threads={args.threads}", "train.ema=0", *args.set],
                device="cpu")
    out = compare(plan, Path(args.out) / name, progress=not args.no_progress)
    floor = real_floor(plan, out)
    rows = json.loads((out / "compare.json").read_text())["table"]
    return {"name": name, "table": markdown_table([{"config": FLOOR, "seeds": "—", **floor}, *rows]),
            "floor": floor, "samples": out / "samples.png", "budget_s": budget_s, "n": n}


def section(results: list[dict], command: str, threads: int, seeds: int) -> str:
    import torch
    parts = [HEADING, "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs "
             f"({threads} torch thread(s) per run, CPU only, torch {torch.__version__}), {seeds} seed(s) per model "
             f"(mean ± 95% CI when more than one). Regenerate with `{command}` (a thin user of `gankit compare`).", ""]
    for r in results:
        f = r["floor"]
        parts += [f"**{r['name']}**: {r['budget_s']:g} CPU s of training per run, n={r['n']} samples vs the "
                  f"{f['n_real']} training images; feature network `{f['feature_network']}` (held-out accuracy "
                  f"{f['feature_accuracy']:.4f}, sha256 `{f['feature_sha256'][:12]}`).", "", r["table"], ""]
    parts += [
        "Protocol: MNIST = the 10,000 t10k digits, the last 2,000 held out (`data.holdout=2000`); `digits` = "
        "scikit-learn's 1,797, the last 360 held out. Shipped configs (`gan`, `cgan`, `dcgan-mnist.yaml`: the "
        "conditional DCGAN), no EMA, the same CPU time each (`gankit compare --clock cpu`: the trainer's training "
        "time times the CPU share it got; start-ups and evaluations are not charged). Metrics: `gankit eval`'s, "
        "n samples (conditional models: n/10 per label) against the training images, through the feature "
        "network at its own 32x32. The floor row scores n held-out real images the same way (same counts): "
        "what a perfect generator would score. KID: cubic polynomial kernel, raw (these 128-d ReLU features are "
        "not on Inception's scale). Precision/recall: Kynkäänniemi et al. 2019, k=3. Conditional accuracy: the "
        "classifier's accuracy on samples generated per label.", "",
        "Reading it: equal CPU time buys very different step counts (the steps column), so the cheap MLP models "
        "get far more updates than DCGAN's convolutions. The MNIST floor is not 0 because the held-out digits are "
        "the last 2,000 of t10k, from NIST's harder writer population: not an i.i.d. split. These FIDs live in "
        "the classifier's feature space: comparable with each other and with reruns (same sha256), not with "
        "Inception FIDs from papers.", "",
        "Fixed-noise samples of each model's seed-0 run (conditional models: labels 0-9 along each row):", "",
        " ".join(f"![{r['name']} samples](images/quality-{r['name']}-samples.png)" for r in results), ""]
    return "\n".join(parts)


def write_doc(doc: Path, text: str) -> None:
    """Replace the HEADING section of `doc` (or append it)."""
    old = doc.read_text(encoding="utf-8") if doc.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = text.rstrip() + "\n\n"
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    doc.write_text(new.rstrip() + "\n", encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--budget-s", type=float, default=200, help="training CPU seconds per MNIST run (default 200)")
    p.add_argument("--digits-budget-s", type=float, default=60, help="training CPU seconds per digits run")
    p.add_argument("--n", type=int, default=2000, help="generated samples per MNIST evaluation")
    p.add_argument("--seeds", type=int, default=1, help="seeds per model (default 1)")
    p.add_argument("--evals", type=int, default=1, help="evaluations per run (compare's curve points; default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (leave cores for others)")
    p.add_argument("--runs", nargs="+", default=RUNS, help=f"models or config files (default {' '.join(RUNS)})")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="more overrides for every run")
    p.add_argument("--out", default=str(ROOT / "runs" / "quality"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"), help="images go to its folder's images/")
    p.add_argument("--no-doc", action="store_true", help="print the tables, leave the doc alone")
    p.add_argument("--no-progress", action="store_true")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--skip-digits", action="store_true")
    group.add_argument("--digits-only", action="store_true", help="only the built-in digits (no shared data)")
    args = p.parse_args(argv)
    mnist = Path(args.data_dir) / "mnist"
    benches = [] if args.digits_only else [("mnist", f"mnist:{mnist}", 2000, args.n, args.budget_s)]
    if not args.digits_only and not mnist.is_dir():
        print(f"skipped: {mnist} not found (the MNIST quality benchmark needs ../shared/data/mnist)")
        return 0
    if not args.skip_digits:
        benches.append(("digits", "digits", 360, 360, args.digits_budget_s))
    import torch
    torch.set_num_threads(args.threads)
    results = [bench(*b, args) for b in benches]
    command = ("python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    text = section(results, command, args.threads, args.seeds)
    for r in results:
        print(f"{r['name']}:\n{r['table']}\n")
    if not args.no_doc:
        doc = Path(args.doc)
        images = doc.parent / "images"
        images.mkdir(parents=True, exist_ok=True)
        for r in results:
            shutil.copyfile(r["samples"], images / f"quality-{r['name']}-samples.png")
        write_doc(doc, text)
        print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
