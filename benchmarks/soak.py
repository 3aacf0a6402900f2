"""Kill soak: SIGKILL real `gankit train` processes at random moments, resume each time,
and check that the finished run equals an uninterrupted one bit for bit.

    python benchmarks/soak.py [--models gan cgan dcgan cyclegan seqgan] [--kills 12] [--seed 0]

For every model, on a tiny config: one straight run of S steps, then a run that is killed
`--kills` times and resumed (`gankit train --resume`) after each kill, then resumed to the
end. The 1st, 3rd, ... kill lands at a random step after the resumed loop has logged a new
one (drawn so the kills spread over the run at any machine speed); the 2nd, 4th, ... wait
for a checkpoint's temporary file to appear and kill at once, so some land inside a
checkpoint write (counted as `in_save`: the temporary file was still there after the
process died). A run killed before its first checkpoint starts over. At the end
the model, optimizer, scheduler and EMA state of the two final checkpoints are compared
with torch.equal. Prints one JSON line per model and a total.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gankit.runs import RunDir, load_checkpoint  # noqa: E402

COMMON = ["train.progress=false", "train.threads=1", "train.sample_every=100000", "train.log_every=1",
          "train.checkpoint_every=3", "train.keep_checkpoints=2", "train.samples=4", "train.diag_samples=0",
          "train.eval_every=0"]
# model -> (data spec or None for the model's default, overrides, steps): tiny, a few seconds each.
CASES = {
    "gan": (None, ["model.hidden=[16]", "data.size=8", "train.batch_size=16", "train.ema=0.9"], 600),
    "cgan": (None, ["model.g_hidden=[16,32]", "model.d_hidden=[32,32]", "data.size=8", "train.batch_size=16"], 400),
    "dcgan": (None, ["model.channels=4", "data.size=16", "train.batch_size=16"], 150),
    "cyclegan": ("photos", ["model.ngf=4", "model.ndf=4", "model.n_blocks=1", "model.pool_size=3",
                            "data.size=32", "train.batch_size=1"], 150),
    "seqgan": ("oracle", ["model.emb_dim=8", "model.hidden_dim=8", "model.rollouts=2", "model.d_emb_dim=8",
                          "model.d_filter_sizes=[1,2,3]", "model.d_num_filters=[4,4,4]", "model.d_samples=32",
                          "model.d_steps=1", "model.d_epochs=1", "model.eval_samples=64", "pretrain.g_epochs=2",
                          "pretrain.d_rounds=2", "pretrain.d_epochs=1", "pretrain.d_samples=32",
                          "data.max_len=6", "data.num_samples=64", "train.batch_size=8"], 60),
}


def train_cmd(model: str, out: Path, steps: int | None = None) -> list[str]:
    spec, sets, default_steps = CASES[model]
    data = ["--data", spec] if spec else []
    return ["train", model, "--out", str(out), "--steps", str(steps or default_steps), *data, "--set", *COMMON, *sets]


def gankit(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, "-m", "gankit", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def finish(args: list[str], in_process: bool = False) -> None:
    """Run `gankit args` to the end (in this process: no startup cost, for the test)."""
    if in_process:
        from gankit.cli import main
        if main(args) != 0:
            raise RuntimeError(f"gankit {' '.join(args[:3])} failed")
        return
    proc = gankit(args)
    _, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"gankit {' '.join(args[:3])} failed ({proc.returncode}): {err[-2000:]}")


def last_step(run: Path) -> int:
    """The step of the newest complete line of metrics.jsonl (read from its tail: this is
    polled every millisecond)."""
    try:
        with open(run / "metrics.jsonl", "rb") as f:
            f.seek(max(f.seek(0, 2) - 4096, 0))
            lines = f.read().split(b"\n")[:-1]  # the last piece is cut or empty
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("step", 0))
        except ValueError:
            continue
    return 0


def kill_once(args: list[str], run: Path, rng: random.Random, in_save: bool, total: int,
              kills_left: int, timeout: float = 300) -> dict:
    """Start `gankit args`, wait until its loop logs a new step, then SIGKILL it: at a
    random step (drawn so the remaining kills spread over the remaining steps, whatever the
    machine's speed), or as soon as a checkpoint temporary file shows up. Returns what happened."""
    start = last_step(run)
    remaining = max(total - start, 2)
    target = start + rng.randint(1, max(1, min(2 * remaining // (kills_left + 1), remaining - 1)))
    proc = gankit(args)
    deadline = time.time() + timeout
    while proc.poll() is None and last_step(run) <= start and time.time() < deadline:
        time.sleep(0.001)
    if in_save:
        until = time.time() + 3.0
        while proc.poll() is None and time.time() < until and not list((run / "checkpoints").glob(".*.tmp*")):
            time.sleep(0.0005)
    else:
        while proc.poll() is None and last_step(run) < target and time.time() < deadline:
            time.sleep(0.001)
    proc.kill()
    _, err = proc.communicate()
    tmp_left = bool(list((run / "checkpoints").glob(".*.tmp*"))) if (run / "checkpoints").exists() else False
    return {"finished": proc.returncode == 0, "killed": proc.returncode == -9, "in_save": tmp_left,
            "err": err[-500:] if proc.returncode not in (0, -9) else ""}


def differences(a: Path, b: Path) -> list[str]:
    """Keys whose tensors differ between two checkpoints (model, optimizers, schedulers, EMA)."""
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    out = [] if sa["step"] == sb["step"] else [f"step {sa['step']} != {sb['step']}"]

    def walk(x, y, where):
        if isinstance(x, dict) and isinstance(y, dict):
            if set(x) != set(y):
                out.append(f"{where}: keys differ")
            for k in set(x) & set(y):
                walk(x[k], y[k], f"{where}/{k}")
        elif isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if len(x) != len(y):
                out.append(f"{where}: lengths differ")
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}/{i}")
        elif isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dtype == y.dtype
                    and x.shape == y.shape and torch.equal(x, y)):
                out.append(where)
        elif x != y:
            out.append(where)
    for key in ("model", "optimizers", "schedulers", "ema"):
        walk(sa.get(key), sb.get(key), key)
    return out


def soak(model: str, kills: int, work: Path, seed: int = 0, steps: int | None = None,
         in_process: bool = False) -> dict:
    """Straight run vs a run killed `kills` times; returns a summary row. `in_process`: the
    runs that are not killed run in this process."""
    rng = random.Random(f"{seed}-{model}")
    straight, run = work / f"{model}-straight", work / f"{model}-killed"
    t0 = time.time()
    finish(train_cmd(model, straight, steps), in_process)
    t_straight = time.time() - t0
    total = load_checkpoint(straight / "checkpoints" / "last.pt")["step"]  # every phase's steps
    done = in_save = restarts = 0
    while done < kills:
        fresh = not RunDir(run).exists() or not RunDir(run).candidates()
        args = train_cmd(model, run, steps) + ["--overwrite"] if fresh else ["train", "--resume", str(run)]
        restarts += fresh and done > 0
        r = kill_once(args, run, rng, in_save=done % 2 == 1, total=total, kills_left=kills - done)
        if r["finished"]:
            break  # the run ended before the kill: make it longer (see `steps`)
        if not r["killed"]:
            raise RuntimeError(f"{model}: gankit exited on its own: {r['err']}")
        done += 1
        in_save += r["in_save"]
    if RunDir(run).candidates():
        finish(["train", "--resume", str(run)], in_process)
    else:
        finish(train_cmd(model, run, steps) + ["--overwrite"], in_process)
    diff = differences(straight / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    return {"model": model, "steps": load_checkpoint(run / "checkpoints" / "last.pt")["step"], "kills": done,
            "in_save": in_save, "restarts_from_scratch": restarts, "differences": len(diff),
            "first_differences": diff[:5], "straight_s": round(t_straight, 1),
            "total_s": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--kills", type=int, default=12, help="SIGKILLs per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="/tmp/gankit-soak", help="scratch folder for the runs")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models:
        for sub in (work / f"{model}-straight", work / f"{model}-killed"):
            if sub.exists():
                import shutil
                shutil.rmtree(sub)
        rows.append(soak(model, args.kills, work, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    total = {"total_kills": sum(r["kills"] for r in rows), "in_save": sum(r["in_save"] for r in rows),
             "differences": sum(r["differences"] for r in rows), "models": len(rows)}
    print(json.dumps(total), flush=True)
    return 1 if total["differences"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
