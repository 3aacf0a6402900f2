"""The Python API: build a config, train, resume, load a finished (or interrupted) run,
sample from it.

    from gankit import build_config, train, load_run
    cfg = build_config("cgan", overrides=["train.steps=500"])
    run_dir = train(cfg, out="runs/my-cgan")
    run = load_run(run_dir)
    images = run.sample(16, label=3)      # (16, 1, 32, 32) in [-1, 1]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import config as _config
from .config import RunConfig, parse_override, set_key, validate
from .data import DataInfo, Dataset, load_data
from .distributed import pick_device
from .ema import EMA, generator_names
from .errors import GankitError, unknown
from .models import MODELS
from .runs import RunDir, load_checkpoint
from .trainer import evaluating, train


def build_config(name: str, files: list[str | Path] = (), overrides: list[str] = (),
                 mapping: dict | None = None) -> RunConfig:
    """The resolved config of model `name`: dataclass defaults < configs/NAME.yaml < files <
    mapping < overrides (`section.key=value`)."""
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    return _config.make_config(name, MODELS[name].Config, files, overrides, mapping)


def config_from_dict(data: dict) -> RunConfig:
    """A RunConfig from `RunConfig.to_dict()` output (a run's config.yaml, a checkpoint's config)."""
    name = _config.config_name(data)
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    return _config.from_dict(data, MODELS[name].Config)


def run_config(run_dir: str | Path) -> RunConfig:
    """The config of the run in `run_dir`."""
    return config_from_dict(RunDir(run_dir).config_dict())


def resume(run_dir: str | Path, overrides: list[str] = (), model: str | None = None) -> Path:
    """Continue the run in `run_dir` exactly where its newest checkpoint left off; `overrides`
    may extend it (train.steps) or change its cadence. `model`: fail unless it is that model's run."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise GankitError(f"run directory not found: {run.path}")
    cfg = run_config(run.path)
    if model and model != cfg.name:
        raise GankitError(f"{run.path} is a '{cfg.name}' run, not '{model}'")
    for text in overrides:
        set_key(cfg, *parse_override(text))
    validate(cfg)
    return train(cfg, resume=run.path)


@dataclass
class LoadedRun:
    path: Path
    config: RunConfig
    model: torch.nn.Module
    step: int
    data_info: DataInfo
    data: Dataset | None = None
    """the run's data set, when loaded `with_data`"""

    def sample(self, n: int = 64, label: int | None = None, seed: int | None = None):
        """n images (N, C, H, W) in [-1, 1] — or n sentences for text models."""
        if n <= 0:
            raise GankitError(f"--n must be positive, got {n}")
        with evaluating(self.model):
            if seed is not None:
                torch.manual_seed(seed)
            return self.model.sample(n, label, self.data)


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
    info = DataInfo.from_dict(state["data_info"])
    model = MODELS[cfg.name](cfg.model, info, cfg.train)
    model.load_state_dict(state["model"])
    if ema and state.get("ema") is not None:  # the averaged generators, BatchNorm statistics included
        EMA.modules_from_state({name: getattr(model, name) for name in generator_names(model)}, state["ema"])
    model.to(dev).eval()
    data = load_data(cfg.data, MODELS[cfg.name].DATA_KIND).to(dev) if with_data else None
    return LoadedRun(run.path, cfg, model, int(state["step"]), info, data)
