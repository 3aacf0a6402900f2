"""`gankit compare`: models x options x seeds on one data set under one equal budget.

    gankit compare --data digits --runs gan cgan dcgan --vary model.loss=bce,hinge,lsgan \
        --seeds 3 --budget-s 300 --out cmp/

Every configuration (a model with one choice of each --vary key) is trained once per seed,
one run after another (a small machine has no cores to spare for parallel runs), each for
the same budget: `--steps N`, or `--budget-s S` seconds of training wall time (the
trainer's own elapsed_s, start-up and evaluation excluded). A run trains in `--evals`
chunks, each continued from the previous one's checkpoint by gankit's exact resume; after
each chunk the checkpoint is scored by `gankit eval`'s code (metrics.evaluate.evaluate_run:
FID, KID, IS, precision/recall and, for conditional models, per-label accuracy, with the
same feature network, n and seed for every run). Those points give the
quality-versus-compute curves; the last one gives the table: mean ± 95% confidence
half-width over seeds from Student's t (n - 1 degrees of freedom).

OUT/ holds plan.json (what was asked: a rerun with other arguments is refused), runs/NAME/
(ordinary run directories, each with a progress.json of its evaluated points),
compare.{md,csv,json}, curves.png, samples.png and compare.html. Rerunning the same
command after an interruption keeps finished runs and resumes the unfinished one from its
last checkpoint, exactly where it stopped.
"""
from __future__ import annotations

import csv
import html
import io
import itertools
import json
import math
import os
import re
import sys
import time
import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tqdm.auto import tqdm

from .api import build_config, load_run, run_config
from .config import TrainConfig, config_dir, load_yaml, set_key, validate
from .data.transforms import make_grid
from .distributed import pick_device
from .errors import GankitError, Interrupted
from .evaluate import evaluate_run, feature_network, reference_features, score
from .figures import plt, save_figure
from .metrics.classifier import fit_classifier
from .models import MODELS
from .runs import RunDir, atomic_write_bytes
from .trainer import train

# metric -> (shown name, True if higher is better); the order of the table's columns
METRICS = {"fid": ("FID", False), "kid": ("KID", False), "precision": ("precision", True),
           "recall": ("recall", True), "is": ("IS", True), "accuracy": ("cond. accuracy", True)}


@dataclass
class Plan:
    """What a compare trains. Saved as OUT/plan.json; a rerun must ask for the same."""
    data: str
    runs: list[str]  # model names, or YAML config files (`name:` gives the model; a shipped one by its name)
    vary: list[str] = field(default_factory=list)  # "section.key=v1,v2,..."
    seeds: int = 3
    steps: int = 0  # budget in steps, or
    budget_s: float = 0.0  # in seconds of training time, on this clock:
    clock: str = "wall"  # "wall" (the trainer's elapsed time) or "cpu" (the CPU seconds those took)
    evals: int = 4  # evaluated points per run (the curves)
    n: int = 1000  # generated samples per evaluation
    features: str | None = None
    sets: list[str] = field(default_factory=list)  # overrides for every run
    device: str = "auto"


@dataclass
class Job:
    name: str  # directory name under OUT/runs
    config: str  # the configuration, seeds pooled: "gan model.loss=hinge"
    model: str
    options: list[str]
    seed: int
    files: list[str] = field(default_factory=list)  # the run's --config file, if its --runs entry was one


# ----------------------------------------------------------------------- statistics

