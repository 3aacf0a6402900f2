"""`gankit bench MODEL`: time full training steps (every update of one step, data included).

The model, data, optimizers, phases and `update` are built by the trainer's own `setup`,
and each timed step is `Engine.step`, so what is timed is what `gankit train MODEL` runs
(its shipped config and default data), minus logging and checkpoints. `--as-reference`
times instead the setting that `benchmarks/reference/` implements (REFERENCE below: the
reference's shapes, batch, loss and update order, no EMA), so the numbers compare directly
with the reference scripts; `benchmarks/speed.py` uses it.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Any, Callable

import torch

from .api import build_config
from .errors import GankitError
from .models import MODELS
from .trainer import setup as setup_engine

# Per model: the batch size and overrides of the reference setting (sizes as the issue
# lists them). Data is the built-in `digits` set resized to the reference shape: the
# timings do not depend on what the pixels show, and the reference sees the same shape.
REFERENCE: dict[str, dict[str, Any]] = {
    "gan": {"batch": 128, "set": ["data.size=28", "data.channels=1"]},
    # the reference scripts' update orders too (models/adversarial.adversarial_step): PyTorch-GAN's
    # cgan.py takes both players' gradients at the same point; PyTorch's DCGAN example reuses
    # D's fakes for G's update. gankit's training defaults are the papers' alternating order.
    "cgan": {"batch": 64, "set": ["data.size=32", "data.channels=1", "model.loss=lsgan",
                                  "model.updates=simultaneous"]},
    "dcgan": {"batch": 128, "set": ["model.channels=128", "data.size=64", "data.channels=3",
                                    "model.reuse_fakes=true"]},
    "cyclegan": {"batch": 1, "set": ["data.size=128", "model.n_blocks=9"]},
    # the oracle setting; the adversarial step alone (G's rollouts, rewards and update: no
    # D epochs, no MLE baseline), as the reference times it
    "seqgan": {"batch": 64, "set": ["data.spec=oracle", "model.d_steps=0", "model.mle_baseline=false"],
               "phase": "adversarial"},
}
DEFAULT_PHASE = {"seqgan": "adversarial"}  # a phased model's `--steps` counts this phase
PHASES = {"pretrain": "mle"}  # bench phase name -> the model's phase name
QUIET = ["train.progress=false"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # process peak RSS (KiB on Linux)
    return kb / 1024


def setup(model: str, batch_size: int | None = None, device: str = "cpu", overrides: list[str] = (),
          phase: str | None = None, as_reference: bool = False) -> tuple[Callable[[], None], int, dict[str, Any], Any]:
    """Build MODEL as the trainer does (or in its REFERENCE setting); return (step_fn,
    samples_per_step, description, data).

    `step_fn()` runs one full training step (or, for seqgan `phase="nll"`, one NLL-oracle
    evaluation: sample `model.eval_samples` sequences and score them under the oracle). Used by `bench` and by `benchmarks/speed.py`.
    """
    if model not in MODELS:
        known = ", ".join(sorted(MODELS))
        raise GankitError(f"model '{model}' is not registered in this gankit (have: {known}); "
                          "nothing to benchmark")
    ref = REFERENCE.get(model, {"batch": None, "set": []}) if as_reference else \
        {"batch": None, "set": [], "phase": DEFAULT_PHASE.get(model)}
    batch = batch_size or ref["batch"]
    # the references keep no average of G: in their setting the EMA update is off too
    as_ref = ["train.ema=0"] if as_reference else []
    sets = list(ref["set"]) + as_ref + ([f"train.batch_size={batch}"] if batch else []) + QUIET + list(overrides)
    cfg = build_config(model, overrides=sets + [f"train.device={device}"])
    t = cfg.train
    engine = setup_engine(cfg)
    net, data, dev = engine.model, engine.data, engine.device
    net.train()

    phase = phase or ref.get("phase")
    names = [p.name for p in engine.phases]
    if phase is not None and PHASES.get(phase, phase) not in names + (["nll"] if data.oracle is not None else []):
        raise GankitError(f"{model} has no phase '{phase}' (have: {', '.join(names)})")

    if phase == "nll":
        # NLL-oracle alone (sample eval_samples sequences, score them under the oracle), as
        # the reference times it; evaluation also adds NLL-test and the MLE baseline's NLL.
        def step() -> None:
            net.eval()
            net.nll_oracle(data.oracle)
            net.train()
        samples = cfg.model.eval_samples
    else:
        index = names.index(PHASES.get(phase, phase)) if phase is not None else len(names) - 1
        chosen, batches = engine.phases[index], engine.batches(index, 0)
        if chosen.start is not None:  # e.g. SeqGAN's adversarial phase starts from the current G
            chosen.start(engine.optimizers)

        def step() -> None:
            engine.step(chosen, next(batches), 0)
        samples = t.batch_size
        if phase == "pretrain":  # one MLE epoch over the training sequences
            samples = chosen.batch_size // min(t.batch_size, chosen.batch_size) * min(t.batch_size, chosen.batch_size)

    info = {"model": model, "setting": "reference" if as_reference else "train", "device": str(dev),
            "batch": t.batch_size, "phase": phase,
            "amp": engine.amp, "compile": t.compile, "channels_last": t.channels_last,
            "threads": torch.get_num_threads(),
            "updates": getattr(cfg.model, "updates", None),  # (image GANs' AdversarialConfig keys)
            "reuse_fakes": getattr(cfg.model, "reuse_fakes", None),
            "shape": [data.info.channels, data.info.size] if data.kind == "image" else None}
    return step, samples, info, data


def bench(model: str, batch_size: int | None = None, steps: int = 20, warmup: int = 3,
          device: str = "cpu", overrides: list[str] = (), phase: str | None = None,
          as_reference: bool = False) -> dict[str, Any]:
    """Time `steps` full training steps after `warmup`; one flat dict (printed as JSON)."""
    if steps <= 0 or warmup < 0:
        raise GankitError("--steps must be positive and --warmup non-negative")
    step, samples, info, _ = setup(model, batch_size, device, overrides, phase, as_reference)
    dev = torch.device(info["device"])
    for _ in range(warmup):
        step()
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {**info, "steps": steps, "step_ms": round(med * 1e3, 3),
            "samples_per_s": round(samples / med, 2), "peak_mem_mb": round(_peak_mem_mb(dev), 1),
            "peak_mem_kind": "cuda_allocated" if dev.type == "cuda" else "process_rss",
            "torch": torch.__version__, "python": sys.version.split()[0]}
