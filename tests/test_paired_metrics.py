"""Paired translation metrics (metrics/paired.py) on constructed label maps, the shipped
facades palette, data.palette, and the paired loader's choice of held-out split."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import load_data
from gankit.errors import GankitError
from gankit.metrics.paired import confusion, label_metrics, label_scores, load_palette, pick_palette, snap

COLOURS = load_palette("facades")["colours"]


def _render(idx: torch.Tensor) -> torch.Tensor:
    """(N, H, W) class indices -> (N, 3, H, W) label-map images in [-1, 1]."""
    return (COLOURS[idx].permute(0, 3, 1, 2) / 127.5 - 1).float()


def test_shipped_facades_palette_is_the_12_cmp_classes():
    p = load_palette("facades")
    assert len(p["classes"]) == len(p["colours"]) == 12
    assert p["classes"][0] == "background" and p["classes"][-1] == "shop"


def test_scores_of_a_constructed_confusion():
    # true: left half class 0, right half class 1; predicted: everything class 0
    true = torch.zeros(1, 4, 4, dtype=torch.long)
    true[..., 2:] = 1
    pred = torch.zeros_like(true)
    out = label_metrics(_render(pred), _render(true), COLOURS)
    assert out["label_acc"] == pytest.approx(0.5)
    assert out["class_acc"] == pytest.approx(0.5)      # class 0: 8/8, class 1: 0/8
    assert out["label_miou"] == pytest.approx(0.25)    # IoU 8/16 and 0/8; the 10 absent classes skipped


def test_confusion_is_summed_over_the_set_not_averaged_per_image():
    # image 1: 15 pixels right of class 2, 1 wrong; image 2: 1 pixel of class 3, predicted 2
    true = torch.full((2, 4, 4), 2)
    true[1] = 5
    true[1, 0, 0] = 3
    pred = true.clone()
    pred[0, 0, 0] = 7
    pred[1, 0, 0] = 2
    hist = confusion(snap(_render(pred), COLOURS), snap(_render(true), COLOURS), 12)
    assert hist.sum() == 32 and hist[2, 2] == 15 and hist[3, 2] == 1 and hist[2, 7] == 1
    out = label_scores(hist)
    assert out["label_acc"] == pytest.approx(30 / 32)
    assert out["class_acc"] == pytest.approx((15 / 16 + 0 + 1) / 3)  # classes 2, 3, 5 are in the truth


def test_jpeg_like_noise_snaps_back_to_its_class():
    idx = torch.randint(0, 12, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    clean = _render(idx)
    noisy = (clean + 0.03 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    assert torch.equal(snap(noisy, COLOURS), idx)


def test_palette_file_and_bad_palettes(tmp_path):
    good = tmp_path / "two.json"
    good.write_text(json.dumps({"classes": ["ink", "paper"], "colours": [[0, 0, 0], [255, 255, 255]]}))
    assert load_palette(str(good))["classes"] == ["ink", "paper"]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GankitError, match="'colours' list"):
        load_palette(str(tmp_path / "bad.json"))
    (tmp_path / "range.json").write_text(json.dumps({"colours": [[0, 0, 0], [300, 0, 0]]}))
    with pytest.raises(GankitError, match="0-255"):
        load_palette(str(tmp_path / "range.json"))
    with pytest.raises(GankitError, match="neither a shipped palette"):
        load_palette(str(tmp_path / "missing.json"))
    assert pick_palette("none", _render(torch.zeros(1, 4, 4, dtype=torch.long))) is None


def _pairs(root, split: str, n: int, rng):
    (root / split).mkdir(parents=True)
    for i in range(n):
        photo = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        label = COLOURS.to(torch.uint8).numpy()[rng.integers(0, 12, (4, 4)).repeat(4, 0).repeat(4, 1)]
        Image.fromarray(np.concatenate([photo, label], axis=1)).save(root / split / f"{i}.png")


def test_paired_loader_scores_on_test_when_there_is_no_val(tmp_path):
    rng = np.random.default_rng(0)
    _pairs(tmp_path, "train", 3, rng)
    _pairs(tmp_path, "test", 2, rng)
    data = load_data(DataConfig(spec=f"paired:{tmp_path}", size=16, augment=False), "unpaired")
    assert data.info.held_out_split == "test" and "held out: test/ (no val/)" in data.info.source
    assert data.held_out["a"].shape == (2, 3, 16, 16)
    _pairs(tmp_path, "val", 1, rng)
    data = load_data(DataConfig(spec=f"paired:{tmp_path}", size=16, augment=False), "unpaired")
    assert data.info.held_out_split == "val" and len(data.held_out["a"]) == 1


def test_data_palette_is_checked_at_load_time(tmp_path):
    rng = np.random.default_rng(0)
    _pairs(tmp_path, "train", 2, rng)
    with pytest.raises(GankitError, match="data.palette"):
        load_data(DataConfig(spec=f"paired:{tmp_path}", size=16, palette="nope.json"), "unpaired")
    data = load_data(DataConfig(spec=f"paired:{tmp_path}", size=16, palette="facades"), "unpaired")
    assert data.info.palette == "facades"


def test_label_confusion_baselines_on_a_constructed_matrix():
    """Two classes, G's colours swapped: plain accuracy 0.2, the best renaming recovers 0.8."""
    from conftest import benchmark_script
    lc = benchmark_script("label_confusion")
    hist = torch.tensor([[10, 50], [30, 10]])  # row = true, column = predicted
    out = lc.analyse(hist, ["a", "b"])
    assert abs(out["label_acc"] - 0.2) < 1e-9 and abs(out["best_renaming_label_acc"] - 0.8) < 1e-9
    assert abs(out["largest_class_everywhere"] - 0.6) < 1e-9
    assert abs(out["independent_same_shares"] - (0.6 * 0.4 + 0.4 * 0.6)) < 1e-9
    assert abs(out["classes"]["a"]["recall"] - 10 / 60) < 1e-9
