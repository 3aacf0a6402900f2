"""Nothing wrong accepted (issue 15): checkpoints carry a digest and a flipped bit never
loads (resume and load_run fall back to the newest one that verifies); one writer per run
directory; a read-only output fails clearly with the previous checkpoint intact.

Runs are the tiny GAN of test_reliability (about a second each).
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from gankit import load_run
from gankit.cli import main
from gankit.errors import GankitError
from gankit.runs import FORMAT, LOCK_NAME, RunDir, RunLock, load_checkpoint, save_checkpoint, state_digest

from test_reliability import ckpt_step, run_cli, same_state, subprocess_env, train_args


def flip_tensor_byte(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor record of a torch zip checkpoint,
    in place (last.pt is a hard link to the newest step_N.pt, so both change)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        where = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(where)
        byte = f.read(1)[0]
        f.seek(where)
        f.write(bytes([byte ^ 0x10]))


@pytest.fixture(scope="module")
def straight60(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "s60"
    assert main(train_args(run, 60)) == 0
    return run / "checkpoints" / "last.pt"


# --------------------------------------------------------------------- digests

def test_every_checkpoint_has_a_digest_that_verifies(tmp_path):
    run = tmp_path / "run"
    assert main(train_args(run, 20)) == 0
    for p in (run / "checkpoints").glob("*.pt"):
        raw = torch.load(p, weights_only=True)
        assert raw["digest"].startswith("sha256:") and raw["digest"] == state_digest(raw)


def test_flipped_bit_in_last_pt_is_refused_and_resume_falls_back(tmp_path, straight60, capsys):
    run = tmp_path / "run"
    assert main(train_args(run, 30)) == 0
    ckpts = run / "checkpoints"
    flip_tensor_byte(ckpts / "last.pt")
    torch.load(ckpts / "last.pt", weights_only=True)  # torch itself notices nothing
    with pytest.raises(GankitError, match=r"last\.pt: corrupt checkpoint \(its contents do not match"):
        load_checkpoint(ckpts / "last.pt")
    with pytest.warns(UserWarning, match=r"skipped 1 newer checkpoint\(s\) that do not verify.*"
                                         r"using step_0000020\.pt \(step 20\)"):
        state, path = RunDir(run).latest()
    assert path.name == "step_0000020.pt" and state["step"] == 20
    code, err = run_cli(["train", "--resume", str(run), "--steps", "60"], capsys)
    assert code == 0 and "(step 20)" in err
    assert "warning: skipped 1 newer checkpoint(s)" in err and "step_0000030.pt: corrupt checkpoint" in err
    same_state(ckpts / "last.pt", straight60)


def test_load_run_never_loads_a_corrupt_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert main(train_args(run, 20)) == 0
    flip_tensor_byte(run / "checkpoints" / "last.pt")
    with pytest.warns(UserWarning, match="do not verify"):
        loaded = load_run(run)
    assert loaded.step == 10
    with pytest.raises(GankitError, match="corrupt checkpoint"):
        load_run(run, checkpoint=run / "checkpoints" / "last.pt")


def test_a_flipped_plain_value_is_caught_too(tmp_path):
    """The digest covers the step and config, not only the tensors."""
    run = tmp_path / "run"
    assert main(train_args(run, 10)) == 0
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["step"] = 11
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(GankitError, match="edited.pt: corrupt checkpoint"):
        load_checkpoint(tmp_path / "edited.pt")


def test_old_checkpoint_without_digest_loads_with_a_warning(tmp_path, capsys):
    """Checkpoints from before digests: loaded (unverified), with a warning saying so."""
    run = tmp_path / "run"
    assert main(train_args(run, 10)) == 0
    ckpts = run / "checkpoints"
    state = torch.load(ckpts / "last.pt", weights_only=True)
    del state["digest"]
    for p in list(ckpts.glob("*.pt")):
        p.unlink()
    torch.save(state, ckpts / "step_0000010.pt")
    assert state["format"] == FORMAT
    with pytest.warns(UserWarning, match="has no digest .*loaded unverified"):
        assert load_checkpoint(ckpts / "step_0000010.pt")["step"] == 10
    code, err = run_cli(["train", "--resume", str(run), "--steps", "20"], capsys)
    assert code == 0 and "no digest" in err
    assert "digest" in torch.load(ckpts / "last.pt", weights_only=True)  # new ones are verified


def test_digest_is_stable_across_save_and_load(tmp_path):
    state = {"step": 3, "model": {"w": torch.randn(3, 4), "b": torch.zeros(2, dtype=torch.bfloat16),
                                  "n": torch.tensor(5)},
             "optimizers": {"g": {"state": {0: {"step": torch.tensor(1.0)}},
                                  "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0]}]}},
             "fixed": {"z": torch.randn(8, 2)[::2]}, "ema": None}
    save_checkpoint(state, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 3
    assert state_digest(state) != state_digest({**state, "step": 4})


# ---------------------------------------------------------------- one writer per run

def _wait_for(cond, proc, timeout=60.0):
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_second_writer_is_refused_and_a_killed_writers_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", *train_args(run, 100000, 5, 5)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=subprocess_env(tmp_path))
    try:
        _wait_for(lambda: list((run / "checkpoints").glob("step_*.pt")), proc)
        holder = json.loads((run / LOCK_NAME).read_text())
        assert holder["pid"] == proc.pid and holder["host"]
        code, err = run_cli(["train", "--resume", str(run), "--steps", "20"], capsys)
        assert code == 2
        assert err.strip() == (f"error: {run} is being written by another gankit process (pid {proc.pid} on "
                               f"{holder['host']}, lock file {run / LOCK_NAME}); wait for it to finish or "
                               "stop it first")
        code, err = run_cli(train_args(run, 20) + ["--overwrite"], capsys)  # --overwrite is a writer too
        assert code == 2 and "being written by another gankit process" in err
        assert proc.poll() is None and (run / "config.yaml").exists(), "the refused writers must touch nothing"
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert (run / LOCK_NAME).exists(), "SIGKILL leaves the lock file behind (stale)"
    step = RunDir(run).latest()[0]["step"]
    code, err = run_cli(["train", "--resume", str(run), "--steps", str(step + 5)], capsys)
    assert code == 0, err
    assert f"taking over a stale lock (pid {proc.pid}" in err
    assert not (run / LOCK_NAME).exists(), "a finished run releases its lock"


def test_stale_lock_file_from_a_dead_pid_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(run, 10)) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": "elsewhere"}))
    code, err = run_cli(["train", "--resume", str(run), "--steps", "20"], capsys)
    assert code == 0 and "taking over a stale lock" in err and ckpt_step(run / "checkpoints" / "last.pt") == 20


def test_lock_is_per_process_and_off_on_other_ranks(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom gankit.runs import RunLock\n"
                               f"with RunLock({str(run)!r}):\n    print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(GankitError, match=f"pid {holder.pid} on"):
            with RunLock(run):
                pass
        with RunLock(run, enabled=False):  # torchrun ranks > 0 never touch the lock
            pass
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(UserWarning, match="taking over a stale lock"), RunLock(run):  # flock died with it
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_failed_start_leaves_no_directory_and_fresh_dir_is_not_refused(tmp_path, capsys):
    code, _ = run_cli(train_args(tmp_path / "r", 5) + ["--data", f"mnist:{tmp_path / 'nope'}"], capsys)
    assert code == 2 and not (tmp_path / "r").exists()
    (tmp_path / "empty").mkdir()
    assert main(train_args(tmp_path / "empty", 5)) == 0  # the lock file alone does not make it "existing"


# --------------------------------------------------------------- read-only output

@pytest.mark.parametrize("code_", [errno.EROFS, errno.EACCES])
def test_read_only_output_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys, code_):
    """The file system turns read-only (or permission is lost) before the step-20 save."""
    import gankit.runs as runs
    run = tmp_path / "run"
    assert main(train_args(run, 10)) == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    real_save = torch.save

    def save(obj, f, *a, **k):
        if obj.get("step") == 20:
            raise OSError(code_, os.strerror(code_))
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(runs.torch, "save", save)
    code, err = run_cli(["train", "--resume", str(run), "--steps", "30"], capsys)
    monkeypatch.undo()
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line == f"error: cannot write checkpoint {run / 'checkpoints' / 'step_0000020.pt'}: {os.strerror(code_)}"
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert not list((run / "checkpoints").glob(".*")), "no temporary file left behind"


def test_read_only_run_directory_is_one_clear_line(tmp_path, monkeypatch, capsys):
    import gankit.runs as runs
    real_open = os.open

    def ro_open(path, *a, **k):
        if str(path).endswith(LOCK_NAME):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **k)
    monkeypatch.setattr(runs.os, "open", ro_open)
    code, err = run_cli(train_args(tmp_path / "run", 5), capsys)
    assert code == 2
    assert err.strip() == (f"error: cannot write to the run directory {tmp_path / 'run'} (Read-only file system); "
                           "it is not writable: choose another --out")


def test_filesystem_without_locks_trains_with_a_warning(tmp_path, monkeypatch, capsys):
    import gankit.runs as runs

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(runs.fcntl, "flock", no_locks)
    code, err = run_cli(train_args(tmp_path / "run", 5), capsys)
    assert code == 0 and "this filesystem has no file locks (No locks available)" in err
    assert ckpt_step(tmp_path / "run" / "checkpoints" / "last.pt") == 5 and not (tmp_path / "run" / LOCK_NAME).exists()


# ------------------------------------------------------------------- atomic files

def _writers(tmp_path):
    """Every kind of file gankit keeps, each written through runs.atomic_write."""
    from gankit.data.transforms import save_grid
    from gankit.metrics.fid_stats import save_stats
    from gankit.runs import atomic_write_bytes
    feats = torch.randn(4, 3)
    stats = {"features": feats, "mu": feats.mean(0), "sigma": torch.eye(3), "n": 4}
    return {"grid.png": lambda p: save_grid(torch.zeros(2, 3, 4, 4), p, nrow=2),
            "stats.npz": lambda p: save_stats(stats, p),
            "state.pt": lambda p: save_checkpoint({"step": 1}, p),
            "blob.bin": lambda p: atomic_write_bytes(p, b"new")}


@pytest.mark.parametrize("name", ["grid.png", "stats.npz", "state.pt", "blob.bin"])
def test_file_writes_are_atomic_and_fsynced(tmp_path, monkeypatch, name):
    """A write that dies at its fsync leaves the old file whole and no temporary file; a
    writer that never fsyncs would replace the file and fail this test."""
    import gankit.runs as runs
    path = tmp_path / name
    path.write_bytes(b"old")

    def fsync_fails(fd):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(runs.os, "fsync", fsync_fails)
    with pytest.raises((OSError, GankitError)):
        _writers(tmp_path)[name](path)
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == [name]
    _writers(tmp_path)[name](path)
    assert path.read_bytes() != b"old" and sorted(p.name for p in tmp_path.iterdir()) == [name]
