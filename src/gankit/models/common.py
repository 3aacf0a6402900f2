"""Pieces the image GANs (gan, cgan, dcgan) share: the D/G training step in its update
orders, the paper initialisation, a cheaper CPU dropout, and fixed-noise sample grids (one
row per class for conditional models)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..losses import Loss, d_stats
from .augment import r1_penalty

Update = Callable[..., None]
"""update(name, loss): zero_grad -> backward -> (all-reduce) -> clip -> step, owned by the trainer"""
Augment = Callable[[Tensor], Tensor]


def adam(params, train, lr: float):
    """Adam with the config's betas and the fused kernel (one kernel per tensor for the whole
    update; on CPU ~3x faster than foreach, see docs/benchmarks.md), foreach elsewhere."""
    fused = {"fused": True} if all(p.device.type in ("cpu", "cuda") for p in params) else {"foreach": True}
    return torch.optim.Adam(params, lr=lr, betas=(train.beta1, train.beta2),
                            weight_decay=train.weight_decay, **fused)


def gan_optimizers(G: nn.Module, D: nn.Module, train) -> dict[str, torch.optim.Optimizer]:
    return {"d": adam(list(D.parameters()), train, train.lr_d or train.lr),
            "g": adam(list(G.parameters()), train, train.lr)}


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN paper init: conv/linear weights N(0, std), norm scales N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on CPU. torch's CPU dropout draws one Bernoulli sample
    per element (~100 M/s on the 2-core dev machine: 13% of a CGAN step); this takes 16
    random bits per element, four from each 64-bit draw of the same generator, so the
    drop probability is rounded to a multiple of 1/65536. Other devices use F.dropout."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.p == 1:
            return super().forward(x)
        bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2 ** 63, 2 ** 63 - 1)
        keep = bits.view(torch.int16)[: x.numel()].view(x.shape) >= round(self.p * 65536) - 32768
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))  # (torch.where is 3x slower here)


def requires_grad(module: nn.Module, flag: bool) -> None:
    # Freezing D during the G update skips computing D's weight gradients (~1/3 of D's
    # backward) while still backpropagating through D to G.
    for p in module.parameters():
        p.requires_grad_(flag)


UPDATES = ("alternating", "simultaneous")


def check_updates(updates: str, d_steps: int) -> None:
    """Validate `model.updates` (the config's spelling of the two orders below)."""
    from ..errors import GankitError
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
