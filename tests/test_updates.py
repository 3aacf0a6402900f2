"""The image GANs' update orders (models/adversarial.adversarial_step) against hand-written
versions of the reference scripts they claim to compute, and the CPU dropout."""
import copy

import pytest
import torch

from gankit import build_config
from gankit.errors import GankitError
from gankit.layers import Dropout
from gankit.data import load_data
from gankit.distributed import Dist
from gankit.models import MODELS
from gankit.models.adversarial import d_real_fake, has_batchnorm
from gankit.trainer import Updater

from conftest import TINY


def _build(name, *extra):
    cfg = build_config(name, overrides=TINY[name] + list(extra))
    data = load_data(cfg.data, MODELS[name].DATA_KIND)
    return MODELS[name](cfg.model, data.info, cfg.train), data, cfg


def _update_fn(opts):
    """The trainer's own update (zero_grad -> backward -> step), single process, no clipping."""
    return Updater(opts, Dist())


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_simultaneous_is_the_pytorch_gan_script_order():
    # PyTorch-GAN's cgan.py: G's update first, then D on the same fakes, detached, so D's
    # gradient is taken at the (G, D) G's gradient saw.
    model, data, _ = _build("cgan", "model.updates=simultaneous", "model.dropout=0", "model.loss=lsgan")
    ref = copy.deepcopy(model)
    batch = next(data.batches(16, seed=0))
    torch.manual_seed(1)
    model.train_step(batch, _update_fn(model.configure_optimizers()))

    opts = ref.configure_optimizers()
    real, labels = batch["image"], batch["label"]
    torch.manual_seed(1)
    gen = ref.G(torch.randn(len(real), ref.cfg.z_dim), labels)
    opts["g"].zero_grad()
    ref.loss.g(ref.D(gen, labels)).backward()
    opts["g"].step()
    opts["d"].zero_grad()
    ref.loss.d(ref.D(real, labels), ref.D(gen.detach(), labels)).backward()
    opts["d"].step()
    _assert_same(_params(model), _params(ref))


def test_reuse_fakes_is_the_pytorch_dcgan_example_order():
    # D's update on real and fake.detach(), then G's through the updated D on the same fakes.
    model, data, _ = _build("gan", "model.reuse_fakes=true")
    ref = copy.deepcopy(model)
    batch = next(data.batches(16, seed=0))
    torch.manual_seed(2)
    model.train_step(batch, _update_fn(model.configure_optimizers()))

    opts = ref.configure_optimizers()
    real = batch["image"]
    torch.manual_seed(2)
    fake = ref.G(torch.randn(len(real), ref.cfg.z_dim))
    opts["d"].zero_grad()
    ref.loss.d(ref.D(real), ref.D(fake.detach())).backward()
    opts["d"].step()
    opts["g"].zero_grad()
    ref.loss.g(ref.D(fake)).backward()
    opts["g"].step()
    _assert_same(_params(model), _params(ref))


def test_default_alternating_draws_fresh_noise_for_g():
    model, data, _ = _build("gan")
    draws = []
    real_randn = torch.randn
    torch.randn = lambda *a, **k: (draws.append(a), real_randn(*a, **k))[1]
    try:
        model.train_step(next(data.batches(16, seed=0)), _update_fn(model.configure_optimizers()))
    finally:
        torch.randn = real_randn
    assert len(draws) == 2  # one batch of noise for D's update, a new one for G's


def test_one_discriminator_pass_over_real_and_fake_equals_two():
    cgan, data, _ = _build("cgan")
    cgan.eval()  # no dropout noise, so the two ways must agree exactly
    batch = next(data.batches(8, seed=0))
    fake = cgan.sample(8)
    joint = d_real_fake(cgan.D, batch["image"], fake, batch["label"])
    apart = cgan.D(batch["image"], batch["label"]), cgan.D(fake, batch["label"])
    for j, a in zip(joint, apart):
        torch.testing.assert_close(j, a)
    # BatchNorm Ds keep reals and fakes in separate batches (their statistics would mix)
    dcgan, _, _ = _build("dcgan")
    assert has_batchnorm(dcgan.D) and not has_batchnorm(cgan.D)


@pytest.mark.parametrize("sets, match", [
    (["model.updates=simultaneous", "model.d_steps=2"], "d_steps=1"),
    (["model.updates=sideways"], "alternating, simultaneous"),
])
def test_bad_update_order_is_a_clear_error(sets, match):
    with pytest.raises(GankitError, match=match):
        build_config("cgan", overrides=sets)


def test_cpu_dropout_mask():
    torch.manual_seed(0)
    drop = Dropout(0.4)
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.6) < 0.01
    assert torch.allclose(y[kept], torch.tensor(1 / 0.6))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # gradient flows through kept units only
    assert Dropout(0.4)(torch.ones(3, 7, dtype=torch.bfloat16)).dtype == torch.bfloat16
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
