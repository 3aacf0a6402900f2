"""Metrics against closed forms and torchmetrics; the classifier file; `gankit eval` end to end."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from gankit.errors import GankitError
from gankit.metrics import METRICS, accuracy, fid, inception_score, kid, precision_recall


def test_registry_names_every_metric():
    assert set(METRICS) == {"fid", "kid", "precision_recall", "is", "accuracy"}


def test_fid_of_identical_sets_is_zero():
    x = torch.randn(500, 16)
    assert abs(fid(x, x.clone())["fid"]) < 1e-6


def test_fid_of_shifted_gaussians_matches_closed_form():
    # N(0, I) vs N(mu, s^2 I) in d dims: FID = |mu|^2 + d (1 - s)^2.
    g = torch.Generator().manual_seed(0)
    d, n, s = 8, 20000, 1.5
    mu = torch.full((d,), 0.5)
    a = torch.randn(n, d, generator=g)
    b = mu + s * torch.randn(n, d, generator=g)
    expected = float(mu.square().sum()) + d * (1 - s) ** 2
    assert fid(a, b)["fid"] == pytest.approx(expected, rel=0.03)


def test_fid_equals_torchmetrics_frechet_inception_distance_with_custom_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):  # "images" (N, 1, 2, 4) -> their 8 pixels as features
        num_features = 8

        def forward(self, x):
            return x.flatten(1)

    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(300, 1, 2, 4, generator=g), torch.rand(300, 1, 2, 4, generator=g) * 0.8 + 0.1
    tm = FrechetInceptionDistance(feature=Identity(), normalize=True)
    tm.update(real, real=True)
    tm.update(fake, real=False)
    assert fid(real.flatten(1), fake.flatten(1))["fid"] == pytest.approx(float(tm.compute()), rel=1e-4, abs=1e-6)


def test_kid_is_about_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same = kid(a, b, subsets=20, subset_size=300)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-3  # unbiased: centred on 0
    far = kid(a, b + 1.0, subsets=20, subset_size=300)
    assert far["kid"] > 10 * max(same["kid_std"], 1e-4)


def test_precision_recall_identical_and_disjoint():
    x = torch.randn(400, 8)
    pr = precision_recall(x, x.clone())
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0
    far = precision_recall(x, x + 100.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


def test_precision_recall_sees_mode_collapse():
    # fakes on half of the real support: precise but only half the recall
    real = torch.cat([torch.randn(500, 2) - 10, torch.randn(500, 2) + 10])
    fake = torch.randn(500, 2) + 10
    pr = precision_recall(real, fake)
    assert pr["precision"] > 0.95 and 0.4 < pr["recall"] < 0.6


def test_inception_score_bounds():
    k = 10
    confident = torch.eye(k).repeat(50, 1) * 50  # sharp and uniformly spread over classes
    assert inception_score(confident)["is"] == pytest.approx(k, rel=1e-3)
    assert inception_score(torch.zeros(500, k))["is"] == pytest.approx(1.0)


def test_generated_samples_are_shuffled_across_labels():
    # per-label generation must not leave one class per Inception-Score split
    from gankit.evaluate import _generate

    class Run:
        class model:  # noqa: N801
            num_classes = 10

        @staticmethod
        def sample(n, label=None, seed=None):
            return torch.full((n, 1, 2, 2), float(label))

    images, labels = _generate(Run.sample, 10, 200, 50, seed=0)
    assert torch.equal(images[:, 0, 0, 0].long(), labels)
    assert len(labels[:20].unique()) > 5 and torch.bincount(labels).tolist() == [20] * 10


def test_accuracy_overall_and_per_class():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 2, 0]), 3).float()
    out = accuracy(logits, labels, 3)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["accuracy_class_0"] == 0.5 and out["accuracy_class_1"] == 1.0 and out["accuracy_class_2"] == 0.5


def test_metrics_reject_mismatched_features():
    with pytest.raises(GankitError):
        fid(torch.randn(10, 4), torch.randn(10, 5))


def test_fit_classifier_saves_weights_only_file(tmp_path):
    from gankit.metrics.classifier import fit_classifier
    from gankit.metrics.features import ClassifierFeatures
    out = tmp_path / "clf.pt"
    meta = fit_classifier("digits", out, epochs=1, size=16, seed=0, device="cpu")
    assert 0.0 <= meta["accuracy"] <= 1.0
    blob = torch.load(out, map_location="cpu", weights_only=True)
    assert blob["meta"]["data"] == "digits" and blob["meta"]["arch"]["size"] == 16
    assert len(blob["meta"]["weights_sha256"]) == 64
    net = ClassifierFeatures(out)
    feats, logits = net(torch.rand(5, 1, 28, 28) * 2 - 1)  # any size: resized to the classifier's
    assert feats.shape == (5, 128) and logits.shape == (5, 10)


def test_eval_needs_features_for_non_builtin_data():
    from gankit.evaluate import feature_network
    with pytest.raises(GankitError, match="fit-classifier"):
        feature_network("mnist:/somewhere", None, None)


def test_inception_path_is_optional(tmp_path):
    from gankit.metrics.features import InceptionFeatures
    with pytest.raises(GankitError, match="not found"):
        InceptionFeatures(tmp_path / "missing.pth")


@pytest.mark.slow
def test_gankit_eval_end_to_end_on_a_tiny_cgan(tmp_path):
    import os
    env = {**os.environ, "GANKIT_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "gankit"]
    subprocess.run(cli + ["train", "cgan", "--data", "digits", "--steps", "30", "--out", str(run), "--set",
                          "model.g_hidden=[16,32]", "model.d_hidden=[32,32]", "data.size=8", "train.batch_size=16",
                          "train.progress=false", "train.threads=1", "train.sample_every=30"],
                   check=True, env=env, capture_output=True)
    clf = tmp_path / "clf.pt"
    subprocess.run(cli + ["fit-classifier", "--data", "digits", "--out", str(clf), "--epochs", "1", "--size", "16"],
                   check=True, env=env, capture_output=True)
    done = subprocess.run(cli + ["eval", str(run), "--features", str(clf), "--n", "100", "--batch-size", "50",
                                 "--device", "cpu"], check=True, env=env, capture_output=True, text=True)
    printed = json.loads(done.stdout)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    record = rows[-1]
    assert record["eval"] is True and record == printed
    for key in ("fid", "kid", "precision", "recall", "is", "accuracy", "accuracy_class_9"):
        assert isinstance(record[key], float) and math.isfinite(record[key]), key
    protocol = record["protocol"]
    assert protocol["feature_sha256"] == torch.load(clf, weights_only=True)["meta"]["weights_sha256"]
    assert protocol["n_fake"] == 100 and protocol["n_real"] == 1797 and protocol["reference"] == "train"
    assert protocol["seed"] == 0 and protocol["per_label"] is True
    assert "protocol" in (run / "report.html").read_text()
    assert any((tmp_path / "cache" / "reference").glob("*.pt"))  # reference statistics cached


def test_quality_benchmark_skips_without_shared_data(tmp_path):
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
    done = subprocess.run([sys.executable, str(script), "--data-dir", str(tmp_path / "absent")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("skipped")
