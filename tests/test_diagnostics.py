"""Diagnostics: what the models and the trainer log, the hint rules (each on a run or records
made to show it, and none on a healthy run), and the report's panel."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import QUIET, TINY

from gankit import build_config, train
from gankit.cli import main as cli
from gankit.data import load_data
from gankit.diagnostics import hints
from gankit.losses import LOSSES, d_stats
from gankit.metrics.diagnostics import class_coverage, image_diagnostics, memorisation, nearest_distance
from gankit.runs import RunDir
from gankit.trainer import Updater


def codes(records, loss="bce"):
    return [h.code for h in hints(records, loss)]


def healthy_records(n=40):
    """A run that goes the way a GAN should: D ahead but not certain, all classes, no copies."""
    rows = [{"step": 50 * (i + 1), "d_real": 0.7, "d_fake": 0.3, "d_fake_rejected": 0.02,
             "grad_norm_d": 5.0, "grad_norm_g": 3.0} for i in range(n)]
    return rows + [{"step": 50 * n, "eval": True, "class_hist": [0.1] * 10, "classes_covered": 10, "num_classes": 10,
                    "memo_nn_fake": 0.22, "memo_nn_real": 0.18, "memo_close": 0.0, "distinct_seqs": 0.98}]


# ---------------------------------------------------------------- the rules, on records

def test_a_healthy_run_shows_no_hint():
    assert codes(healthy_records()) == []
    assert codes(healthy_records(), "hinge") == []


def test_d_wins_needs_many_intervals_in_a_row_and_names_its_numbers():
    rows = healthy_records(40)
    for r in rows[10:14]:  # 4 intervals: a blip, not "many"
        r.update(d_fake=0.002, d_fake_rejected=1.0)
    assert "d_wins" not in codes(rows)
    for r in rows[20:32]:
        r.update(d_fake=0.002, d_real=0.99, d_fake_rejected=1.0)
    (h,) = [h for h in hints(rows, "bce") if h.code == "d_wins"]
    assert "12 of 40" in h.text and "steps 1050-1600" in h.text and "train.lr_d" in h.text
    assert "0.002" in h.text and "0.99" in h.text


def test_d_wins_on_hinge_scores_reads_the_rejected_share():
    rows = healthy_records(20)
    for r in rows:
        r.update(d_fake=-0.5)  # a raw hinge score: below 0.01 says nothing by itself
    assert codes(rows, "hinge") == []
    for r in rows[5:15]:
        r.update(d_fake=-3.0, d_fake_rejected=1.0)
    assert codes(rows, "hinge") == ["d_wins"]


def test_mode_collapse_below_eight_of_ten_classes():
    rows = healthy_records()
    rows[-1].update(class_hist=[0.0] * 7 + [0.5, 0.3, 0.2], classes_covered=3)
    (h,) = hints(rows)
    assert h.code == "mode_collapse" and "3 of 10" in h.text and "class 7" in h.text and "50%" in h.text
    rows[-1].update(classes_covered=8)
    assert codes(rows) == []


def test_memorisation_when_samples_sit_closer_to_training_images_than_held_out_ones():
    rows = healthy_records()
    rows[-1].update(memo_nn_fake=0.01, memo_nn_real=0.18, memo_close=0.9)
    (h,) = hints(rows)
    assert h.code == "memorisation" and "90%" in h.text and "0.01 vs 0.18" in h.text


def test_text_collapse_below_half_distinct():
    rows = [{"step": 1, "eval": True, "distinct_seqs": 0.97}, {"step": 9, "eval": True, "distinct_seqs": 0.31}]
    (h,) = hints(rows, None)
    assert h.code == "text_collapse" and "31%" in h.text and "97%" in h.text


# ---------------------------------------------------------------- the measurements

def test_d_stats_probabilities_for_bce_raw_scores_for_hinge():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([-4.0, 0.0])
    s = d_stats(LOSSES["bce"], real, fake)
    assert s["d_real"].item() == pytest.approx(torch.sigmoid(real).mean().item())
    assert s["d_fake_rejected"].item() == 0.5  # sigmoid(-4) = 0.018 < 0.05; sigmoid(0) = 0.5
    h = d_stats(LOSSES["hinge"], real, fake)
    assert h["d_real"].item() == 3.0 and h["d_fake"].item() == -2.0 and h["d_fake_rejected"].item() == 0.5


def test_updater_measures_gradient_norms_only_when_asked():
    net = torch.nn.Linear(3, 1)
    from gankit.distributed import Dist
    up = Updater({"d": torch.optim.SGD(net.parameters(), lr=0.0)}, Dist())
    up("d", net(torch.ones(2, 3)).sum())
    assert up.norms == {}
    up.measure = True
    up("d", net(torch.ones(2, 3)).sum())
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert up.norms["grad_norm_d"].item() == pytest.approx(grads.norm().item())


def test_memorisation_of_a_generator_that_outputs_one_training_image():
    data = load_data(build_config("gan", overrides=["data.size=8", "data.holdout=200"]).data, "image")
    train_images = data.tensors["image"]
    copies = train_images[3:4].expand(100, -1, -1, -1)
    m = memorisation(copies, train_images, data.held_out["image"])
    assert m["memo_nn_fake"] < 1e-3 and m["memo_close"] == 1.0 and m["memo_reference"] == "held_out"
    fresh = memorisation(data.held_out["image"][:100], train_images, data.held_out["image"][100:])
    assert fresh["memo_close"] < 0.25 and fresh["memo_nn_fake"] > 0.05
    # without a held-out split: training images with themselves left out (never distance 0 to itself)
    loo = memorisation(copies, train_images)
    assert loo["memo_reference"] == "train_leave_one_out" and loo["memo_nn_real"] > 0.05
    assert nearest_distance(train_images[:5], train_images, skip_self=True).min() > 0


def test_one_image_generator_shows_mode_collapse_and_memorisation():
    data = load_data(build_config("gan", overrides=["data.size=8"]).data, "image")
    images, labels = data.tensors["image"], data.tensors["label"]

    class OneImage:
        def sample(self, n, label=None):
            return images[7:8].expand(n, -1, -1, -1)

    class NearestLabel:  # a stand-in domain classifier: the label of the nearest training image
        num_classes = 10

        def __call__(self, x):
            d = torch.cdist(x.flatten(1), images.flatten(1))
            return None, torch.nn.functional.one_hot(labels[d.argmin(1)], 10).float()

    record = {"step": 100, "eval": True, **image_diagnostics(OneImage(), data, 300, NearestLabel())}
    assert record["classes_covered"] == 1 and record["class_hist"][int(labels[7])] == 1.0
    assert sorted(codes(healthy_records()[:-1] + [record])) == ["memorisation", "mode_collapse"]
    assert class_coverage(torch.eye(10).repeat(5, 1), 10)["classes_covered"] == 10


# ---------------------------------------------------------------- real runs

def tiny_gan(tmp_path, name, extra=(), steps=60):
    cfg = build_config("gan", overrides=[*TINY["gan"], *QUIET, "train.classifier=none", "train.diag_samples=200",
                                         f"train.steps={steps}", *extra])
    return train(cfg, out=tmp_path / name)


def test_frozen_generator_run_shows_d_wins_in_log_report_and_stderr(tmp_path, capsys):
    run = tiny_gan(tmp_path, "frozen", ["train.lr=1e-12", "train.lr_d=0.01"], steps=150)  # G frozen; D learns
    rows = RunDir(run).metrics()
    train_rows = [r for r in rows if not r.get("eval")]
    assert all(r["grad_norm_g"] > 0 and r["grad_norm_d"] > 0 for r in train_rows)
    assert train_rows[-1]["d_fake"] < 0.01 < train_rows[0]["d_fake"]
    assert "d_wins" in codes(rows)
    err = capsys.readouterr().err
    assert err.count("hint: D wins") == 1  # printed once, not every interval
    html = (run / "report.html").read_text()
    assert "<h2>Diagnostics</h2>" in html and "D wins" in html and (run / "figures" / "diagnostics.png").is_file()


def test_healthy_tiny_run_logs_every_diagnostic_and_shows_no_hint(tmp_path, capsys):
    run = tiny_gan(tmp_path, "healthy", ["train.eval_every=30"])
    rows = RunDir(run).metrics()
    for key in ("d_real", "d_fake", "d_fake_rejected", "grad_norm_d", "grad_norm_g"):
        assert all(0 <= r[key] < float("inf") for r in rows if not r.get("eval")), key
    evals = [r for r in rows if r.get("eval")]
    assert [r["step"] for r in evals] == [30, 60] and all("memo_close" in r for r in evals)
    assert hints(rows, "bce") == []
    err = capsys.readouterr().err
    assert not any(f"hint: {what}" in err for what in ("D wins", "mode collapse", "memorisation", "collapse"))
    assert "No diagnostics hint fired" in (run / "report.html").read_text()


def _oracle(tmp_path):
    g = np.random.default_rng(1)
    V, E, H = 12, 4, 6
    shapes = {"g_embeddings": (V, E), "Wo": (H, V), "bo": (V,)}
    for gate in ("i", "f", "og", "c"):
        shapes |= {f"W{gate}": (E, H), f"U{gate}": (H, H), f"b{gate}": (H,)}
    path = tmp_path / "oracle.npz"
    np.savez(path, **{k: g.standard_normal(s).astype(np.float32) for k, s in shapes.items()})
    return path


def test_seqgan_logs_reward_per_position_and_diversity_and_draws_the_heatmap(tmp_path):
    T = 6
    tiny = ["model.emb_dim=8", "model.hidden_dim=8", "model.rollouts=2", "model.d_emb_dim=8",
            "model.d_filter_sizes=[1,2,3]", "model.d_num_filters=[4,4,4]", "model.d_samples=32", "model.d_steps=1",
            "model.d_epochs=1", "model.eval_samples=64", "model.bleu_samples=40", "pretrain.g_epochs=1",
            "pretrain.d_rounds=1", "pretrain.d_epochs=1", "pretrain.d_samples=32", f"data.max_len={T}",
            "data.num_samples=64", "train.batch_size=8", "train.log_every=1", "train.eval_every=2"]
    run = tmp_path / "sg"
    assert cli(["train", "seqgan", "--data", f"oracle:{_oracle(tmp_path)}", "--out", str(run), "--steps", "3",
                "--no-progress", "--set", *tiny]) == 0
    rows = RunDir(run).metrics()
    adv = [r for r in rows if r.get("phase") == "adversarial"]
    assert len(adv) == 3 and all(len(r["reward_pos"]) == T and 0 <= min(r["reward_pos"]) for r in adv)
    evals = [r for r in rows if r.get("eval")]
    assert all(0 < r["distinct_seqs"] <= 1 and "self_bleu3" in r and "distinct2" in r for r in evals)
    assert (run / "figures" / "diagnostics.png").is_file()
    assert "reward" in (run / "report.html").read_text()
    from gankit.diagnostics_panel import _panels
    titles = [title for title, _ in _panels(rows, None)]
    assert "SeqGAN D accuracy, before its round's training" in titles  # issue 17 diagnostics
    assert any(t.startswith("SeqGAN reward variance") for t in titles)
    from gankit.diagnostics_panel import _panels
    titles = [title for title, _ in _panels(rows, None)]
    assert "SeqGAN D accuracy, before its round's training" in titles  # issue 17 diagnostics
    assert any(t.startswith("SeqGAN reward variance") for t in titles)


def test_a_classifier_file_gives_class_coverage_over_training(tmp_path):
    from gankit.metrics.classifier import fit_classifier
    clf = tmp_path / "clf.pt"
    fit_classifier("digits", clf, epochs=1, size=8)
    run = tiny_gan(tmp_path, "clf", [f"train.classifier={clf}", "train.eval_every=10"], steps=20)
    evals = [r for r in RunDir(run).metrics() if r.get("eval")]
    assert [r["step"] for r in evals] == [10, 20]
    assert all(r["num_classes"] == 10 and 1 <= r["classes_covered"] <= 10 and
               sum(r["class_hist"]) == pytest.approx(1, abs=1e-3) for r in evals)


def test_gankit_eval_adds_coverage_and_memorisation(tmp_path, monkeypatch):
    from gankit.metrics.classifier import fit_classifier
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    clf = tmp_path / "clf.pt"
    fit_classifier("digits", clf, epochs=1, size=8)
    run = tiny_gan(tmp_path, "eval", steps=4)
    assert cli(["eval", str(run), "--features", str(clf), "--n", "50"]) == 0
    last = RunDir(run).metrics()[-1]
    assert "fid" in last and last["num_classes"] == 10 and 0 <= last["memo_close"] <= 1
    assert "Diagnostics" in (run / "report.html").read_text()


def test_cyclegan_step_reports_d_outputs_on_its_patches():
    from gankit.data import DataInfo
    from gankit.distributed import Dist
    from gankit.models import MODELS
    cfg = build_config("cyclegan", overrides=["model.ngf=4", "model.ndf=4", "model.n_blocks=1", "model.pool_size=3",
                                              "data.size=32", "train.batch_size=1"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    model = MODELS["cyclegan"](cfg.model, DataInfo(channels=3, size=32, source="test"), cfg.train)
    update = Updater(model.configure_optimizers(), Dist())
    update.measure = True
    out = model.train_step({"a": x[:1], "b": x[1:]}, update)
    assert {"d_real", "d_fake", "d_fake_rejected"} <= set(out) and 0 <= out["d_fake_rejected"].item() <= 1
    assert set(update.norms) == {"grad_norm_g", "grad_norm_d"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are a CUDA notion")
@pytest.mark.parametrize("measure", [False, True])
def test_diagnostics_add_no_host_sync_to_a_cuda_step(measure):
    from gankit.distributed import Dist
    from gankit.trainer import build_model
    cfg = build_config("cgan", overrides=[*TINY["cgan"], "train.device=cuda"])
    model, data = build_model(cfg, torch.device("cuda"))
    update = Updater(model.configure_optimizers(), Dist())
    batch = next(data.batches(cfg.train.batch_size, 0))
    model.train_step(batch, update)  # warm-up: lazy CUDA initialisation may sync once
    update.measure = measure
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = model.train_step(batch, update)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert "d_fake" in out and ("grad_norm_g" in update.norms) == measure
