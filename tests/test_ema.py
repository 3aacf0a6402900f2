"""The EMA of the generators: warm-up formula, BatchNorm statistics, every model, resume."""
from __future__ import annotations

import torch
from torch import nn

from gankit import build_config, load_run, train
from gankit.ema import EMA
from gankit.runs import load_checkpoint

from conftest import QUIET, TINY


class _Toy(nn.Module):
    GENERATORS = ("G",)

    def __init__(self):
        super().__init__()
        self.G = nn.Linear(3, 2)


def test_warmup_decay_is_the_formula():
    ema = EMA(_Toy(), 0.999)
    assert ema.decay_at(0) == 0.1
    assert abs(ema.decay_at(100) - 101 / 110) < 1e-12
    assert ema.decay_at(10 ** 6) == 0.999


def test_weights_after_n_steps_equal_the_recurrence():
    model = _Toy()
    ema = EMA(model, 0.99)
    expected = [p.detach().clone() for p in model.G.parameters()]
    for step in range(50):
        with torch.no_grad():
            for p in model.G.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model, step)
        d = min(0.99, (1 + step) / (10 + step))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, model.G.parameters())]
    for got, want in zip(ema.modules["G"].parameters(), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_batchnorm_statistics_are_recomputed_for_the_average():
    """After the average moved away from G, its eval-mode BatchNorm normalises its own
    activations (mean ~0, var ~1), which G's copied statistics would not."""
    cfg = build_config("cgan", overrides=TINY["cgan"] + QUIET + ["train.ema=0.5"])
    from gankit.trainer import build_model
    model, _ = build_model(cfg, torch.device("cpu"))
    ema = EMA(model, 0.5)
    with torch.no_grad():  # move the average far from G, whose statistics are fresh-init
        for p in ema.modules["G"].parameters():
            p.mul_(3.0).add_(0.5)
    bn = next(m for m in ema.modules["G"].modules() if isinstance(m, nn.BatchNorm1d))
    seen = []
    handle = bn.register_forward_hook(lambda m, inp, out: seen.append(
        (inp[0] - m.running_mean) / torch.sqrt(m.running_var + m.eps)))
    with torch.no_grad(), ema.swapped_in(model):
        seen.clear()
        model.G.eval()
        model.sample(2000)
    handle.remove()
    normed = seen[-1]
    assert normed.mean(0).abs().mean() < 0.15
    assert (normed.var(0).mean() - 1).abs() < 0.2
    assert model.G is not ema.modules["G"]  # swapped back


def test_every_generator_of_cyclegan_is_averaged(tmp_path):
    cfg = build_config("cyclegan", overrides=QUIET + [
        "model.ngf=4", "model.ndf=4", "model.n_blocks=1", "data.size=32", "train.steps=4",
        "train.batch_size=1", "train.samples=6", "train.ema=0.9"])
    out = train(cfg, out=tmp_path / "cg")
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert set(state["ema"]) == {"G_AB", "G_BA"}
    ema_run, raw_run = load_run(out), load_run(out, ema=False)
    for name in ("G_AB", "G_BA"):
        ema_w = next(getattr(ema_run.model, name).parameters())
        raw_w = next(getattr(raw_run.model, name).parameters())
        assert not torch.equal(ema_w, raw_w)


def test_old_checkpoints_with_a_single_g_state_still_load():
    model = _Toy()
    ema = EMA(model, 0.9)
    legacy = {k: v + 1 for k, v in model.G.state_dict().items()}
    ema.load_state_dict(legacy)
    torch.testing.assert_close(ema.modules["G"].weight, model.G.weight + 1)


def test_resume_with_ema_is_exact(tmp_path):
    base = TINY["dcgan"] + QUIET + ["train.ema=0.99"]
    straight = train(build_config("dcgan", overrides=base + ["train.steps=8"]), out=tmp_path / "a")
    half = train(build_config("dcgan", overrides=base + ["train.steps=4"]), out=tmp_path / "b")
    cfg = build_config("dcgan", overrides=base + ["train.steps=8"])
    from gankit.trainer import train as train_
    train_(cfg, resume=half)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["ema"]["G"]
    b = load_checkpoint(half / "checkpoints" / "last.pt")["ema"]["G"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_quick_start_samples_differ_by_class_at_step_500(tmp_path):
    """The quick start's own config: 500 steps with the EMA already give samples that a
    nearest-class-mean classifier of the real digits sorts into the asked class (the
    fixed-decay EMA gave the same blob for every label at 1,500 steps)."""
    from gankit.data import load_data
    cfg = build_config("cgan", overrides=["train.steps=500", "train.progress=false",
                                          "train.sample_every=500", "train.checkpoint_every=500"])
    real = load_data(cfg.data, "image")
    x, y = real.tensors["image"].flatten(1), real.tensors["label"]
    centroids = torch.stack([x[y == k].mean(0) for k in range(10)])
    assert (torch.cdist(x, centroids).argmin(1) == y).float().mean() > 0.8  # the yardstick works
    run = load_run(train(cfg, out=tmp_path / "qs"))
    fake = torch.cat([run.sample(20, label=k, seed=k) for k in range(10)]).flatten(1)
    asked = torch.arange(10).repeat_interleave(20)
    accuracy = (torch.cdist(fake, centroids).argmin(1) == asked).float().mean()
    assert accuracy > 0.2, accuracy  # twice chance (0.1); the raw G at step 500 scores about chance


def test_eval_judges_the_average_or_with_raw_gs_own_weights(tmp_path, monkeypatch):
    from gankit.evaluate import evaluate_run
    from gankit.metrics.classifier import fit_classifier
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    run = train(build_config("dcgan", overrides=TINY["dcgan"] + QUIET + ["train.ema=0.9", "train.steps=8"]),
                out=tmp_path / "run")
    clf = tmp_path / "clf.pt"
    fit_classifier("digits", clf, epochs=1, size=16, device="cpu")
    averaged, raw = (evaluate_run(run, features=str(clf), n=64, batch_size=32, device="cpu", raw=r)
                     for r in (False, True))
    assert averaged["protocol"]["generator"] == "ema" and raw["protocol"]["generator"] == "raw"
    assert averaged["protocol"]["checkpoint_step"] == raw["protocol"]["checkpoint_step"] == 8
    assert averaged["fid"] != raw["fid"]  # two generators: the average and G itself
    again = evaluate_run(run, features=str(clf), n=64, batch_size=32, device="cpu", raw=True)
    assert again["fid"] == raw["fid"]  # the same weights and seed give the same record
