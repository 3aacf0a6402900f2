"""The image experiments of the source material on their real data, one command each:

    python benchmarks/reproduce.py dcgan-cifar10    --minutes 90  --out runs/repro/dcgan-cifar10
    python benchmarks/reproduce.py dcgan-anime      --minutes 60  --out runs/repro/dcgan-anime
    python benchmarks/reproduce.py cyclegan-facades --minutes 120 --out runs/repro/cyclegan-facades
    python benchmarks/reproduce.py cgan-mnist       --minutes 15  --out runs/repro/cgan-mnist
    python benchmarks/reproduce.py dcgan-cifar10 --minutes 3 --eval-n 500     # a smoke run

dcgan-cifar10-small and dcgan-anime-small are the same experiments with the narrow 64-wide
network (their -small.yaml configs); dcgan-anime-plus is dcgan-anime-small with DiffAugment.

Each trains with the shipped config named after it (src/gankit/configs/EXPERIMENT.yaml) in
exact-resume chunks (`gankit train --resume` with `train.stop_at`, so train.steps and any LR
schedule are the whole run's), and evaluates between chunks with the training clock
stopped: `minutes` is the trainer's own elapsed training time (start-up and evaluation not
counted). The run's total steps are planned from a short first chunk's speed.

Written to OUT: run/ (the gankit run; its report.html shows the interval evaluations),
curve.json and curve.png (metric vs training minutes and vs images seen), final.png (the
last sample grid, or CycleGAN's translation sheet), row.md (one Markdown row), and the last
line printed is one JSON object (metrics, minutes, images_seen, protocol, machine).

Metrics (pluggable, METRIC_BACKENDS): image GANs use FID via `gankit eval`, in the
feature space of `--metric`: `classifier` (gankit's small CNN fitted on CIFAR-10 or MNIST;
the anime faces, which have no labels, are judged in the CIFAR-10 classifier's space) or
`inception` (Inception-v3, issue #12's `gankit eval --inception`; ~0.3 s per image per CPU
thread here, so a 10k-sample protocol takes hours on this machine). Numbers from different
feature spaces are not comparable. CycleGAN reports its own paired metrics on the held-out
pairs (photo->label pixel accuracy and mIoU where the labels are detected as a palette map,
L1/PSNR/SSIM both ways). `--eval-n` sets the interval evaluations' sample count; the final
evaluation uses the full protocol (`--final-n` overrides it, and the JSON line says so).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "src" / "gankit" / "configs"
DEFAULT_METRIC = "classifier"  # "inception" once Inception FID is affordable here: the one line to switch


@dataclass
class Experiment:
    model: str
    data: str                     # data spec, {root} = --data-root
    protocol: str                 # the full protocol, as the issue states it
    final_n: int                  # generated samples in the final evaluation
    keys: list[str]               # metrics on the curve, the first one is the headline
    target: str
    sets: list[str] = field(default_factory=list)
    classifier: str = ""          # data spec the classifier feature network is fitted on
    eval_protocol: str = ""       # gankit eval --protocol name, where one applies
    schedule: bool = False        # an LR schedule over train.steps: plan the total once


EXPERIMENTS = {
    "dcgan-cifar10": Experiment(
        "dcgan", "cifar10:{root}/cifar10", "FID, 10k samples vs the 10k CIFAR-10 test images", 10000,
        ["fid", "kid"], "Inception FID <= 45 after 90 min", classifier="cifar10:{root}/cifar10",
        eval_protocol="cifar10-10k"),
    "dcgan-anime": Experiment(
        "dcgan", "folder:{root}/anime_faces", "FID, 5k samples vs the anime faces", 5000,
        ["fid", "kid"], "faces after one epoch; Inception FID <= 80 after 60 min",
        classifier="cifar10:{root}/cifar10"),
    "cyclegan-facades": Experiment(
        "cyclegan", "paired:{root}/facades", "CycleGAN evaluate() on all held-out pairs (CMP facades test/)", 0,
        ["AtoB_label_acc", "AtoB_class_acc", "AtoB_label_miou", "AtoB_l1", "BtoA_l1"],
        "photo->label pixel accuracy >= 0.55 after 120 min", sets=["data.size=128"], schedule=True),
    "cgan-mnist": Experiment(
        "cgan", "mnist:{root}/mnist", "classifier FID and conditional accuracy, 2k samples vs 8k training digits "
        "(the last 2k held out for the floor)", 2000, ["fid", "accuracy"],
        "accuracy >= 99% and FID <= 1.5x floor within 15 min", sets=["data.holdout=2000"],
        classifier="mnist:{root}/mnist"),
}
# Other shipped configs of the same experiments (same data, protocol and target): the narrow
# (model.channels=64) DCGANs, and the anime faces' best measured small-data setting
for _variant, _base in {"dcgan-cifar10-small": "dcgan-cifar10", "dcgan-anime-small": "dcgan-anime",
                        "dcgan-anime-plus": "dcgan-anime"}.items():
    EXPERIMENTS[_variant] = EXPERIMENTS[_base]


# ------------------------------------------------------------------------------ helpers

def gankit(*args: str, quiet: bool = True) -> None:
    cmd = [sys.executable, "-m", "gankit", *args]
    print("+ gankit " + " ".join(args), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE if quiet else None, text=True)
    if out.returncode:
        raise SystemExit(f"gankit {args[0]} failed (exit {out.returncode}): {' '.join(cmd)}")


def rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


def progress(run: Path) -> tuple[int, float]:
    """(step, training seconds) of the newest training log row: the trainer's own clock."""
    train = [r for r in rows(run) if not r.get("eval")]
    return (int(train[-1]["step"]), float(train[-1]["elapsed_s"])) if train else (0, 0.0)


