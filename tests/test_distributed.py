"""Two CPU processes under torchrun (gloo): data-parallel training equals one process on
the same global batch, and a distributed run resumes exactly.

The equality test runs `gankit train` through a small launcher that makes the noise a
function of the global batch (each rank takes its rows of one global draw), so one
process with batch 2B sees exactly what two ranks with batch B see together; then the
only difference left is the gradient averaging under test. `gan` has no BatchNorm and
no dropout; dcgan's BatchNorm normalises over the global batch with train.sync_batchnorm.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gankit.cli import main as cli

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")

TINY = ["train.progress=false", "train.log_every=2",
        "train.sample_every=100", "train.checkpoint_every=4", "train.keep_checkpoints=5",
        "train.samples=16", "train.device=cpu", "train.threads=1"]

# Noise as rows of one global draw per call: rank r of W takes rows [r*n, (r+1)*n).
LAUNCHER = textwrap.dedent("""
    import os, sys, torch
    _randn, calls = torch.randn, [0]

    def randn(*size, generator=None, device=None, dtype=None, **kw):
        if generator is not None:
            return _randn(*size, generator=generator, device=device, dtype=dtype, **kw)
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        calls[0] += 1
        g = torch.Generator().manual_seed(1000 + calls[0])
        full = _randn(shape[0] * world, *shape[1:], generator=g, dtype=dtype)
        return full[rank * shape[0]:(rank + 1) * shape[0]].to(device)

    torch.randn = randn
    from gankit.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def run(args: list[str], nproc: int = 2, script: Path | None = None) -> None:
    entry = [str(script)] if script else ["-m", "gankit"]
    # --standalone: torchrun's own rendezvous on a port it picks itself (a port chosen here
    # and closed again could be taken before torchrun binds it)
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
                              if nproc > 1 else []) + entry + args
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def weights(run_dir: Path, step: int) -> dict:
    return torch.load(run_dir / "checkpoints" / f"step_{step:07d}.pt", weights_only=True)


# gan: no BatchNorm, no dropout. dcgan: BatchNorm over the global batch via sync_batchnorm.
CASES = {"gan": (["model.hidden=[32]", "data.size=8"], 1e-5),
         "dcgan": (["model.channels=4", "data.size=16", "train.sync_batchnorm=true"], 1e-4)}


@pytest.mark.parametrize("model", sorted(CASES))
def test_two_ranks_match_one_process_on_the_global_batch(model, tmp_path):
    sets, atol = CASES[model]
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    common = ["train", model, "--steps", "4", "--set", *TINY, *sets]
    run(common + ["--out", str(tmp_path / "ddp"), "--batch-size", "8"], nproc=2, script=launcher)
    run(common + ["--out", str(tmp_path / "one"), "--batch-size", "16"], nproc=1, script=launcher)
    ddp, one = weights(tmp_path / "ddp", 4), weights(tmp_path / "one", 4)
    assert ddp["world_size"] == 2 and len(ddp["rng"]) == 2
    for k, v in one["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=atol, msg=k)
    # and training did move the weights (the comparison is not between two initialisations)
    from gankit import build_config
    from gankit.trainer import build_model
    torch.manual_seed(0)
    init, _ = build_model(build_config(model, overrides=TINY + sets), torch.device("cpu"))
    moved = max((one["model"][k].float() - v.float()).abs().max().item() for k, v in init.state_dict().items())
    assert moved > 1e-4


def test_distributed_run_resumes_exactly_and_with_another_world_size(tmp_path):
    straight = tmp_path / "straight"
    args = ["train", "gan", "--steps", "8", "--batch-size", "8", "--set", *TINY, *CASES["gan"][0]]
    run(args + ["--out", str(straight)], nproc=2)
    assert sorted(p.name for p in (straight / "checkpoints").glob("step_*.pt")) == \
        ["step_0000004.pt", "step_0000008.pt"]
    lines = (straight / "metrics.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"eval"' not in line]) == 4  # rank 0 alone logs

    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for p in [resumed / "checkpoints" / "step_0000008.pt", resumed / "checkpoints" / "last.pt"]:
        p.unlink(missing_ok=True)
    run(["train", "--resume", str(resumed)], nproc=2)
    a, b = weights(straight, 8), weights(resumed, 8)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k

    # a different world size (1 process) cannot replay two RNG streams: it reseeds and runs on
    other = tmp_path / "other"
    shutil.copytree(resumed, other)
    for p in [other / "checkpoints" / "step_0000008.pt", other / "checkpoints" / "last.pt"]:
        p.unlink(missing_ok=True)
    assert cli(["train", "--resume", str(other), "--no-progress"]) == 0
    c = weights(other, 8)
    assert c["world_size"] == 1 and all(torch.isfinite(v).all() for v in c["model"].values())
