"""Built-in data that ships with scikit-learn, so the main job runs on a fresh machine
with no download.

- `digits`: scikit-learn's `load_digits` — 1,797 real handwritten digits (8x8, 17 grey
  levels, labels 0-9) from the UCI optical-recognition set, upsampled to the model's size.
- `photos`: scikit-learn's two bundled sample photographs (a Chinese temple, a flower) cut
  into overlapping patches: domain A = temple, domain B = flower, for CycleGAN demos.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def load_digits_arrays() -> dict:
    from sklearn.datasets import load_digits  # scikit-learn is slow to import; only the built-in sets need it
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # (N, 8, 8)
    return {"image": images, "label": bunch.target.astype(np.int64),
            "class_names": [str(i) for i in range(10)]}


def sample_photo_patches(patch: int, work_side: int = 256, stride_frac: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) uint8 patches (N, patch, patch, 3) from the temple and flower photos.

    Each photo is resized so its short side is `work_side`, then cut on a grid with
    stride `patch * stride_frac`.
    """
    from sklearn.datasets import load_sample_images  # slow to import: see load_digits_arrays
    photos = load_sample_images().images  # [china (427, 640, 3), flower (427, 640, 3)]
    out = []
    for photo in photos:
        h, w = photo.shape[:2]
        scale = work_side / min(h, w)
        img = np.asarray(Image.fromarray(photo).resize((round(w * scale), round(h * scale)), Image.BICUBIC))
        stride = max(int(patch * stride_frac), 1)
        tiles = [img[y:y + patch, x:x + patch]
                 for y in range(0, img.shape[0] - patch + 1, stride)
                 for x in range(0, img.shape[1] - patch + 1, stride)]
        out.append(np.stack(tiles))
    return out[0], out[1]
