"""Every model in the registry, through the one interface (models/protocol.py).

The tests below the first block are parametrised over `gankit.models.MODELS`: each model,
in the tiny config `TINY[name]`, implements the whole protocol, trains one step of each of
its phases, resumes bit for bit, samples from a loaded run and evaluates. A model added to
MODELS without a TINY entry fails them all, so a sixth model cannot go untested.
Then the specific checks: the papers' architectures, k D steps, labels.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import shutil

import numpy as np
import pytest
import torch

from gankit import build_config, load_run, resume, train
from gankit.data import DataInfo, load_data
from gankit.errors import GankitError
from gankit.models import MODELS, GANModel, Phase
from gankit.runs import RunDir
from gankit.trainer import setup

from conftest import TINY as TINY_IMAGE, write_facades_pairs

# Tiny versions of each model: a step in milliseconds. The image GANs' entries live in
# conftest.py (other test files use them too). A new model needs an entry here.
TINY: dict[str, list[str]] = {
    **TINY_IMAGE,
    "cyclegan": ["model.ngf=4", "model.ndf=4", "model.n_blocks=1", "model.pool_size=3", "data.size=32",
                 "train.batch_size=1", "train.samples=12"],
    "seqgan": ["model.emb_dim=8", "model.hidden_dim=8", "model.rollouts=2", "model.d_emb_dim=8",
               "model.d_filter_sizes=[1,2,3]", "model.d_num_filters=[4,4,4]", "model.d_samples=32",
               "model.d_steps=1", "model.d_epochs=1", "model.eval_samples=64", "pretrain.g_epochs=1",
               "pretrain.d_rounds=1", "pretrain.d_epochs=1", "pretrain.d_samples=32", "data.max_len=6",
               "data.num_samples=64", "train.batch_size=8", "train.samples=4"],
}
# Settings every tiny run shares: one thread, quiet, a checkpoint every 2 steps (all kept).
COMMON = ["train.threads=1", "train.progress=false", "train.log_every=2", "train.sample_every=2",
          "train.checkpoint_every=2", "train.keep_checkpoints=10", "train.batch_size=16", "train.samples=16",
          "train.diag_samples=0", "train.classifier=none"]
RUN_STEPS = 4
"""global steps of each tiny run (phases included); resume restarts at step 2"""
SAMPLES_NEED_DATA = {"cyclegan"}
"""models that sample by translating held-out images, so a run loaded without data cannot"""

NAMES = list(MODELS)


# ------------------------------------------------------------------------- tiny data

def _write_paired(root):
    """pix2pix layout: train/ (6) and val/ (3) of 64x32 images, left = smooth photo-like A,
    right = a CMP-facades label map B (so the paired label metrics run too)."""
    return f"paired:{write_facades_pairs(root, {'train': 6, 'val': 3})}"


def _write_oracle(root, vocab=12, emb=4, hidden=6):
    """A random oracle LSTM in the shared data's npz format (data/oracle.py's array names)."""
    g = np.random.default_rng(1)
    shapes = {"g_embeddings": (vocab, emb), "Wo": (hidden, vocab), "bo": (vocab,)}
    for gate in ("i", "f", "og", "c"):
        shapes |= {f"W{gate}": (emb, hidden), f"U{gate}": (hidden, hidden), f"b{gate}": (hidden,)}
    root.mkdir(parents=True)
    np.savez(root / "oracle.npz", **{k: g.standard_normal(s).astype(np.float32) for k, s in shapes.items()})
    return f"oracle:{root / 'oracle.npz'}"


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """data.spec for each DATA_KIND: built-in digits, a tiny paired folder, a tiny oracle."""
    root = tmp_path_factory.mktemp("data")
    return {"image": "digits", "unpaired": _write_paired(root / "paired"), "text": _write_oracle(root / "oracle")}


def tiny_config(name, specs, *extra):
    if name not in TINY:
        pytest.fail(f"model '{name}' is in MODELS but has no tiny config: add TINY['{name}'] in "
                    "tests/test_models.py (overrides that make one step take milliseconds)")
    kind = MODELS[name].DATA_KIND
    if kind not in specs:
        pytest.fail(f"model '{name}' has DATA_KIND '{kind}', for which tests/test_models.py's `specs` "
                    "fixture has no tiny data set: add one")
    return build_config(name, overrides=[f"data.spec={specs[kind]}", *COMMON, *TINY[name], *extra])


@pytest.fixture(scope="module")
def runs(specs, tmp_path_factory):
    """trained(name): the directory of a straight tiny run of `name` whose phases together
    take RUN_STEPS steps (SeqGAN's pre-training phases count too), trained once."""
    done = {}

    def trained(name):
        if name not in done:
            cfg = tiny_config(name, specs, f"train.steps={RUN_STEPS}")
            before_main = setup(cfg).total - RUN_STEPS  # steps of the phases before the main one
            if before_main:
                cfg = tiny_config(name, specs, f"train.steps={RUN_STEPS - before_main}")
            done[name] = train(cfg, out=tmp_path_factory.mktemp(name) / "run")
        return done[name]
    return trained


def _floats(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()}


def assert_same(a, b, where="checkpoint"):
    """Nested dicts/lists of tensors and plain values equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# -------------------------------------------------------------- over the whole registry

def test_every_model_has_a_tiny_config():
    missing = sorted(set(MODELS) - set(TINY))
    assert not missing, f"models without a tiny config in tests/test_models.py's TINY: {missing}"
    assert set(TINY) <= set(MODELS), f"TINY entries for no model: {sorted(set(TINY) - set(MODELS))}"


PROTOCOL_ATTRS = {"Config", "DATA_KIND", "PAPER", "GENERATORS", "SAMPLE_LAYOUT"}
assert PROTOCOL_ATTRS == set(GANModel.__annotations__), "the protocol's class attributes changed: update the test"
PROTOCOL_METHODS = {k: v for k, v in vars(GANModel).items()
                    if (k == "__init__" or not k.startswith("_")) and (inspect.isfunction(v) or isinstance(v, staticmethod))}


@pytest.mark.parametrize("name", NAMES)
def test_implements_the_protocol(name):
    cls = MODELS[name]
    assert issubclass(cls, torch.nn.Module)
    assert dataclasses.is_dataclass(cls.Config) and isinstance(cls.Config, type)
    assert cls.DATA_KIND in ("image", "unpaired", "text")
    assert isinstance(cls.PAPER, str) and cls.PAPER and isinstance(cls.SAMPLE_LAYOUT, str) and cls.SAMPLE_LAYOUT
    assert isinstance(cls.GENERATORS, tuple) and cls.GENERATORS and all(isinstance(g, str) for g in cls.GENERATORS)
    assert set(PROTOCOL_METHODS) >= {"__init__", "configure_optimizers", "configure_schedulers", "phases",
                                     "fixed_inputs", "render", "sample", "evaluate", "report_figures"}
    for method, proto in PROTOCOL_METHODS.items():
        assert method in dir(cls), f"{name} lacks {method}"
        impl = inspect.getattr_static(cls, method)
        static = isinstance(proto, staticmethod)
        if static:
            assert isinstance(impl, staticmethod), f"{name}.{method} must be a staticmethod (called on the class)"
            proto, impl = proto.__func__, impl.__func__
        assert impl is not getattr(torch.nn.Module, method, None), f"{name} does not define {method}"
        params = [p for p in inspect.signature(proto).parameters if p != "self"]
        sig = inspect.signature(impl)
        self_ = [] if static else [None]
        try:  # the trainer calls positionally, users may call by keyword: both must bind
            sig.bind(*self_, *[None] * len(params))
            sig.bind(*self_, **{p: None for p in params})
        except TypeError as e:
            pytest.fail(f"{name}.{method}{sig} does not take the protocol's arguments {params}: {e}")


@pytest.mark.parametrize("name", NAMES)
def test_one_step_of_each_phase_is_finite_and_trains_every_network(name, specs):
    e = setup(tiny_config(name, specs, "train.steps=1"))
    assert e.phases and all(isinstance(p, Phase) and p.steps > 0 and p.batch_size > 0 for p in e.phases)
    generators = {g: getattr(e.model, g) for g in e.model.GENERATORS}
    assert all(isinstance(g, torch.nn.Module) for g in generators.values())
    moved: set[str] = set()
    step = 0
    for i, phase in enumerate(e.phases):
        if phase.start is not None:
            phase.start(e.optimizers)
        before = _floats(e.model)
        losses = e.step(phase, next(e.batches(i, 0)), step)
        assert losses, f"{phase.name}: no losses"
        for k, v in losses.items():
            assert isinstance(v, torch.Tensor) and not v.requires_grad and torch.isfinite(v).all(), (phase.name, k)
        after = e.model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert changed, f"{phase.name}: no parameter moved"
        moved |= changed
        step += phase.steps
    for g in generators:
        assert any(k.startswith(g + ".") for k in moved), f"{g} never moved"
    assert any(not k.startswith(tuple(g + "." for g in generators)) for k in moved), "no discriminator moved"


@pytest.mark.parametrize("name", NAMES)
def test_resume_from_a_mid_checkpoint_is_exact(name, runs, tmp_path):
    straight = runs(name)
    ckpts = straight / "checkpoints"
    final = torch.load(ckpts / f"step_{RUN_STEPS:07d}.pt", weights_only=True)
    assert final["step"] == RUN_STEPS
    info = DataInfo.from_dict(final["data_info"])
    assert info.to_dict() == final["data_info"] and (info.size or info.seq_len)

    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for p in (resumed / "checkpoints").glob("*.pt"):
        if p.name == "last.pt" or int(p.stem.split("_")[1]) > RUN_STEPS // 2:
            p.unlink()
    assert resume(resumed) == resumed
    assert {"step": RUN_STEPS // 2, "event": "resume"} in RunDir(resumed).metrics()
    again = torch.load(resumed / "checkpoints" / f"step_{RUN_STEPS:07d}.pt", weights_only=True)
    for key in ("step", "config", "data_info", "model", "optimizers", "schedulers", "ema", "fixed", "rng"):
        assert_same(final[key], again[key], key)


@pytest.mark.parametrize("name", NAMES)
def test_load_run_samples_and_renders(name, runs):
    run = load_run(runs(name), with_data=True)
    assert run.step == RUN_STEPS and run.data is not None
    info = run.data_info
    n = 3
    x = run.sample(n, seed=0)
    if run.model.DATA_KIND == "text":
        assert isinstance(x, list) and len(x) == n and all(isinstance(s, str) for s in x)
    else:
        assert x.shape == (n, info.channels, info.size, info.size)
        assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    assert_same(x, run.sample(n, seed=0), "sample(seed=0) twice")
    shown = run.model.render(run.model.fixed_inputs(8, torch.Generator().manual_seed(0), run.data))
    if isinstance(shown, tuple):
        images, nrow = shown
        assert images.shape[1:] == (info.channels, info.size, info.size) and nrow > 0
    else:
        assert shown and all(isinstance(s, str) for s in shown)

    bare = load_run(runs(name))  # sampling needs no data: the checkpoint's DataInfo builds the model
    if name in SAMPLES_NEED_DATA:
        with pytest.raises(GankitError, match="without data"):
            bare.sample(n)
    else:
        assert len(bare.sample(n)) == n


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_returns_finite_floats(name, runs):
    run = load_run(runs(name), with_data=True)
    metrics = run.model.evaluate(run.data)
    assert isinstance(metrics, dict)
    for k, v in metrics.items():
        assert isinstance(k, str) and isinstance(v, float) and math.isfinite(v), (k, v)
    if name in ("cyclegan", "seqgan"):  # paired metrics; NLL-oracle and NLL-test
        assert metrics


# ------------------------------------------------------------------ specific models

def _build(name, *extra):
    cfg = build_config(name, overrides=[*TINY[name], *extra])
    data = load_data(cfg.data, MODELS[name].DATA_KIND)
    return MODELS[name](cfg.model, data.info, cfg.train), data, cfg


def test_k_discriminator_steps():
    model, data, cfg = _build("gan", "model.d_steps=3", "train.batch_size=16")
    (phase,) = model.phases(cfg.train.steps, len(data))
    assert phase.batch_size == 48  # one gather of k batches: one chunk of reals per D update
    opts = model.configure_optimizers()
    calls = []

    def update(name, loss):
        calls.append(name)
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()
    model.train_step(next(data.batches(phase.batch_size, seed=0)), update, 0)
    assert calls == ["d", "d", "d", "g"]


def test_conditional_models_follow_the_label():
    model, _, _ = _build("cgan")
    torch.manual_seed(0)
    a = model.sample(4, label=3)
    torch.manual_seed(0)
    b = model.sample(4, label=7)
    assert not torch.allclose(a, b)
    dc, _, _ = _build("dcgan", "model.conditional=true")
    assert dc.sample(3, label=2).shape == (3, 1, 16, 16)


def test_dcgan_paper_architecture_and_init():
    cfg = build_config("dcgan", overrides=["model.channels=128", "data.size=64", "data.channels=3"])
    model = MODELS["dcgan"](cfg.model, DataInfo(channels=3, size=64), cfg.train)
    convt = [m for m in model.G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convt] == [1024, 512, 256, 128, 3]
    conv = [m for m in model.D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in conv] == [128, 256, 512, 1024, 1]
    # BatchNorm everywhere except G's output and D's input
    assert not isinstance(model.D.net[1], torch.nn.BatchNorm2d)
    assert isinstance(model.G.net[-1], torch.nn.Tanh)
    w = torch.cat([m.weight.flatten() for m in convt])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002


def test_cgan_reference_architecture():
    cfg = build_config("cgan")
    model = MODELS["cgan"](cfg.model, DataInfo(channels=1, size=32, num_classes=10), cfg.train)
    widths = [m.out_features for m in model.G.net if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 256, 512, 1024, 32 * 32]
    assert model.G.net[0].in_features == 110
    d_widths = [m.out_features for m in model.D.net if isinstance(m, torch.nn.Linear)]
    assert d_widths == [512, 512, 512, 1]
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.4 for m in model.D.net) == 2


def test_unconditional_model_rejects_label():
    model, _, _ = _build("gan")
    with pytest.raises(GankitError, match="not conditional"):
        model.sample(2, label=1)
