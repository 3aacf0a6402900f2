"""Metrics of paired translations (pix2pix / CycleGAN terms) against held-out ground truth.

- `paired_metrics`: L1, PSNR and SSIM (torchmetrics) on images scaled to [0, 1].
- Label maps: every pixel of the output and of the ground truth is snapped to the nearest
  colour of a palette (JPEG label maps blur their edges), then scored as the pix2pix /
  CycleGAN "FCN-score" is (`label_accuracy_score` of their Cityscapes evaluation): one
  confusion matrix summed over the whole test set, then
  per-pixel accuracy  = trace / total,
  per-class accuracy  = mean over classes of (correct pixels of class k / true pixels of k),
  mIoU                = mean over classes of TP / (TP + FP + FN),
  where the means skip classes absent from both maps (nan, as numpy.nanmean does).

A palette (data/palette.py) is a JSON file {"classes": [names], "colours": [[R, G, B], ...]} (0-255); gankit
ships `facades` (src/gankit/data/palettes/facades.json, the 12 CMP classes as rendered in
the pix2pix/CycleGAN facades set). `data.palette` picks one: a shipped name, a file, `none`,
or empty for auto (a domain whose pixels lie near a shipped palette's colours uses it).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ..data.palette import load_palette, shipped_palettes
from .features import extract
from .image import fid


def snap(images: Tensor, colours: Tensor) -> Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W) index of the nearest palette colour."""
    c = colours.to(images.device, torch.float32) / 127.5 - 1                      # (K, 3)
    pixels = images.float().permute(0, 2, 3, 1)                                  # (N, H, W, 3)
    return (pixels[..., None, :] - c).pow(2).sum(-1).argmin(-1)                   # (N, H, W)


def confusion(pred: Tensor, true: Tensor, k: int) -> Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    return torch.bincount(true.flatten() * k + pred.flatten(), minlength=k * k).reshape(k, k).cpu()


def label_scores(hist: Tensor) -> dict[str, float]:
    """Pixel accuracy, mean per-class accuracy and mIoU of a (K, K) confusion matrix."""
    h = hist.double()
    tp, true, pred = h.diag(), h.sum(1), h.sum(0)
    with torch.no_grad():
        class_acc = tp / true                  # nan for classes absent from the ground truth
        iou = tp / (true + pred - tp)          # nan for classes absent from both maps
    return {"label_acc": float(tp.sum() / h.sum()), "class_acc": float(class_acc.nanmean()),
            "label_miou": float(iou.nanmean())}


def label_confusion(fake: Tensor, real: Tensor, colours: Tensor, chunk: int = 16) -> Tensor:
    """Snap both (N, 3, H, W) sets to the palette: one (K, K) confusion matrix over the whole set."""
    k = len(colours)
    hist = torch.zeros(k, k, dtype=torch.long)
    for i in range(0, len(fake), chunk):  # (chunk, H, W, K) distances at a time
        hist += confusion(snap(fake[i:i + chunk], colours), snap(real[i:i + chunk], colours), k)
    return hist


def label_metrics(fake: Tensor, real: Tensor, colours: Tensor, chunk: int = 16) -> dict[str, float]:
    """Pixel accuracy, per-class accuracy and mIoU of the whole set's confusion matrix."""
    return label_scores(label_confusion(fake, real, colours, chunk))


def palette_share(images: Tensor, colours: Tensor, tol: float = 0.2) -> float:
    """Share of pixels within `tol` (RGB distance, [0, 1] units) of a palette colour."""
    if images.shape[1] != 3:
        return 0.0
    pixels = images[:64].float().add(1).div(2).permute(0, 2, 3, 1).reshape(-1, 3)
    return float((torch.cdist(pixels, colours.to(pixels.device) / 255).min(1).values < tol).float().mean())


def pick_palette(setting: str, images: Tensor, frac: float = 0.5) -> dict | None:
    """The palette a domain is drawn in: `setting` if given ('none' = no label metrics),
    else the first shipped palette that covers >= `frac` of its pixels (label maps and photos
    fall far either side of 0.5: docs/benchmarks.md, "CycleGAN on the real CMP facades")."""
    if setting == "none":
        return None
    if setting:
        return load_palette(setting)
    for name in shipped_palettes():
        palette = load_palette(name)
        if palette_share(images, palette["colours"]) >= frac:
            return palette
    return None


def paired_metrics(fake: Tensor, real: Tensor) -> dict[str, float]:
    """L1 (mean absolute error), PSNR (dB) and SSIM, all on images scaled to [0, 1]."""
    x = fake.float().clamp(-1, 1).add(1).div(2)
    y = real.float().clamp(-1, 1).add(1).div(2)
    return {"l1": float((x - y).abs().mean()),
            "psnr": float(peak_signal_noise_ratio(x, y, data_range=1.0)),
            "ssim": float(structural_similarity_index_measure(x, y, data_range=1.0))}


def translation_scores(fake: Tensor, target: Tensor, palette: str, fid_net=None) -> dict[str, float]:
    """One direction of a paired translation against its held-out targets: L1 / PSNR / SSIM,
    plus pixel accuracy, per-class accuracy and mIoU where the target domain is a label map
    (`pick_palette(palette, target)`), else, with an Inception `fid_net`, the FID of the
    translations against the real targets (how real do they look)."""
    out = paired_metrics(fake, target)
    chosen = pick_palette(palette, target)
    if chosen is not None:
        out |= label_metrics(fake, target, chosen["colours"])
    elif fid_net is not None:
        out["fid"] = fid(extract(fid_net, target.cpu(), 50)[0], extract(fid_net, fake.cpu(), 50)[0])["fid"]
    return out

