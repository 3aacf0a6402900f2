"""Durability (issue 7): a run survives SIGKILL at any moment (mid-save included), stops
cleanly on SIGINT/SIGTERM and resumes exactly, never saves NaN weights, reports a full
disk clearly with the previous checkpoint intact, and never overwrites a run directory.

Runs are tiny (GAN, hidden=[16], 8x8 digits) so a real `gankit train` takes about a
second; the few subprocess tests are the ones that need a real process to die.
"""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.errors import DivergenceError, GankitError
from gankit.models.gan import GAN
from gankit.runs import RunDir, load_checkpoint

TINY = ["model.hidden=[16]", "data.size=8", "train.batch_size=16", "train.samples=4",
        "train.progress=false", "train.sample_every=100000"]


def train_args(out: Path, steps: int, every: int = 10, log_every: int = 5, *extra: str) -> list[str]:
    return ["train", "gan", "--out", str(out), "--steps", str(steps), "--set", *TINY,
            f"train.checkpoint_every={every}", f"train.log_every={log_every}", *extra]


def ckpt_step(path: Path) -> int:
    return int(load_checkpoint(path)["step"])


def same_state(a: Path, b: Path) -> None:
    """Two checkpoints hold bit-identical model and optimizer state (exact on CPU)."""
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa["step"] == sb["step"]
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k
    for name, opt in sa["optimizers"].items():
        for pid, st in opt["state"].items():
            for k, v in st.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb["optimizers"][name]["state"][pid][k])), k


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def subprocess_env(tmp_path: Path) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLCONFIGDIR=str(tmp_path / "mpl"))
    return env


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Straight runs to compare resumed ones with: {steps: last.pt}."""
    root = tmp_path_factory.mktemp("straight")
    out = {}
    for steps in (60, 100):
        assert main(train_args(root / f"s{steps}", steps)) == 0
        out[steps] = root / f"s{steps}" / "checkpoints" / "last.pt"
    return out


# ------------------------------------------------------------------------- SIGKILL

def test_sigkill_at_random_points_loses_at_most_one_interval(tmp_path, capsys):
    """A real `gankit train` SIGKILLed at random moments (some land inside a save):
    the newest complete checkpoint is never more than one interval behind the last
    logged step, and --resume finishes the run."""
    run, every, steps = tmp_path / "run", 5, 400
    rng = random.Random(7)
    cmd = [sys.executable, "-m", "gankit"] + train_args(run, steps, every, 1, "train.keep_checkpoints=2")
    for attempt in range(2):  # two random kills: one of the fresh run, one of its resume
        if attempt:
            cmd = [sys.executable, "-m", "gankit", "train", "--resume", str(run)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
                                env=subprocess_env(tmp_path))
        deadline = time.time() + 60
        start = RunDir(run).latest()[0]["step"] if attempt else 0
        while time.time() < deadline:  # wait for a checkpoint of this process, then a random moment
            if any(int(p.stem.split("_")[1]) > start for p in (run / "checkpoints").glob("step_*.pt")):
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        logged = max((r["step"] for r in RunDir(run).metrics()), default=0)
        proc.kill()
        proc.wait()
        proc.stderr.close()
        state, path = RunDir(run).latest()
        assert state["step"] >= logged - every, (state["step"], logged, path)
        assert state["step"] < steps, "the run finished before it was killed; make it longer"
    final = RunDir(run).latest()[0]["step"] + 10  # a few more steps are enough to show it goes on
    code, err = run_cli(["train", "--resume", str(run), "--steps", str(final)], capsys)  # in-process
    assert code == 0 and "resuming" in err
    assert ckpt_step(run / "checkpoints" / "last.pt") == final
    assert not list((run / "checkpoints").glob(".*")), "temporary files left behind"


_KILL_INSIDE = textwrap.dedent("""
    import io, os, sys, torch
    from gankit.cli import main
    where, n = sys.argv[1], int(sys.argv[2])
    calls = [0]
    real_save, real_link = torch.save, os.link
    def save(obj, f, *a, **k):
        calls[0] += 1
        if where == "save" and calls[0] == n:   # die with half the bytes written
            buf = io.BytesIO(); real_save(obj, buf, *a, **k)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush()
            os._exit(137)
        return real_save(obj, f, *a, **k)
    def link(src, dst, *a, **k):
        if where == "link" and calls[0] == n:   # die after step_N.pt, before last.pt points at it
            os._exit(137)
        return real_link(src, dst, *a, **k)
    torch.save, os.link = save, link
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize("where, expect", [("save", 20), ("link", 30)])
def test_kill_inside_save_resumes_from_last_complete(tmp_path, where, expect, straight, capsys):
    """The process dies inside the third checkpoint write (half a file on disk) or just
    after it (before last.pt is updated): --resume starts from the newest complete
    checkpoint, cleans the partial file, and ends bit-identical to a straight run."""
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", _KILL_INSIDE, where, "3", *train_args(run, 100)],
                          capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(tmp_path), timeout=120)
    assert proc.returncode == 137, proc.stderr
    ckpts = run / "checkpoints"
    if where == "save":
        assert list(ckpts.glob(".step_0000030.pt.tmp*")), "the half-written temporary file should be there"
        assert ckpt_step(ckpts / "last.pt") == 20
    else:
        assert ckpt_step(ckpts / "last.pt") == 20 and ckpt_step(ckpts / "step_0000030.pt") == 30
    assert RunDir(run).latest()[0]["step"] == expect
    code, err = run_cli(["train", "--resume", str(run)], capsys)
    assert code == 0
    assert f"(step {expect})" in err
    assert not list(ckpts.glob(".*")), "partial files must be cleaned on resume"
    same_state(ckpts / "last.pt", straight[100])