def t_quantile(p: float, dof: int) -> float:
    """Student's t quantile (scipy's; scipy comes with scikit-learn, a gankit dependency)."""
    from scipy.stats import t  # lazy: scipy is slow to import and only this quantile needs it
    return float(t.ppf(p, dof))


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float | None]:
    """(mean, half-width of the `level` confidence interval, Student t); None for one value."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return math.nan, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return mean, t_quantile(0.5 + level / 2, len(vals) - 1) * sd / math.sqrt(len(vals))


def summarise(results: dict[str, dict], jobs: list[Job]) -> list[dict]:
    """One row per configuration: every metric's mean and CI over its seeds' final points."""
    rows = []
    for config in dict.fromkeys(j.config for j in jobs):
        finals = [results[j.name]["points"][-1] for j in jobs if j.config == config and j.name in results]
        first = next(j for j in jobs if j.config == config)
        row = {"config": config, "model": first.model, "options": " ".join(first.options), "seeds": len(finals)}
        for key in ("step", "train_s", *METRICS):
            vals = [p[key] for p in finals if isinstance(p.get(key), (int, float))]
            if vals:
                row[key], row[f"{key}_ci95"] = mean_ci(vals)
        rows.append(row)
    return rows


def _cell(row: dict, key: str, digits: int) -> str:
    if key not in row or row[key] is None or not math.isfinite(row[key]):
        return "—"
    ci = row.get(f"{key}_ci95")
    return f"{row[key]:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None else "")


def _columns(rows: list[dict]) -> list[str]:
    return [k for k in METRICS if any(k in r for r in rows)]


def markdown_table(rows: list[dict]) -> str:
    cols = _columns(rows)
    head = ["configuration", "seeds", "steps", "train s", *[f"{METRICS[k][0]} {'↑' if METRICS[k][1] else '↓'}"
                                                           for k in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["config"], str(r["seeds"]), _cell(r, "step", 0), _cell(r, "train_s", 0),
                 *[_cell(r, k, 2 if k in ("fid", "is", "kid") else 3) for k in cols]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_table(rows: list[dict]) -> str:
    keys = ["config", "model", "options", "seeds"]
    for k in ("step", "train_s", *_columns(rows)):
        keys += [k, f"{k}_ci95"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k, "")) for k in keys})
    return buf.getvalue()


# ----------------------------------------------------------------------------- plan

def _parse_vary(vary: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for text in vary:
        key, sep, values = text.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise GankitError(f"--vary takes KEY=V1,V2,... (e.g. model.loss=bce,hinge), got '{text}'")
        out.append((key.strip(), choices))
    return out


def run_entry(run: str) -> tuple[str, str, list[str]]:
    """(label, model, config files) of one --runs entry: a model name; a YAML config file, whose
    `name:` is the model (e.g. src/gankit/configs/dcgan-mnist.yaml); or a shipped config's name
    (dcgan-mnist). A config file is labelled by its stem."""
    shipped = config_dir() / f"{run}.yaml"
    if run in MODELS or not (run.endswith((".yaml", ".yml")) or shipped.is_file()):
        return run, run, []  # an unknown name fails in _check_plan with build_config's suggestion
    path = str(shipped) if shipped.is_file() and not run.endswith((".yaml", ".yml")) else run
    model = load_yaml(path).get("name")
    if not isinstance(model, str):
        raise GankitError(f"{path}: a --runs config file needs a 'name: MODEL' line (gankit list shows the models)")
    return Path(path).stem, model, [path]


def jobs_of(plan: Plan) -> list[Job]:
    """Every (model, choice of each --vary key, seed), in the order they train: seed-major,
    so an early stop still leaves one seed of every configuration."""
    varied = _parse_vary(plan.vary)
    configs = []
    for run in plan.runs:
        label, model, files = run_entry(run)
        for combo in itertools.product(*[[f"{k}={v}" for v in vals] for k, vals in varied]):
            configs.append((label, model, files, list(combo)))
    jobs = []
    for seed in range(plan.seeds):
        for label, model, files, options in configs:
            config = " ".join([label, *options])
            slug = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", "_".join([label, *[o.split(".", 1)[-1] for o in options]]))
            jobs.append(Job(f"{slug}_seed{seed}", config, model, options, seed, files))
    return jobs


def _check_plan(plan: Plan) -> None:
    if not plan.runs:
        raise GankitError("--runs needs at least one model (gankit list shows them)")
    if plan.seeds < 1:
        raise GankitError(f"--seeds must be at least 1, got {plan.seeds}")
    if (plan.steps > 0) == (plan.budget_s > 0):
        raise GankitError("give one budget: --steps N or --budget-s SECONDS (per run)")
    if plan.clock not in ("wall", "cpu"):
        raise GankitError(f"--clock must be wall or cpu, got '{plan.clock}'")
    if plan.evals < 1:
        raise GankitError(f"--evals must be at least 1, got {plan.evals}")
    if plan.steps and plan.evals > plan.steps:
        raise GankitError(f"--evals {plan.evals} is more than --steps {plan.steps}")
    for job in jobs_of(plan)[: len(jobs_of(plan)) // plan.seeds]:
        if job.model in MODELS and MODELS[job.model].DATA_KIND != "image":
            raise GankitError(f"gankit compare scores image GANs; '{job.model}' is a "
                              f"{MODELS[job.model].DATA_KIND} model")
        build_config(job.model, job.files, _overrides(plan, job))  # unknown keys/values fail now, not after hours


def _overrides(plan: Plan, job: Job, features: str | None = None) -> list[str]:
    # the training-time diagnostics judge samples with the compare's own feature network
    features = features or plan.features
    judge = [f"train.classifier={features}"] if features and hasattr(TrainConfig, "classifier") else []
    return [f"data.spec={plan.data}", *judge, *plan.sets, *job.options, f"train.seed={job.seed}",
            "train.progress=false", f"train.device={plan.device}"]


# ------------------------------------------------------------------------- one run

def _last_record(run_dir: Path) -> dict:
    rows = [r for r in _read_metrics(run_dir) if "elapsed_s" in r]
    return rows[-1] if rows else {}


def _read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a torn last line from a killed run
    return rows


def _checkpoint(run_dir: Path) -> tuple[int, float] | None:
    """(step, trainer's elapsed seconds) of the run's newest complete checkpoint, or None."""
    run = RunDir(run_dir)
    if not run.exists() or not run.candidates():
        return None
    state, _ = run.latest()
    return int(state["step"]), float(state.get("elapsed_s", 0.0))


def _train_to(plan: Plan, job: Job, run_dir: Path, target: int, features: str | None = None) -> float:
    """Train the run to `target` steps, fresh or by gankit's exact resume of its checkpoint;
    return the seconds of training this took. That is the trainer's elapsed time from the
    checkpoint to the last log record, so the sampling and evaluation at each chunk's end
    (which a checkpoint's elapsed_s includes) are not charged to the budget."""
    ckpt = _checkpoint(run_dir)
    if ckpt is None:
        cfg = build_config(job.model, job.files, [*_overrides(plan, job, features), f"train.steps={target}"])
        train(cfg, out=run_dir, overwrite=True)
        before = 0.0
    elif ckpt[0] < target:
        cfg = run_config(run_dir)
        set_key(cfg, "train.steps", target)
        validate(cfg)
        train(cfg, resume=run_dir)
        before = ckpt[1]
    else:
        return 0.0
    return max(float(_last_record(run_dir).get("elapsed_s", before)) - before, 0.0)


def _steps_for(seconds: float, progress: dict, rate: float) -> int:
    """Steps that fill `seconds` more: at the latest log interval's speed (the first steps
    are slow: warm-up), else at the average so far."""
    rate = rate if rate > 0 else progress["step"] / max(progress["train_s"], 1e-9)
    return max(1, round(seconds * rate))


def _evaluate(plan: Plan, run_dir: Path, features: str | None) -> dict:
    rec = evaluate_run(run_dir, features=features, n=plan.n, reference="train", seed=0, device=plan.device)
    return {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not k.startswith("accuracy_class")}


def run_job(plan: Plan, job: Job, run_dir: Path, features: str | None, on_progress=None,
            rate: float = 0.0) -> dict:
    """Train and evaluate one run chunk by chunk. progress.json (step, training seconds,
    evaluated points) is written after every chunk and every evaluation, so an interrupted
    run continues from its checkpoint with its budget accounting intact. `rate` (steps/s)
    is the speed an earlier seed of the same configuration had: it replaces the short
    calibration chunk (each extra chunk costs a start-up and a report)."""
    progress_path = run_dir / "progress.json"
    progress = (json.loads(progress_path.read_text()) if progress_path.is_file()
                else {"step": 0, "train_s": 0.0, "points": []})
    points = progress["points"]

    def chunk(target: int) -> None:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        seconds = _train_to(plan, job, run_dir, target, features)
        if plan.clock == "cpu" and seconds > 0:
            # CPU seconds per wall second over the chunk (its start-up and last sampling included)
            # times its training seconds: on a busy machine a run is charged for the core it got
            progress["cpu_share"] = round((time.process_time() - cpu0) / max(time.perf_counter() - wall0, 1e-9), 4)
            seconds *= progress["cpu_share"]
        progress["train_s"] = round(progress["train_s"] + seconds, 3)
        progress["step"] = _checkpoint(run_dir)[0]
        _write_json(progress_path, progress)

    while len(points) < plan.evals:
        i = len(points)
        if plan.steps:
            chunk(round(plan.steps * (i + 1) / plan.evals))
        else:  # seconds: reach (i+1)/evals of the budget at the speed measured so far
            goal = plan.budget_s * (i + 1) / plan.evals
            if progress["step"] == 0:  # a short first chunk measures the speed, unless it is known
                chunk(max(1, round(0.97 * goal * rate)) if rate > 0 else 20)
            for _ in range(3):  # speed drifts on a shared machine: top up (a little under) until near the goal
                if progress["train_s"] >= 0.95 * goal and progress["step"] > (points[-1]["step"] if points else 0):
                    break
                rate = float(_last_record(run_dir).get("steps_per_s") or 0.0)  # steps per wall second
                rate /= progress.get("cpu_share", 1.0) if plan.clock == "cpu" else 1.0
                chunk(progress["step"] + _steps_for(0.97 * goal - progress["train_s"], progress, rate))
        point = {"step": progress["step"], "train_s": round(progress["train_s"], 2)}
        points.append({**point, **_evaluate(plan, run_dir, features)})
        _write_json(progress_path, progress)
        if on_progress:
            on_progress(job, points[-1])
    return progress


def _write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=str).encode("utf-8"))


