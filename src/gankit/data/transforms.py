"""Image transforms as a few lines of torch (no torchvision: it fails on the CPU wheel).

All images inside gankit are float tensors NCHW in [-1, 1].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..runs import atomic_write


def uint8_to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, C, H, W) float in [-1, 1]."""
    t = torch.as_tensor(np.array(images, copy=True)) if isinstance(images, np.ndarray) else images
    if t.ndim == 3:
        t = t.unsqueeze(-1)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    t = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return t.permute(0, 2, 3, 1).cpu().numpy()


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey <-> RGB; drops alpha. `channels=0` keeps what the data has."""
    c = images.shape[1]
    if channels in (0, c):
        return images
    if c == 4:
        images, c = images[:, :3], 3
    if channels == 3 and c == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and c == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        return (images * weights).sum(1, keepdim=True)
    return images


def resize(images: torch.Tensor, size: int | tuple[int, int], chunk: int = 2048) -> torch.Tensor:
    """Antialiased bilinear resize to `size` (square if an int), in chunks to bound memory."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    out = [F.interpolate(images[i:i + chunk], size=hw, mode="bilinear", align_corners=False,
                         antialias=True) for i in range(0, len(images), chunk)]
    return torch.cat(out).clamp_(-1, 1)


def random_crop_flip(images: torch.Tensor, size: int, flip: bool = True) -> torch.Tensor:
    """Per-image random `size` crop and horizontal flip, on the images' device, batched."""
    n, _, h, w = images.shape
    top = torch.randint(0, h - size + 1, (n,), device=images.device)
    left = torch.randint(0, w - size + 1, (n,), device=images.device)
    rows = (top[:, None] + torch.arange(size, device=images.device))          # (N, S)
    cols = (left[:, None] + torch.arange(size, device=images.device))         # (N, S)
    if flip:
        mirrored = torch.rand(n, device=images.device) < 0.5
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=images.device)[:, None, None]
    out = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, S, S, C)
    return out.permute(0, 3, 1, 2).contiguous()


def make_grid(images: torch.Tensor, nrow: int, pad: int = 2) -> torch.Tensor:
    """(N, C, H, W) -> (C, H', W') tiled `nrow` images per row, with a white border."""
    n, c, h, w = images.shape
    ncol = nrow
    nrows = (n + ncol - 1) // ncol
    grid = images.new_ones(c, nrows * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, y:y + h, x:x + w] = images[i]
    return grid


def save_grid(images: torch.Tensor, path, nrow: int = 8) -> None:
    """Save (N, C, H, W) images in [-1, 1] as one PNG grid (written atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = to_uint8(make_grid(images.detach().float().cpu(), nrow).unsqueeze(0))[0]
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    atomic_write(path, lambda f: img.save(f, format="PNG"))
