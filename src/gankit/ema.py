"""Exponential moving average (EMA) of a model's generators, used for samples and evaluation.

Warm-up. The decay at 0-based step t is `min(decay, (1 + t) / (10 + t))`, the `num_updates`
rule of TensorFlow's `ExponentialMovingAverage` (also timm's and the DCGAN-era Keras
examples'). At t = 0 the average takes 90% of G's new weights, at t = 100 about 8%, and
the fixed `decay` only from t ≈ 9 / (1 - decay) on (9,000 steps at 0.999). A fixed decay
from step 0 keeps `decay ** t` of the random initial weights in the average — 22% after
1,500 steps at 0.999 — so early samples look alike whatever the label. We chose this rule
over StyleGAN's ramp-up (a half-life of 10 k images, growing with the images seen) because
it needs no batch-size-dependent constant and is what the `ema` key means in most code.

BatchNorm. Averaged weights need their own BatchNorm statistics: G's running statistics
describe G's current weights, not the average. Before the average is used (a sample grid,
an evaluation, a checkpoint) its statistics are recomputed from its own activations over
`RECALIBRATION_BATCHES` batches of fresh samples (the `update_bn` step of stochastic
weight averaging, Izmailov et al. 2018), from a fixed seed, so the result is a pure
function of the averaged weights and resume stays exact. Networks without running
statistics (CycleGAN's InstanceNorm, the MLPs, SeqGAN's LSTM) skip that step.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
from torch import nn

RECALIBRATION_BATCHES = 8


def fork_rng():
    """A fork of torch's RNG (and the current GPU's, once CUDA is in use): what runs inside
    draws numbers without changing what training draws next."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return torch.random.fork_rng(devices=devices)


def generator_names(model: nn.Module) -> tuple[str, ...]:
    """The attributes holding the networks that make samples (the model's `GENERATORS`)."""
    return tuple(model.GENERATORS)


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class EMA:
    """`decay` averages of the model's generators, with the warm-up described above."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.modules = {name: copy.deepcopy(getattr(model, name)).eval().requires_grad_(False)
                        for name in generator_names(model)}
        self.stale = True  # BatchNorm statistics need recomputing before the next use

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Average in the generators' weights after (0-based) step `step`."""
        weight = 1.0 - self.decay_at(step)
        for name, ema in self.modules.items():
            source = getattr(model, name)
            torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in source.parameters()], weight)
        self.stale = True

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """`model` with its generators replaced by the averages (statistics up to date)."""
        originals = {name: getattr(model, name) for name in self.modules}
        for name, ema in self.modules.items():
            setattr(model, name, ema)
        try:
            if self.stale:
                self._recalibrate(model)
            yield model
        finally:
            for name, module in originals.items():
                setattr(model, name, module)

    @torch.no_grad()
    def _recalibrate(self, model: nn.Module) -> None:
        norms = [bn for ema in self.modules.values() for bn in _batchnorms(ema)]
        self.stale = False
        if not norms:
            return
        batch = max(2, int(getattr(getattr(model, "train_cfg", None), "batch_size", 64)))
        momenta = [bn.momentum for bn in norms]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the recalibration batches
        for ema in self.modules.values():
            ema.train()
        try:
            with fork_rng():
                torch.manual_seed(0)
                for _ in range(RECALIBRATION_BATCHES):
                    model.sample(batch)
        finally:
            for bn, momentum in zip(norms, momenta):
                bn.momentum = momentum
            for ema in self.modules.values():
                ema.eval()

    def state_dict(self, model: nn.Module) -> dict[str, dict]:
        """The averages with statistics up to date, so a loaded run samples as training did."""
        if self.stale:
            with self.swapped_in(model):
                pass
        return {name: ema.state_dict() for name, ema in self.modules.items()}

    def load_state_dict(self, state: dict) -> None:
        self.modules_from_state(self.modules, state)
        self.stale = True

    @staticmethod
    def modules_from_state(modules: dict[str, nn.Module], state: dict) -> None:
        """Load EMA weights into `modules` ({name: network}); checkpoints from before
        per-generator averages hold G's state dict itself."""
        if set(state) <= set(modules) and all(isinstance(v, dict) for v in state.values()):
            for name, sd in state.items():
                modules[name].load_state_dict(sd)
        else:
            modules["G"].load_state_dict(state)


@contextlib.contextmanager
def evaluating(model: nn.Module, ema: EMA | None = None):
    """Eval mode, EMA generators swapped in, training RNG untouched — so sampling or
    evaluating in the middle of a run never changes what the run does next."""
    was_training = model.training
    with fork_rng():
        model.eval()
        try:
            with ema.swapped_in(model) if ema is not None else contextlib.nullcontext(model):
                yield model
        finally:
            model.train(was_training)
