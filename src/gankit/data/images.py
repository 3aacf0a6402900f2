"""Image data sets in their real formats: MNIST/Fashion-MNIST IDX, CIFAR-10 batches,
image folders (class subfolders become labels), and paired / unpaired translation folders.

Every loader returns uint8 arrays; `prepare` turns them into float NCHW in [-1, 1] at the
model's size. Errors name the offending file.
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import GankitError
from .transforms import convert_channels, resize, uint8_to_float

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

# --------------------------------------------------------------------------- IDX

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or raw. Checks magic, shape and size."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise GankitError(f"file not found: {path}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise GankitError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or not 1 <= raw[3] <= 4:
        raise GankitError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise GankitError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a crafted header cannot overflow
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise GankitError(f"{path}: IDX header says {shape} ({expected} bytes) but the file has "
                          f"{len(body)} bytes of data (truncated or corrupt)")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def check_not_blank(images: np.ndarray, path) -> None:
    """Every pixel of every image one value: a zero-filled download or a placeholder file."""
    if images.size and images.min() == images.max():
        raise GankitError(f"{path}: all {len(images)} images are one flat value ({images.flat[0]}); "
                          "expected real images (a zero-filled or placeholder file?)")


def _find(directory: Path, stems: list[str]) -> Path | None:
    for stem in stems:
        for suffix in ("", ".gz"):
            p = directory / f"{stem}{suffix}"
            if p.is_file():
                return p
    return None


def load_mnist(directory: str | Path, split: str = "auto") -> dict[str, np.ndarray]:
    """MNIST or Fashion-MNIST IDX files in `directory`; `auto` = train if present, else t10k.

    Returns {"image": (N, 28, 28) uint8, "label": (N,) int64, "split": str}.
    """
    directory = _existing_dir(directory)
    prefixes = {"train": ["train"], "test": ["t10k", "test"], "auto": ["train", "t10k", "test"]}
    if split not in prefixes:
        raise GankitError(f"data.split must be train, test or auto, got '{split}'")
    for prefix in prefixes[split]:
        images = _find(directory, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
        labels = _find(directory, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
        if images and labels:
            x, y = read_idx(images), read_idx(labels)
            if x.ndim != 3 or y.ndim != 1:
                raise GankitError(f"{images}: expected (N, H, W) images and (N,) labels, "
                                  f"got {x.shape} and {y.shape}")
            if len(x) != len(y):
                raise GankitError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
            if x.dtype != np.uint8 or min(x.shape, default=0) == 0:
                raise GankitError(f"{images}: expected non-empty uint8 images, got {x.dtype} {x.shape}")
            if y.dtype.kind not in "iu" or (len(y) and y.min() < 0):
                raise GankitError(f"{labels}: expected non-negative integer labels")
            if min(x.shape[1:]) < 4:
                raise GankitError(f"{images}: images are {x.shape[1]}x{x.shape[2]}; expected at least 4x4 "
                                  "(a labels or other IDX file under an images name?)")
            check_not_blank(x, images)
            return {"image": x, "label": y.astype(np.int64), "split": prefix}
    raise GankitError(f"{directory}: no MNIST-format IDX files for split '{split}' "
                      f"(expected e.g. train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])")


# ----------------------------------------------------------------------- CIFAR-10

class _ArraysOnly(pickle.Unpickler):
    """Unpickler that builds numpy arrays, lists, dicts and strings and nothing else, so a
    crafted 'CIFAR batch' cannot run code (the official batches need nothing more)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        if not isinstance(batch, dict):
            raise ValueError(f"a pickled {type(batch).__name__}, expected a dict")
        keys = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in batch.items()}
        if "data" not in keys or "labels" not in keys:
            hint = "; CIFAR-100? gankit reads CIFAR-10" if "fine_labels" in keys else ""
            raise GankitError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels', found keys "
                              f"{sorted(keys)}{hint}")
        data, labels = np.asarray(keys["data"]), np.asarray(keys["labels"])
    except GankitError:
        raise
    except Exception as e:  # any malformed pickle is a data error, not a crash
        raise GankitError(f"{path}: not a CIFAR-10 python batch ({e})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.ndim != 1 or len(data) != len(labels):
        raise GankitError(f"{path}: expected (N, 3072) data and N labels, got {data.shape}, {labels.shape}")
    if data.dtype.kind not in "iu" or (data.size and (data.min() < 0 or data.max() > 255)):
        found = f"{data.dtype}" + (f" {data.min()}..{data.max()}" if data.size and data.dtype.kind in "iuf" else "")
        raise GankitError(f"{path}: CIFAR-10 data must be uint8 pixels 0-255, found {found}")
    _check_cifar_labels(labels, path)
    return data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def _check_cifar_labels(labels: np.ndarray, path: Path) -> None:
    if labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        found = f"{labels.min()}..{labels.max()}" if labels.size and labels.dtype.kind in "iuf" else str(labels.dtype)
        raise GankitError(f"{path}: CIFAR-10 labels must be 0-9, found {found} "
                          "(CIFAR-100, or rows out of step?)")


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if len(raw) == 0 or len(raw) % 3073:
        raise GankitError(f"{path}: size {len(raw)} is not a multiple of 3073 (truncated CIFAR-10 binary)")
    rows = raw.reshape(-1, 3073)
    _check_cifar_labels(rows[:, 0], path)
    return rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), rows[:, 0].astype(np.int64)


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar10(directory: str | Path, split: str = "auto") -> dict[str, np.ndarray]:
    """CIFAR-10 python batches (data_batch_1..5, test_batch) or the binary version (*.bin)."""
    directory = _existing_dir(directory)
    for sub in (directory, directory / "cifar-10-batches-py", directory / "cifar-10-batches-bin"):
        train = sorted(sub.glob("data_batch_[1-5]")) or sorted(sub.glob("data_batch_[1-5].bin"))
        test = sorted(sub.glob("test_batch")) or sorted(sub.glob("test_batch.bin"))
        files = {"train": train, "test": test, "auto": train or test}.get(split)
        if files is None:
            raise GankitError(f"data.split must be train, test or auto, got '{split}'")
        if files:
            parts = [(_read_cifar_bin if f.suffix == ".bin" else _read_cifar_pickle)(f) for f in files]
            for f, (x, _) in zip(files, parts):
                check_not_blank(x, f)
            return {"image": np.concatenate([p[0] for p in parts]),
                    "label": np.concatenate([p[1] for p in parts]),
                    "split": "train" if files is train else "test"}
    raise GankitError(f"{directory}: no CIFAR-10 batches (expected data_batch_1..5 / test_batch)")