# ------------------------------------------------------------------------- compare

def compare(plan: Plan, out: str | Path, progress: bool = True) -> Path:
    """Train every job of `plan` into OUT/runs (resuming what an earlier call left), then
    write the table, curves, sample grid and page. Returns OUT."""
    _check_plan(plan)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "plan.json"
    if plan_path.is_file():
        saved = json.loads(plan_path.read_text())
        known = {f.name for f in fields(Plan)}  # a plan.json from before a field existed has its default
        saved = asdict(Plan(**{k: v for k, v in saved.items() if k in known})) if known >= set(saved) else saved
        if saved != json.loads(json.dumps(asdict(plan))):
            diff = sorted(k for k in saved if saved.get(k) != asdict(plan).get(k))
            raise GankitError(f"{out} holds a different compare (differs in: {', '.join(diff)}); "
                              "rerun its own command to resume it, or pick a new --out")
    else:
        _write_json(plan_path, asdict(plan))
    features = _features(plan, out)
    jobs = jobs_of(plan)
    budget = plan.steps or plan.budget_s
    unit = "step" if plan.steps else "s"
    bar = tqdm(total=len(jobs) * budget, unit=unit, desc="compare", disable=not progress, dynamic_ncols=True,
               file=sys.stderr, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} " + unit +
               " [{elapsed}<{remaining}]{postfix}")
    results: dict[str, dict] = {}
    rates: dict[str, float] = {}  # steps/s of each configuration's first finished run
    last_write = time.monotonic()
    for k, job in enumerate(jobs):
        run_dir = out / "runs" / job.name
        done_before = _done_units(run_dir, plan)
        bar.update(done_before)
        bar.set_postfix_str(f"run {k + 1}/{len(jobs)}: {job.name}")
        state = {"shown": done_before}

        def tick(job, point, state=state, k=k):
            now = min(point["step"] if plan.steps else point["train_s"], budget)
            bar.update(max(now - state["shown"], 0))
            state["shown"] = max(now, state["shown"])
            fid = f", FID {point['fid']:.1f}" if "fid" in point else ""
            bar.set_postfix_str(f"run {k + 1}/{len(jobs)}: {job.name} step {point['step']}{fid}")

        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            results[job.name] = run_job(plan, job, run_dir, features, tick, rates.get(job.config, 0.0))
            done = results[job.name]
            if done["train_s"] > 0:
                rates.setdefault(job.config, done["step"] / done["train_s"])
        except Interrupted as e:  # the trainer saved; the way back is the compare, not `train --resume`
            bar.close()
            _partial(plan, jobs, results, out, features)
            raise Interrupted(f"stopped in run {k + 1}/{len(jobs)} ({job.name}) after saving its checkpoint; "
                              "rerun the same gankit compare command to continue (finished runs are kept)",
                              e.signum) from None
        bar.update(max(budget - state["shown"], 0))
        if k + 1 < len(jobs) and time.monotonic() - last_write > 120:  # a long compare shows what it has so far
            _partial(plan, jobs, results, out, features)
            last_write = time.monotonic()
    bar.close()
    write_outputs(plan, jobs, results, out, features)
    return out


