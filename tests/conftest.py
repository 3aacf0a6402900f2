"""Shared fixtures: tiny configs and data written in the true file formats."""
from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# One thread everywhere, subprocesses included (gankit's auto threads honour OMP_NUM_THREADS):
# runs compared bit for bit must not differ in how many threads summed their numbers.
os.environ["OMP_NUM_THREADS"] = "1"

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def benchmark_script(name: str):
    """benchmarks/NAME.py as a module: the folder holds scripts, not an installed package."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# Tiny versions of each image model: a real train step in milliseconds.
TINY = {
    "gan": ["model.hidden=[32]", "data.size=8"],
    "cgan": ["model.g_hidden=[16,32]", "model.d_hidden=[32,32]", "data.size=8"],
    "dcgan": ["model.channels=8", "data.size=16"],
}
QUIET = ["train.progress=false", "train.log_every=2", "train.sample_every=4", "train.checkpoint_every=4",
         "train.batch_size=16", "train.samples=16"]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tests are small; one thread keeps them deterministic and CI-friendly
    yield


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    codes = {np.uint8: 0x08, np.int8: 0x09}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@functools.cache
def _facades_colours() -> np.ndarray:
    """The shipped CMP facades palette, (K, 3) uint8, read once (not once per label map)."""
    from gankit.metrics.paired import load_palette
    return load_palette("facades")["colours"].to(torch.uint8).numpy()


def facades_label_map(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random block label map in the CMP facades colours, (side, side, 3) uint8."""
    colours = _facades_colours()
    idx = rng.integers(0, len(colours), (4, 4)).repeat(side // 4, 0).repeat(side // 4, 1)
    return colours[idx]


def write_facades_pairs(root: Path, splits: dict[str, int], side: int = 32) -> Path:
    """pix2pix layout under root: SPLIT/I.png of (side, 2 x side) images, left = smooth
    photo-like A, right = a facades label map B."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        (root / split).mkdir(parents=True)
        for i in range(n):
            photo = (rng.random((1, 1, 3)) * 200 + np.linspace(0, 50, side)[:, None, None]).astype(np.uint8)
            photo = np.broadcast_to(photo, (side, side, 3))
            Image.fromarray(np.concatenate([photo, facades_label_map(rng, side)], axis=1)).save(root / split / f"{i}.png")
    return root


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    """A 64-image MNIST-format directory (train split, gzipped), digits from sklearn."""
    from sklearn.datasets import load_digits
    d = load_digits()
    imgs = np.pad(np.kron(d.images[:64], np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))  # (64, 28, 28)
    imgs = (imgs * 255 / 16).clip(0, 255).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", d.target[:64].astype(np.uint8), gz=True)
    return tmp_path
