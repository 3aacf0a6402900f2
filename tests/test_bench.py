"""`gankit bench` prints one JSON line with the documented keys; every reference
implementation in benchmarks/reference builds and runs a step at a tiny size."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from conftest import benchmark_script
from gankit.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"model", "device", "batch", "samples_per_s", "step_ms", "peak_mem_mb",
        "amp", "compile", "channels_last", "threads"}


def test_bench_prints_one_json_line(capsys):
    assert cli(["bench", "gan", "--steps", "2", "--warmup", "1", "--batch-size", "16"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert KEYS <= result.keys()
    assert result["model"] == "gan" and result["batch"] == 16 and result["samples_per_s"] > 0


def test_bench_times_what_train_runs_unless_as_reference(capsys):
    """`gankit bench cgan` is the shipped cgan config (alternating, bce); --as-reference is
    PyTorch-GAN's cgan.py setting (simultaneous updates, lsgan)."""
    from gankit import build_config
    trained = build_config("cgan").model
    assert cli(["bench", "cgan", "--steps", "1", "--warmup", "0", "--batch-size", "8"]) == 0
    assert cli(["bench", "cgan", "--steps", "1", "--warmup", "0", "--batch-size", "8", "--as-reference"]) == 0
    default, reference = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()]
    assert default["setting"] == "train" and reference["setting"] == "reference"
    assert default["updates"] == trained.updates == "alternating"
    assert reference["updates"] == "simultaneous"


def test_bench_unknown_model_is_one_line_error(capsys):
    assert cli(["bench", "nosuchgan", "--steps", "1"]) == 2
    assert "not registered" in capsys.readouterr().err


TINY_REF = {
    "gan_ref": {"batch_size": 4},
    "cgan_ref": {"batch_size": 4, "size": 8},
    "dcgan_ref": {"batch_size": 4, "size": 64, "width": 4},  # the script is 64x64 only
}


@pytest.mark.parametrize("name", sorted(TINY_REF))
def test_reference_builds_and_steps(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    ref = importlib.import_module(f"benchmarks.reference.{name}")
    step, samples = ref.build("cpu", **TINY_REF[name])
    step()
    step()
    assert samples == TINY_REF[name]["batch_size"]


def test_speed_script_row_and_docs_table(tmp_path, capsys):
    """benchmarks/speed.py end to end at a tiny size: one interleaved row, then its table."""
    speed = benchmark_script("speed")
    assert speed.main(["--models", "cgan", "--reps", "1", "--steps", "1", "--warmup", "1",
                       "--batch-size", "8", "--threads", "1"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    peak, row = out[0]["peak"], out[-1]
    assert row["model"] == "cgan" and row["ratio"] > 0 and row["threads"] == 1
    assert row["updates"] == "simultaneous"  # gankit bench times the reference script's update order
    doc = tmp_path / "benchmarks.md"
    speed.write_docs([row], peak, "python benchmarks/speed.py ...", doc)
    text = doc.read_text()
    assert "| cgan | 8 | fp32 eager; simultaneous updates | 1 |" in text
    assert "load average" in text