def machine(threads: int) -> dict:
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    import torch
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "load_1min": round(os.getloadavg()[0], 2),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version()}


def top_up(run: Path, budget: float, sets: list[str], before: tuple[int, float], tries: int = 3) -> None:
    """Train on until the clock reaches the budget. The last chunk is planned from the run's
    average speed, which its slow start pulls down, so it tends to end minutes early. Only
    without an LR schedule: there train.steps is a cap, not part of what is computed."""
    step, spent = progress(run)
    for _ in range(tries):
        if budget - spent < 30 or spent <= before[1] or step <= before[0]:
            return
        rate = (step - before[0]) / (spent - before[1])  # the newest chunk's speed
        before = (step, spent)
        gankit("train", "--resume", str(run), "--steps", str(step + max(1, int(rate * (budget - spent)))),
               "--set", *sets, "train.stop_at=0")
        step, spent = progress(run)


# ------------------------------------------------------------------------------ metrics

def fit_feature_classifier(spec: str) -> Path:
    """gankit's small CNN on a labelled set, fitted once and cached (GANKIT_CACHE_DIR)."""
    import hashlib
    from gankit.metrics.classifier import fit_classifier
    from gankit.evaluate import cache_dir
    path = cache_dir() / "classifiers" / f"repro-{hashlib.sha256(spec.encode()).hexdigest()[:12]}-size32.pt"
    if not path.is_file():
        print(f"fitting the feature classifier on {spec} -> {path}", file=sys.stderr, flush=True)
        fit_classifier(spec, path, epochs=5, size=32, seed=0, device="cpu")
    return path


def eval_args_classifier(exp: Experiment, ctx: dict) -> list[str]:
    proto = ["--protocol", exp.eval_protocol] if exp.eval_protocol and ctx["has_protocols"] else ["--reference", "train"]
    return ["--features", str(ctx["classifier"]), *proto]


def eval_args_inception(exp: Experiment, ctx: dict) -> list[str]:
    proto = ["--protocol", exp.eval_protocol] if exp.eval_protocol else ["--reference", "train"]
    return ["--inception", *proto, "--threads", str(ctx["threads"])]


METRIC_BACKENDS = {"classifier": eval_args_classifier, "inception": eval_args_inception}


def evaluate(run: Path, exp: Experiment, ctx: dict, n: int, raw: bool = False) -> dict:
    """One `gankit eval` of the run's newest checkpoint (G's own weights with `raw`); returns
    the record it logged, plus raw_* keys from a second eval when ctx["raw_n"] asks for them."""
    before = len(rows(run))
    if exp.model == "cyclegan":
        args = []  # the model's own paired metrics on every held-out pair
    else:
        args = [*METRIC_BACKENDS[ctx["metric"]](exp, ctx), "--n", str(n)]
    gankit("eval", str(run), *args, *(["--raw"] if raw else []))
    new = [r for r in rows(run)[before:] if r.get("eval")]
    if not new:
        raise SystemExit(f"gankit eval logged no record in {run}/metrics.jsonl")
    # the newest record holding a curve metric (eval may log side records, e.g. memorisation checks)
    record = next((r for r in reversed(new) if any(k in r for k in exp.keys)), new[-1])
    if ctx.get("raw_n") and not raw:  # G's own weights beside the EMA, as raw_* keys
        own = evaluate(run, exp, ctx, ctx["raw_n"], raw=True)
        record = {**record, **{f"raw_{k}": v for k, v in own.items() if k in exp.keys}, "raw_n": ctx["raw_n"]}
    return record


