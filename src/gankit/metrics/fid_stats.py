"""`gankit fid A B`: Inception FID and KID between two image sets, as pytorch-fid / clean-fid do.

Each side is one of
- a folder of images (any depth; grey or RGBA images are converted to RGB with a warning;
  all images must have one size, since resizing them first would change the score),
- a data spec: `cifar10:DIR`, `cifar10-test:DIR` (the 10,000 test images), `mnist:DIR`,
  `folder:DIR`, ... (every spec `gankit train --data` takes; images at their own size),
- a statistics file written by `gankit fid --save-stats SPEC OUT.npz`: mean and covariance
  (and the features, so KID and precision/recall work too), with the network sha256 and the
  resize mode they were computed with. Other tools' `.npz` files holding only `mu`/`sigma`
  give FID alone, with a warning that their protocol is unknown.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import DataConfig
from ..data import DATASETS, load_data
from ..data.images import IMAGE_SUFFIXES, list_images
from ..errors import GankitError
from ..runs import atomic_write
from .features import extract
from .image import frechet_distance, gaussian_stats, kid, precision_recall
from .inception import InceptionFeatures

STATS_VERSION = 1


def load_image_set(source: str) -> tuple[torch.Tensor, str]:
    """A folder or data spec -> (uint8 (N, 3, H, W), description)."""
    name, _, arg = source.partition(":")
    folder = Path(source).expanduser()
    if folder.is_dir():  # a folder of CIFAR-10 batches or MNIST IDX files reads as that data set
        if any(folder.glob("data_batch_*")) or any(folder.glob("test_batch*")) or (folder / "cifar-10-batches-py").is_dir():
            return _from_spec(f"cifar10:{folder}"), f"cifar10:{source}"
        if any(folder.glob("*idx3-ubyte*")):
            return _from_spec(f"mnist:{folder}"), f"mnist:{source}"
        return _read_folder(folder), f"folder {source}"
    if name == "cifar10-test" and arg:
        return _from_spec(f"cifar10:{arg}", split="test"), f"cifar10:{arg} (test split)"
    if name.strip().lower() in DATASETS and arg:
        if name.strip().lower() == "folder":
            return _read_folder(Path(arg).expanduser()), f"folder {arg}"
        return _from_spec(source), source
    if Path(source).suffix == ".npz":
        raise GankitError(f"statistics file not found: {source}")
    raise GankitError(f"'{source}' is not a folder, a data spec (cifar10:DIR, cifar10-test:DIR, mnist:DIR, "
                      "folder:DIR) or a .npz statistics file")


def _from_spec(spec: str, split: str = "auto") -> torch.Tensor:
    data = load_data(DataConfig(spec=spec, split=split), "image")
    x = data.tensors["image"]  # float [-1, 1] at the data's own size
    return x.add(1).mul(127.5).round().to(torch.uint8)


def _read_folder(folder: Path) -> torch.Tensor:
    if not folder.is_dir():
        raise GankitError(f"not a directory: {folder}")
    paths = list_images(folder)
    if not paths:
        raise GankitError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    arrays, converted, sizes = [], 0, {}
    for p in paths:
        try:
            with Image.open(p) as img:
                img.load()
                if img.mode != "RGB":
                    converted += 1
                    img = img.convert("RGB")
                arr = np.asarray(img, dtype=np.uint8)
        except Exception as e:  # truncated, not an image, decompression bomb
            raise GankitError(f"{p}: unreadable image ({type(e).__name__}: {e})") from None
        sizes.setdefault(arr.shape[:2], p)
        if len(sizes) > 1:
            (s1, p1), (s2, p2) = list(sizes.items())[:2]
            raise GankitError(f"{folder}: images have different sizes ({p1} is {s1[1]}x{s1[0]}, {p2} is "
                              f"{s2[1]}x{s2[0]}); FID compares sets of one size, resize them first")
        arrays.append(arr)
    if converted:
        warnings.warn(f"{folder}: converted {converted} of {len(paths)} non-RGB (grey/RGBA/palette) images "
                      "to RGB", stacklevel=2)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def compute_stats(source: str, net: InceptionFeatures, batch_size: int = 50, progress: bool = True) -> dict:
    """Features, mean and covariance of an image set (folder / spec) or a stats file."""
    if Path(source).expanduser().is_file():  # a file, not a folder or a spec: statistics
        return load_stats(Path(source).expanduser(), net)
    images, what = load_image_set(source)
    feats, _ = extract(net, images, batch_size, progress=f"{Path(source).name or source}" if progress else None)
    mu, sigma = gaussian_stats(feats)
    return {"features": feats, "mu": mu, "sigma": sigma, "n": len(feats), "source": what,
            "image_size": list(images.shape[-2:]), **net.protocol()}


def save_stats(stats: dict, path: str | Path) -> Path:
    path = Path(path)
    meta = {k: v for k, v in stats.items() if k not in ("features", "mu", "sigma")}
    path.parent.mkdir(parents=True, exist_ok=True)
    # np.savez writes to the file object; given a name without .npz it would append one
    atomic_write(path, lambda f: np.savez(f, mu=stats["mu"].numpy(), sigma=stats["sigma"].numpy(),
                                          features=stats["features"].numpy().astype(np.float32),
                                          meta=np.array(json.dumps({"version": STATS_VERSION, **meta}))))
    return path


def load_stats(path: str | Path, net: InceptionFeatures | None = None) -> dict:
    """A stats .npz; refuses one computed with another network or resize mode than `net`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # truncated zip, not an npz, pickled objects
        raise GankitError(f"{path}: not a readable statistics file ({type(e).__name__})") from None
    if "mu" not in arrays or "sigma" not in arrays:
        raise GankitError(f"{path}: a statistics file needs 'mu' and 'sigma' arrays, it has {sorted(arrays)}")
    mu, sigma = torch.from_numpy(arrays["mu"]).double(), torch.from_numpy(arrays["sigma"]).double()
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
        raise GankitError(f"{path}: mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)} are not a finite "
                          "mean and covariance of one dimension")
    try:
        meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
    except ValueError:
        raise GankitError(f"{path}: corrupt metadata") from None
    out = {"mu": mu, "sigma": sigma, "source": f"stats {path}", **meta}
    out["features"] = torch.from_numpy(arrays["features"]).float() if "features" in arrays else None
    if not meta:
        warnings.warn(f"{path}: no gankit metadata (network, resize mode): FID only, and only comparable "
                      "if it was computed with the same Inception and resize", stacklevel=2)
    elif net is not None:
        for key in ("feature_sha256", "resize", "inception_dtype"):
            mine = net.protocol()[key]
            if meta.get(key) != mine:
                raise GankitError(f"{path}: computed with {key}={meta.get(key)}, this run uses {mine}; "
                                  "recompute the statistics with the same settings")
    return out


