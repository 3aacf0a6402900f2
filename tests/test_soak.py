"""The kill soak (benchmarks/soak.py) in short: one model per data kind, real `gankit train`
processes SIGKILLed (one kill at a random moment, one as soon as a checkpoint's temporary
file appears) and resumed, ending bit-identical to an uninterrupted run. The full soak
(every model, >= 50 kills) is in docs/benchmarks.md."""
from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("model, steps, kills", [("gan", 120, 2), ("cyclegan", 24, 1), ("seqgan", 10, 1)])
def test_killed_and_resumed_run_equals_a_straight_one(model, steps, kills, tmp_path):
    soak = importlib.import_module("benchmarks.soak")
    row = soak.soak(model, kills, tmp_path, seed=1, steps=steps, in_process=True)
    assert row["kills"] == kills, row
    assert row["steps"] >= steps
    assert row["differences"] == 0, row["first_differences"]


def test_differences_are_found(tmp_path):
    """The comparison itself: a changed weight or optimizer moment is reported by name."""
    import torch
    from gankit.runs import load_checkpoint, save_checkpoint
    from gankit.cli import main
    soak = importlib.import_module("benchmarks.soak")
    assert main(soak.train_cmd("gan", tmp_path / "a", 6)) == 0
    a = tmp_path / "a" / "checkpoints" / "last.pt"
    state = load_checkpoint(a)
    assert soak.differences(a, a) == []
    key = next(iter(state["model"]))
    state["model"][key] = state["model"][key].clone()
    state["model"][key].view(-1)[0] += 1.0
    save_checkpoint({k: v for k, v in state.items() if k not in ("digest", "format", "complete")}, tmp_path / "b.pt")
    assert soak.differences(a, tmp_path / "b.pt") == [f"model/{key}"]
    assert torch.equal(load_checkpoint(a)["model"][key], state["model"][key]) is False