# ----------------------------------------------------------------------- folders

def _existing_dir(directory: str | Path) -> Path:
    directory = Path(directory).expanduser()
    if not directory.exists():
        raise GankitError(f"path not found: {directory}")
    if not directory.is_dir():
        raise GankitError(f"not a directory: {directory}")
    return directory


def list_images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image(path: Path, mode: str | None = None) -> np.ndarray:
    """Decode one image to uint8 (H, W, C). Grey/RGBA/palette images convert to `mode`."""
    try:
        with Image.open(path) as img:
            img.load()
            if mode and img.mode != mode:
                img = img.convert(mode)
            elif img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            arr = np.asarray(img, dtype=np.uint8)
    except Exception as e:  # a decoder failing on bad bytes (truncated, bomb, ...) = unreadable
        raise GankitError(f"{path}: unreadable image ({e})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def read_images(paths: list[Path], size: int | None, mode: str | None, strict: bool,
                what: str) -> tuple[list[np.ndarray], list[int]]:
    """Decode `paths`, resizing each to `size` with Pillow so mixed sizes stack.
    Returns the arrays and the indices of the paths that decoded."""
    arrays, kept, bad = [], [], []
    for i, p in enumerate(paths):
        try:
            arr = read_image(p, mode)
        except GankitError as e:
            if strict:
                raise
            bad.append((p, e))
            continue
        if size and arr.shape[:2] != (size, size):
            img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
            arr = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.uint8)
            arr = arr[..., None] if arr.ndim == 2 else arr
        arrays.append(arr)
        kept.append(i)
    if bad:
        names = ", ".join(str(p) for p, _ in bad[:5]) + (" ..." if len(bad) > 5 else "")
        warnings.warn(f"{what}: skipped {len(bad)} unreadable image(s): {names} "
                      f"(set data.strict=true to fail instead)", stacklevel=2)
    if not arrays:
        raise GankitError(f"{what}: no readable images")
    sizes = {a.shape[:2]: paths[i] for a, i in zip(arrays, kept)}
    if len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise GankitError(f"{what}: images have different sizes ({p1} is {s1[0]}x{s1[1]}, {p2} is "
                          f"{s2[0]}x{s2[1]}); set data.size=N to resize them all")
    return arrays, kept


def _mode_for(paths: list[Path], channels: int) -> str:
    """Common Pillow mode: 'L' only if asked for 1 channel, else RGB (grey/RGBA converted)."""
    return "L" if channels == 1 else "RGB"