def _partial(plan: Plan, jobs: list[Job], results: dict, out: Path, features: str | None) -> None:
    """On a stop, the outputs for the runs finished so far (marked partial), so a long
    compare cut short still shows what it has."""
    done = [j for j in jobs if j.name in results]
    if done:
        write_outputs(plan, done, results, out, features)
        with open(out / "compare.md", "a", encoding="utf-8") as f:
            f.write(f"\nPartial: {len(done)} of {len(jobs)} runs finished; rerun the command to complete it.\n")


def _done_units(run_dir: Path, plan: Plan) -> float:
    path = run_dir / "progress.json"
    if not path.is_file():
        return 0
    points = json.loads(path.read_text())["points"]
    if not points:
        return 0
    return min(points[-1]["step"] if plan.steps else points[-1]["train_s"], plan.steps or plan.budget_s)


def _features(plan: Plan, out: Path) -> str | None:
    """The feature network: --features, digits' built-in one, or one fitted here once on the
    compare's own (labelled) data, kept in OUT/ so every run and every rerun shares it."""
    if plan.features:
        return plan.features
    if plan.data.split(":")[0].strip().lower() == "digits":
        return None  # evaluate_run uses the cached built-in digits classifier
    path = out / "classifier.pt"
    if not path.is_file():
        print(f"fitting a feature network on {plan.data} for the metrics (once): {path}", file=sys.stderr)
        fit_classifier(plan.data, path, epochs=5, size=32, seed=0, device=plan.device)
    return str(path)


