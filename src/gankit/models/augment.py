"""Small-data options for the image GANs' discriminators: DiffAugment, spectral norm, R1.

- DiffAugment (Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient
  GAN Training", NeurIPS 2020): the same random, differentiable transforms applied to every
  image D sees, real or fake, in D's update and in G's update (G's gradient flows through
  them). Policies as in the authors' DiffAugment_pytorch.py: `color` (brightness,
  saturation, contrast), `translation` (up to 1/8 of the side, zero fill), `cutout` (one
  square of half the side set to zero). Each image draws its own parameters from torch's
  RNG, which the trainer checkpoints, so resume stays exact.
- Spectral normalisation (Miyato et al. 2018) of every D conv, torch's parametrization:
  one power iteration per training forward; the u/v vectors are buffers in D's state_dict.
- R1 (Mescheder, Geiger & Nowozin 2018): gamma/2 * E||grad_x D(x)||^2 on reals, added to
  D's loss at every D update (not lazily), the gradient taken w.r.t. the un-augmented reals.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import GankitError


def brightness(x: Tensor) -> Tensor:
    return x + (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def saturation(x: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by its own (dy, dx) in [-ratio*H, ratio*H] pixels; vacated pixels are 0."""
    B, _, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (B, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (B, 1, 1), device=x.device)
    rows = torch.arange(H, device=x.device)[None, :, None] + dy  # (B, H, 1) source row of each output row
    cols = torch.arange(W, device=x.device)[None, None, :] + dx  # (B, 1, W)
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)  # (B, H, W)
    index = (rows.clamp(0, H - 1) * W + cols.clamp(0, W - 1)).flatten(1)  # (B, H*W)
    out = x.flatten(2).gather(2, index[:, None, :].expand(-1, x.shape[1], -1)).view_as(x)
    return out * inside[:, None].to(x.dtype)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of side ratio*H per image, its centre anywhere in the image."""
    B, _, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), device=x.device)
    cx = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), device=x.device)
    rows = torch.arange(H, device=x.device)[None, :, None] - (cy - ch // 2)  # (B, H, 1) offset into the square
    cols = torch.arange(W, device=x.device)[None, None, :] - (cx - cw // 2)
    hole = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)  # (B, H, W)
    return x * (~hole)[:, None].to(x.dtype)


POLICIES = {"color": (brightness, saturation, contrast), "translation": (translation,), "cutout": (cutout,)}


def parse_policy(policy: str) -> list[str]:
    """'color,translation,cutout' -> ['color', 'translation', 'cutout']; '' -> [] (off)."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in POLICIES:
            raise GankitError(f"model.diffaugment: unknown policy '{name}' (have: {', '.join(POLICIES)}; "
                              "e.g. color,translation,cutout, or empty for off)")
    return names


class DiffAugment:
    """x -> the policy's transforms in order; the identity when the policy is empty."""

    def __init__(self, policy: str):
        self.names = parse_policy(policy)

    def __bool__(self) -> bool:
        return bool(self.names)

    def __call__(self, x: Tensor) -> Tensor:
        for name in self.names:
            for fn in POLICIES[name]:
                x = fn(x)
        return x


def spectral_norm_convs(module: nn.Module) -> None:
    """Spectral-normalise every conv/linear weight of `module` in place."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            spectral_norm(m)


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """E ||d D(x) / d x||^2 over the batch (`real` must require grad and feed `real_logits`)."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()
