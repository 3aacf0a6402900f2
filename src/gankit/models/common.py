"""Pieces the image GANs (gan, cgan, dcgan) share: the alternating D/G step, the paper
initialisation, and fixed-noise sample grids (one row per class for conditional models)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..losses import Loss

Update = Callable[..., None]
"""update(name, loss): zero_grad -> backward -> (all-reduce) -> clip -> step, owned by the trainer"""


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


def requires_grad(module: nn.Module, flag: bool) -> None:
    # Freezing D during the G update skips computing D's weight gradients (~1/3 of D's
    # backward) while still backpropagating through D to G.
    for p in module.parameters():
        p.requires_grad_(flag)


def adversarial_step(G: nn.Module, D: nn.Module, loss: Loss, real: Tensor, labels: Tensor | None,
                     z_dim: int, d_steps: int, update: Update) -> dict[str, Tensor]:
    """k D updates (one real chunk each, fresh noise) then one G update.

    `real` holds d_steps chunks of the batch (the trainer asks for d_steps x batch_size).
    G and D take (z, labels) / (x, labels); unconditional models ignore labels=None.
    """
    chunks = real.chunk(d_steps)
    label_chunks = labels.chunk(d_steps) if labels is not None else [None] * d_steps
    for x, y in zip(chunks, label_chunks):
        z = torch.randn(len(x), z_dim, device=x.device)
        with torch.no_grad():
            fake = G(z, y)
        loss_d = loss.d(D(x, y), D(fake, y))
        update("d", loss_d)
    n = len(chunks[-1])
    y = label_chunks[-1]
    z = torch.randn(n, z_dim, device=real.device)
    requires_grad(D, False)
    loss_g = loss.g(D(G(z, y), y))
    update("g", loss_g)
    requires_grad(D, True)
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


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
