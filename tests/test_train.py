"""The engine end to end: run directory, exact resume, the CLI."""
import json
import re
import subprocess
import sys

import pytest
import torch

from gankit import build_config, load_run, train, run_config
from gankit.cli import main
from gankit.runs import RunDir, load_checkpoint

from conftest import QUIET, TINY


def _cfg(name="gan", steps=8, *extra):
    return build_config(name, overrides=TINY[name] + QUIET + [f"train.steps={steps}", *extra])


def _params(run_dir):
    state = load_checkpoint(RunDir(run_dir).checkpoints / "last.pt")
    return state["model"], state["optimizers"]


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_resume_is_exact(tmp_path, name):
    """N steps, stop, resume N more == 2N straight steps (models, optimizers, RNG, data order)."""
    straight = train(_cfg(name, 8), out=tmp_path / "straight")
    half = train(_cfg(name, 4), out=tmp_path / "resumed")
    resumed = train(_cfg(name, 8), resume=half)
    (m1, o1), (m2, o2) = _params(straight), _params(resumed)
    for k in m1:
        assert torch.equal(m1[k], m2[k]), k
    assert o1["g"]["state"][0]["exp_avg"].equal(o2["g"]["state"][0]["exp_avg"])
    steps = [r["step"] for r in RunDir(resumed).metrics() if not r.get("eval")]
    assert steps == sorted(steps) and steps[-1] == 8


def test_run_directory_layout(tmp_path):
    out = train(_cfg("cgan", 8, "train.ema=0.9"), out=tmp_path / "run")
    assert (out / "config.yaml").is_file() and (out / "report.html").is_file()
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "checkpoints" / "step_0000008.pt").is_file()
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == \
        ["step_0000000.png", "step_0000004.png", "step_0000008.png"]
    assert list((out / "tb").glob("events.out.tfevents*"))
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if not r.get("eval")]
    assert [r["step"] for r in logged] == [2, 4, 6, 8] and all("loss_d" in r and "loss_g" in r for r in logged)
    assert [r["step"] for r in rows if r.get("eval")] == [8]  # the diagnostics at the end (diagnostics.py)
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert {"model", "optimizers", "rng", "step", "config", "ema", "fixed"} <= set(state)


def test_existing_run_dir_is_refused(tmp_path):
    train(_cfg("gan", 2), out=tmp_path / "r")
    from gankit.errors import GankitError
    with pytest.raises(GankitError, match="already exists.*--resume"):
        train(_cfg("gan", 2), out=tmp_path / "r")
    train(_cfg("gan", 2), out=tmp_path / "r", overwrite=True)


def test_load_run_and_sample(tmp_path):
    out = train(_cfg("cgan", 4), out=tmp_path / "r")
    run = load_run(out)
    assert run.step == 4 and run.config.name == "cgan"
    x = run.sample(6, label=2, seed=1)
    assert x.shape == (6, 1, 8, 8)
    assert torch.equal(x, run.sample(6, label=2, seed=1))


def test_cli_train_sample_report(tmp_path, capsys):
    run = tmp_path / "cli-run"
    args = ["train", "cgan", "--steps", "4", "--batch-size", "16", "--seed", "3", "--out", str(run),
            "--set", *TINY["cgan"], "--set", "train.log_every=2", "train.sample_every=2", "--no-progress"]
    assert main(args) == 0
    assert "run directory" in capsys.readouterr().out
    cfg = run_config(run)
    assert cfg.train.seed == 3 and cfg.train.batch_size == 16 and cfg.model.g_hidden == [16, 32]

    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "9", "--label", "4", "--out", str(grid)]) == 0
    from PIL import Image
    img = Image.open(grid)
    assert img.size == (3 * (8 + 2) + 2, 3 * (8 + 2) + 2)  # 3x3 grid of 8px images, 2px borders

    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    srcs = re.findall(r"src='([^']+)'", html)
    assert srcs and all((run / s).is_file() for s in srcs)
    assert any(s.startswith("samples/") for s in srcs) and "figures/losses.png" in srcs


def test_cli_resume_extends_run(tmp_path):
    run = tmp_path / "r"
    base = ["--set", *TINY["gan"], *QUIET]
    assert main(["train", "gan", "--steps", "4", "--out", str(run), *base]) == 0
    assert main(["train", "--resume", str(run), "--steps", "8"]) == 0
    assert load_run(run).step == 8


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "gan", "--set", "train.lrr=1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'train.lrr'") and "train.lr" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "gankit", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for option in ("--data", "--config", "--steps", "--epochs", "--batch-size", "--seed", "--device", "--out",
                   "--resume", "--set", "train.checkpoint_every", "data.size"):
        assert option in out.stdout
    for cmd in ("sample", "report", "list", "eval", "translate", "bench", "theory", "fit-classifier", "download"):
        res = subprocess.run([sys.executable, "-m", "gankit", cmd, "--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "usage" in res.stdout