def test_truncated_newest_checkpoint_is_skipped(tmp_path, straight, capsys):
    run = tmp_path / "run"
    assert main(train_args(run, 30)) == 0
    ckpts = run / "checkpoints"
    data = (ckpts / "step_0000030.pt").read_bytes()
    for name in ("step_0000030.pt", "last.pt"):  # new files, not in place: last.pt is a hard link
        (ckpts / name).unlink()
        (ckpts / name).write_bytes(data[: len(data) // 3])
    with pytest.raises(GankitError, match="last.pt: not a complete gankit checkpoint"):
        load_checkpoint(ckpts / "last.pt")
    state, path = RunDir(run).latest()
    assert state["step"] == 20 and path.name == "step_0000020.pt"
    code, err = run_cli(["train", "--resume", str(run), "--steps", "60"], capsys)
    assert code == 0 and "(step 20)" in err
    same_state(ckpts / "last.pt", straight[60])


def test_no_complete_checkpoint_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(run, 10)) == 0
    for p in (run / "checkpoints").iterdir():
        p.unlink()
        p.write_bytes(b"PK\x03\x04 cut")
    code, err = run_cli(["train", "--resume", str(run)], capsys)
    assert code == 2 and "no complete checkpoint to resume from" in err and str(run) in err


# --------------------------------------------------------------------- SIGINT/SIGTERM

def _signal_at(monkeypatch, step: int, signum: int) -> None:
    """Send `signum` to this process during train step `step` (1-based)."""
    calls = [0]
    original = GAN.train_step

    def train_step(self, batch, update, global_step=0):
        calls[0] += 1
        if calls[0] == step:
            os.kill(os.getpid(), signum)
        return original(self, batch, update, global_step)
    monkeypatch.setattr(GAN, "train_step", train_step)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resumes_exactly(tmp_path, monkeypatch, capsys, signum, straight):
    run = tmp_path / "run"
    _signal_at(monkeypatch, 37, signum)
    code, err = run_cli(train_args(run, 100), capsys)
    monkeypatch.undo()
    assert code == 128 + signum
    name = signal.Signals(signum).name
    assert f"{name} received: saved" in err and "at step 37" in err and f"--resume {run}" in err
    assert len(err.strip().splitlines()) == 1
    assert ckpt_step(run / "checkpoints" / "last.pt") == 37
    assert [r["step"] for r in RunDir(run).metrics()][-1] == 37
    code, err = run_cli(["train", "--resume", str(run)], capsys)
    assert code == 0 and "(step 37)" in err
    same_state(run / "checkpoints" / "last.pt", straight[100])
    rows = RunDir(run).metrics()
    logs = [r["step"] for r in rows if not r.get("eval") and not r.get("event")]  # not the resume marker
    assert sorted(set(logs)) == logs, "duplicate log rows"


def test_sigterm_to_a_real_process(tmp_path):
    """A real process: SIGTERM mid-run -> exit 143, one clear line, a checkpoint."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", *train_args(run, 100000, 1000, 1)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=subprocess_env(tmp_path))
    deadline = time.time() + 60
    while not RunDir(run).metrics() and time.time() < deadline:
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM received: saved" in err
    step = ckpt_step(run / "checkpoints" / "last.pt")
    assert 0 < step < 100000 and f"at step {step}" in err


# ------------------------------------------------------------------------------ NaN

def _nan_at(monkeypatch, step: int, poison_params: bool = False, once: bool = True) -> None:
    calls = [0]
    original = GAN.train_step

    def train_step(self, batch, update, global_step=0):
        calls[0] += 1
        losses = original(self, batch, update, global_step)
        if calls[0] == step or (not once and calls[0] >= step):
            if poison_params:
                with torch.no_grad():
                    next(self.G.parameters()).fill_(float("nan"))
            losses["loss_g"] = torch.tensor(float("nan"))
        return losses
    monkeypatch.setattr(GAN, "train_step", train_step)


@pytest.mark.parametrize("poison_params", [False, True])
def test_nan_stops_naming_step_and_loss_and_keeps_good_checkpoint(tmp_path, monkeypatch, capsys, poison_params):
    """NaN at step 13, logged only every 50 steps: the run stops before the step-20
    checkpoint, naming step and loss; the step-10 checkpoint stays and is finite."""
    run = tmp_path / "run"
    _nan_at(monkeypatch, 13, poison_params)
    code, err = run_cli(train_args(run, 100, 10, 50), capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: loss_g became nan at step 13"), line
    assert "last good checkpoint is kept in" in line
    ckpts = run / "checkpoints"
    assert not (ckpts / "step_0000020.pt").exists()
    state, path = RunDir(run).latest()
    assert state["step"] == 10 and ckpt_step(ckpts / "last.pt") == 10
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_nan_parameters_are_never_saved(tmp_path, monkeypatch):
    """Even with logging off the checkpoint path, NaN weights never reach a checkpoint."""
    import gankit.trainer as trainer
    from gankit import build_config
    run = tmp_path / "run"
    monkeypatch.setattr(trainer.Trainer, "flush_check", lambda self, pending: None)
    _nan_at(monkeypatch, 13, poison_params=True)
    monkeypatch.setattr(GAN, "train_step", _strip_losses(GAN.train_step))
    cfg = build_config("gan", overrides=TINY + ["train.steps=100", "train.checkpoint_every=10", "train.log_every=50"])
    with pytest.raises(DivergenceError, match="parameters became NaN/Inf by step 20; not saving"):
        trainer.train(cfg, out=run)
    assert RunDir(run).latest()[0]["step"] == 10


def _strip_losses(step_fn):
    def train_step(self, batch, update, global_step=0):
        step_fn(self, batch, update, global_step)
        return {}
    return train_step


def test_huge_learning_rate_diverges_cleanly(tmp_path, capsys):
    run = tmp_path / "run"
    code, err = run_cli(train_args(run, 200, 10, 5, "train.lr=1e30"), capsys)
    assert code == 2, err
    assert "error:" in err and ("became nan" in err or "became inf" in err or "parameters became NaN" in err)
    assert " at step " in err or " by step " in err
    for p in (run / "checkpoints").glob("*.pt"):
        assert all(torch.isfinite(v).all() for v in load_checkpoint(p)["model"].values())


def test_rollback_halves_lr_and_continues(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _nan_at(monkeypatch, 13, poison_params=True, once=True)
    code, err = run_cli(train_args(run, 40, 10, 5, "train.on_nan=rollback"), capsys)
    assert code == 0, err
    assert "rolled back to step_0000010.pt and halved the learning rates" in err
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 40
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert {g["lr"] for o in state["optimizers"].values() for g in o["param_groups"]} == {1e-4}


def test_rollback_gives_up_after_three_with_cumulative_halving(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _nan_at(monkeypatch, 13, poison_params=True, once=False)  # diverges every time
    code, err = run_cli(train_args(run, 40, 10, 5, "train.on_nan=rollback"), capsys)
    assert code == 2
    assert err.count("rolled back to step_0000010.pt") == 3
    assert "Training stopped" in err.strip().splitlines()[-1]
    assert RunDir(run).latest()[0]["step"] == 10


def test_nan_before_any_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    _nan_at(monkeypatch, 3)
    code, err = run_cli(train_args(tmp_path / "run", 40, 10, 5, "train.on_nan=rollback"), capsys)
    assert code == 2 and "no checkpoint had been written yet" in err


# ------------------------------------------------------------------------ disk full

def test_disk_full_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch, capsys):
    """The disk fills at step 25: the step-30 temporary file is /dev/full, so the write
    fails with the kernel's own ENOSPC."""
    run = tmp_path / "run"
    assert main(train_args(run, 20)) == 0
    ckpts = run / "checkpoints"
    before = (ckpts / "last.pt").read_bytes()
    tmp = ckpts / f".step_0000030.pt.tmp{os.getpid()}"
    calls, original = [0], GAN.train_step

    def train_step(self, batch, update, global_step=0):
        calls[0] += 1
        if calls[0] == 5:  # step 25 of the resumed run
            tmp.symlink_to("/dev/full")
        return original(self, batch, update, global_step)
    monkeypatch.setattr(GAN, "train_step", train_step)
    code, err = run_cli(["train", "--resume", str(run), "--steps", "40"], capsys)
    monkeypatch.undo()
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: no space left on device while saving") and "step_0000030.pt" in line
    assert "previous checkpoint is intact" in line
    assert (ckpts / "last.pt").read_bytes() == before and ckpt_step(ckpts / "last.pt") == 20
    assert not tmp.exists() and not tmp.is_symlink() and not (ckpts / "step_0000030.pt").exists()
    code, _ = run_cli(["train", "--resume", str(run), "--steps", "40"], capsys)  # space is back
    assert code == 0 and ckpt_step(ckpts / "last.pt") == 40


@pytest.mark.parametrize("target", ["torch.save", "os.replace"])
def test_disk_full_patched_write(tmp_path, monkeypatch, target):
    import gankit.runs as runs
    run = tmp_path / "run"
    assert main(train_args(run, 20)) == 0
    state = load_checkpoint(run / "checkpoints" / "last.pt")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch if target == "torch.save" else runs.os, target.split(".")[1], full)
    with pytest.raises(GankitError, match="no space left on device while saving .*previous checkpoint is intact"):
        runs.save_checkpoint(state, run / "checkpoints" / "last.pt")
    monkeypatch.undo()
    assert ckpt_step(run / "checkpoints" / "last.pt") == 20
    assert not list((run / "checkpoints").glob(".*"))


