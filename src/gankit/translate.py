"""`gankit translate`: run a trained CycleGAN's generator over new images.

    gankit translate RUN_DIR --direction AtoB --input IMG_OR_DIR --out DIR [--sheet]

Any image size works: each image is padded (edge-replicate) up to a multiple of 4 (the
generator downsamples twice), translated, and cropped back to its own size. Images of the
same padded size are batched together. Grey, palette and RGBA images are converted to the
model's channels with a warning. `--sheet` also writes `NAME_sheet.png`: input | output.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .api import load_run
from .data.images import IMAGE_SUFFIXES
from .data.transforms import to_uint8, uint8_to_float
from .errors import GankitError

MIN_SIDE = 8  # the ResNet G's reflection padding needs >= 2 pixels at 1/4 resolution


def _inputs(path: Path) -> tuple[list[Path], Path]:
    """The images to translate and the folder their output names are relative to."""
    if path.is_file():
        return [path], path.parent
    if not path.is_dir():
        raise GankitError(f"input not found: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GankitError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, path


def _read(path: Path, channels: int) -> np.ndarray:
    """uint8 (H, W, C) in the model's channel count; converts other modes with a warning."""
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode != mode:
                warnings.warn(f"{path.name}: converting {img.mode} image to {mode}", stacklevel=3)
                img = img.convert(mode)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise GankitError(f"{path}: unreadable image ({e})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def pad_to_multiple(x: torch.Tensor, multiple: int = 4, min_side: int = MIN_SIDE) -> torch.Tensor:
    """(B, C, H, W) -> edge-padded on the bottom/right to sides divisible by `multiple`."""
    h, w = x.shape[-2:]
    H = max(-(-h // multiple) * multiple, min_side)
    W = max(-(-w // multiple) * multiple, min_side)
    return x if (H, W) == (h, w) else F.pad(x, (0, W - w, 0, H - h), mode="replicate")


def translate_tensor(model, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
    """(B, C, H, W) in [-1, 1], any H, W -> translated (B, C, H, W)."""
    h, w = x.shape[-2:]
    return model.translate(pad_to_multiple(x), direction)[..., :h, :w]


def translate(run_dir, input, out, direction: str = "AtoB", batch_size: int = 8, sheet: bool = False,
              device: str = "auto") -> int:
    """Translate the image `input` (or every image under it) into `out`; returns the count."""
    if direction not in ("AtoB", "BtoA"):
        raise GankitError(f"--direction must be AtoB or BtoA, got '{direction}'")
    if batch_size <= 0:
        raise GankitError(f"--batch-size must be positive, got {batch_size}")
    run = load_run(run_dir, device=device)
    if run.model.DATA_KIND != "unpaired":  # translation models (CycleGAN) only
        raise GankitError(f"{run.path} is a '{run.config.name}' run; translate needs a cyclegan run")
    model, channels = run.model, run.data_info.channels
    dev = next(model.parameters()).device
    files, root = _inputs(Path(input))
    out = Path(out)

    groups: dict[tuple[int, int], list[tuple[Path, np.ndarray]]] = defaultdict(list)
    for p in files:  # decode everything first so same-size images batch together
        arr = _read(p, channels)
        groups[arr.shape[:2]].append((p, arr))

    bar = tqdm(total=len(files), desc=f"translate {direction}", unit="img")
    count = 0
    with torch.no_grad():
        for items in groups.values():
            for i in range(0, len(items), batch_size):
                chunk = items[i:i + batch_size]
                x = uint8_to_float(np.stack([a for _, a in chunk])).to(dev)  # (B, C, H, W)
                y = to_uint8(translate_tensor(model, x, direction))          # (B, H, W, C)
                for (p, a), img in zip(chunk, y):
                    target = out / p.relative_to(root).with_suffix(".png")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _save(img, target)
                    if sheet:
                        _save(np.concatenate([a, img], axis=1), target.with_name(target.stem + "_sheet.png"))
                count += len(chunk)
                bar.update(len(chunk))
    bar.close()
    return count


def _save(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)
