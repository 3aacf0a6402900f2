"""Per-model tests over the image-model registry: shapes, one CPU train step."""
import pytest
import torch

from gankit.config import build_config
from gankit.data import load_data
from gankit.models import MODELS
from gankit.distributed import Dist
from gankit.trainer import Updater

from conftest import TINY


def _build(name, *extra):
    cfg = build_config(name, overrides=TINY[name] + list(extra))
    data = load_data(cfg.data, MODELS[name].DATA_KIND)
    return MODELS[name](cfg.model, data, cfg.train), data, cfg


def _update_fn(opts):
    """The trainer's own update (zero_grad -> backward -> step), single process, no clipping."""
    return Updater(opts, Dist())


@pytest.mark.parametrize("name", list(TINY))
def test_sample_shapes(name):
    model, data, cfg = _build(name)
    x = model.sample(5)
    assert x.shape == (5, data.info["channels"], cfg.data.size, cfg.data.size)
    assert x.min() >= -1 and x.max() <= 1
    images, nrow = model.render(model.fixed_inputs(16, torch.Generator().manual_seed(0)))
    assert images.shape[1:] == x.shape[1:] and nrow > 0


@pytest.mark.parametrize("name", list(TINY))
def test_one_train_step_is_finite_and_moves_parameters(name):
    model, data, cfg = _build(name)
    opts = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    batch = next(data.batches(16 * getattr(model, "reals_per_step", 1), seed=0))
    losses = model.train_step(batch, _update_fn(opts))
    assert {"loss_d", "loss_g"} <= set(losses)
    assert all(torch.isfinite(v) and not v.requires_grad for v in losses.values())
    after = model.state_dict()
    for net in ("G.", "D."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net)), f"{net} did not move"


def test_k_discriminator_steps():
    model, data, _ = _build("gan", "model.d_steps=3")
    assert model.reals_per_step == 3
    calls = []
    opts = model.configure_optimizers()
    update = _update_fn(opts)
    model.train_step(next(data.batches(48, seed=0)), lambda n, l: (calls.append(n), update(n, l)))
    assert calls == ["d", "d", "d", "g"]


def test_conditional_models_follow_the_label():
    model, _, _ = _build("cgan")
    torch.manual_seed(0)
    a = model.sample(4, label=3)
    torch.manual_seed(0)
    b = model.sample(4, label=7)
    assert not torch.allclose(a, b)
    dc, data, _ = _build("dcgan", "model.conditional=true")
    assert dc.sample(3, label=2).shape == (3, 1, 16, 16)


def test_dcgan_paper_architecture_and_init():
    cfg = build_config("dcgan", overrides=["model.channels=128", "data.size=64", "data.channels=3"])
    data = load_data(cfg.data)
    model = MODELS["dcgan"](cfg.model, data, cfg.train)
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
    data = load_data(cfg.data)
    model = MODELS["cgan"](cfg.model, data, cfg.train)
    widths = [m.out_features for m in model.G.net if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 256, 512, 1024, 32 * 32]
    assert model.G.net[0].in_features == 110
    d_widths = [m.out_features for m in model.D.net if isinstance(m, torch.nn.Linear)]
    assert d_widths == [512, 512, 512, 1]
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.4 for m in model.D.net) == 2


def test_unconditional_model_rejects_label():
    from gankit.errors import GankitError
    model, _, _ = _build("gan")
    with pytest.raises(GankitError, match="not conditional"):
        model.sample(2, label=1)
