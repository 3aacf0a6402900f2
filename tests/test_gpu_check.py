"""benchmarks/gpu_check.sh without a GPU: the script parses, every check prints one JSON
line, and a failing check (no CUDA device, a missing run) is reported as JSON while the
checks after it still run; the exit status counts the failures."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(tmp_path: Path, only: str, *args: str) -> tuple[int, list[dict]]:
    env = {**os.environ, "GPU_CHECK_ONLY": only, "GPU_CHECK_WORK": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=240)
    return proc.returncode, [json.loads(l) for l in proc.stdout.splitlines()]


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU failure path")
def test_failures_are_json_and_do_not_stop_the_rest(tmp_path):
    code, rows = run(tmp_path, "^(env|eval-gan|bench-gan)$", "--device", "cuda")
    names = [r["check"] for r in rows]
    assert names == ["env", "eval-gan", "bench-gan", "summary"]
    env, ev, bench = rows[:3]
    assert not env["ok"] and "no CUDA device" in env["error"] and env["rc"] == 1
    assert not ev["ok"] and "not a gankit run directory" in ev["error"]
    assert not bench["ok"] and "no CUDA device is available" in bench["error"]
    assert rows[-1] == {"check": "summary", "failed": 3, "work": str(tmp_path), "device": "cuda"}
    assert code == 3


def test_nccl_collectives_check_runs_on_the_cpu_as_gloo(tmp_path):
    code, rows = run(tmp_path, "^torchrun-collectives$", "--device", "cpu")
    assert code == 0 and rows[0]["ok"], rows
    assert rows[0]["detail"] == "backend gloo device cpu gathered 1"
