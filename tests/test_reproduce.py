"""Chunked training as benchmarks/reproduce.py runs it (train.stop_at), and the script's pieces."""
import json
import sys
from pathlib import Path

import pytest
import torch

from gankit import build_config, train
from gankit.runs import RunDir, load_checkpoint

from conftest import QUIET

ROOT = Path(__file__).resolve().parents[1]
CYCLEGAN = ["model.ngf=4", "model.ndf=4", "model.n_blocks=1", "model.pool_size=3", "data.size=32",
            "train.batch_size=1"]


def test_stop_at_pauses_without_changing_the_lr_schedule(tmp_path):
    """8 steps paused at 3 and 6 == 8 straight steps, LR decay included (it depends on train.steps)."""
    def cfg(*extra):
        return build_config("cyclegan", overrides=CYCLEGAN + QUIET + ["train.steps=8", "train.batch_size=1", *extra])
    straight = train(cfg(), out=tmp_path / "straight")
    run = train(cfg("train.stop_at=3"), out=tmp_path / "chunked")
    assert load_checkpoint(RunDir(run).checkpoints / "last.pt")["step"] == 3
    train(cfg("train.stop_at=6"), resume=run)
    assert load_checkpoint(RunDir(run).checkpoints / "last.pt")["step"] == 6
    train(cfg("train.stop_at=6"), resume=run)  # a stale pause point: trains on to the end
    a, b = (load_checkpoint(RunDir(r).checkpoints / "last.pt") for r in (straight, run))
    assert b["step"] == 8
    assert a["optimizers"]["g"]["param_groups"][0]["lr"] == b["optimizers"]["g"]["param_groups"][0]["lr"] < 2e-4
    assert _same(a["model"], b["model"])  # weights and the replay buffers


def _same(x, y) -> bool:
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and torch.equal(x, y)
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    return x == y
