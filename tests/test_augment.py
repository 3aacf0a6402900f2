"""The small-data options of the image GANs: DiffAugment, spectral norm in D, R1, TTUR."""
import pytest
import torch
from torch import nn

from gankit import build_config, train
from gankit.distributed import Dist
from gankit.errors import GankitError
from gankit.losses import get_loss
from gankit.models.augment import DiffAugment, POLICIES, cutout, r1_penalty, translation
from gankit.models.adversarial import adversarial_step, d_loss
from gankit.runs import RunDir, load_checkpoint
from gankit.trainer import Updater, build_model

from conftest import QUIET, TINY

OPTIONS = {"diffaugment": ["model.diffaugment=color,translation,cutout"],
           "spectral_norm": ["model.spectral_norm=true"],
           "r1": ["model.r1_gamma=10"],
           "ttur": ["train.lr=1e-4", "train.lr_d=4e-4"]}


@pytest.mark.parametrize("policy", [*POLICIES, "color,translation,cutout"])
def test_diffaugment_keeps_shape_and_is_differentiable(policy):
    x = torch.randn(6, 3, 16, 16, requires_grad=True)
    y = DiffAugment(policy)(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_empty_policy_is_off_and_unknown_policy_is_an_error():
    x = torch.randn(2, 3, 8, 8)
    assert not DiffAugment("") and DiffAugment("")(x) is x
    with pytest.raises(GankitError, match="unknown policy 'flip'"):
        build_config("dcgan", overrides=["model.diffaugment=color,flip"])


def test_translation_shifts_whole_images_and_fills_zeros():
    x = torch.arange(1, 1 + 2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    y = translation(x)
    for a, b in zip(x[:, 0], y[:, 0]):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(b, _shifted(a, dy, dx))]
        assert found, "each image must be one shift of itself with zeros filled in"


def _shifted(a, dy, dx):
    H, W = a.shape
    out = torch.zeros_like(a)
    src = a[max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)]
    out[max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)] = src
    return out


def test_cutout_zeros_at_most_a_quarter_in_one_square():
    torch.manual_seed(1)
    y = cutout(torch.ones(32, 3, 16, 16))
    zeros = (y[:, 0] == 0).float().flatten(1).sum(1)
    assert (zeros <= 64).all() and (zeros > 0).all()  # an 8x8 square, possibly clipped at the border
    assert torch.equal(y[:, 0], y[:, 2])  # the same hole in every channel


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.randn(3 * 4 * 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = x.flatten(1) @ w
    assert torch.allclose(r1_penalty(logits, x), w.square().sum(), rtol=1e-5)


def test_d_loss_adds_half_gamma_r1():
    torch.manual_seed(0)
    D = _Linear()
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    loss = get_loss("bce")
    plain = d_loss(D, loss, real, fake, None)
    with_r1 = d_loss(D, loss, real, fake, None, r1_gamma=2.0)
    assert torch.allclose(with_r1 - plain, D.fc.weight.square().sum(), rtol=1e-5)  # gamma/2 * ||w||^2


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 1)

    def forward(self, x, labels=None):
        return self.fc(x.flatten(1)).flatten()


def test_augment_sees_reals_and_fakes_for_d_and_fakes_for_g():
    seen = []

    def spy(x):
        seen.append(x.requires_grad)
        return x
    cfg = build_config("dcgan", overrides=TINY["dcgan"] + ["train.batch_size=4"])
    model, data = build_model(cfg, torch.device("cpu"))
    update = Updater(model.configure_optimizers(), Dist())
    adversarial_step(model.G, model.D, model.loss, next(data.batches(4, 0))["image"], None, cfg.model.z_dim,
                     1, update, augment=spy)
    assert seen == [False, False, True]  # D: real, detached fake; G: its fake, with gradient


@pytest.mark.parametrize("option", list(OPTIONS))
def test_one_step_moves_both_players_with_finite_losses(option):
    cfg = build_config("dcgan", overrides=TINY["dcgan"] + ["train.batch_size=8"] + OPTIONS[option])
    model, data = build_model(cfg, torch.device("cpu"))
    opts = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    losses = model.train_step(next(data.batches(8, 0)), Updater(opts, Dist()))
    assert all(torch.isfinite(v).all() for v in losses.values())
    after = model.state_dict()
    for net in ("G.", "D."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net)), net
    if option == "spectral_norm":
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.D.modules())
        assert any(k.endswith("weight.0._u") for k in after)  # power-iteration state is checkpointed
    if option == "ttur":
        assert opts["d"].param_groups[0]["lr"] == 4e-4 and opts["g"].param_groups[0]["lr"] == 1e-4


@pytest.mark.parametrize("option", ["diffaugment", "spectral_norm", "r1"])
def test_resume_stays_exact_with_each_option(tmp_path, option):
    def cfg(steps):
        return build_config("dcgan", overrides=TINY["dcgan"] + QUIET + [f"train.steps={steps}", *OPTIONS[option]])
    straight = train(cfg(6), out=tmp_path / "straight")
    resumed = train(cfg(6), resume=train(cfg(3), out=tmp_path / "resumed"))
    a, b = (load_checkpoint(RunDir(r).checkpoints / "last.pt")["model"] for r in (straight, resumed))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
