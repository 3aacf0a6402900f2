"""gankit vs the reference implementations, side by side in one process.

    python benchmarks/speed.py [--models gan cgan ...] [--reps 5] [--steps 3] [--write-docs]

For every model: build gankit's training step (`gankit.bench.setup`, the trainer's own
pieces) and the plain reference (`benchmarks/reference/*_ref.py`) on the same data, warm
both up, then time them alternately — `reps` rounds of `steps` steps each — so load from
other processes hits both alike. Reports medians, the ratio of samples/s (gankit ÷
reference), FLOPs per step (torch.utils.flop_counter) and the achieved fraction of the
fp32 matmul peak measured in the same run. Prints one JSON line per model.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gankit.bench import setup  # noqa: E402
from gankit.cpu import native_bf16  # noqa: E402
from gankit.errors import GankitError  # noqa: E402

# What is measured: (label, gankit model, phase, gankit overrides, reference module, reference kwargs).
# The gankit flags are the fastest configuration measured on the 2-core CPU (see docs/benchmarks.md).
CASES = [
    ("gan", "gan", None, [], "gan_ref", {}),
    ("cgan", "cgan", None, [], "cgan_ref", {}),
    ("cgan-bf16", "cgan", None, ["train.amp=true"], "cgan_ref", {}),
    ("dcgan-bf16", "dcgan", None, ["train.amp=true", "train.channels_last=true"], "dcgan_ref", {}),
    ("cyclegan-bf16", "cyclegan", None, ["train.amp=true"], "cyclegan_ref", {}),
    ("seqgan-pretrain", "seqgan", "pretrain", [], "seqgan_ref", {"phase": "pretrain"}),
    ("seqgan-adversarial", "seqgan", "adversarial", [], "seqgan_ref", {"phase": "adversarial"}),
    ("seqgan-nll", "seqgan", "nll", [], "seqgan_ref", {"phase": "nll"}),
]
TARGETS = {"cgan": 2.0, "cgan-bf16": 2.0, "dcgan-bf16": 1.5, "cyclegan-bf16": 1.3, "seqgan-adversarial": 10.0, "seqgan-nll": 5.0}


def matmul_peak(n: int = 2048, dtype=torch.float32, reps: int = 5) -> float:
    """Best-of GFLOP/s of an n x n matmul: the machine's practical fp32 (or bf16) peak."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def time_steps(step, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


def reference_data(data, ref_kw: dict) -> dict:
    """The gankit data set's tensors, on the CPU, for the reference's DataLoader."""
    t = {k: v.cpu() for k, v in data.tensors.items()}
    if data.kind == "image":
        return {"images": t["image"], **({"labels": t["label"]} if "label" in t else {})}
    return {"data": data}


def run_case(case, reps: int, steps: int, warmup: int, peak: float, batch: int | None,
             budget_s: float) -> dict:
    label, model, phase, sets, ref_name, ref_kw = case
    g_step, g_samples, info, data = setup(model, batch, "cpu", sets, phase, as_reference=True)
    ref = importlib.import_module(f"benchmarks.reference.{ref_name}")
    r_step, r_samples = ref.build("cpu", **({"batch_size": batch} if batch else {}),
                                  **reference_data(data, ref_kw), **ref_kw)
    g_flops, r_flops = flops(g_step), flops(r_step)  # the first warm-up step, counted
    for _ in range(warmup - 1):
        g_step()
        r_step()
    # steps per round: as many as fit the time budget, at most `steps`
    t_pair = sum(time_steps(g_step, 1) + time_steps(r_step, 1))
    steps = max(1, min(steps, int(budget_s / (reps * t_pair))))
    g_times, r_times = [], []
    for _ in range(reps):  # interleaved: both see the same machine load
        g_times += time_steps(g_step, steps)
        r_times += time_steps(r_step, steps)
    g_t, r_t = statistics.median(g_times), statistics.median(r_times)
    g_sps, r_sps = g_samples / g_t, r_samples / r_t
    flags = {k: info[k] for k in ("amp", "compile", "channels_last", "threads", "updates", "reuse_fakes")}
    return {"model": label, "batch": info["batch"], **flags,
            "gankit_step_ms": round(g_t * 1e3, 2), "ref_step_ms": round(r_t * 1e3, 2),
            "gankit_samples_per_s": round(g_sps, 2), "ref_samples_per_s": round(r_sps, 2),
            "ratio": round(g_sps / r_sps, 2), "target": TARGETS.get(label),
            "gankit_gflop_per_step": round(g_flops / 1e9, 3), "ref_gflop_per_step": round(r_flops / 1e9, 3),
            "gankit_peak_frac": round(g_flops / g_t / 1e9 / peak, 3),
            "ref_peak_frac": round(r_flops / r_t / 1e9 / peak, 3),
            "reps": reps, "steps_per_rep": steps}