def real_floor(plan: Plan, out: str | Path) -> dict:
    """Real vs real: up to `plan.n` held-out real images scored as if a generator had made them,
    against the same training images and through the same feature network as every run, so
    with the same counts: what a perfect generator would score. Needs held-out data
    (`--set data.holdout=N`); images at the feature network's own size."""
    job = jobs_of(plan)[0]
    data_cfg = build_config(job.model, job.files, _overrides(plan, job)).data
    net = feature_network(plan.data, _features(plan, Path(out)), None, str(pick_device(plan.device)))
    data_cfg = dataclasses.replace(data_cfg, size=getattr(net, "size", data_cfg.size))
    if not data_cfg.holdout:
        raise GankitError("the real-vs-real floor needs held-out images: add --set data.holdout=N")
    train = reference_features(data_cfg, "train", net)
    held = reference_features(data_cfg, "held_out", net)
    n = min(plan.n, len(held["features"]))
    labels = held["labels"][:n] if held["labels"] is not None else None
    metrics = score(train["features"], held["features"][:n], held["logits"][:n], labels,
                    getattr(net, "num_classes", 0))
    return {**metrics, "n_fake": n, "n_real": len(train["features"]), "feature_network": net.name,
            "feature_sha256": net.sha256, "feature_accuracy": getattr(net, "meta", {}).get("accuracy")}


# ------------------------------------------------------------------------- outputs

def write_outputs(plan: Plan, jobs: list[Job], results: dict[str, dict], out: Path, features: str | None) -> None:
    rows = summarise(results, jobs)
    md = markdown_table(rows)
    protocol = _protocol(plan, jobs, out)
    note = (f"Mean ± 95% confidence half-width over {plan.seeds} seed(s) (Student t), each run's last evaluation; "
            f"budget {protocol['budget_per_run']} per run on {plan.data}; {protocol.get('n_fake', plan.n)} samples "
            f"vs {protocol.get('n_real', '?')} real images through {protocol.get('feature_network', '?')} "
            f"(sha256 {str(protocol.get('feature_sha256', '?'))[:12]}).")
    (out / "compare.md").write_text(md + "\n\n" + note + "\n", encoding="utf-8")
    (out / "compare.csv").write_text(csv_table(rows), encoding="utf-8")
    _write_json(out / "compare.json", {"plan": asdict(plan), "protocol": protocol, "table": rows,
                                       "runs": {j.name: {"config": j.config, "seed": j.seed,
                                                         "points": results[j.name]["points"]} for j in jobs}})
    figures = [_curves(plan, jobs, results, out), _sample_grid(jobs, out)]
    _page(plan, md, rows, figures, jobs, protocol, out)


