"""The image-quality benchmark: gan, cgan and conditional dcgan on real MNIST digits,
each trained for the same CPU time budget, measured with gankit's own MNIST classifier
as the feature network, next to the real-vs-real floor. Then the same on `digits`.

    python benchmarks/quality.py                       # regenerates docs/benchmarks.md's table
    python benchmarks/quality.py --budget-s 60 --digits-budget-s 20 --no-doc   # a quick look

Protocol (MNIST): the 10,000 t10k digits of ../shared/data/mnist; the GANs train on the
first 8,000 (`--set data.holdout=2000`), the last 2,000 are never trained on. The number
of steps is set so that training takes `--budget-s` seconds of wall time on this machine
(measured on a 40-step calibration run with the same settings). Every metric uses
n = 2,000 generated samples against the 8,000 training digits as reference, so the floor
(2,000 held-out real digits vs the same 8,000) has exactly the same sample counts — the
smallest FID a perfect generator could expect here. The feature network is a small CNN
fitted by `gankit fit-classifier` on all 10,000 digits (20% held out for its accuracy).
Skips cleanly (exit 0) when ../shared/data is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Image quality (MNIST)"

MODELS = [  # (row name, model, extra CLI args)
    ("gan", "gan", []),
    ("cgan", "cgan", []),
    ("dcgan (conditional)", "dcgan", ["--config", str(ROOT / "src/gankit/configs/dcgan-mnist.yaml")]),
]


def gankit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "gankit", *args], check=True, cwd=ROOT)


def _cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _step(run_dir: Path) -> int:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max(int(r.get("step", 0)) for r in rows)


def train_for(model: str, extra: list[str], data: str, sets: list[str], budget_s: float, out: Path) -> dict:
    """Train for about `budget_s` CPU seconds (with train.threads=1: one core's worth, however
    busy the machine is), start-ups included. A first 100-step chunk measures the speed;
    exact resumes (`--resume --steps N`) then extend the run until the budget is used."""
    t0, c0 = time.perf_counter(), _cpu()
    common = ["--set", *sets, "train.log_every=25", "train.checkpoint_every=1000000"]
    gankit("train", model, "--data", data, *extra, "--steps", "100", "--out", str(out), "--overwrite", *common,
           "train.sample_every=1000000")
    step, spent, chunk_steps, chunk_cpu = 100, _cpu() - c0, 100, _cpu() - c0
    for _ in range(4):
        more = int((budget_s - spent) * chunk_steps / max(chunk_cpu, 1e-6))
        if spent >= 0.95 * budget_s or more < 0.03 * step:
            break
        c1 = _cpu()
        gankit("train", "--resume", str(out), "--steps", str(step + more), *common,
               f"train.sample_every={max((step + more) // 4, 1)}")
        chunk_steps, chunk_cpu = more, _cpu() - c1
        step, spent = _step(out), _cpu() - c0
    return {"steps": step, "train_cpu_s": round(spent, 1), "wall_s": round(time.perf_counter() - t0, 1)}


def floor(data_cfg, clf: Path) -> dict:
    """Real vs real: held-out digits against the training digits, same protocol as a GAN."""
    from gankit.metrics.evaluate import feature_network, reference_features, score
    net = feature_network(data_cfg.spec, str(clf), None)
    train = reference_features(data_cfg, "train", net)
    held = reference_features(data_cfg, "held_out", net)
    out = score(train["features"], held["features"], held["logits"], held["labels"], net.num_classes)
    return {**out, "n_fake": len(held["features"]), "n_real": len(train["features"])}


def bench_data(name: str, data: str, holdout: int, n_eval: int, budget_s: float, clf: Path,
               out: Path, images: Path | None, threads: int) -> list[dict]:
    from gankit import load_run
    from gankit.config import DataConfig
    from gankit.data.transforms import save_grid
    from gankit.metrics.evaluate import evaluate_run
    # train.ema=0: the table measures the raw generator (cgan.yaml samples from an EMA by default)
    sets = [f"data.holdout={holdout}", f"train.threads={threads}", "train.progress=false", "train.ema=0"]
    rows = [{"data": name, "model": "real vs real (floor)", **floor(DataConfig(spec=data, size=32, holdout=holdout), clf)}]
    for row, model, extra in MODELS:
        run_dir = out / f"{name}-{model}"
        info = train_for(model, extra, data, sets, budget_s, run_dir)
        rec = evaluate_run(run_dir, features=str(clf), n=n_eval, batch_size=250, reference="train", seed=0, device="cpu")
        rows.append({"data": name, "model": row, **info, **{k: v for k, v in rec.items() if k != "protocol"},
                     "n_fake": rec["protocol"]["n_fake"], "n_real": rec["protocol"]["n_real"]})
        if images is not None:
            grid = load_run(run_dir).sample(100, seed=0)
            save_grid(grid, images / f"quality-{name}-{model}.png", nrow=10)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    f = lambda r, k, fmt: format(r[k], fmt) if isinstance(r.get(k), (int, float)) else "—"  # noqa: E731
    lines = ["| data | model | steps (CPU s) | FID ↓ | KID ↓ | precision ↑ | recall ↑ | IS ↑ | cond. accuracy ↑ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kid = f"{r['kid']:.2f}" if isinstance(r.get("kid"), float) else "—"  # raw: this space is not Inception's
        steps = f"{r['steps']} ({r['train_cpu_s']:.0f})" if "steps" in r else f"n={r['n_fake']} held-out"
        acc = f(r, "accuracy", ".3f") if r["model"] != "gan" else "—"
        lines.append(f"| {r['data']} | {r['model']} | {steps} | {f(r, 'fid', '.2f')} | {kid} | "
                     f"{f(r, 'precision', '.3f')} | {f(r, 'recall', '.3f')} | {f(r, 'is', '.2f')} | {acc} |")
    return "\n".join(lines)


def write_doc(doc: Path, section: str) -> None:
    text = doc.read_text(encoding="utf-8") if doc.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = section.rstrip() + "\n\n"
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    text = text.rstrip() + "\n"
    doc.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--budget-s", type=float, default=200, help="training seconds per MNIST model (default 200)")
    p.add_argument("--digits-budget-s", type=float, default=60, help="training seconds per digits model")
    p.add_argument("--n", type=int, default=2000, help="generated samples per MNIST evaluation")
    p.add_argument("--classifier-epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (leave cores for others)")
    p.add_argument("--out", default=str(ROOT / "runs" / "quality"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--no-doc", action="store_true", help="print the table, leave docs/ alone")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--rewrite-doc", action="store_true", help="only rewrite the doc from OUT/quality.json")
    args = p.parse_args(argv)
    mnist = Path(args.data_dir) / "mnist"
    if not mnist.is_dir():
        print(f"skipped: {mnist} not found (the MNIST quality benchmark needs ../shared/data/mnist)")
        return 0
    import torch
    from gankit.metrics.classifier import fit_classifier
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = None if args.no_doc else ROOT / "docs" / "images"
    if images:
        images.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.rewrite_doc:
        saved = json.loads((out / "quality.json").read_text())
        return write_results(saved, args)
    clf = fit_classifier(f"mnist:{mnist}", out / "mnist-classifier.pt", epochs=args.classifier_epochs, size=32,
                         seed=0, device="cpu")
    rows = bench_data("mnist", f"mnist:{mnist}", 2000, args.n, args.budget_s, out / "mnist-classifier.pt",
                      out, images, args.threads)
    dclf = None
    if not args.skip_digits:
        dclf = fit_classifier("digits", out / "digits-classifier.pt", epochs=10, size=32, seed=0, device="cpu")
        rows += bench_data("digits", "digits", 360, 360, args.digits_budget_s, out / "digits-classifier.pt",
                           out, images, args.threads)
    saved = {"rows": rows, "clf": clf, "dclf": dclf, "minutes": (time.time() - t0) / 60,
             "args": {k: getattr(args, k) for k in ("budget_s", "digits_budget_s", "n", "threads")},
             "date": time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), "threads": torch.get_num_threads(),
             "command": ("python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()}
    (out / "quality.json").write_text(json.dumps(saved, indent=1))
    return write_results(saved, args)


def write_results(saved: dict, args) -> int:
    import torch
    rows, clf, dclf = saved["rows"], saved["clf"], saved["dclf"]
    args = argparse.Namespace(**{**vars(args), **saved["args"]})  # the settings that were measured
    section = "\n".join([
        HEADING, "",
        f"Measured {saved['date']} on {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared "
        f"with other jobs ({saved['threads']} torch thread(s), CPU only, torch {torch.__version__}); whole benchmark "
        f"{saved['minutes']:.0f} min wall. Regenerate with `{saved['command']}`.", "",
        table(rows), "",
        "Protocol: "
        f"MNIST = the 10,000 t10k digits; GANs train on the first 8,000 (`data.holdout=2000`) for "
        f"{args.budget_s:.0f} CPU seconds each (`train.threads={args.threads}`, start-up included; a 100-step chunk "
        "measures the speed, exact `--resume --steps N` continuations fill the budget), shipped configs "
        "(`gan`, `cgan`, `dcgan-mnist.yaml`), no EMA. Metrics: `gankit eval --features mnist-classifier.pt "
        f"--n {args.n} --reference train` — {args.n} samples (conditional models: {args.n // 10} per label) against "
        "the 8,000 training digits, all resized to 32x32. The floor row compares the 2,000 held-out real digits "
        "with the same 8,000 (same counts), so it is what a perfect generator would score. Feature network: "
        f"gankit's small CNN (`gankit fit-classifier`, 128-d penultimate features), held-out accuracy "
        f"{clf['accuracy']:.4f}, sha256 `{clf['weights_sha256'][:12]}`. KID: cubic polynomial kernel, 100 subsets "
        "of min(1000, n). Precision/recall: Kynkäänniemi et al. 2019, k=3. Conditional accuracy: the classifier's "
        "accuracy on samples generated per label.",
        "",
        *([f"`digits` rows: scikit-learn's 1,797 digits, last 360 held out, {args.digits_budget_s:.0f} CPU s per model, "
           f"n=360 vs the 1,437 training digits, with a digits classifier (held-out accuracy "
           f"{dclf['accuracy']:.4f}, sha256 `{dclf['weights_sha256'][:12]}`)."] if dclf else []), "",
        "Reading it: equal CPU time buys very different step counts (the steps column), so the cheap MLP models "
        "get far more updates than DCGAN's convolutions, which are far from converged at this budget (recall near 0). "
        "The MNIST floor is not 0 because the held-out digits are the last 2,000 of t10k, which (like all of its last "
        "5,000) come from NIST's harder writer population: not an i.i.d. split. IS and the floor's accuracy use the "
        "same classifier (it saw 80% of all 10,000 digits in training, so the floor's accuracy is optimistic). KID "
        "is reported raw: the classifier's 128-d ReLU features are large, so the values are not on Inception's scale.",
        "",
        "These FIDs live in this classifier's feature space: they are comparable with each other and with reruns "
        "of this script (same sha256), not with Inception FIDs from papers.", "",
        "Final samples, 100 per model (conditional models: labels 0-9 left to right in every row), "
        "MNIST then digits:", "",
        " ".join(f"![{r} on MNIST](images/quality-mnist-{m}.png)" for r, m, _ in MODELS), "",
        *([" ".join(f"![{r} on digits](images/quality-digits-{m}.png)" for r, m, _ in MODELS), ""] if dclf else []),
    ])
    print(table(rows))
    if not args.no_doc:
        write_doc(Path(args.doc), section)
        print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
