"""Image-quality metrics over feature sets (STYLE.md #7: metrics take features, not models).

Every metric is a pure function of (N, D) feature tensors (or (N, K) logits) and returns a
flat dict of floats; METRICS maps a name to (function, what it needs). The feature
network that produced the features (a gankit domain classifier or Inception-v3) is part
of the protocol: numbers from two different feature spaces are not comparable.

- FID  Heusel et al. 2017. Fréchet distance between Gaussians fitted to the two sets;
       the matrix square-root term is torchmetrics' own (`_compute_fid`, eigenvalues of
       S1 @ S2), so `fid` equals torchmetrics' FrechetInceptionDistance given the same
       features (tests check this against FrechetInceptionDistance(feature=...)).
- KID  Bińkowski et al. 2018. Unbiased MMD^2 with the cubic polynomial kernel
       k(x, y) = (x.y / D + 1)^3, averaged over random subsets (torchmetrics' `poly_mmd`).
- IS   Salimans et al. 2016. exp(E_x KL(p(y|x) || p(y))) from classifier logits, over splits.
- precision / recall  Kynkäänniemi et al. 2019. Each set's manifold is the union of balls
       around its points with radius = distance to the k-th nearest neighbour (k=3);
       precision = share of fakes inside the real manifold, recall = share of reals
       inside the fake manifold.
- accuracy  share of samples generated for label y that the classifier puts in class y,
       overall and per class (conditional models).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..errors import GankitError

try:  # torchmetrics' reference implementations of the FID / KID formulas
    from torchmetrics.image.fid import _compute_fid as _tm_fid
    from torchmetrics.image.kid import poly_mmd as _tm_poly_mmd
except ImportError:  # pragma: no cover - private names moved in a future torchmetrics
    _tm_fid = _tm_poly_mmd = None


def _check(real: Tensor, fake: Tensor, min_n: int = 2) -> tuple[Tensor, Tensor]:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise GankitError(f"features must be (N, D) with the same D; got {tuple(real.shape)} and {tuple(fake.shape)}")
    if len(real) < min_n or len(fake) < min_n:
        raise GankitError(f"need at least {min_n} samples per set; got {len(real)} real and {len(fake)} fake")
    return real.detach().double().cpu(), fake.detach().double().cpu()


def gaussian_stats(feats: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    x = feats.detach().double().cpu()
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2)."""
    if _tm_fid is not None:
        return float(_tm_fid(mu1, sigma1, mu2, sigma2))
    covmean = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()  # pragma: no cover
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * covmean)  # pragma: no cover


def fid(real_feats: Tensor, fake_feats: Tensor) -> dict[str, float]:
    real, fake = _check(real_feats, fake_feats)
    value = frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
    return {"fid": value}


def _mmd_poly(x: Tensor, y: Tensor) -> Tensor:
    if _tm_poly_mmd is not None:
        return _tm_poly_mmd(x, y, degree=3, gamma=None, coef=1.0)
    d = x.shape[1]  # pragma: no cover
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731  # pragma: no cover
    m = len(x)  # pragma: no cover
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)  # pragma: no cover
    return ((kxx.sum() - kxx.diag().sum() + kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
            - 2 * kxy.sum() / m ** 2)  # pragma: no cover


def kid(real_feats: Tensor, fake_feats: Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> dict[str, float]:
    """Mean and std of the unbiased MMD^2 over `subsets` random subsets (torchmetrics' protocol)."""
    real, fake = _check(real_feats, fake_feats)
    m = min(subset_size, len(real), len(fake))
    g = torch.Generator().manual_seed(seed)
    scores = torch.stack([_mmd_poly(real[torch.randperm(len(real), generator=g)[:m]],
                                    fake[torch.randperm(len(fake), generator=g)[:m]]) for _ in range(subsets)])
    return {"kid": float(scores.mean()), "kid_std": float(scores.std(unbiased=False)), "kid_subset_size": m}


def inception_score(logits: Tensor, splits: int = 10) -> dict[str, float]:
    """exp(E KL(p(y|x) || p(y))) per split; mean and std over splits (Salimans et al.)."""
    logp = torch.log_softmax(logits.detach().double().cpu(), dim=1)  # (N, K)
    splits = max(1, min(splits, len(logp)))
    scores = []
    for part in logp.chunk(splits):
        log_py = torch.logsumexp(part, 0) - math.log(len(part))  # log of the marginal p(y), (K,)
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(kl.exp())
    s = torch.stack(scores)
    return {"is": float(s.mean()), "is_std": float(s.std(unbiased=False)) if len(s) > 1 else 0.0}


def _rows(n_cols: int) -> int:
    return max(1, 2 ** 25 // max(n_cols, 1))  # distance blocks of at most 32M floats (128 MB)


def _kth_radius(x: Tensor, k: int) -> Tensor:
    """Distance from each row of x to its k-th nearest other row, (N,)."""
    chunk = _rows(len(x))
    if len(x) <= k:
        raise GankitError(f"precision/recall with k={k} needs more than {k} samples per set, got {len(x)}")
    out = [torch.cdist(x[i:i + chunk], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), chunk)]
    return torch.cat(out)  # k + 1: the nearest "other" point skips the point itself (distance 0)


def _inside(points: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """(N,) bool: is each point within radius of at least one centre."""
    chunk = _rows(len(centres))
    out = [(torch.cdist(points[i:i + chunk], centres) <= radii[None]).any(1) for i in range(0, len(points), chunk)]
    return torch.cat(out)


def precision_recall(real_feats: Tensor, fake_feats: Tensor, k: int = 3) -> dict[str, float]:
    real, fake = _check(real_feats, fake_feats, min_n=k + 1)
    real, fake = real.float(), fake.float()
    precision = _inside(fake, real, _kth_radius(real, k)).double().mean()
    recall = _inside(real, fake, _kth_radius(fake, k)).double().mean()
    return {"precision": float(precision), "recall": float(recall), "pr_k": k}


def accuracy(logits: Tensor, labels: Tensor, num_classes: int | None = None) -> dict[str, float]:
    """Overall and per-class accuracy of predictions argmax(logits) against labels."""
    pred = logits.detach().argmax(1).cpu()
    labels = labels.detach().cpu()
    if len(pred) != len(labels) or len(labels) == 0:
        raise GankitError(f"accuracy needs one label per prediction; got {len(pred)} and {len(labels)}")
    num_classes = num_classes or int(labels.max()) + 1
    out = {"accuracy": float((pred == labels).double().mean())}
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            out[f"accuracy_class_{c}"] = float((pred[mask] == c).double().mean())
    return out


# name -> (function, inputs it takes): "features" = (real, fake) features, "logits" = fake logits,
# "labelled" = fake logits and the labels they were generated for.
METRICS: dict[str, tuple[Callable[..., dict[str, float]], str]] = {
    "fid": (fid, "features"),
    "kid": (kid, "features"),
    "precision_recall": (precision_recall, "features"),
    "is": (inception_score, "logits"),
    "accuracy": (accuracy, "labelled"),
}