def _protocol(plan: Plan, jobs: list[Job], out: Path) -> dict:
    path = out / "runs" / jobs[0].name / "metrics.jsonl"
    evals = [r for r in _read_metrics(path.parent) if r.get("eval") and "protocol" in r]
    p = evals[-1]["protocol"] if evals else {}
    budget = f"{plan.steps} steps" if plan.steps else f"{plan.budget_s:g} s of training {plan.clock} time"
    return {"budget_per_run": budget, "seeds": plan.seeds, "evaluations_per_run": plan.evals,
            "ci": "95% Student t over seeds (n - 1 dof)",
            **{k: p.get(k) for k in ("feature_network", "feature_sha256", "n_fake", "n_real", "reference",
                                     "reference_data") if k in p},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu_count": os.cpu_count()}


def _curves(plan: Plan, jobs: list[Job], results: dict, out: Path) -> Path:
    rows = [k for k in ("fid", "accuracy") if any(k in p for r in results.values() for p in r["points"])]
    rows = rows or ["fid"]
    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 3.6 * len(rows) + 0.8), squeeze=False)
    configs = list(dict.fromkeys(j.config for j in jobs))
    colours = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    for c, config in enumerate(configs):
        for j in (j for j in jobs if j.config == config):
            pts = results[j.name]["points"]
            for r, key in enumerate(rows):
                for col, xkey in enumerate(("train_s", "step")):
                    xs = [p[xkey] for p in pts if key in p]
                    ys = [p[key] for p in pts if key in p]
                    axes[r, col].plot(xs, ys, "o-", color=colours(c % colours.N), lw=1.2, ms=3, alpha=0.8,
                                      label=config if j.seed == 0 else None)
    for r, key in enumerate(rows):
        name, higher = METRICS[key]
        for col, xlabel in enumerate(("training wall time (s)", "step")):
            ax = axes[r, col]
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{name} ({'higher' if higher else 'lower'} is better)")
            ax.grid(alpha=0.3)
            ax.set_title(f"{name} vs {'compute time' if col == 0 else 'steps'} (one line per run)", fontsize=9.5)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(configs), 4), fontsize=8, frameon=False)
    fig.suptitle(f"quality vs compute on {plan.data}, {plan.seeds} seed(s) per configuration", fontsize=10.5)
    path = save_figure(fig, out / "curves.png", dpi=90,
                       layout_rect=(0, 0.04 + 0.025 * math.ceil(len(configs) / 4), 1, 0.97))
    return path


def _sample_grid(jobs: list[Job], out: Path) -> Path:
    """20 samples of each configuration's seed-0 run from the same sampling seed, side by side
    (conditional models: labels 0-9 along each row)."""
    firsts = [j for j in jobs if j.seed == 0]
    cols = min(len(firsts), 3)
    rows = math.ceil(len(firsts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.2 * rows + 0.4), squeeze=False)
    for ax, job in zip(axes.ravel(), firsts):
        run = load_run(out / "runs" / job.name)
        grid = make_grid(run.sample(20, seed=0).float().cpu(), nrow=10)  # (C, H, W) in [-1, 1]
        img = ((grid.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{job.config} (step {run.step})", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("fixed-noise samples, seed-0 run of each configuration", fontsize=10)
    path = save_figure(fig, out / "samples.png", dpi=90)
    return path


def _page(plan, md, rows, figures, jobs, protocol, out: Path) -> None:
    cols = _columns(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["configuration", "seeds", "steps", "train s",
                    *[f"{METRICS[k][0]} {'↑' if METRICS[k][1] else '↓'}" for k in cols]])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in
                                    [r["config"], str(r["seeds"]), _cell(r, "step", 0), _cell(r, "train_s", 0),
                                     *[_cell(r, k, 2 if k in ("fid", "is", "kid") else 3) for k in cols]]) + "</tr>"
                   for r in rows)
    links = " ".join(f"<a href='runs/{html.escape(j.name)}/report.html'>{html.escape(j.name)}</a>" for j in jobs)
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>gankit compare</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1150px;margin:2rem auto}img{max-width:100%}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}"
            "td:first-child{text-align:left}pre{background:#f6f6f6;padding:.8rem}</style></head><body>",
            f"<h1>gankit compare on {html.escape(plan.data)}</h1>",
            "<p>Final evaluation of each run; mean ± 95% confidence half-width over seeds (Student t). "
            "Every run had the same budget and the same evaluation protocol.</p>",
            f"<table><tr>{head}</tr>{body}</table>",
            *[f"<h2>{html.escape(p.stem)}</h2><img src='{p.name}' alt='{p.stem}'>" for p in figures],
            "<h2>protocol</h2>", f"<pre>{html.escape(json.dumps(protocol, indent=1))}</pre>",
            f"<h2>runs</h2><p>{links}</p>", "</body></html>"]
    (out / "compare.html").write_text("\n".join(page), encoding="utf-8")
