"""CPU threads chosen for the machine as it is (`train.threads=0`, the default).

torch's OpenMP threads wait for each other at the end of every parallel op. When another
process holds one of the cores, the thread that lands on it runs only in the time slices
it gets, and every op waits for it: a 2-thread step on a 2-core machine with one busy core
runs many times slower than a 1-thread step (docs/benchmarks.md, "Threads"). So `auto`
counts the cores this process may use (its affinity mask) that are idle right now, from
two reads of /proc/stat a short moment apart, and takes one thread per idle core (at
least one; under torchrun the idle cores are shared among the processes of the node).
OMP_NUM_THREADS, where set, pins the count as it does for torch itself; a resumed run keeps
the count it started with, because a different count can sum in a different order.

`native_bf16` says whether bf16 autocast can pay off: on a CPU without bf16 dot products
(no AVX512-BF16, e.g. AVX2-only x86) oneDNN emulates bf16 convolutions and matmuls, which is
far slower than fp32 (docs/benchmarks.md, "bf16 on a CPU without bf16").
"""
from __future__ import annotations

import os
import time
import warnings

import torch

PROBE_S = 0.25


def native_bf16(device: torch.device) -> bool:
    """bf16 autocast pays off: CUDA, or a CPU with native bf16 dot products (AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return True
    has_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)  # private, so guarded
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and has_bf16()


def bf16_where_native(requested: bool, device: torch.device, what: str, hint: str = "") -> bool:
    """`requested`, unless `device` has no native bf16: then a warning naming `what` (the
    option that asked for it) and False, so the caller runs in fp32."""
    if requested and not native_bf16(device):
        warnings.warn(f"{what}, but this CPU has no native bf16 (AVX512-BF16/AMX): bf16 would be emulated, "
                      f"far slower than fp32, so this runs in fp32{'. ' + hint if hint else ''}", stacklevel=3)
        return False
    return requested


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs, or None where /proc/stat is not there."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user time
    return total - idle, total


def busy_cores(probe_s: float = PROBE_S) -> float | None:
    """How many cores' worth of the machine other processes kept busy over `probe_s`."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(probe_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def pick_threads(requested: int = 0, local_world: int | None = None, current: int | None = None,
                 previous: int | None = None) -> tuple[int, str]:
    """(threads, why): `requested` if > 0; torch's `current` count if OMP_NUM_THREADS pins it;
    on resume the count the run `previous`ly used (a different count may sum in another
    order, and resume must be exact); else one per idle usable core."""
    if requested > 0:
        return requested, "train.threads"
    if os.environ.get("OMP_NUM_THREADS") and current:
        return current, "OMP_NUM_THREADS"
    cores = usable_cores()
    if previous and previous <= cores:
        return int(previous), "as when this run started, so that resume is exact; --set train.threads=N to change"
    local_world = local_world or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    busy = busy_cores()
    if busy is None:
        threads, why = cores, f"{cores} usable cores"
    else:
        idle = max(cores - round(busy), 1)
        threads, why = idle, f"auto: {cores} usable cores, {busy:.1f} busy"
    threads = max(1, threads // max(local_world, 1))
    return threads, why


class SlowdownWatch:
    """One hint when steps get much slower than the fastest log interval so far (another
    process took a core, or the machine throttles). The first interval (warm-up) is not
    counted, a single slow interval is not enough (a sample grid or an evaluation fell in
    it), and a new phase starts afresh (SeqGAN's phases differ in speed by design)."""

    def __init__(self, factor: float = 3.0):
        self.factor, self.fired = factor, False
        self.reset()

    def reset(self) -> None:
        self.best, self.seen, self.slow = 0.0, 0, 0

    def check(self, steps_per_s: float, threads: int) -> str | None:
        self.seen += 1
        if self.fired or self.seen == 1 or steps_per_s <= 0:
            return None
        if steps_per_s * self.factor >= self.best:
            self.best, self.slow = max(self.best, steps_per_s), 0
            return None
        self.slow += 1
        if self.slow < 2:
            return None
        self.fired = True
        advice = ("another process may be using the CPU; gankit chose the thread count when the "
                  "run started: resume with --set train.threads=1 so that a busy core costs little"
                  if threads > 1 else "another process may be using the CPU, or the machine is throttling")
        return (f"hint: steps are {self.best / steps_per_s:.1f}x slower than earlier in this run "
                f"({steps_per_s:.3g} vs {self.best:.3g} steps/s with {threads} thread(s)); {advice}")