def test_disk_full_elsewhere_is_one_line(tmp_path, monkeypatch, capsys):
    """ENOSPC while appending to metrics.jsonl: one line naming the file, exit 2."""
    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.metrics_file))
    monkeypatch.setattr(RunDir, "log", full)
    code, err = run_cli(train_args(tmp_path / "run", 20), capsys)
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / 'run' / 'metrics.jsonl'}: No space left on device; "
                           "checkpoints already written are intact")


# ------------------------------------------------------------------ existing run dir

def test_existing_run_dir_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(run, 10)) == 0
    capsys.readouterr()  # the first run's own output (a diagnostics hint, say) is not under test
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    code, err = run_cli(train_args(run, 10), capsys)
    assert code == 2
    assert err.strip() == (f"error: run directory {run} already exists; use --resume {run} "
                           "to continue it or --overwrite to replace it")
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    (run / "notes.txt").write_text("mine")
    code, _ = run_cli(train_args(run, 20) + ["--overwrite"], capsys)
    assert code == 0 and ckpt_step(run / "checkpoints" / "last.pt") == 20
    assert (run / "notes.txt").read_text() == "mine"  # --overwrite only replaces gankit's own files
    assert [r["step"] for r in RunDir(run).metrics() if not r.get("eval")] == [5, 10, 15, 20]


def test_run_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "run").write_text("x")
    code, err = run_cli(train_args(tmp_path / "run", 10), capsys)
    assert code == 2 and "is not a directory" in err and str(tmp_path / "run") in err


def test_last_k_checkpoints_are_kept(tmp_path):
    run = tmp_path / "run"
    assert main(train_args(run, 50, 10, 5, "train.keep_checkpoints=2")) == 0
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.pt", "step_0000040.pt", "step_0000050.pt"]
    assert ckpt_step(run / "checkpoints" / "last.pt") == 50


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    """--overwrite pointed at, say, the data folder must not delete its samples/ subfolder."""
    d = tmp_path / "photos"
    (d / "samples").mkdir(parents=True)
    (d / "samples" / "keep.png").write_bytes(b"x")
    code, err = run_cli(train_args(d, 10) + ["--overwrite"], capsys)
    assert code == 2
    assert err.strip() == (f"error: {d} is not empty and is not a gankit run directory (no config.yaml); "
                           "--overwrite only replaces runs, choose another --out")
    assert (d / "samples" / "keep.png").exists()
