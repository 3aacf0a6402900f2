"""The `gankit` command: a thin layer mapping subcommands to library functions.

User errors (GankitError, and OS errors such as a full disk) print one line on stderr and
exit 2; a signal-stopped run exits 130 (SIGINT) or 143 (SIGTERM) after saving; anything
unexpected prints one line and exits 1. `--debug` shows full tracebacks.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from pathlib import Path

from . import __version__
from .api import build_config, load_run, resume, train
from .bench import bench
from .compare import Plan, compare
from .config import DataConfig, TrainConfig, describe, shipped_configs
from .data import DATASETS
from .data.download import download
from .data.transforms import save_grid
from .errors import GankitError, Interrupted
from .evaluate import evaluate_run
from .losses import LOSSES
from .metrics.classifier import fit_classifier
from .metrics.fid_stats import compute_stats, fid_between, save_stats
from .metrics.inception import InceptionFeatures
from .models import MODELS
from .report import write_report
from .runs import RunDir
from .theory import run_theory
from .translate import translate


def _compact_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=file or sys.stderr)
    warnings.showwarning = show


# ----------------------------------------------------------------------------- train

def _config_epilog(model: str | None = None) -> str:
    """The data.* and train.* keys with their defaults: MODEL's own (its shipped config)
    for `gankit train MODEL --help`, else the generic dataclass defaults."""
    if model:
        cfg = build_config(model)
        sections = (("data", cfg.data), ("train", cfg.train))
        lines = [f"config keys with {model}'s defaults (set with --set KEY=VALUE; model.* keys: "
                 f"`gankit list --keys {model}`):"]
    else:
        sections = (("data", DataConfig()), ("train", TrainConfig()))
        lines = ["config keys with their generic defaults; each model's shipped config changes some "
                 "(`gankit train MODEL --help` shows MODEL's; model.* keys: `gankit list --keys MODEL`):"]
    for section, obj in sections:
        for key, default, doc in describe(obj):
            lines.append(f"  {section}.{key} = {default}" + (f"  -- {doc}" if doc else ""))
    return "\n".join(lines)


def _help_model(argv: list[str]) -> str | None:
    """The model named in `gankit train MODEL --help`, so that help shows its defaults."""
    if "train" not in argv or not {"-h", "--help"} & set(argv):
        return None
    return next((a for a in argv[argv.index("train") + 1:] if a in MODELS), None)


def cmd_train(args) -> int:
    overrides = [o for group in args.set for o in group]
    cli = {"data.spec": args.data, "train.steps": args.steps, "train.epochs": args.epochs,
           "train.batch_size": args.batch_size, "train.seed": args.seed, "train.device": args.device}
    if args.steps is not None:  # --steps wins over a config that counts epochs (cyclegan-facades.yaml)
        cli["train.epochs"] = 0
    if args.no_progress:
        cli["train.progress"] = False
    cli_overrides = [f"{k}={v}" for k, v in cli.items() if v is not None]
    if args.resume:
        if args.data or args.config or args.out or args.overwrite:
            raise GankitError("--data, --config, --out and --overwrite cannot be used with --resume "
                              "(the run continues in its own directory with its own data)")
        out = resume(args.resume, cli_overrides + overrides, model=args.model)
    else:
        if not args.model:
            raise GankitError("name a model to train (gankit list shows them), or --resume RUN_DIR")
        cfg = build_config(args.model, [args.config] if args.config else [], cli_overrides + overrides)
        out = train(cfg, out=args.out, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone reports
        print(f"run directory: {out}\nreport: {Path(out) / 'report.html'}")
    return 0


# ---------------------------------------------------------------------------- sample

def cmd_sample(args) -> int:
    run = load_run(args.run_dir, device=args.device)
    out = run.sample(args.n, label=args.label, seed=args.seed)
    if isinstance(out, list):  # text models print sentences
        text = "\n".join(out)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
            print(f"wrote {len(out)} sentences to {args.out}")
        else:
            print(text)
        return 0
    path = Path(args.out) if args.out else run.path / f"sample_{run.step:07d}.png"
    save_grid(out, path, nrow=args.nrow or max(int(round(args.n ** 0.5)), 1))
    print(f"wrote {args.n} samples to {path}")
    return 0


def cmd_report(args) -> int:
    if not RunDir(args.run_dir).exists():
        raise GankitError(f"{args.run_dir} is not a gankit run directory (no config.yaml)")
    print(f"wrote {write_report(args.run_dir)}")
    return 0


def cmd_list(args) -> int:
    if args.keys:
        cfg = build_config(args.keys)
        for section, obj in cfg.sections().items():
            for key, default, doc in describe(obj):
                print(f"{section}.{key} = {default}" + (f"  -- {doc}" if doc else ""))
        return 0
    print("models:")
    for name, cls in MODELS.items():
        print(f"  {name:10s} {cls.PAPER}")
    print("data sets (--data):")
    for name, (_, doc) in DATASETS.items():
        print(f"  {name:14s} {doc}")
    print("losses (--set model.loss=...):")
    for name, loss in LOSSES.items():
        print(f"  {name:10s} {loss.doc}")
    print("shipped configs (--config):")
    for path in shipped_configs():
        print(f"  {path}")
    return 0


def cmd_download(args) -> int:
    print(f"downloaded {args.name} to {download(args.name, args.dir)}")
    return 0


# ---------------------------------------------------- evaluation, translation, speed

def cmd_eval(args) -> int:
    result = evaluate_run(args.run_dir, features=args.features, inception=args.inception, n=args.n,
                          batch_size=args.batch_size, reference=args.reference, seed=args.seed,
                          device=args.device, protocol=args.protocol, resize=args.resize,
                          threads=args.threads, progress=True, bf16=args.bf16, raw=args.raw)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_fid(args) -> int:
    if args.save_stats:
        net = InceptionFeatures(args.inception, resize=args.resize, threads=args.threads, bf16=args.bf16)
        stats = compute_stats(args.a, net, args.batch_size)
        print(f"wrote {save_stats(stats, args.b)} ({stats['n']} images, resize {args.resize})")
        return 0
    result = fid_between(args.a, args.b, resize=args.resize, threads=args.threads, batch_size=args.batch_size,
                         weights=args.inception, bf16=args.bf16)
    print(json.dumps(result, indent=2))
    return 0


def cmd_fit_classifier(args) -> int:
    result = fit_classifier(args.data, args.out, epochs=args.epochs, size=args.size, seed=args.seed,
                            device=args.device, holdout=args.holdout)
    print(f"wrote {args.out} (held-out accuracy {result['accuracy']:.4f})")
    return 0


def cmd_theory(args) -> int:
    out = run_theory(args.out, steps=args.steps, seed=args.seed, data=args.toy, progress=not args.no_progress,
                     snapshots=args.snapshots)
    print(f"theory lab written to {out}")
    return 0


def cmd_compare(args) -> int:
    plan = Plan(data=args.data, runs=args.runs, vary=args.vary, seeds=args.seeds, steps=args.steps or 0,
                budget_s=args.budget_s or 0.0, clock=args.clock, evals=args.evals, n=args.n,
                features=args.features, sets=[o for group in args.set for o in group], device=args.device)
    out = compare(plan, args.out, progress=not args.no_progress)
    print(f"wrote {out / 'compare.md'}, compare.csv, compare.json, curves.png, samples.png\n"
          f"page: {out / 'compare.html'}")
    return 0


def cmd_translate(args) -> int:
    n = translate(args.run_dir, args.input, args.out, direction=args.direction, batch_size=args.batch_size,
                  sheet=args.sheet, device=args.device)
    print(f"translated {n} image(s) into {args.out}")
    return 0


def cmd_bench(args) -> int:
    overrides = [o for group in args.set for o in group]
    result = bench(args.model, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                   device=args.device, overrides=overrides, phase=args.phase, as_reference=args.as_reference)
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------- parser

def build_parser(help_model: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gankit", description="Train, evaluate and compare the classic GANs on real data.")
    p.add_argument("--version", action="version", version=f"gankit {__version__}")
    p.add_argument("--debug", action="store_true", help="show full Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    t = sub.add_parser("train", help="train a model into a run directory", formatter_class=fmt,
                       epilog=_config_epilog(help_model),
                       description="Train MODEL. Defaults come from the model's shipped config; "
                                   "--config FILE and --set KEY=VALUE override them.")
    t.add_argument("model", nargs="?", help=" | ".join(MODELS) + " (optional with --resume)")
    t.add_argument("--data", metavar="SPEC", help="data set spec, e.g. digits, mnist:DIR, folder:DIR (gankit list)")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML with only the keys that differ from the defaults")
    steps = t.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, metavar="N", help="training steps (train.steps)")
    steps.add_argument("--epochs", type=int, metavar="N", help="passes over the data instead of --steps")
    t.add_argument("--batch-size", type=int, metavar="N", help="examples per step (train.batch_size)")
    t.add_argument("--seed", type=int, metavar="N", help="random seed (train.seed)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (train.device)")
    t.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/MODEL-TIMESTAMP)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly from its last complete checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--set", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides, dotted keys (model.z_dim=64 train.lr=1e-4); repeatable")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (train.progress=false)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--label", type=int, help="class label for conditional models")
    s.add_argument("--seed", type=int, help="random seed for the noise")
    s.add_argument("--out", metavar="FILE.png", help="output grid (default RUN_DIR/sample_STEP.png); text models: a .txt")
    s.add_argument("--nrow", type=int, help="images per grid row (default sqrt(n))")
    s.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_sample)

    r = sub.add_parser("report", help="(re)write RUN_DIR/report.html")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.set_defaults(func=cmd_report)

    ls = sub.add_parser("list", help="models, data sets, losses and shipped configs")
    ls.add_argument("--keys", metavar="MODEL", help="every config key of MODEL with its default")
    ls.set_defaults(func=cmd_list)

    d = sub.add_parser("download", help="download a data set (checksummed; needs the network)")
    d.add_argument("name", choices=["mnist", "fashion-mnist", "cifar10"])
    d.add_argument("dir", metavar="DIR")
    d.set_defaults(func=cmd_download)

    e = sub.add_parser("eval", help="FID/KID/IS/precision/recall/accuracy (images) or text metrics of a run")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--inception", nargs="?", const=True, metavar="WEIGHTS.pt",
                   help='Inception-v3 FID space (pip install -e ".[fid]"; optional: another TorchScript file)')
    e.add_argument("--features", metavar="CLASSIFIER.pt",
                   help="feature network from gankit fit-classifier (with --inception: judges conditional accuracy)")
    e.add_argument("--protocol", choices=["cifar10-10k", "train-10k"],
                   help="cifar10-10k: 10k samples vs the 10k CIFAR-10 test images; train-10k: vs 10k training images")
    e.add_argument("--resize", choices=["clean", "legacy-tf"], default="clean",
                   help="Inception resize to 299: clean (clean-fid, PIL bicubic) or legacy-tf (TF bilinear)")
    e.add_argument("--threads", type=int, default=0, help="CPU threads for Inception (0 = torch's default)")
    e.add_argument("--bf16", action="store_true", help="Inception under bf16 autocast: ~2x faster on CPUs with bf16 "
                   "units; moved the n=500 floors' FID by 0.04%% and 0.31%% (docs/benchmarks.md); off = fp32, as published")
    e.add_argument("--raw", action="store_true",
                   help="judge G's own weights in a run trained with train.ema (default: the average)")
    e.add_argument("--n", type=int, help="generated samples (default 10000, or the protocol's)")
    e.add_argument("--batch-size", type=int, default=250)
    e.add_argument("--reference", default="auto", help="reference split: auto | train | held_out")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.set_defaults(func=cmd_eval)

    f = sub.add_parser("fid", help="Inception FID/KID between two image sets (folders, data specs, stats .npz)")
    f.add_argument("a", metavar="A", help="folder of images, data spec (cifar10:DIR, cifar10-test:DIR, mnist:DIR) or .npz")
    f.add_argument("b", metavar="B", help="the same kinds as A (with --save-stats: the .npz to write)")
    f.add_argument("--save-stats", action="store_true", help="write A's statistics to the file B instead")
    f.add_argument("--resize", choices=["clean", "legacy-tf"], default="clean",
                   help="resize to 299: clean (clean-fid, PIL bicubic) or legacy-tf (TF/StyleGAN bilinear)")
    f.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    f.add_argument("--bf16", action="store_true", help="Inception under bf16 autocast (faster; see gankit eval --help)")
    f.add_argument("--batch-size", type=int, default=50)
    f.add_argument("--inception", metavar="WEIGHTS.pt", help="another TorchScript Inception (default: the fid extra's)")
    f.set_defaults(func=cmd_fid)

    fc = sub.add_parser("fit-classifier", help="train a small CNN feature network for FID/accuracy")
    fc.add_argument("--data", required=True, metavar="SPEC", help="labelled image data, e.g. mnist:DIR or digits")
    fc.add_argument("--out", required=True, metavar="CLASSIFIER.pt")
    fc.add_argument("--epochs", type=int, default=5)
    fc.add_argument("--size", type=int, default=32, help="image size the classifier works at")
    fc.add_argument("--holdout", type=float, default=0.2, help="fraction held out to measure accuracy")
    fc.add_argument("--seed", type=int, default=0)
    fc.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    fc.set_defaults(func=cmd_fit_classifier)

    th = sub.add_parser("theory", help="the theory lab: optimal D, V(G,D*) = -log 4 + 2 JSD on toy data")
    th.add_argument("--out", default="runs/theory", metavar="DIR")
    th.add_argument("--steps", type=int, default=2000)
    th.add_argument("--toy", default="mixture1d", help="mixture1d | ring2d")
    th.add_argument("--seed", type=int, default=0)
    th.add_argument("--snapshots", type=int, default=9, help="measurements over training (default 9)")
    th.add_argument("--no-progress", action="store_true", help="no progress bar")
    th.set_defaults(func=cmd_theory)

    tr = sub.add_parser("translate", help="translate images with a trained CycleGAN run")
    tr.add_argument("run_dir", metavar="RUN_DIR")
    tr.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB")
    tr.add_argument("--input", required=True, metavar="IMG_OR_DIR")
    tr.add_argument("--out", required=True, metavar="DIR")
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--sheet", action="store_true", help="also write side-by-side input|output sheets")
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    tr.set_defaults(func=cmd_translate)

    c = sub.add_parser("compare", help="train models x options x seeds under one budget; one table, curves, page",
                       description="Train every model of --runs with every choice of each --vary key, once per "
                                   "seed, one run after another, each for the same budget; evaluate each run "
                                   "--evals times (gankit eval's metrics) and write OUT/compare.{md,csv,json}, "
                                   "curves.png, samples.png and compare.html. Rerun the same command to resume.")
    c.add_argument("--data", default="digits", metavar="SPEC", help="one data set for every run (default digits)")
    c.add_argument("--runs", nargs="+", required=True, metavar="MODEL",
                   help="models to compare, e.g. gan cgan dcgan; an entry may be a config file (FILE.yaml, or a "
                        "shipped one's name such as dcgan-mnist), labelled by its name")
    c.add_argument("--vary", nargs="+", default=[], metavar="KEY=V1,V2",
                   help="options to cross with every model, e.g. model.loss=bce,hinge,lsgan")
    c.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    budget = c.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, metavar="N", help="budget per run in training steps")
    budget.add_argument("--budget-s", type=float, metavar="S", help="budget per run in seconds of training time")
    c.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="what --budget-s counts: training wall time (default) or the CPU seconds it took "
                        "(fair on a busy machine)")
    c.add_argument("--evals", type=int, default=4, help="evaluations per run: the points of the curves (default 4)")
    c.add_argument("--n", type=int, default=1000, help="generated samples per evaluation (default 1000)")
    c.add_argument("--features", metavar="CLASSIFIER.pt", help="feature network (default: digits' built-in one, "
                   "or one fitted once on --data into OUT/classifier.pt)")
    c.add_argument("--set", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                   help="overrides for every run, e.g. train.threads=1")
    c.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    c.add_argument("--out", required=True, metavar="DIR")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser("bench", help="time full training steps; prints one JSON line",
                       description="Time full training steps of what `gankit train MODEL` runs (its shipped "
                                   "config, default data), or with --as-reference the setting the reference "
                                   "scripts in benchmarks/reference/ implement.")
    b.add_argument("model")
    b.add_argument("--as-reference", action="store_true",
                   help="the reference script's shapes, batch, loss and update order (benchmarks/speed.py)")
    b.add_argument("--batch-size", type=int)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    b.add_argument("--phase", choices=["pretrain", "adversarial", "nll"], help="seqgan: which phase to time")
    b.add_argument("--set", nargs="+", action="append", default=[], metavar="KEY=VALUE")
    b.set_defaults(func=cmd_bench)
    return p


def _one_line(e: BaseException) -> str:
    """The message on one line, whatever the user's input put in it (a newline in a key)."""
    return str(e).replace("\r", "\\r").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_help_model(sys.argv[1:] if argv is None else list(argv)))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if not args.debug:
        _compact_warnings()
    try:
        return args.func(args)
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return 128 + int(e.signum)
    except GankitError as e:
        if args.debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, no permission, a path that is a file: the user can fix these
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        hint = ("; checkpoints already written are intact" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "")
        print(f"error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not the user's fault: still one line unless --debug
        if args.debug:
            raise
        print(f"internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
