"""The interface every model implements, in full (no optional methods, no probing).

A model is an `nn.Module` holding its networks (`G`, `D`, ...). The trainer owns devices,
AMP, clipping, distributed gradients, checkpoints, logging and the batches; the model owns
its networks, its optimizers' parameter groups and the order of its updates.

Data reaches a model in three ways only: its description (`DataInfo`) when it is built,
the trainer's batches in each step, and explicit `data` arguments where a method needs the
data set itself (held-out images for a translation grid, the oracle for NLL-oracle).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

import torch
from torch import Tensor

from ..data.dataset import Batch, DataInfo, Dataset

Update = Callable[..., None]
"""update(name, loss): zero_grad -> backward -> (all-reduce) -> clip -> step, owned by the trainer"""

StepFn = Callable[[Batch, Update, int], dict[str, Tensor]]
"""step(batch, update, step) -> detached losses; `step` is the 0-based global step"""


@dataclass(frozen=True)
class Phase:
    """A stretch of training with its own step function and batch size. The trainer runs the
    phases in order and counts one progress step per call of `step`."""
    name: str
    steps: int
    step: StepFn
    batch_size: int
    """rows of real data in each step's batch (per process)"""
    start: Callable[[dict[str, torch.optim.Optimizer]], None] | None = None
    """called with the optimizers when the phase begins (not again when a run resumes inside it)"""


class GANModel(Protocol):
    Config: ClassVar[type]
    """dataclass of the `model.*` keys"""
    DATA_KIND: ClassVar[str]
    """'image' | 'unpaired' | 'text': what load_data must return"""
    PAPER: ClassVar[str]
    GENERATORS: ClassVar[tuple[str, ...]]
    """attributes holding the sample-making networks (what `train.ema` averages)"""
    SAMPLE_LAYOUT: ClassVar[str]
    """how the sample grids are laid out (shown in the report)"""

    def __init__(self, cfg: Any, info: DataInfo, train: Any) -> None: ...

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers; `update(name, loss)` steps the one named."""

    def configure_schedulers(self, optimizers: dict[str, torch.optim.Optimizer],
                             total_steps: int) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Per-step LR schedules ({} for constant rates)."""

    def phases(self, steps: int, n_train: int) -> list[Phase]:
        """The training schedule; `steps` is train.steps, `n_train` the training examples
        per process. The last phase is the main one (train.epochs counts its passes)."""

    def fixed_inputs(self, n: int, generator: torch.Generator, data: Dataset) -> dict[str, Tensor]:
        """Inputs reused for every sample grid (saved in the checkpoint)."""

    def render(self, fixed: dict[str, Tensor]) -> tuple[Tensor, int] | list[str]:
        """Images (N, C, H, W) in [-1, 1] and images per row, or sentences for text models."""

    def sample(self, n: int, label: int | None = None, data: Dataset | None = None) -> Tensor | list[str]:
        """n new samples; models that translate held-out images need `data`."""

    def evaluate(self, data: Dataset) -> dict[str, float]:
        """Model-specific metrics on `data` at evaluation steps ({} when there are none)."""

    @staticmethod
    def report_figures(rows: list[dict], config: dict, out_dir: Path) -> list[Path]:
        """Figures of the model's own in the report (written to out_dir), from a run's metrics
        rows and config.yaml mapping; [] when the generic figures say it all."""
