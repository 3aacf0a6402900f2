"""The small-data options of issue 13, one ablation table at equal budget: each option alone on
top of the paper's setting, each with the same seeds, every run `reproduce.py EXPERIMENT` with
the same minutes and evaluation.

    python benchmarks/ablation.py dcgan-anime --minutes 20 --seeds 0 1 --out runs/ablation \\
        --metric inception --threads 2 --eval-n 500 --final-n 2000
    python benchmarks/ablation.py dcgan-anime --table runs/ablation     # the table again, no training

Writes OUT/VARIANT/seedS/ (reproduce.py's outputs), OUT/table.md (the final FID per seed,
their mean and spread, and the difference from the paper's row) and OUT/ablation.png (each
seed's FID as a dot per variant). A finished run is skipped, so
an interrupted ablation resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import reproduce  # noqa: E402

# Each option as the issue names it, alone; the values are the usual ones of each paper.
VARIANTS = {
    "paper": [],
    "diffaugment": ["model.diffaugment=color,translation,cutout"],  # Zhao et al. 2020, all three policies
    "spectral_norm": ["model.spectral_norm=true"],                  # Miyato et al. 2018, in D
    "r1": ["model.r1_gamma=1.0"],                                   # Mescheder et al. 2018
    "ttur": ["train.lr=1e-4", "train.lr_d=4e-4"],                   # Heusel et al. 2017: D 4x G's rate
    "batch512": ["train.batch_size=512"],                           # the source's advice for CIFAR-10
}


Finals = dict[str, list[tuple[str, float | None, dict]]]  # variant -> [(seed folder, final FID, result)]


def finished(out: Path, variants: list[str]) -> Finals:
    """{variant: [(seed folder, final FID, reproduce.py's result), ...]} for the runs found under OUT."""
    finals = {}
    for name in variants:
        for curve in sorted((out / name).glob("seed*/curve.json")):
            result = json.loads(curve.read_text())["result"]
            finals.setdefault(name, []).append((curve.parent.name, result["metrics"].get("fid"), result))
    return finals


def table(finals: Finals, variants: list[str]) -> str:
    """Markdown: one row per variant, the final FID of each seed (`finished()`)."""
    base = [f for _, f, _ in finals.get("paper", []) if f is not None]
    lines = ["| variant | overrides | FID per seed | mean | spread (max - min) | vs paper | images seen |",
             "|---|---|---|---|---|---|---|"]
    for name in variants:
        runs = finals.get(name, [])
        fids = [f for _, f, _ in runs if f is not None]
        if not fids:
            continue
        mean = statistics.fmean(fids)
        delta = f"{mean - statistics.fmean(base):+.1f}" if base and name != "paper" else "—"
        seen = "/".join(f"{r['images_seen']:,}" for _, _, r in runs)
        lines.append(f"| {name} | {' '.join(VARIANTS[name]) or '(none)'} | "
                     f"{', '.join(f'{s}: {f:.1f}' for s, f, _ in runs if f is not None)} | {mean:.1f} | "
                     f"{max(fids) - min(fids):.1f} | {delta} | {seen} |")
    return "\n".join(lines) + "\n"


def plot(finals: Finals, variants: list[str], path: Path) -> None:
    """Each seed's final FID as a dot, one row per variant, the paper's mean as a dashed line:
    the spread across seeds is what says whether a difference is readable."""
    from gankit.figures import plt, save_figure
    finals = {k: [f for _, f, _ in v if f is not None] for k, v in finals.items()}
    names = [n for n in variants if finals.get(n)]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.2))
    for row, name in enumerate(names):
        ax.plot(finals[name], [row] * len(finals[name]), "o", alpha=0.7)
        ax.plot([statistics.fmean(finals[name])], [row], "k|", ms=14)
    if finals.get("paper"):
        ax.axvline(statistics.fmean(finals["paper"]), ls="--", color="grey", lw=1, label="paper mean")
        ax.legend(fontsize=7)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("final FID per seed (| = mean; lower is better)")
    ax.grid(alpha=0.3, axis="x")
    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=["dcgan-anime", "dcgan-cifar10"])
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, help="training minutes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    p.add_argument("--table", action="store_true", help="only (re)write the table from finished runs")
    args, passthrough = p.parse_known_args(argv)  # --metric, --threads, --eval-n, ... go to reproduce.py
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        if args.minutes is None:
            p.error("--minutes is needed to train (or --table to only tabulate)")
        for seed in args.seeds:  # seeds outermost: a partial ablation still compares every variant
            for name in args.variants:
                run = out / name / f"seed{seed}"
                if (run / "curve.json").is_file():
                    continue
                sets = [*VARIANTS[name], f"train.seed={seed}"]
                reproduce.main([args.experiment, "--minutes", str(args.minutes), "--out", str(run), *passthrough,
                                "--set", *sets])
    finals = finished(out, args.variants)
    text = table(finals, args.variants)
    (out / "table.md").write_text(text)
    plot(finals, args.variants, out / "ablation.png")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