def machine() -> str:
    """CPU model, cores and the bf16 features that decide the bf16 rows, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{os.cpu_count()} CPU cores"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "CPU")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core {name} ({', '.join(bf16) or 'no bf16 units'}), {gpu}"


def write_docs(rows: list[dict], peak: dict, command: str, path: Path) -> None:
    lines = [BEGIN,
             f"Command: `{command}`  ",
             f"Machine: {machine()}; torch {torch.__version__}; "
             f"load average (1 min) {peak['load_before']} before the run, {os.getloadavg()[0]:.2f} after.  ",
             f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}.  ",
             f"Measured matmul peak in the same run: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, " +
             (f"bf16 {peak['bf16_gflops']:.0f} GFLOP/s." if peak["bf16_gflops"] is not None
              else "bf16 not measured (no native bf16 on this CPU: emulated, so the -bf16 rows run in fp32)."), "",
             "gankit and the reference run alternately in one process (interleaved rounds, medians). "
             "Peak fraction = counted FLOPs per step ÷ step time ÷ the fp32 matmul peak.", "",
             "| model | batch | gankit flags | threads | gankit samples/s | reference samples/s | "
             "ratio | target | gankit % fp32 peak | reference % fp32 peak |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['model']} | | | | | | not run: {r['skipped']} | {r.get('target') or ''} | | |")
            continue
        flags = ", ".join(k for k in ("amp", "compile", "channels_last") if r[k]) or "fp32 eager"
        flags = flags.replace("amp", "bf16 autocast")
        if r.get("updates") == "simultaneous":
            flags += "; simultaneous updates"
        elif r.get("reuse_fakes"):
            flags += "; G reuses D's fakes"
        lines.append(f"| {r['model']} | {r['batch']} | {flags} | {r['threads']} | "
                     f"{r['gankit_samples_per_s']} | "
                     f"{r['ref_samples_per_s']} | **{r['ratio']}×** | {r['target'] or '–'}× | "
                     f"{100 * r['gankit_peak_frac']:.0f}% | {100 * r['ref_peak_frac']:.0f}% |")
    table = "\n".join(lines + [END])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:  # replace the generated table only; notes around it stay
        text = text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Speed\n\n" + table + "\n"
    path.write_text(text)


BEGIN, END = "<!-- speed.py: generated table -->", "<!-- speed.py: end -->"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", help="labels to run (default: all): " + " ".join(c[0] for c in CASES))
    p.add_argument("--reps", type=int, default=3, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=5, help="steps per round, at most (fewer if over --budget-s)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps (the first one counts FLOPs)")
    p.add_argument("--budget-s", type=float, default=60, help="rough timed seconds per model")
    p.add_argument("--batch-size", type=int, help="override every batch size (quick checks only)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="extra gankit overrides")
    p.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for both sides (0: torch's default, all cores). On a shared machine "
                        "use 1: with more threads than free cores, OpenMP barriers stall both sides")
    args = p.parse_args(argv)
    # One count for every row and both sides (the gan/cgan configs' train.threads=1 is
    # overridden: it suits a shared machine, and would otherwise leak into later rows).
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    load_before = round(os.getloadavg()[0], 2)  # other work on the machine skews every row
    # emulated bf16 (no AVX512-BF16) would take minutes per matmul and measure nothing useful
    bf16 = round(matmul_peak(dtype=torch.bfloat16), 1) if native_bf16(torch.device("cpu")) else None
    peak = {"fp32_gflops": round(matmul_peak(), 1), "bf16_gflops": bf16,
            "threads": torch.get_num_threads(), "load_before": load_before}
    print(json.dumps({"peak": peak}), flush=True)
    rows = []
    for case in CASES:
        if args.models and case[0] not in args.models:
            continue
        case = case[:3] + (case[3] + args.set + [f"train.threads={threads}"],) + case[4:]
        try:
            row = run_case(case, args.reps, args.steps, args.warmup, peak["fp32_gflops"], args.batch_size,
                           args.budget_s)
        except (GankitError, ImportError, AttributeError, TypeError) as e:
            row = {"model": case[0], "skipped": f"{type(e).__name__}: {e}", "target": TARGETS.get(case[0])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.write_docs:
        write_docs(rows, peak, "python benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
                   ROOT / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
