"""The Python API: train, load a finished (or interrupted) run, sample from it.

    from gankit import build_config, train, load_run
    cfg = build_config("cgan", overrides=["train.steps=500"])
    run_dir = train(cfg, out="runs/my-cgan")
    run = load_run(run_dir)
    images = run.sample(16, label=3)      # (16, 1, 32, 32) in [-1, 1]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig, config_from_dict
from .data import Dataset, load_data
from .ema import EMA, generator_names
from .errors import GankitError
from .models import MODELS
from .runs import RunDir, load_checkpoint
from .trainer import evaluating, pick_device


@dataclass
class LoadedRun:
    path: Path
    config: RunConfig
    model: torch.nn.Module
    step: int
    data_info: dict[str, Any]

    def sample(self, n: int = 64, label: int | None = None, seed: int | None = None):
        """n images (N, C, H, W) in [-1, 1] — or n sentences for text models."""
        if n <= 0:
            raise GankitError(f"--n must be positive, got {n}")
        with evaluating(self.model):
            if seed is not None:
                torch.manual_seed(seed)
            return self.model.sample(n, label)


def load_run(run_dir: str | Path, device: str = "cpu", ema: bool = True, checkpoint: str | Path | None = None,
             with_data: bool = False) -> LoadedRun:
    """Rebuild the model of a run from its newest complete checkpoint (or `checkpoint`).

    Models are built from the data description saved in the checkpoint, so sampling needs
    no data; `with_data=True` loads the data set too (for evaluation / translation).
    """
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise GankitError(f"run directory not found: {run.path}")
    if not checkpoint and not run.exists():
        raise GankitError(f"{run.path} is not a gankit run directory (no config.yaml); "
                          "give the folder that `gankit train --out` wrote")
    if checkpoint:
        state, path = load_checkpoint(Path(checkpoint)), Path(checkpoint)
    else:
        state, path = run.latest()
    cfg = config_from_dict(state["config"])
    dev = pick_device(device)
    if with_data:
        data = load_data(cfg.data, MODELS[cfg.name].DATA_KIND)
    else:
        data = Dataset(MODELS[cfg.name].DATA_KIND, {"_": torch.zeros(1)}, dict(state["data_info"]))
    model = MODELS[cfg.name](cfg.model, data, cfg.train)
    model.load_state_dict(state["model"])
    if ema and state.get("ema") is not None:  # the averaged generators, BatchNorm statistics included
        EMA.modules_from_state({name: getattr(model, name) for name in generator_names(model)}, state["ema"])
    model.to(dev).eval()
    if with_data:
        data.to(dev)
        model.data = data
    return LoadedRun(run.path, cfg, model, int(state["step"]), dict(state["data_info"]))
