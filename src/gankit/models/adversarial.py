"""What the image GANs (gan, cgan, dcgan) share: their adversarial config keys, the D/G
training step in its update orders, and `ImageGAN`, the model interface implemented once
for a G(z, labels) / D(x, labels) pair with fixed-noise sample grids (one row per class for
conditional models). Each model file only builds its two networks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..data.dataset import Dataset
from ..errors import GankitError
from ..layers import adam, device_of, requires_grad
from ..losses import Loss, d_stats, get_loss
from .augment import r1_penalty
from .protocol import Phase, Update

Augment = Callable[[Tensor], Tensor]


UPDATES = ("alternating", "simultaneous")


@dataclass
class AdversarialConfig:
    """The `model.*` keys of the adversarial game, shared by gan, cgan and dcgan."""
    z_dim: int = 100
    """noise dimension"""
    loss: str = "bce"
    """bce (non-saturating, the default) | minimax | lsgan | hinge"""
    d_steps: int = 1
    """k: discriminator updates per generator update"""
    updates: str = "alternating"
    """alternating (the paper: k D updates, then G on fresh noise) | simultaneous (both players'
    gradients at the same point from one batch of fakes, as the reference scripts compute; needs d_steps=1;
    cheaper, but trained cgan clearly worse in docs/benchmarks.md)"""
    reuse_fakes: bool = False
    """alternating: G's update reuses the last D update's fakes instead of fresh noise (one G forward
    fewer per step, as PyTorch's DCGAN example does). simultaneous always does"""

    def validate(self):
        get_loss(self.loss)
        check_updates(self.updates, self.d_steps)
        if self.z_dim <= 0 or self.d_steps <= 0:
            raise GankitError("model.z_dim and model.d_steps must be positive")


def check_updates(updates: str, d_steps: int) -> None:
    """Validate `model.updates` (the config's spelling of the two orders below)."""
    if updates not in UPDATES:
        raise GankitError(f"model.updates must be one of {', '.join(UPDATES)}, got '{updates}'")
    if updates == "simultaneous" and d_steps != 1:
        raise GankitError("model.updates=simultaneous evaluates both players at the same point, so it "
                          f"takes model.d_steps=1 (got {d_steps}); use alternating for k > 1")


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def d_real_fake(D: nn.Module, real: Tensor, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    """D's logits on reals and fakes (both with `labels`). One forward over [real; fake] when D
    has no BatchNorm: the same values, but GEMMs twice as tall and half the calls (MLP Ds at
    batch 64 are call- and cast-bound on CPU). With BatchNorm the batch statistics would mix
    reals and fakes, which changes the model, so those Ds see two batches as in the papers."""
    if has_batchnorm(D):
        return D(real, labels), D(fake, labels)
    both = D(torch.cat([real, fake.to(real.dtype)]), None if labels is None else torch.cat([labels, labels]))
    return both.split([len(real), len(fake)])


def _unchanged(x: Tensor) -> Tensor:
    return x


def d_loss(D: nn.Module, loss: Loss, real: Tensor, fake: Tensor, labels: Tensor | None,
           augment: Augment = _unchanged, r1_gamma: float = 0.0, stats: dict | None = None) -> Tensor:
    """D's loss on reals and (detached) fakes, both through `augment`, plus gamma/2 * R1
    (Mescheder et al. 2018) on the reals: the gradient is taken w.r.t. the un-augmented reals.
    `stats`: filled with D(x), D(G(z)) and the rejected share of this batch (losses.d_stats)."""
    if r1_gamma:
        real = real.detach().requires_grad_(True)
    real_logits, fake_logits = d_real_fake(D, augment(real), augment(fake), labels)
    if stats is not None:
        stats.update(d_stats(loss, real_logits.detach(), fake_logits.detach()))
    loss_d = loss.d(real_logits, fake_logits)
    if r1_gamma:
        loss_d = loss_d + 0.5 * r1_gamma * r1_penalty(real_logits, real)
    return loss_d


def adversarial_step(G: nn.Module, D: nn.Module, loss: Loss, real: Tensor, labels: Tensor | None,
                     z_dim: int, d_steps: int, update: Update, updates: str = "alternating",
                     reuse_fakes: bool = False, augment: Augment | None = None,
                     r1_gamma: float = 0.0) -> dict[str, Tensor]:
    """One training step of an image GAN. G and D take (z, labels) / (x, labels);
    unconditional models pass labels=None.

    alternating (Goodfellow et al. 2014, Alg. 1): k D updates, each on one real chunk and
    fresh fakes, then one G update on fresh noise against the updated D. `real` holds
    d_steps chunks of the batch (the trainer asks for d_steps x batch_size). With
    `reuse_fakes` G's update backpropagates through the last D update's fakes instead of new
    ones (one G forward fewer; what PyTorch's DCGAN example does).

    simultaneous: both players' gradients at the same (G, D) from one batch of fakes: G's
    update through the current D, then D's on those same fakes, detached. This is what the
    widely used reference scripts compute (PyTorch-GAN updates G first and then trains D on
    `gen_imgs.detach()`, so D's gradient is taken before it has moved); it needs one G
    forward per step instead of two.

    `augment` (DiffAugment, models/augment.py) transforms every image D sees, in both
    players' updates; `r1_gamma` adds gamma/2 * R1 on the reals to every D update.
    """
    aug = augment or _unchanged
    stats: dict[str, Tensor] = {}  # D(x), D(G(z)) of the last D update (diagnostics.py)
    if updates == "simultaneous":
        z = torch.randn(len(real), z_dim, device=real.device)
        fake = G(z, labels)
        requires_grad(D, False)
        loss_g = loss.g(D(aug(fake), labels))
        update("g", loss_g)  # steps G only; `fake` keeps the values G had before the step
        requires_grad(D, True)
        loss_d = d_loss(D, loss, real, fake.detach(), labels, aug, r1_gamma, stats)
        update("d", loss_d)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **stats}

    chunks = real.chunk(d_steps)
    label_chunks = labels.chunk(d_steps) if labels is not None else [None] * d_steps
    for i, (x, y) in enumerate(zip(chunks, label_chunks)):
        z = torch.randn(len(x), z_dim, device=x.device)
        keep_graph = reuse_fakes and i == d_steps - 1  # G's update will backpropagate through these
        with torch.set_grad_enabled(keep_graph):
            fake = G(z, y)
        loss_d = d_loss(D, loss, x, fake.detach(), y, aug, r1_gamma, stats)
        update("d", loss_d)
    y = label_chunks[-1]
    if not reuse_fakes:
        fake = G(torch.randn(len(chunks[-1]), z_dim, device=real.device), y)
    requires_grad(D, False)
    loss_g = loss.g(D(aug(fake), y))
    update("g", loss_g)
    requires_grad(D, True)
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **stats}


