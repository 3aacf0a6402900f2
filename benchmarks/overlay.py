"""Several reproduce.py runs' quality curves on one figure (e.g. an equal-time bf16/fp32 pair):

    python benchmarks/overlay.py runs/bf16 runs/fp32 --labels bf16 fp32 --key fid --out pair.png

Each folder is a reproduce.py --out folder (its curve.json). Left: the metric against training
minutes; right: against images seen, which separates "faster" from "better per image".
"""
import argparse
import json
import sys
from pathlib import Path


def load(folder: Path) -> list[dict]:
    path = folder / "curve.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: give reproduce.py --out folders")
    return json.loads(path.read_text())["points"]


def plot(curves: dict[str, list[dict]], key: str, out: Path, title: str = "") -> None:
    from matplotlib.ticker import EngFormatter

    from gankit.figures import plt, save_figure
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, points in curves.items():
        pts = [p for p in points if isinstance(p.get(key), (int, float))]
        for ax, x in zip(axes, ("minutes", "images_seen")):
            line, = ax.plot([p[x] for p in pts], [p[key] for p in pts], ".-", label=label)
            final = [p for p in pts if p.get("final")]
            if final:  # the full-protocol (or --final-n) point: less biased than the interval ones
                ax.plot([final[-1][x]], [final[-1][key]], "*", ms=10, color=line.get_color())
    for ax, label in zip(axes, ("training minutes", "images seen")):
        ax.set_xlabel(label)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].xaxis.set_major_formatter(EngFormatter(sep=""))
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"{key} (* = final evaluation)", fontsize=9)
    save_figure(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--labels", nargs="+", help="one per folder (default: the folder names)")
    p.add_argument("--key", default="fid", help="the curve metric to draw")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    labels = args.labels or [f.name for f in args.folders]
    if len(labels) != len(args.folders):
        p.error("--labels needs one label per folder")
    plot({label: load(f) for label, f in zip(labels, args.folders)}, args.key, args.out, args.title)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
