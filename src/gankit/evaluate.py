"""`gankit eval RUN_DIR`: the figures papers report, with the protocol that produced them.

Image runs: n samples from the run's newest checkpoint (EMA generator if any) are fed,
with real reference images, through one feature network; FID, KID, IS and
precision/recall are computed from the features, and for conditional models the
classifier's accuracy on samples generated per label (n/num_classes per label, so the
class mix is exactly balanced; these same samples feed every metric). Real images take
the same route as generated ones: loaded at the run's size, then resized to the feature
network's size — so resampling cannot masquerade as a quality gap.

Feature networks: a gankit domain classifier (`--features`), or Inception-v3 (`--inception`,
the `fid` extra; inception.py) at a named resize (`clean` | `legacy-tf`), the scale papers
publish. With Inception, conditional accuracy is still judged in a classifier's space
(`--features` too, or the built-in digits classifier): Inception's pool features know no
labels. Named protocols fix the sample counts and the reference as the anchors do:
`cifar10-10k` = 10,000 samples vs the 10,000 CIFAR-10 test images (StudioGAN / mimicry
"10k vs test"); `train-10k` = 10,000 samples vs the first 10,000 training images.

Reference features depend only on (data, split, size, limit, resize mode, bf16, feature-network
sha256) and are cached under $GANKIT_CACHE_DIR (default ~/.cache/gankit)/reference/. Text runs (SeqGAN)
and translation runs use their model's own `evaluate()` (NLL-oracle, BLEU, paired L1...).
Every result is one record appended to RUN_DIR/metrics.jsonl with "eval": true, flat
metric keys and a "protocol" dict, then the report is rewritten.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from .api import load_run, run_config
from .config import DataConfig
from .data import load_data
from .distributed import pick_device
from .errors import GankitError
from .metrics.classifier import cache_dir, default_digits_classifier
from .metrics.diagnostics import eval_diagnostics
from .metrics.features import ClassifierFeatures, InceptionFeatures, extract
from .metrics.image import METRICS, accuracy
from .models import MODELS
from .report import write_report
from .runs import RunDir, atomic_write

REFERENCES = ("auto", "train", "held_out")


def feature_network(data_spec: str, features: str | None, inception: str | bool | None, device="cpu",
                    resize: str = "clean", threads: int = 0, bf16: bool = False) -> torch.nn.Module:
    """Inception if asked (True/"" = the fid extra's packaged weights, a str = a TorchScript file),
    else the given classifier, else the built-in digits classifier for `digits`."""
    if inception is not None and inception is not False:
        weights = inception if isinstance(inception, (str, Path)) and str(inception) else None
        return InceptionFeatures(weights, resize=resize, device=device, threads=threads, bf16=bf16)
    if features:
        return ClassifierFeatures(features, device)
    if data_spec.split(":")[0].strip().lower() == "digits":
        return ClassifierFeatures(default_digits_classifier(device), device)
    raise GankitError(f"image runs on '{data_spec}' need a feature network: "
                      f"`gankit eval RUN_DIR --inception` (pip install -e \".[fid]\"), or first "
                      f"`gankit fit-classifier --data {data_spec} --out clf.pt`, then "
                      "`gankit eval RUN_DIR --features clf.pt`")


# name -> (generated samples, reference split, data overrides for the reference)
PROTOCOLS: dict[str, tuple[int, str, dict]] = {
    "cifar10-10k": (10000, "train", {"split": "test", "limit": 0, "holdout": 0}),
    "train-10k": (10000, "train", {"limit": 10000, "holdout": 0}),
}


def protocol_data(data_cfg, protocol: str):
    """The run's data config with the protocol's reference overrides applied."""
    if protocol not in PROTOCOLS:
        raise GankitError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    if protocol == "cifar10-10k" and data_cfg.spec.split(":")[0].strip().lower() != "cifar10":
        raise GankitError(f"--protocol cifar10-10k needs a cifar10:DIR run, this one trained on '{data_cfg.spec}'")
    return dataclasses.replace(data_cfg, **PROTOCOLS[protocol][2])


def reference_features(data_cfg, split: str, net: torch.nn.Module, batch_size: int = 250,
                       progress: bool = False) -> dict[str, Any]:
    """Features/logits/labels of the real `split` ('train' | 'held_out') of `data_cfg`, cached."""
    key = json.dumps({"spec": data_cfg.spec, "size": data_cfg.size, "channels": data_cfg.channels,
                      "split": data_cfg.split, "limit": data_cfg.limit, "holdout": data_cfg.holdout,
                      "reference": split, "features": net.sha256, "resize": getattr(net, "resize", None),
                      "bf16": getattr(net, "bf16", False)},
                     sort_keys=True)
    path = cache_dir() / "reference" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("key") == key:
                return blob
        except Exception:
            pass  # a damaged cache entry is recomputed
    data = load_data(data_cfg, "image")
    tensors = data.tensors if split == "train" else data.held_out
    if tensors is None:
        raise GankitError(f"--reference held_out: '{data_cfg.spec}' has no held-out split "
                          "(train with --set data.holdout=N, or use --reference train)")
    feats, logits = extract(net, tensors["image"], batch_size, progress="reference features" if progress else None)
    blob = {"key": key, "features": feats, "logits": logits, "labels": tensors.get("label"),
            "source": data.info.source or data_cfg.spec}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(blob, f))
    return blob


def score(real: torch.Tensor, fake: torch.Tensor, fake_logits: torch.Tensor | None = None,
          labels: torch.Tensor | None = None, num_classes: int = 0, seed: int = 0) -> dict[str, float]:
    """Every METRICS entry the inputs allow, merged into one flat dict."""
    out: dict[str, float] = {}
    for name, (fn, needs) in METRICS.items():
        if needs == "features":
            out.update(fn(real, fake, seed=seed) if name == "kid" else fn(real, fake))
        elif needs == "logits" and fake_logits is not None:
            out.update(fn(fake_logits))
        elif needs == "labelled" and fake_logits is not None and labels is not None and num_classes:
            out.update(accuracy(fake_logits, labels, num_classes))
    return out


def _generate(sample, num_classes: int, n: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n images (and their labels for conditional models), batch by batch with derived seeds."""
    plan = [(c, n // num_classes + (c < n % num_classes)) for c in range(num_classes)] if num_classes else [(None, n)]
    images, labels, i = [], [], 0
    for label, count in plan:
        for start in range(0, count, batch_size):
            b = min(batch_size, count - start)
            images.append(sample(b, label=label, seed=seed * 1_000_003 + i).float().cpu())
            if label is not None:
                labels.append(torch.full((b,), label, dtype=torch.long))
            i += 1
    # One seeded shuffle: per-label blocks would otherwise put one class in each IS split.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return torch.cat(images)[perm], (torch.cat(labels)[perm] if labels else None)


def evaluate_run(run_dir: str | Path, features: str | None = None, inception: str | bool | None = None,
                 n: int | None = None, batch_size: int = 250, reference: str = "auto", seed: int = 0,
                 device: str = "auto", protocol: str | None = None, resize: str = "clean", threads: int = 0,
                 progress: bool = False, bf16: bool = False, raw: bool = False) -> dict:
    """Evaluate a run's newest checkpoint; the record is appended to RUN_DIR/metrics.jsonl.
    A run trained with `train.ema` is judged by its averaged generator, or by G's own
    weights with `raw=True` (the same checkpoint, so the two records compare what the
    average adds)."""
    cfg = run_config(run_dir)
    if cfg.name not in MODELS:
        raise GankitError(f"{run_dir} is a '{cfg.name}' run, a model this gankit does not have")
    kind = MODELS[cfg.name].DATA_KIND
    dev = str(pick_device(device))
    t0 = time.perf_counter()
    if kind != "image":
        fid_net = None
        if kind == "unpaired" and inception is not None and inception is not False:  # CycleGAN: FID of translations
            fid_net = feature_network(cfg.data.spec, None, inception, dev, resize, threads, bf16)
        return _evaluate_own(run_dir, cfg, dev, seed, t0, fid_net, raw)
    run = load_run(run_dir, device=dev, ema=not raw)
    record = evaluate_generator(run.sample, cfg.data, num_classes=run.model.num_classes,
                                features=features, inception=inception, n=n, batch_size=batch_size,
                                reference=reference, seed=seed, device=dev, protocol=protocol, resize=resize,
                                threads=threads, progress=progress, bf16=bf16)
    record |= eval_diagnostics(run, features, dev, seed)
    record["protocol"] = {"command": "gankit eval", "model": cfg.name, "checkpoint_step": run.step,
                          "generator": "ema" if cfg.train.ema and not raw else "raw", **record["protocol"],
                          "eval_seconds": round(time.perf_counter() - t0, 2)}
    return _log(run_dir, {"step": run.step, **record})


def evaluate_generator(sample, data_cfg, num_classes: int = 0, features: str | None = None,
                       inception: str | bool | None = None, n: int | None = None, batch_size: int = 250,
                       reference: str = "auto", seed: int = 0, device: str = "cpu", protocol: str | None = None,
                       resize: str = "clean", threads: int = 0, progress: bool = False, bf16: bool = False) -> dict:
    """The eval record of any generator: `sample(n, label=None, seed=None) -> (n, C, H, W) in [-1, 1]`
    (a LoadedRun's .sample), judged against the real data `data_cfg` (a DataConfig or a spec).
    Nothing is logged; `evaluate_run` is this plus the run's metrics.jsonl."""
    if isinstance(data_cfg, str):
        data_cfg = DataConfig(spec=data_cfg)
    if reference not in REFERENCES:
        raise GankitError(f"--reference must be one of {', '.join(REFERENCES)}, got '{reference}'")
    ref_cfg, split = data_cfg, ("train" if reference == "auto" else reference)
    if protocol:
        ref_cfg = protocol_data(data_cfg, protocol)
        n, split = n or PROTOCOLS[protocol][0], PROTOCOLS[protocol][1]
    n = n or 10000
    if n < 4:
        raise GankitError(f"--n must be at least 4 (precision/recall uses k=3 neighbours), got {n}")
    t0 = time.perf_counter()
    net = feature_network(data_cfg.spec, features, inception, device, resize, threads, bf16)
    ref = reference_features(ref_cfg, split, net, batch_size, progress)
    fake_images, labels = _generate(sample, num_classes, n, batch_size, seed)
    fake, logits = extract(net, fake_images, batch_size, progress="generated features" if progress else None)
    judge, judge_logits = net, logits
    if isinstance(net, InceptionFeatures):
        judge = None  # pool features know no labels: judge them in a classifier's space, if there is one
        if num_classes and labels is not None and (features or data_cfg.spec.split(":")[0].strip().lower() == "digits"):
            judge = feature_network(data_cfg.spec, features, None, device)
            judge_logits = extract(judge, fake_images, batch_size)[1]
    can_judge = bool(num_classes and judge is not None and num_classes == getattr(judge, "num_classes", 0)
                     and labels is not None)
    metrics = score(ref["features"], fake, logits, None, num_classes, seed)  # IS only where the net has logits
    if can_judge:
        metrics.update(accuracy(judge_logits, labels, num_classes))
    kid_m, k = metrics.pop("kid_subset_size"), metrics.pop("pr_k")  # protocol, not results
    name = protocol and (protocol if n == PROTOCOLS[protocol][0] else f"{protocol} (n={n}: not the full protocol)")
    proto = {"name": name or "custom", "feature_network": net.name, "feature_sha256": net.sha256,
             "feature_dim": int(fake.shape[1]), "n_fake": len(fake), "n_real": len(ref["features"]),
             "reference": split if not protocol else f"{split} split, {ref_cfg.split} images",
             "reference_data": ref["source"], "data_spec": data_cfg.spec, "seed": seed, "batch_size": batch_size,
             "per_label": bool(labels is not None), "kid": f"cubic polynomial kernel MMD^2, 100 subsets of {kid_m}; as is, not x1000 "
                    "(papers often print KID x 1000); its scale is the feature network's own",
             "precision_recall": f"Kynkaenniemi et al. 2019, k={k}",
             "accuracy": (f"per label, in {judge.name}" if can_judge else
                          "not measured (unconditional model, no classifier, or class mismatch)"),
             "seconds": round(time.perf_counter() - t0, 2)}
    if hasattr(net, "protocol"):
        proto.update(net.protocol())
    if hasattr(judge, "meta"):
        proto["feature_accuracy"] = judge.meta.get("accuracy")
    return {"eval": True, **metrics, "protocol": proto}


def _evaluate_own(run_dir, cfg, dev: str, seed: int, t0: float, fid_net=None, raw: bool = False) -> dict:
    """Text / translation runs: the model's own evaluate() (NLL-oracle, BLEU, paired L1...);
    translation runs with an Inception `fid_net` also get FID of translations into photo domains."""
    run = load_run(run_dir, device=dev, with_data=True, ema=not raw)
    torch.manual_seed(seed)
    with torch.no_grad():  # (only CycleGAN's evaluate takes an Inception network, for FID of translations)
        metrics = {k: float(v) for k, v in
                   run.model.evaluate(run.data, **({"fid_net": fid_net} if fid_net else {})).items()}
    protocol = {"command": "gankit eval", "model": cfg.name, "checkpoint_step": run.step, "data_spec": cfg.data.spec,
                "seed": seed, "metrics": f"{cfg.name}.evaluate()",
                "generator": "ema" if cfg.train.ema and not raw else "raw", "eval_seconds": round(time.perf_counter() - t0, 2),
                **{f"model.{k}": v for k, v in vars(cfg.model).items() if k.endswith("samples")}}  # sample counts
    data = run.data
    if data.info.paired_eval:
        protocol["held_out"] = data.info.held_out_split or "none"
        protocol["n_held_out"] = len(data.held_out["a"]) if data.held_out else 0
    if fid_net is not None:
        protocol.update({"fid": "translations vs the real held-out images of the target domain",
                         **fid_net.protocol()})
    return _log(run_dir, {"step": run.step, "eval": True, **metrics, "protocol": protocol})


def _log(run_dir, record: dict) -> dict:
    RunDir(run_dir).log(record)
    write_report(run_dir)
    return record
