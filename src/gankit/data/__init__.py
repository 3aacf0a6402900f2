"""Data sets by spec string (`digits`, `mnist:DIR`, `paired:DIR`, `oracle:FILE`, ...).

`load_data(cfg)` returns an in-memory `Dataset` (see dataset.py for the batch contract).
DATASETS maps each spec prefix to its loader and a one-line description.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import DataConfig
from ..errors import GankitError, unknown
from . import builtin, images, oracle, text
from .dataset import Batch, DataInfo, Dataset
from .palette import load_palette
from .transforms import random_crop_flip, resize, uint8_to_float

__all__ = ["Batch", "DataInfo", "Dataset", "DATASETS", "load_data", "parse_spec", "resolve_paths"]


def _split_holdout(tensors: dict, holdout: int, limit: int):
    n = len(next(iter(tensors.values())))
    if limit:
        tensors = {k: v[:limit] for k, v in tensors.items()}
        n = min(n, limit)
    if holdout:
        if holdout >= n:
            raise GankitError(f"data.holdout={holdout} leaves no training examples (data has {n})")
        return ({k: v[: n - holdout] for k, v in tensors.items()},
                {k: v[n - holdout:] for k, v in tensors.items()})
    return tensors, None


def _image_dataset(arrays: dict, cfg: DataConfig, source: str, held_out: dict | None = None) -> Dataset:
    """uint8 arrays {"image", "label"?, "class_names"?} -> Dataset at cfg.size/channels."""
    x = images.prepare(arrays["image"], cfg.size, cfg.channels)
    if x.shape[-2] != x.shape[-1]:
        raise GankitError(f"{source}: images are {x.shape[-2]}x{x.shape[-1]}, not square; "
                          "set data.size=N to resize them")
    tensors = {"image": x}
    if "label" in arrays:
        tensors["label"] = torch.as_tensor(arrays["label"], dtype=torch.long)
        if len(tensors["label"]) != len(x):
            raise GankitError(f"{source}: {len(x)} images but {len(tensors['label'])} labels")
    train, rest = _split_holdout(tensors, cfg.holdout, cfg.limit)
    if held_out is not None:
        rest = {"image": images.prepare(held_out["image"], cfg.size, cfg.channels)}
        if "label" in held_out:
            rest["label"] = torch.as_tensor(held_out["label"], dtype=torch.long)
    num_classes = int(tensors["label"].max()) + 1 if "label" in tensors else 0
    names = arrays.get("class_names") or [str(i) for i in range(num_classes)]
    info = DataInfo(source=source, channels=int(x.shape[1]), size=int(x.shape[-1]),
                    num_classes=num_classes, class_names=[str(n) for n in names])
    return Dataset("image", train, info, held_out=rest)


def _digits(arg, cfg):
    return _image_dataset(builtin.load_digits_arrays(), cfg, "digits (scikit-learn load_digits)")


def _mnist_like(name):
    def load(arg, cfg):
        arrays = images.load_mnist(_need(arg, name), cfg.split)
        if name == "fashion-mnist":
            arrays["class_names"] = ["t-shirt", "trouser", "pullover", "dress", "coat",
                                     "sandal", "shirt", "sneaker", "bag", "boot"]
        return _image_dataset(arrays, cfg, f"{name}:{arg} ({arrays['split']} split)")
    return load


def _cifar10(arg, cfg):
    arrays = images.load_cifar10(_need(arg, "cifar10"), cfg.split)
    arrays["class_names"] = images.CIFAR10_CLASSES
    return _image_dataset(arrays, cfg, f"cifar10:{arg} ({arrays['split']} split)")


def _folder(arg, cfg):
    arrays = images.load_folder(_need(arg, "folder"), cfg.size, cfg.channels, cfg.strict)
    return _image_dataset(arrays, cfg, f"folder:{arg}")


def _translation_dataset(a: np.ndarray, b: np.ndarray, cfg: DataConfig, source: str,
                         held_a: np.ndarray | None, held_b: np.ndarray | None, paired: bool) -> Dataset:
    """Domains A and B, sampled independently. Stored at 1.12x the size when augmenting,
    then randomly cropped back and flipped per batch on the device (CycleGAN's recipe)."""
    size = cfg.size or a.shape[1]
    load_size = round(size * 1.12) if cfg.augment else size
    tensors = {"a": resize(uint8_to_float(a), load_size), "b": resize(uint8_to_float(b), load_size)}
    if cfg.limit:
        tensors = {k: v[: cfg.limit] for k, v in tensors.items()}
    held = None
    if held_a is not None:
        held = {"a": resize(uint8_to_float(held_a), size), "b": resize(uint8_to_float(held_b), size)}
    transform = None
    if cfg.augment:
        def transform(batch):
            return {k: random_crop_flip(v, size) for k, v in batch.items()}
    palette = cfg.palette  # a file as an absolute path: evaluation may run from another directory
    if palette and palette != "none":
        load_palette(palette)  # a bad file fails now, not at the first evaluation
        if Path(palette).expanduser().is_file():
            palette = str(Path(palette).expanduser().resolve())
    info = DataInfo(source=source, channels=3, size=size, paired_eval=paired, palette=palette)
    return Dataset("unpaired", tensors, info, held_out=held, transform=transform)


def _paired(arg, cfg):
    root = Path(_need(arg, "paired"))
    size = cfg.size or 256
    train_split = "train" if (root / "train").is_dir() else None
    if train_split is None:
        raise GankitError(f"{root}: expected a train/ folder of A|B images (pix2pix layout)")
    load_size = round(size * 1.12) if cfg.augment else size
    a, b = images.load_paired(root, "train", load_size, cfg.direction, cfg.strict)
    held_a = held_b = None
    held_split = ""
    for split in ("val", "test"):
        if (root / split).is_dir():
            held_split = split
            held_a, held_b = images.load_paired(root, split, size, cfg.direction, cfg.strict)
            # held-out pairs that are copies of training pairs inflate the metrics
            digest = lambda p: hashlib.md5(p.read_bytes()).hexdigest()  # noqa: E731
            seen = {digest(p) for p in images.list_images(root / "train")}
            if n_dup := sum(digest(p) in seen for p in images.list_images(root / split)):
                warnings.warn(f"{root / split}: {n_dup} of {len(held_a)} images are byte-identical to "
                              "train/ images; the held-out metrics include them", stacklevel=2)
            break
    # Scored on val/ when there is one, else test/ (the CycleGAN facades release has no val/): the
    # source says which, so every eval record names the split its numbers come from.
    said = {"val": "val/", "test": "test/ (no val/)", "": "none (no val/ or test/)"}[held_split]
    dataset = _translation_dataset(a, b, cfg, f"paired:{arg} ({cfg.direction}; held out: {said})",
                                   held_a, held_b, paired=True)
    dataset.info.held_out_split = held_split
    return dataset


def _unpaired(arg, cfg):
    root = Path(_need(arg, "unpaired"))
    size = cfg.size or 256
    load_size = round(size * 1.12) if cfg.augment else size
    a, b = images.load_unpaired(root, "train", load_size, cfg.strict)
    held_a = held_b = None
    if (root / "testA").is_dir() or (root / "testB").is_dir():  # one without the other is an error
        held_a, held_b = images.load_unpaired(root, "test", size, cfg.strict)
    return _translation_dataset(a, b, cfg, f"unpaired:{arg}", held_a, held_b, paired=False)


def _photos(arg, cfg):
    size = cfg.size or 64
    load_size = round(size * 1.12) if cfg.augment else size
    a, b = builtin.sample_photo_patches(load_size)
    n_eval = max(len(a) // 10, 1)
    return _translation_dataset(a[:-n_eval], b[:-n_eval], cfg, "photos (scikit-learn sample images: temple -> flower)",
                                a[-n_eval:, :size, :size], b[-n_eval:, :size, :size], paired=False)


def _text(arg, cfg):
    return text.load_text(_need(arg, "text", "FILE"), cfg)


def _oracle(arg, cfg):
    return oracle.load_oracle(arg, cfg)


def _need(arg: str | None, name: str, what: str = "DIR") -> str:
    if not arg:
        raise GankitError(f"data spec '{name}' needs a path: {name}:{what}")
    return arg


DATASETS: dict[str, tuple[Callable[[str | None, DataConfig], Dataset], str]] = {
    "digits": (_digits, "built-in: scikit-learn's 1,797 real handwritten digits (no download)"),
    "mnist": (_mnist_like("mnist"), "mnist:DIR - MNIST IDX files (.gz or raw; train, else t10k)"),
    "fashion-mnist": (_mnist_like("fashion-mnist"), "fashion-mnist:DIR - Fashion-MNIST IDX files"),
    "cifar10": (_cifar10, "cifar10:DIR - CIFAR-10 python (or binary) batches"),
    "folder": (_folder, "folder:DIR - any images; class subfolders become labels"),
    "paired": (_paired, "paired:DIR - pix2pix layout (train/, val/ of A|B images) for CycleGAN"),
    "unpaired": (_unpaired, "unpaired:DIR - trainA/ trainB/ [testA/ testB/] for CycleGAN"),
    "photos": (_photos, "built-in: patches of scikit-learn's two sample photos (temple -> flower)"),
    "oracle": (_oracle, "oracle[:PARAMS.npz] - SeqGAN's synthetic oracle LSTM (random N(0,1) or given)"),
    "text": (_text, "text:FILE - one sentence a line, word-level (SeqGAN)"),
}


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name not in DATASETS:
        raise unknown("data set", name, DATASETS)
    return name, (arg or None)


def resolve_paths(cfg: DataConfig) -> None:
    """Make the paths in `cfg` absolute, so a run's saved config loads from any directory."""
    name, _, arg = cfg.spec.partition(":")
    if arg and not arg.strip().isdigit() and Path(arg).expanduser().exists():  # not `oracle:SEED`
        cfg.spec = f"{name}:{Path(arg).expanduser().resolve()}"
    if cfg.reference and Path(cfg.reference).expanduser().exists():
        cfg.reference = str(Path(cfg.reference).expanduser().resolve())


def load_data(cfg: DataConfig, expect_kind: str | None = None) -> Dataset:
    """Load the data set `cfg.spec` describes; check it is the kind the model trains on."""
    name, arg = parse_spec(cfg.spec)
    dataset = DATASETS[name][0](arg, cfg)
    if expect_kind and dataset.kind != expect_kind:
        raise GankitError(f"data '{cfg.spec}' is {dataset.kind} data but this model needs {expect_kind} data")
    return dataset