def fid_between(a: str, b: str, resize: str = "clean", threads: int = 0, batch_size: int = 50,
                weights: str | None = None, progress: bool = True, seed: int = 0, bf16: bool = False) -> dict:
    """FID (and KID, precision/recall where both sides have features) of two image sets."""
    t0 = time.perf_counter()
    for source in (a, b):  # fail on a typo before minutes of Inception on the other side
        if not (Path(source).expanduser().exists() or ":" in source):
            raise GankitError(f"'{source}' is not a folder, a data spec (cifar10:DIR, cifar10-test:DIR, "
                              "mnist:DIR, folder:DIR) or a .npz statistics file")
    net = InceptionFeatures(weights, resize=resize, threads=threads, bf16=bf16)
    sa = compute_stats(a, net, batch_size, progress)
    sb = compute_stats(b, net, batch_size, progress)
    if sa["mu"].shape != sb["mu"].shape:
        raise GankitError(f"feature sizes differ: {a} has {len(sa['mu'])}, {b} has {len(sb['mu'])}")
    out = {"fid": frechet_distance(sa["mu"], sa["sigma"], sb["mu"], sb["sigma"])}
    notes = {"kid": "not measured (a statistics file without features)"}
    if sa["features"] is not None and sb["features"] is not None:
        out.update(kid(sa["features"], sb["features"], seed=seed))
        notes = {"kid": f"cubic polynomial kernel MMD^2, 100 subsets of {out.pop('kid_subset_size')}"}
        if min(len(sa["features"]), len(sb["features"])) > 3:
            out.update(precision_recall(sa["features"], sb["features"]))
            notes["precision_recall"] = f"Kynkaenniemi et al. 2019, k={out.pop('pr_k')}, A as the real set"
    out["protocol"] = {"command": "gankit fid", "a": sa["source"], "b": sb["source"],
                       "n_a": int(sa.get("n") or 0), "n_b": int(sb.get("n") or 0), **net.protocol(),
                       **notes, "seconds": round(time.perf_counter() - t0, 2)}
    return out