def fixed_inputs(n: int, z_dim: int, num_classes: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Noise (and labels) reused for every sample grid so grids compare across steps.
    Conditional: one row per class, `n // num_classes` (at least 8) columns."""
    if num_classes:
        per_class = max(n // num_classes, 8)
        labels = torch.arange(num_classes).repeat_interleave(per_class)
        z = torch.randn(len(labels), z_dim, generator=generator)
        return {"z": z, "label": labels, "nrow": torch.tensor(per_class)}
    return {"z": torch.randn(n, z_dim, generator=generator), "nrow": torch.tensor(int(n ** 0.5 + 0.5))}


def sample_labels(n: int, num_classes: int, label: int | None, device) -> Tensor | None:
    if not num_classes:
        return None
    if label is None:
        return torch.arange(n, device=device) % num_classes
    return torch.full((n,), int(label), dtype=torch.long, device=device)


class ImageGAN(nn.Module):
    """The model interface for a G(z, labels) / D(x, labels) image GAN, written once: the
    subclass builds `self.G` and `self.D` (and may set `augment` and `r1_gamma`)."""
    GENERATORS = ("G",)
    """the networks whose weights `train.ema` averages"""
    DATA_KIND = "image"

    def __init__(self, cfg: AdversarialConfig, train, num_classes: int = 0):
        super().__init__()
        self.cfg, self.train_cfg, self.num_classes = cfg, train, num_classes
        self.loss = get_loss(cfg.loss)
        self.augment: Augment | None = None
        self.r1_gamma = 0.0

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.train_cfg
        return {"d": adam(list(self.D.parameters()), t, t.lr_d or t.lr),
                "g": adam(list(self.G.parameters()), t, t.lr)}

    def configure_schedulers(self, optimizers, total_steps: int):
        return {}

    def phases(self, steps: int, n_train: int) -> list[Phase]:
        # k D updates per step, each on its own chunk of reals: one gather of k batches
        return [Phase("train", steps, self.train_step, self.train_cfg.batch_size * self.cfg.d_steps)]

    def train_step(self, batch, update: Update, step: int = 0) -> dict[str, Tensor]:
        c = self.cfg
        labels = batch["label"] if self.num_classes else None
        return adversarial_step(self.G, self.D, self.loss, batch["image"], labels, c.z_dim, c.d_steps, update,
                                c.updates, c.reuse_fakes, self.augment, self.r1_gamma)

    def fixed_inputs(self, n: int, generator: torch.Generator, data: Dataset | None = None):
        return fixed_inputs(n, self.cfg.z_dim, self.num_classes, generator)

    @torch.no_grad()
    def render(self, fixed):
        labels = fixed["label"].to(self.device) if self.num_classes else None
        return self.G(fixed["z"].to(self.device), labels), int(fixed["nrow"])

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None, data: Dataset | None = None) -> Tensor:
        if label is not None and not self.num_classes:
            raise GankitError("this model is not conditional: --label needs cgan or a conditional dcgan "
                              "(model.conditional=true)")
        if label is not None and not 0 <= label < self.num_classes:
            raise GankitError(f"--label must be in 0..{self.num_classes - 1}, got {label}")
        labels = sample_labels(n, self.num_classes, label, self.device)
        return self.G(torch.randn(n, self.cfg.z_dim, device=self.device), labels)

    def evaluate(self, data: Dataset) -> dict[str, float]:
        return {}  # the trainer's diagnostics (metrics/diagnostics.py) cover image GANs

    @staticmethod
    def report_figures(rows: list[dict], config: dict, out_dir: Path) -> list[Path]:
        return []  # the report's generic loss, evaluation and diagnostics figures cover image GANs

    device = property(device_of)