def floor(exp: Experiment, ctx: dict, data: str) -> dict:
    """cgan-mnist: held-out real digits vs the training digits, the same counts as the final eval."""
    from gankit.config import DataConfig
    from gankit.evaluate import feature_network, reference_features, score
    cfg = DataConfig(spec=data, size=32, channels=1, holdout=2000)
    net = feature_network(data, str(ctx["classifier"]), None)
    train, held = reference_features(cfg, "train", net), reference_features(cfg, "held_out", net)
    out = score(train["features"], held["features"], held["logits"], held["labels"], net.num_classes)
    return {"fid_floor": out["fid"], "accuracy_floor": out.get("accuracy")}


# ------------------------------------------------------------------------------ outputs

def plot_curve(points: list[dict], keys: list[str], title: str, out: Path) -> None:
    from matplotlib.ticker import EngFormatter

    from gankit.figures import plt, save_figure
    keys = [k for k in keys if any(isinstance(p.get(k), (int, float)) for p in points)] or keys[:1]
    fig, axes = plt.subplots(len(keys), 2, figsize=(9, 2.8 * len(keys)), squeeze=False)
    for row, k in zip(axes, keys):
        pts = [p for p in points if isinstance(p.get(k), (int, float))]
        raw = [p for p in points if isinstance(p.get(f"raw_{k}"), (int, float))]  # --raw-n: G's own weights
        for ax, x, label in ((row[0], "minutes", "training minutes"), (row[1], "images_seen", "images seen")):
            ax.plot([p[x] for p in pts], [p[k] for p in pts], ".-", label="EMA G" if raw else None)
            if raw:
                ax.plot([p[x] for p in raw], [p[f"raw_{k}"] for p in raw], "x--", label=f"raw G (n={raw[-1]['raw_n']})")
                ax.legend(fontsize=7)
            final = [p for p in pts if p.get("final")]
            if final:
                ax.plot([final[-1][x]], [final[-1][k]], "r*", ms=10, label="final (full protocol)")
                ax.legend(fontsize=7)
            ax.set_xlabel(label)
            if x == "images_seen":  # 890000 -> 890k: raw counts overlap on the axis
                ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.set_ylabel(k)
            ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, out)


def markdown_row(name: str, result: dict, exp: Experiment, args) -> str:
    m = result["metrics"]
    shown = ", ".join(f"{k} {m[k]:.4g}" for k in exp.keys if isinstance(m.get(k), (int, float)))
    if "fid_floor" in m:
        shown += f", floor FID {m['fid_floor']:.4g}"
    return (f"| `{name}` | {result['minutes']:.1f} | {result['steps']} | {result['images_seen']:,} | {shown} | "
            f"{result['protocol']['feature_space']}, n={result['protocol']['final_n'] or 'all'} | {exp.target} | "
            f"`{result['command']}` | {result['date']} |")


# ------------------------------------------------------------------------------ main

