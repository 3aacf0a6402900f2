"""RUN_DIR/report.html: sample grids over time, loss curves, evaluation metrics, figures,
and the resolved config — one self-contained page (images referenced by relative path)."""
from __future__ import annotations

import html
import json
from pathlib import Path

from .diagnostics_panel import hints_html, plot_diagnostics
from .errors import GankitError
from .figures import plt, save_figure
from .models import MODELS
from .runs import RunDir, atomic_write_bytes

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse} td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}
.grids{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0} figcaption{font-size:.85rem;color:#555}
img{image-rendering:pixelated;max-width:100%} .grids img{width:260px} img.final{width:440px} pre{background:#f6f6f6;padding:.8rem;overflow:auto}
"""


# Which way is better, and what scale a number is on, for the report's metric table.
LOWER_IS_BETTER = ("fid", "kid", "nll", "l1", "self_bleu", "loss", "copied")
HIGHER_IS_BETTER = ("precision", "recall", "accuracy", "acc", "psnr", "ssim", "bleu", "distinct", "miou",
                    "inception_score", "is", "coverage")
METRIC_NOTES = {
    "kid": "unbiased MMD² with a cubic kernel, as is (not ×1000); compare only within one feature network",
    "fid": "Fréchet distance of feature Gaussians; compare only within one feature network and protocol",
}


def direction(key: str) -> str:
    """'lower', 'higher' or '' for a metric name such as 'fid', 'bleu_3', 'pixel_acc_AtoB'."""
    base = key.lower()
    if base.endswith("_std") or base.startswith("lr_") or base in ("steps_per_s", "elapsed_s", "eval_seconds"):
        return ""
    if base.startswith(LOWER_IS_BETTER):
        return "lower"
    if any(token in HIGHER_IS_BETTER for token in base.split("_")):
        return "higher"
    return ""


def _better(key: str) -> str:
    return {"lower": "lower ↓", "higher": "higher ↑"}.get(direction(key), "")


def resume_steps(rows: list[dict]) -> list[int]:
    """Steps at which the run was resumed (or rolled back), from the trainer's event rows."""
    return [int(r["step"]) for r in rows if r.get("event") in ("resume", "rollback")]


def _plot_losses(rows: list[dict], out: Path) -> Path | None:
    train_rows = [r for r in rows if not r.get("eval") and not r.get("event")]
    keys = sorted({k for r in train_rows for k in r if k.startswith("loss")})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for k in keys:
        pts = [(r["step"], r[k]) for r in train_rows if r.get(k) is not None]
        if pts:  # markers too: a short run logs only a point or two, which a bare line hides
            ax.plot(*zip(*pts), marker="o" if len(pts) < 20 else None, markersize=3, label=k)
    for i, step in enumerate(resume_steps(rows)):
        ax.axvline(step, color="k", lw=0.8, ls="--", label="resumed" if i == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("losses per log interval (averaged over its steps)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    save_figure(fig, out)
    return out


def _label_generators(evals: list[dict]) -> list[tuple[str, dict]]:
    """(generator, record) for each eval: records of G's own weights are told apart only
    in a run that also has EMA records, so a plain run's records all read as one series."""
    gens = [r.get("protocol", {}).get("generator") if isinstance(r.get("protocol"), dict) else None
            for r in evals]
    split = "ema" in gens and "raw" in gens
    return [("raw" if split and g == "raw" else "", r) for g, r in zip(gens, evals)]


def _metric_name(key) -> str:
    """'fid' for a table row named 'fid (G's own weights)'."""
    return str(key).split(" (")[0]


def _plot_eval(rows: list[dict], out: Path) -> Path | None:
    evals = _label_generators([r for r in rows if r.get("eval")])
    keys = sorted({k for _, r in evals for k, v in r.items()  # diagnostics keys: their own panel
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"
                   and k not in ("classes_covered", "num_classes") and not k.startswith("memo_")
                   # the quality curve: headline metrics, not their spreads or per-class splits
                   and not k.endswith("_std") and not k.startswith("accuracy_class_")})
    # One line per generator: an EMA run evaluated with --raw too gets the EMA's curve and
    # G's own weights' curve side by side, not one line zigzagging between them.
    series = {k: {g: [(r["step"], r[k]) for gg, r in evals if gg == g and isinstance(r.get(k), (int, float))]
                  for g in ("", "raw")} for k in keys}
    series = {k: {g: pts for g, pts in lines.items() if pts} for k, lines in series.items()
              if max(len(pts) for pts in lines.values()) > 1}
    if not series:
        return None
    n = len(series)
    cols = min(n, 4)
    rows_ = -(-n // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4 * cols, 3 * rows_), squeeze=False)
    for ax, (k, lines) in zip(axes.flat, series.items()):
        for g, pts in lines.items():
            ax.plot(*zip(*pts), marker=".", label="G's own weights" if g else "EMA G" if len(lines) > 1 else None)
        if len(lines) > 1:
            ax.legend(fontsize=7)
        better = direction(k)
        ax.set_title(f"{k} ({better} is better)" if better else k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    save_figure(fig, out)
    return out


def _pick(items: list[Path], k: int) -> list[Path]:
    """At most k items spread evenly, always including the first and last."""
    if len(items) <= k:
        return items
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def _run_config(run: RunDir) -> dict:
    """config.yaml as a mapping ({} when missing or damaged: that must not stop the report)."""
    try:
        data = run.config_dict() if run.config_file.is_file() else {}
    except GankitError:
        return {}
    return data if isinstance(data, dict) else {}


def write_report(run_dir: str | Path) -> Path:
    run = RunDir(run_dir)
    root = run.path
    rows = run.metrics()
    cfg_text = run.config_file.read_text(encoding="utf-8") if run.config_file.is_file() else ""
    figures = root / "figures"
    loss_png = _plot_losses(rows, figures / "losses.png")
    eval_png = _plot_eval(rows, figures / "eval.png")
    config = _run_config(run)
    spec = MODELS.get(str(config.get("name")))  # (None for a run of a model this gankit lacks)
    loss_name = (config.get("model") or {}).get("loss")
    diag_png = plot_diagnostics(rows, figures / "diagnostics.png", loss_name)
    if spec is not None:  # the model's own figures (SeqGAN: the oracle learning curve)
        spec.report_figures(rows, config, figures)
    grids = sorted(run.samples.glob("step_*.png"))
    texts = sorted(run.samples.glob("step_*.txt"))
    evals = [r for r in rows if r.get("eval")]
    last_train = next((r for r in reversed(rows) if not r.get("eval") and not r.get("event")), None)
    layout = spec.SAMPLE_LAYOUT if spec is not None else ""

    rel = lambda p: html.escape(str(p.relative_to(root)))  # noqa: E731
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gankit report: {html.escape(root.name)}</title>"
             f"<style>{_CSS}</style></head><body><h1>gankit run <code>{html.escape(root.name)}</code></h1>"]
    if last_train:
        parts.append(f"<p>{last_train.get('step')} steps, {last_train.get('elapsed_s', 0):.0f} s of training.</p>")
    if grids:
        final = grids[-1]
        parts.append(f"<h2>Final samples ({final.stem.replace('_', ' ')})</h2>"
                     + (f"<p>{html.escape(layout)}</p>" if layout else "")
                     + f"<img class='final' src='{rel(final)}' alt='final samples'>")
        parts.append("<h2>Samples over training (fixed noise and labels)</h2><div class='grids'>")
        for p in _pick(grids, 8):
            parts.append(f"<figure><img src='{rel(p)}' alt='samples {p.stem}'><figcaption>{p.stem.replace('_', ' ')}"
                         "</figcaption></figure>")
        parts.append("</div>")
    if texts:
        parts.append("<h2>Samples over training</h2>")
        for p in _pick(texts, 4):
            lines = p.read_text(encoding="utf-8").splitlines()[:10]
            parts.append(f"<h3>{p.stem.replace('_', ' ')}</h3><pre>{html.escape(chr(10).join(lines))}</pre>")
    if evals:
        parts.append("<h2>Evaluation</h2>")
        latest: dict = {}
        for g, r in _label_generators(evals):
            latest.update({(f"{k} (G's own weights)" if g else k): v for k, v in r.items()
                           if k != "eval" and not (g and k in ("step", "protocol"))})
        parts.append("<table><tr><th>metric</th><th>value</th><th>better</th><th>note</th></tr>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(f'{v:.5g}' if isinstance(v, float) else str(v))}</td>"
            f"<td>{_better(_metric_name(k))}</td>"
            f"<td>{html.escape(METRIC_NOTES.get(_metric_name(k), ''))}</td></tr>"
            for k, v in latest.items() if not isinstance(v, (dict, list))) + "</table>")
        protocols = [r for r in evals if any(isinstance(v, dict) for v in r.values())]
        if protocols:
            parts.append("<details><summary>protocol</summary><pre>" +
                         html.escape(json.dumps(protocols[-1], indent=2)) + "</pre></details>")
        if eval_png:
            parts.append(f"<img src='{rel(eval_png)}' alt='evaluation over training'>")
    if loss_png:
        parts.append(f"<h2>Losses</h2><img src='{rel(loss_png)}' alt='loss curves'>")
    if diag_png:
        parts.append(f"<h2>Diagnostics</h2>{hints_html(rows, loss_name)}"
                     f"<img src='{rel(diag_png)}' alt='diagnostics panel'>")
    extra = ([p for p in sorted(figures.glob("*.png")) if p not in (loss_png, eval_png, diag_png)]
             if figures.is_dir() else [])
    if extra:
        parts.append("<h2>Figures</h2><div class='grids'>")
        for p in extra:
            parts.append(f"<figure><img src='{rel(p)}' alt='{html.escape(p.stem)}'><figcaption>"
                         f"{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>")
        parts.append("</div>")
    parts.append(f"<h2>Config</h2><pre>{html.escape(cfg_text)}</pre></body></html>")
    out = root / "report.html"
    atomic_write_bytes(out, "\n".join(parts).encode("utf-8"))
    return out
