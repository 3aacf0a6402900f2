"""Evaluation-time diagnostics of image GANs: which classes the samples fall into, and
whether G copies its training images. Read by the hint rules in gankit/diagnostics.py.

- class coverage: the domain classifier's predicted class of every sample; a class is
  covered when it takes at least a quarter of its fair share (1/K) of the samples, so a
  few misclassified samples of a collapsed G do not count as coverage.
- memorisation: in pixel space (the run's size, values in [-1, 1]; RMS distance per
  pixel), each sample's distance to its nearest training image against the same for
  real images G never saw: the data's held-out split when it has one, else training
  images with themselves left out (by exchangeability the same distribution as the
  held-out distance, to n - 1 training images instead of n). Pixel space because a copy
  is exact there (distance 0); classifier features would also call two different
  sevens of the same style "close".
"""
from __future__ import annotations

import math
import sys

import torch
from torch import Tensor

from ..data import load_data
from ..ema import evaluating
from .classifier import cache_dir, default_digits_classifier
from .features import ClassifierFeatures

COVERED_SHARE = 0.25
"""a class is covered when it takes at least this fraction of its fair share 1/K"""
MEMO_REFERENCE = 1000
"""real images whose nearest-neighbour distance is the baseline (a random subset)"""
CHUNK = 256


def class_coverage(logits: Tensor, num_classes: int) -> dict:
    """Class histogram of samples (N, K logits) and the number of classes covered."""
    pred = logits.argmax(1).cpu()
    hist = torch.bincount(pred, minlength=num_classes)[:num_classes].double() / len(pred)
    return {"class_hist": [round(v, 4) for v in hist.tolist()],
            "classes_covered": int((hist >= COVERED_SHARE / num_classes).sum()),
            "num_classes": num_classes}


@torch.no_grad()
def nearest_distance(x: Tensor, ref: Tensor, skip_self: bool = False) -> Tensor:
    """RMS-per-pixel distance (N,) from each of x (N, ...) to its nearest image in ref (M, ...).
    `skip_self`: x is a subset of ref, and each image's own zero distance is left out."""
    x, ref = x.flatten(1).float(), ref.flatten(1).float().to(x.device)
    out = []
    for xc in x.split(CHUNK):
        d = torch.cdist(xc, ref)  # (c, M)
        out.append(d.topk(2, dim=1, largest=False).values[:, 1] if skip_self else d.amin(1))
    return torch.cat(out).clamp_min(0) / math.sqrt(x.shape[1])


def memorisation(fake: Tensor, train: Tensor, held_out: Tensor | None = None, seed: int = 0) -> dict:
    """Nearest-training-image distances of samples vs real images G never saw.

    memo_nn_fake / memo_nn_real: medians; memo_close: share of samples nearer to a training
    image than the 5th percentile of the real images' distances (~0.05 for a G that samples
    like the data, ~1 for one that copies)."""
    if len(train) < 2:
        return {}  # no nearest *other* training image to compare with
    g = torch.Generator().manual_seed(seed)
    if held_out is not None and len(held_out):
        real = held_out[torch.randperm(len(held_out), generator=g)[:MEMO_REFERENCE].to(held_out.device)]
        d_real, ref = nearest_distance(real, train), "held_out"
    else:
        pick = torch.randperm(len(train), generator=g)[:MEMO_REFERENCE].to(train.device)
        d_real, ref = nearest_distance(train[pick], train, skip_self=True), "train_leave_one_out"
    d_fake = nearest_distance(fake, train)
    q05 = torch.quantile(d_real.cpu().double(), 0.05)
    return {"memo_nn_fake": float(d_fake.median()), "memo_nn_real": float(d_real.median()),
            "memo_close": float((d_fake.cpu().double() < q05).double().mean()), "memo_reference": ref}


@torch.no_grad()
def image_diagnostics(model, data, n: int, classifier=None, batch_size: int = 250) -> dict:
    """n samples of an image GAN (`model.sample`; conditional models cycle through the labels)
    scored for class coverage (when `classifier`, a features.ClassifierFeatures, fits the
    data's classes) and memorisation against `data`'s training and held-out images."""
    images = torch.cat([model.sample(min(batch_size, n - i)).float() for i in range(0, n, batch_size)])
    out = {}
    k = data.info.num_classes
    if classifier is not None and k and k == classifier.num_classes:
        _, logits = classifier(images)
        out |= class_coverage(logits, k)
    held = (data.held_out or {}).get("image")
    return out | memorisation(images, data.tensors["image"], held)


def diagnostics_classifier(cfg, data, device="cpu"):
    """The domain classifier `train.classifier` names for a run (a features.ClassifierFeatures),
    or None: unlabelled data, `none`, or `auto` on data without a built-in classifier."""
    choice = cfg.train.classifier.strip()
    if choice == "none" or not data.info.num_classes:
        return None
    if choice == "auto":
        if cfg.data.spec.split(":")[0].strip().lower() != "digits":
            return None
        if not (cache_dir() / "classifiers" / "digits-size32-seed0.pt").is_file():
            print("diagnostics: fitting the built-in digits classifier (once, ~15 s; cached)", file=sys.stderr)
        choice = str(default_digits_classifier(str(device)))
    return ClassifierFeatures(choice, device)


def eval_diagnostics(run, features: str | None = None, device="cpu", seed: int = 0) -> dict:
    """`gankit eval`'s share: image_diagnostics of a LoadedRun's generator (EMA if any) on its
    data, judged by `features` (a fit-classifier file) or the run's own train.classifier."""
    cfg = run.config
    data = load_data(cfg.data, "image").to(device)
    clf = ClassifierFeatures(features, device) if features else diagnostics_classifier(cfg, data, device)
    with evaluating(run.model):
        torch.manual_seed(seed)
        return image_diagnostics(run.model, data, cfg.train.diag_samples or 500, clf)
