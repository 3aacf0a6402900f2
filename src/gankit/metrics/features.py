"""Feature networks for FID/KID/IS/precision/recall: any nn.Module mapping images in
[-1, 1] (N, C, H, W) to `(features (N, D), logits (N, K) or None)`.

- `ClassifierFeatures`: a gankit domain classifier (classifier.py) — penultimate-layer
  features and class logits. What MNIST-like GANs are measured with here.
- `InceptionFeatures` (inception.py): Inception-v3 as in the FID paper, from the weights
  file the `fid` extra installs (never downloaded): the 2048-d pool features, resized by a
  named protocol (`clean` or `legacy-tf`).

Numbers computed in the two feature spaces are NOT comparable with each other (nor with
FIDs from a classifier trained on other data, or at another size): every record names
the network and the sha256 of its weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..data.transforms import resize
from ..errors import GankitError
from .classifier import load_classifier
from .inception import InceptionFeatures  # noqa: F401  (re-exported: one place to find feature networks)


def fit_images(images: Tensor, size: int, channels: int) -> Tensor:
    """Resize (antialiased bilinear) and convert channels so a feature network can read them."""
    if images.shape[1] != channels:
        if channels == 1:
            images = images.mean(1, keepdim=True)
        elif images.shape[1] == 1:
            images = images.expand(-1, channels, -1, -1)
        else:
            raise GankitError(f"cannot feed {images.shape[1]}-channel images to a {channels}-channel feature network")
    return resize(images.float(), size)


class ClassifierFeatures(nn.Module):
    """A fitted domain classifier as a feature network."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        super().__init__()
        self.net, self.meta = load_classifier(path)
        self.net.to(device).eval()
        self.size, self.channels = self.meta["size"], self.meta["channels"]
        self.name = f"gankit-classifier:{Path(path).name}"
        self.sha256 = self.meta["weights_sha256"]
        self.num_classes = self.meta["num_classes"]

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = fit_images(images, self.size, self.channels).to(next(self.net.parameters()).device)
        feats = self.net.features(x)  # (N, D)
        return feats, self.net.head(feats)  # (N, D), (N, K)


@torch.no_grad()
def extract(net: nn.Module, images: Tensor, batch_size: int = 250,
            progress: str | None = None) -> tuple[Tensor, Tensor | None]:
    """Features (N, D) and logits (N, K) of `images` in batches, on the CPU.
    `progress` = a label: show a tqdm bar (images/s and ETA) on stderr."""
    feats, logits = [], []
    bar = tqdm(total=len(images), desc=progress, unit="img", disable=progress is None, leave=False)
    for i in range(0, len(images), batch_size):
        f, lg = net(images[i:i + batch_size])
        feats.append(f.float().cpu())
        if lg is not None:
            logits.append(lg.float().cpu())
        bar.update(len(f))
    bar.close()
    return torch.cat(feats), (torch.cat(logits) if logits else None)
