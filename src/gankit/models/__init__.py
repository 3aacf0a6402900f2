"""The model registry and the interface every model follows.

A model is an `nn.Module` holding its networks (`G`, `D`, ...). The trainer owns devices,
AMP, clipping, distributed gradients, checkpoints and logging; the model owns the order of
its updates. The interface, as a Protocol (no base class to inherit):
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from .cgan import CGAN
from .cyclegan import CycleGAN
from .dcgan import DCGAN
from .gan import GAN
from .seqgan import SeqGAN


class GANModel(Protocol):
    Config: type
    """dataclass of the `model.*` keys"""
    DATA_KIND: str
    """'image' | 'unpaired' | 'text': what load_data must return"""
    PAPER: str
    GENERATORS: tuple[str, ...]
    """attributes holding the sample-making networks (what `train.ema` averages)"""

    def __init__(self, cfg: Any, data: Any, train: Any) -> None: ...

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers; `update(name, loss)` steps the one named."""

    def train_step(self, batch: dict[str, Tensor], update: Callable[..., None]) -> dict[str, Tensor]:
        """One step: calls update(name, loss) in the model's order; returns detached losses."""

    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Inputs reused for every sample grid (saved in the checkpoint)."""

    def render(self, fixed: dict[str, Tensor]) -> tuple[Tensor, int] | list[str]:
        """Images (N, C, H, W) in [-1, 1] and images per row, or sentences for text models."""

    def sample(self, n: int, label: int | None = None) -> Tensor | list[str]: ...

    # Optional:
    #   configure_schedulers(optimizers, total_steps) -> dict[str, LRScheduler]
    #   phases(steps) -> list[(name, n_steps)]; the trainer sets `model.phase` before each step
    #   evaluate() -> dict[str, float]: model-specific metrics (NLL-oracle, paired L1/PSNR/SSIM)
    #   reals_per_step: int, batches of real data per step (k D steps)
    #   get_extra_state / set_extra_state (nn.Module): state beyond parameters (replay buffers)


MODELS: dict[str, type] = {"gan": GAN, "cgan": CGAN, "dcgan": DCGAN, "cyclegan": CycleGAN, "seqgan": SeqGAN}
