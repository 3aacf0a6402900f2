"""A small CNN domain classifier: the feature network for FID/KID/precision/recall on
MNIST-like data, and the judge of conditional accuracy.

    gankit fit-classifier --data mnist:DIR --out mnist-clf.pt

The file is one `torch.load(weights_only=True)`-loadable dict: the state_dict plus plain
metadata (architecture arguments, image size and channels, class names, held-out
accuracy, data spec, sha256 of the weights). Its features are the 128-d penultimate
layer. FIDs measured with it are only comparable with FIDs from the same file (same
sha256) — never with Inception FIDs from papers.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DataConfig
from ..data import load_data
from ..distributed import pick_device
from ..errors import GankitError
from ..runs import atomic_write

FORMAT = "gankit-classifier-1"


class Classifier(nn.Module):
    """3 x (conv3x3 - ReLU - maxpool2), then FC to `feat_dim` (the feature layer), then FC to classes."""

    def __init__(self, channels: int = 1, size: int = 32, num_classes: int = 10, width: int = 32, feat_dim: int = 128):
        super().__init__()
        if size < 8:
            raise GankitError(f"the classifier needs images of at least 8x8, got size={size}")
        layers, c = [], channels
        for w in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(c * (size // 8) ** 2, feat_dim), nn.ReLU())
        self.head = nn.Linear(feat_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))  # (N, feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, num_classes) logits


def _state_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_classifier(path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild a fitted classifier (eval mode) and its metadata; weights_only load."""
    path = Path(path)
    if not path.is_file():
        raise GankitError(f"classifier not found: {path} (make one with gankit fit-classifier --data SPEC --out {path})")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GankitError(f"{path}: not a gankit classifier ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise GankitError(f"{path}: not a gankit classifier (make one with gankit fit-classifier)")
    meta = blob["meta"]
    net = Classifier(**meta["arch"])
    net.load_state_dict(blob["state_dict"])
    if _state_sha256(net.state_dict()) != meta["weights_sha256"]:
        raise GankitError(f"{path}: weights do not match their recorded sha256 (corrupt file?)")
    return net.eval(), meta


def _split(n: int, holdout: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not 0 < holdout < 1:
        raise GankitError(f"--holdout must be a fraction in (0, 1), got {holdout}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(int(round(n * holdout)), 1)
    return perm[k:], perm[:k]


@torch.no_grad()
def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    net.eval()
    correct = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def fit_classifier(data_spec: str, out: str | Path, epochs: int = 5, size: int = 32, seed: int = 0,
                   device: str = "auto", holdout: float = 0.2, batch_size: int = 64, lr: float = 1e-3) -> dict:
    """Train the CNN on labelled images of `data_spec`; save it to `out`; return its metadata.

    A random `holdout` fraction (fixed by `seed`) is never trained on and gives the accuracy.
    Training uses small random shifts (+-2 px) so the features do not hinge on exact placement.
    """
    data = load_data(DataConfig(spec=data_spec, size=size), "image")
    if "label" not in data.tensors:
        raise GankitError(f"fit-classifier needs labelled images; '{data_spec}' has no labels")
    x, y = data.tensors["image"], data.tensors["label"]
    if data.held_out is not None and "label" in data.held_out:  # a test split the loader already set aside
        x, y = torch.cat([x, data.held_out["image"]]), torch.cat([y, data.held_out["label"]])
    dev = pick_device(device)
    torch.manual_seed(seed)
    train_idx, test_idx = _split(len(x), holdout, seed)
    arch = {"channels": int(x.shape[1]), "size": int(x.shape[-1]), "num_classes": data.info.num_classes,
            "width": 32, "feat_dim": 128}
    net = Classifier(**arch).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = x[train_idx].to(dev), y[train_idx].to(dev)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), device=dev).split(batch_size):
            xb = xt[idx]
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(net(xb), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    acc = _accuracy(net, x[test_idx].to(dev), y[test_idx].to(dev))
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    meta = {"arch": arch, "size": arch["size"], "channels": arch["channels"], "num_classes": arch["num_classes"],
            "class_names": list(data.info.class_names), "accuracy": acc, "data": data_spec,
            "source": data.info.source or data_spec, "n_train": len(train_idx), "n_heldout": len(test_idx),
            "holdout": holdout, "epochs": epochs, "seed": seed, "fit_seconds": round(time.perf_counter() - t0, 2),
            "weights_sha256": _state_sha256(state), "torch": str(torch.__version__)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: torch.save({"format": FORMAT, "state_dict": state, "meta": meta}, f))
    return meta


def cache_dir() -> Path:
    """Where fitted classifiers and reference statistics are kept ($GANKIT_CACHE_DIR, default
    ~/.cache/gankit); says so on stderr the first time it is created."""
    path = Path(os.environ.get("GANKIT_CACHE_DIR") or Path.home() / ".cache" / "gankit")
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        print(f"gankit: caching classifiers and reference statistics in {path} "
              "(set GANKIT_CACHE_DIR to put them elsewhere)", file=sys.stderr)
    return path


def default_digits_classifier(device: str = "cpu") -> Path:
    """The built-in `digits` data needs no --features: fit (once) and cache a classifier."""
    path = cache_dir() / "classifiers" / "digits-size32-seed0.pt"
    if not path.is_file():
        fit_classifier("digits", path, epochs=8, size=32, seed=0, device=device)
    return path
