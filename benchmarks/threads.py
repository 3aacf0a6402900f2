"""How the CPU thread count changes training speed on an idle and on a busy machine.

For each model, `gankit bench MODEL` (what `gankit train MODEL` runs) in a fresh process
with `train.threads` = 1, every usable core, and 0 (auto: one per idle core), first with
nothing else running, then with one busy-looping process per `--busy` (the "another job
holds a core" case). Settings alternate within each round, so drift over the run hits all
of them alike. Prints one JSON line per measurement and a Markdown table at the end.

    python benchmarks/threads.py                       # cgan, dcgan, cyclegan; ~5 min on 2 cores
    python benchmarks/threads.py --models cgan --rounds 1 --steps 5
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

from gankit.cpu import usable_cores

STEPS = {"cgan": 60, "dcgan": 12, "cyclegan": 12, "gan": 60, "seqgan": 3}


def bench(model: str, threads: int, steps: int) -> dict:
    cmd = [sys.executable, "-m", "gankit", "bench", model, "--steps", str(steps), "--warmup", "2",
           "--set", f"train.threads={threads}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cgan", "dcgan", "cyclegan"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=0, help="timed steps per measurement (0: per-model default)")
    p.add_argument("--busy", type=int, default=1, help="busy-looping processes in the busy case")
    args = p.parse_args(argv)
    cores = usable_cores()
    settings = sorted({1, cores}) + [0]
    rows = []
    for machine in ("idle", "busy"):
        procs = spinners(args.busy) if machine == "busy" else []
        try:
            for model in args.models:
                seen: dict[int, list[float]] = {s: [] for s in settings}
                chosen: dict[int, int] = {}
                for r in range(args.rounds):
                    for s in (settings if r % 2 == 0 else settings[::-1]):
                        res = bench(model, s, args.steps or STEPS.get(model, 10))
                        seen[s].append(res["samples_per_s"])
                        chosen[s] = res["threads"]
                        print(json.dumps({"machine": machine, "model": model, "setting": s or "auto",
                                          "threads": res["threads"], "samples_per_s": res["samples_per_s"]}),
                              flush=True)
                rows.append({"machine": machine, "model": model,
                             **{f"{s or 'auto'}": (statistics.median(v), chosen[s]) for s, v in seen.items()}})
        finally:
            for proc in procs:
                proc.kill()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{datetime.date.today()}, {cores} usable cores, {args.busy} busy process(es) in the busy case, "
          f"load average {load:.1f} at the end\n")
    head = [f"{s} thread(s)" if s else "auto (threads chosen)" for s in settings]
    print("| machine | model | " + " | ".join(head) + " |")
    print("|---|---|" + "---|" * len(settings))
    for row in rows:
        cells = []
        for s in settings:
            v, t = row[f"{s or 'auto'}"]
            cells.append(f"{v:.1f}" + (f" ({t})" if not s else ""))
        print(f"| {row['machine']} | {row['model']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