def load_folder(directory: str | Path, size: int, channels: int = 0, strict: bool = False) -> dict:
    """Any images under `directory`; if it has class subfolders, their names are the labels."""
    directory = _existing_dir(directory)
    paths = list_images(directory)
    if not paths:
        raise GankitError(f"{directory}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = sorted({p.relative_to(directory).parts[0] for p in paths if len(p.relative_to(directory).parts) > 1})
    top_level = [p for p in paths if len(p.relative_to(directory).parts) == 1]
    if channels == 0:  # keep grey data grey: look at the first readable image
        channels = 3
        for p in paths:
            try:
                channels = 1 if read_image(p).shape[2] == 1 else 3
                break
            except GankitError:
                continue
    arrays, kept = read_images(paths, size, _mode_for(paths, channels), strict, str(directory))
    out = {"image": np.stack(arrays)}
    if classes and top_level:  # labels need every image in a class folder: say why there are none
        warnings.warn(f"{directory}: {len(top_level)} image(s) at the top level next to class folders "
                      f"({', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''}); training without "
                      "labels (move them into a class folder to keep the labels)", stacklevel=2)
    if classes and not top_level:
        index = {c: i for i, c in enumerate(classes)}
        out["label"] = np.array([index[paths[i].relative_to(directory).parts[0]] for i in kept], dtype=np.int64)
        out["class_names"] = classes
    return out


def split_pairs(images: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """pix2pix layout: each image is A|B side by side. Returns (A, B), swapped for BtoA."""
    w = images.shape[2]
    if w % 2:
        raise GankitError(f"paired images must have an even width (A|B side by side), got width {w}")
    left, right = images[:, :, : w // 2], images[:, :, w // 2:]
    return (left, right) if direction == "AtoB" else (right, left)


def load_paired(directory: str | Path, split: str, size: int, direction: str,
                strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pairs from DIR/split/*.jpg, each an A|B image, decoded at (size, 2*size)."""
    folder = _existing_dir(Path(directory) / split)
    paths = list_images(folder)
    if not paths:
        raise GankitError(f"{folder}: no images found")
    arrays, bad = [], []
    for p in paths:
        try:
            arr = read_image(p, "RGB")
        except GankitError as e:
            if strict:
                raise
            bad.append(str(p))
            continue
        h, w = arr.shape[:2]
        if w != 2 * h:  # resizing to (2*size, size) would silently stretch it into a "pair"
            raise GankitError(f"{p}: a paired image must be A and B side by side, width = 2 x height; "
                              f"found {w}x{h}" + (" (a single image? unpaired:DIR takes trainA/ trainB/)"
                                                   if w == h else ""))
        if size:
            arr = np.asarray(Image.fromarray(arr).resize((2 * size, size), Image.BICUBIC))
        arrays.append(arr)
    if bad:
        warnings.warn(f"{folder}: skipped {len(bad)} unreadable image(s): {', '.join(bad[:5])}", stacklevel=2)
    if not arrays:
        raise GankitError(f"{folder}: no readable images")
    return split_pairs(np.stack(arrays), direction)


def load_unpaired(directory: str | Path, split: str, size: int, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """DIR/{split}A and DIR/{split}B folders of any images (grey/RGBA -> RGB, with a warning)."""
    directory = _existing_dir(directory)
    missing = [f"{split}{side}/" for side in ("A", "B") if not (directory / f"{split}{side}").is_dir()]
    if missing:
        found = sorted(p.name + "/" for p in directory.iterdir() if p.is_dir())
        raise GankitError(f"{directory}: unpaired data needs both domains, {split}A/ and {split}B/; "
                          f"missing {' and '.join(missing)} (found {', '.join(found) or 'no folders'})")
    out = []
    for side in ("A", "B"):
        folder = directory / f"{split}{side}"
        paths = list_images(folder)
        if not paths:
            raise GankitError(f"{folder}: no images found")
        modes = set()
        for p in paths[:50]:
            try:
                with Image.open(p) as img:
                    modes.add(img.mode)
            except Exception:
                pass
        if modes - {"RGB"}:
            warnings.warn(f"{folder}: converting {'/'.join(sorted(modes - {'RGB'}))} images to RGB", stacklevel=2)
        arrays, _ = read_images(paths, size, "RGB", strict, str(folder))
        out.append(np.stack(arrays))
    return out[0], out[1]


def prepare(images: np.ndarray, size: int, channels: int = 0) -> torch.Tensor:
    """uint8 (N, H, W[, C]) -> float (N, C, size, size) in [-1, 1]."""
    t = uint8_to_float(images)
    t = convert_channels(t, channels)
    return resize(t, size) if size else t