def budget_arguments(p: argparse.ArgumentParser) -> None:
    """The options every time-budgeted quality run shares (this script, reference_quality.py)."""
    p.add_argument("--minutes", type=float, required=True, help="training minutes (evaluation not counted)")
    p.add_argument("--out", required=True)
    p.add_argument("--eval-n", type=int, default=1000, help="generated samples per interval evaluation")
    p.add_argument("--final-n", type=int, default=0, help="final evaluation samples (0 = the full protocol)")
    p.add_argument("--evals", type=int, default=4, help="interval evaluations over the run")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--metric", choices=sorted(METRIC_BACKENDS), default=DEFAULT_METRIC,
                   help=f"FID feature space for the image GANs (default {DEFAULT_METRIC})")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for training and evaluation")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    budget_arguments(p)
    p.add_argument("--set", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config overrides (e.g. model.diffaugment=color,translation,cutout)")
    p.add_argument("--raw-n", type=int, default=0, metavar="N",
                   help="with train.ema: also score G's own weights (gankit eval --raw) with N samples at "
                        "every evaluation, as raw_* keys on the curve (0 = off)")
    args = p.parse_args(argv)
    exp = EXPERIMENTS[args.experiment]
    root = Path(args.data_root).resolve()
    data = exp.data.format(root=root)
    data_dir = Path(data.split(":", 1)[1])
    if not data_dir.is_dir():
        raise SystemExit(f"{args.experiment} needs {data_dir} (see --data-root)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run = out / "run"
    budget = args.minutes * 60
    command = "python benchmarks/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
    mach = machine(args.threads)

    ctx = {"metric": args.metric, "threads": args.threads, "raw_n": args.raw_n,
           "has_protocols": "--protocol" in subprocess.run([sys.executable, "-m", "gankit", "eval", "--help"],
                                                          cwd=ROOT, capture_output=True, text=True).stdout}
    extra = {}
    if exp.model != "cyclegan" and args.metric == "classifier":
        import torch
        torch.set_num_threads(args.threads)
        ctx["classifier"] = fit_feature_classifier(exp.classifier.format(root=root))
        if args.experiment == "cgan-mnist":
            extra = floor(exp, ctx, data)

    # train.epochs=0: the budget sets the steps (cyclegan-facades.yaml counts 200 epochs)
    sets = [*exp.sets, *(s for group in args.set for s in group), f"train.threads={args.threads}",
            "train.progress=false", "train.eval_every=0", "train.epochs=0"]
    cfg_file = CONFIGS / f"{args.experiment}.yaml"
    first = {"dcgan": 10, "cyclegan": 20, "cgan": 200}[exp.model]
    # A first chunk measures the speed; its train.steps is a placeholder far beyond the budget
    # (a schedule only decays in the second half, so the chunk trains at the constant rate).
    gankit("train", exp.model, "--config", str(cfg_file), "--data", data, "--out", str(run), "--overwrite",
           "--steps", "10000000", "--set", *sets, f"train.stop_at={first}")
    step, spent = progress(run)
    total = max(int(step / spent * budget), step + 1)
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    per_step = int(resolved["train"]["batch_size"]) * int(resolved["model"].get("d_steps", 1))  # reals per step
    decay_start = float(resolved["model"].get("decay_start", 1.0))  # CycleGAN: LR constant before this fraction
    points = []
    for i in range(1, args.evals + 1):
        step, spent = progress(run)
        planned = max(int(step / spent * budget), step + 1)
        # re-plan from the speed so far where nothing trained yet depends on train.steps: always
        # without an LR schedule, and with one while both totals still leave us before its decay
        if not exp.schedule or step < decay_start * min(total, planned):
            total = planned
        target = total if i == args.evals else min(int(step + step / spent * (budget * i / args.evals - spent)),
                                                   total - 1)
        if target > step:
            gankit("train", "--resume", str(run), "--steps", str(total), "--set", *sets,
                   f"train.stop_at={target if target < total else 0}")
        final = i == args.evals
        if final and not exp.schedule:
            top_up(run, budget, sets, before=(step, spent))
        step, spent = progress(run)
        if not final and points and step == points[-1]["step"]:
            continue  # training ran slower than its first 10 steps promised: nothing new to score yet
        n = (args.final_n or exp.final_n) if final else args.eval_n
        rec = evaluate(run, exp, ctx, n)
        point = {"step": step, "minutes": round(spent / 60, 3), "images_seen": step * per_step,
                 **{k: v for k, v in rec.items() if isinstance(v, (int, float)) and k not in ("step", "eval")},
                 "n": (rec.get("protocol") or {}).get("n_fake"), "final": final}
        points.append(point)
        print(json.dumps(point), file=sys.stderr, flush=True)

    grids = sorted((run / "samples").glob("step_*.png"))
    if grids:
        shutil.copyfile(grids[-1], out / "final.png")
    last = points[-1]
    metrics = {k: v for k, v in last.items() if k not in ("step", "minutes", "images_seen", "n", "final")
               and not k.startswith("accuracy_class_")}  # per-class figures stay in curve.json
    metrics.update(extra)
    if "fid_floor" in metrics and "fid" in metrics:
        metrics["fid_over_floor"] = metrics["fid"] / metrics["fid_floor"]
    proto = (rec.get("protocol") or {})
    result = {
        "experiment": args.experiment, "metrics": metrics, "minutes": last["minutes"], "steps": last["step"],
        "images_seen": last["images_seen"],
        "protocol": {"description": exp.protocol, "final_n": last["n"] or exp.final_n,
                     "full_protocol": not args.final_n or args.final_n == exp.final_n,
                     "interval_n": args.eval_n,
                     "feature_space": "cyclegan evaluate()" if exp.model == "cyclegan" else proto.get(
                         "feature_network", args.metric),
                     "reference": proto.get("reference_data") or proto.get("reference"),
                     "clock": "trainer elapsed_s: training only (start-up and evaluations excluded)"},
        "machine": mach, "command": command, "date": datetime.date.today().isoformat(),
        "config": str(cfg_file.relative_to(ROOT)), "run_dir": str(run)}
    (out / "curve.json").write_text(json.dumps({"result": result, "points": points}, indent=1))
    plot_curve(points, exp.keys, f"{args.experiment}: {result['protocol']['feature_space']}", out / "curve.png")
    (out / "row.md").write_text(markdown_row(args.experiment, result, exp, args) + "\n")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
