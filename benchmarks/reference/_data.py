"""The per-step data fetch the reference scripts do: a torch DataLoader over CPU tensors
(per-sample indexing + collate, shuffled, drop_last), moved to the device every step."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset


def endless_loader(*tensors: torch.Tensor, batch_size: int):
    loader = DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True, drop_last=True)
    while True:
        yield from loader


def fake_images(n: int, channels: int, size: int, classes: int = 10, seed: int = 0):
    """Random images in [-1, 1] and labels, when no data is passed in."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g) * 2 - 1, torch.randint(0, classes, (n,), generator=g)
