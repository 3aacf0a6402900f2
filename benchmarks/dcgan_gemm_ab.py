"""Alternated A/B of DCGAN's GEMM conv path (models/gemm_conv.py) in one process: the same
model and data, the path switched on and off per round (order flipped every round), median
samples/s of each. Defaults: the source's DCGAN-32 as the issue benchmarks it.

    OMP_NUM_THREADS=1 python benchmarks/dcgan_gemm_ab.py --threads 1 --rounds 6 --steps 2
"""
import argparse
import json
import os
import statistics
import time

import torch

from gankit.bench import setup
from gankit.models import gemm_conv

SETS = ["data.size=32", "model.channels=128", "data.channels=3", "model.reuse_fakes=true",
        "train.amp=true", "train.channels_last=true"]


def use_gemm(flag: bool) -> None:
    gemm_conv.Conv2d.gemm = gemm_conv.ConvTranspose2d.gemm = flag


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=2, help="timed steps per side per round")
    p.add_argument("--set", nargs="*", default=[], help="extra overrides")
    args = p.parse_args()
    sets = SETS + [f"train.threads={args.threads}"] + args.set
    step, samples, _, _ = setup("dcgan", overrides=sets)
    times = {True: [], False: []}
    for flag in (True, False):  # warm both paths
        use_gemm(flag)
        step()
        step()
    for r in range(args.rounds):
        for flag in ((True, False) if r % 2 == 0 else (False, True)):
            use_gemm(flag)
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step()
                times[flag].append(time.perf_counter() - t0)
    use_gemm(True)
    rate = {k: round(samples / statistics.median(v), 1) for k, v in times.items()}
    print(json.dumps({"sets": sets, "threads": torch.get_num_threads(), "load_1min": round(os.getloadavg()[0], 2),
                      "samples_per_s_gemm": rate[True], "samples_per_s_onednn": rate[False],
                      "ratio": round(rate[True] / rate[False], 3), "steps_each": len(times[True])}))


if __name__ == "__main__":
    main()
