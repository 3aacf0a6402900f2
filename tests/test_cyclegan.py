"""CycleGAN: networks, replay buffer, LR schedule, losses, paired data, palette metric,
translate, and a CLI train + exact resume. Synthetic data only; a few seconds on a CPU."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main as cli
from gankit import build_config
from gankit.config import DataConfig
from gankit.data import DataInfo, Dataset, load_data
from gankit.models import MODELS
from gankit.metrics.paired import label_metrics, load_palette, pick_palette
from gankit.models.cyclegan import Discriminator, Generator, ReplayBuffer, lr_factor

from gankit.translate import translate, translate_tensor
from gankit.distributed import Dist
from gankit.trainer import Updater

from conftest import facades_label_map, write_facades_pairs

TINY = ["model.ngf=4", "model.ndf=4", "model.n_blocks=1", "model.pool_size=3", "data.size=32",
        "train.batch_size=1"]


def _model(overrides=(), size=32, data=None):
    cfg = build_config("cyclegan", overrides=[*TINY, f"data.size={size}", *overrides])
    if data is None:
        x = torch.rand(4, 3, size, size) * 2 - 1
        data = Dataset("unpaired", {"a": x, "b": x.flip(1)}, DataInfo(channels=3, size=size, source="test"))
    return MODELS["cyclegan"](cfg.model, data.info, cfg.train), cfg


def _update(opts):
    """The trainer's own update (zero_grad -> backward -> step), single process, no clipping."""
    return Updater(opts, Dist())


# ------------------------------------------------------------------------- networks

@pytest.mark.parametrize("size,blocks,patch", [(128, 6, 14), (256, 9, 30)])
def test_shapes_and_blocks_by_size(size, blocks, patch):
    model, _ = _model(["model.n_blocks=0"], size=size)
    n_blocks = sum(type(m).__name__ == "ResnetBlock" for m in model.G_AB.modules())
    assert n_blocks == blocks
    x = torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad():
        y = model.G_AB(x)
        assert y.shape == x.shape and y.abs().max() <= 1
        assert model.D_A(x).shape == (1, 1, patch, patch)  # 70x70 PatchGAN map


@pytest.mark.parametrize("h,w", [(37, 53), (5, 3), (64, 30)])
def test_translate_any_size(h, w):
    G = Generator(3, ngf=4, n_blocks=1).eval()
    model = type("M", (), {"translate": lambda self, x, d: G(x)})()
    with torch.no_grad():
        y = translate_tensor(model, torch.rand(2, 3, h, w) * 2 - 1)
    assert y.shape == (2, 3, h, w)


# ---------------------------------------------------------------------- replay buffer

def test_replay_buffer_cap_swap_and_state():
    torch.manual_seed(0)
    buf = ReplayBuffer(4)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    assert torch.equal(buf.push_and_pop(first), first)  # until full: stored and returned as is
    assert len(buf) == 4
    swapped, n = 0, 400
    for i in range(n):
        x = torch.full((1, 3, 2, 2), 100.0 + i)
        y = buf.push_and_pop(x)
        assert len(buf) == 4  # size cap
        if not torch.equal(y, x):
            swapped += 1
            assert y[0, 0, 0, 0] < 100.0 + i  # an older fake came back ...
            assert (buf.images[:, 0, 0, 0] == 100.0 + i).any()  # ... and the new one took its place
    assert 0.4 < swapped / n < 0.6
    # contents survive state_dict -> torch.save -> torch.load(weights_only=True)
    import io
    f = io.BytesIO()
    torch.save(buf.state_dict(), f)
    f.seek(0)
    other = ReplayBuffer(4)
    other.load_state_dict(torch.load(f, weights_only=True))
    assert torch.equal(other.images, buf.images)


def test_replay_buffer_size_zero_passes_through():
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(ReplayBuffer(0).push_and_pop(x), x)


# ----------------------------------------------------------------------- LR schedule

def test_lr_schedule_constant_then_linear_to_zero():
    f = lr_factor(0.5, 100)
    assert f(0) == 1.0 and f(49) == 1.0 and f(50) == 1.0
    assert f(75) == pytest.approx(0.5) and f(100) == 0.0
    model, cfg = _model()
    opts = model.configure_optimizers()
    scheds = model.configure_schedulers(opts, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opts["g"].param_groups[0]["lr"])
        opts["g"].step()
        opts["d"].step()
        for s in scheds.values():
            s.step()
    assert lrs[0] == lrs[5] == cfg.train.lr and lrs[7] == pytest.approx(cfg.train.lr * 0.6)
    assert opts["g"].param_groups[0]["lr"] == 0.0 and opts["d"].param_groups[0]["lr"] == 0.0


# ---------------------------------------------------------------------- train step

def test_train_step_finite_and_moving():
    torch.manual_seed(0)
    model, _ = _model()
    opts = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    losses = model.train_step({"a": x, "b": -x}, _update(opts))
    assert {"loss_g", "loss_cyc", "loss_id", "loss_d_a", "loss_d_b"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    for net in ("G_AB.", "G_BA.", "D_A.", "D_B."):
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.startswith(net)
                   and k in before), net
    assert len(model.pool_A) == len(model.pool_B) == 1


def test_identity_loss_off_at_zero_weight():
    torch.manual_seed(0)
    model, _ = _model(["model.lambda_id=0"])
    calls = []
    model.G_BA.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    losses = model.train_step({"a": x, "b": -x}, _update(model.configure_optimizers()))
    assert "loss_id" not in losses and len(calls) == 2  # fake A and rec A only, no G_BA(a)
    assert losses["loss_g"] == pytest.approx(float(losses["loss_gan"] + 10 * losses["loss_cyc"]), rel=1e-5)


# ---------------------------------------------------------------- paired data, palette

@pytest.fixture
def paired_dir(tmp_path):
    """pix2pix layout: train/ and val/ of 64x32 images, left = smooth photo-like A, right = label map B."""
    return write_facades_pairs(tmp_path, {"train": 6, "val": 3})


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_paired_loader_splits_both_directions(paired_dir, direction):
    data = load_data(DataConfig(spec=f"paired:{paired_dir}", size=32, direction=direction), "unpaired")
    labels, photos = ("b", "a") if direction == "AtoB" else ("a", "b")
    assert data.held_out[labels].shape == data.held_out[photos].shape == (3, 3, 32, 32)
    assert pick_palette("", data.held_out[labels])["name"] == "facades" and pick_palette("", data.held_out[photos]) is None
    assert "held out: val/" in data.info.source and data.info.held_out_split == "val"
    first = np.asarray(Image.open(paired_dir / "val" / "0.png"), dtype=np.float32) / 127.5 - 1
    left = torch.from_numpy(first[:, :32]).permute(2, 0, 1)
    got = data.held_out["a" if direction == "AtoB" else "b"][0]
    assert torch.allclose(got, left, atol=1e-5)
    assert data.tensors["a"].shape[-1] == 36  # stored at 1.12x for random crops


def test_palette_snapping_is_exact_on_a_label_map():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(np.stack([facades_label_map(rng, 16) for _ in range(3)])).permute(0, 3, 1, 2).float() / 127.5 - 1
    noisy = (x + 0.02 * torch.randn_like(x)).clamp(-1, 1)  # JPEG-like noise stays in its class
    colours = load_palette("facades")["colours"]
    assert label_metrics(x, x, colours) == {"label_acc": 1.0, "class_acc": 1.0, "label_miou": 1.0}
    assert label_metrics(noisy, x, colours)["label_miou"] == 1.0
    assert label_metrics(-x, x, colours)["label_acc"] < 0.5


# ------------------------------------------------------------- CLI train, resume, translate

def test_cli_train_resume_keeps_buffer_and_schedule_then_translate(paired_dir, tmp_path):
    run = tmp_path / "run"
    args = ["train", "cyclegan", "--data", f"paired:{paired_dir}", "--out", str(run), "--steps", "8",
            "--no-progress", "--set", *TINY, "train.log_every=2", "train.sample_every=4",
            "train.checkpoint_every=4", "train.keep_checkpoints=5", "train.samples=12"]
    assert cli(args) == 0
    metrics = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert "AtoB_psnr" in metrics[-1] and "AtoB_label_acc" in metrics[-1] and "BtoA_ssim" in metrics[-1]
    assert "AtoB_class_acc" in metrics[-1] and "AtoB_label_miou" in metrics[-1]
    straight = torch.load(run / "checkpoints" / "step_0000008.pt", weights_only=True)

    # the same run interrupted after step 4 and resumed
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    for p in [resumed / "checkpoints" / "step_0000008.pt", resumed / "checkpoints" / "last.pt"]:
        p.unlink()
    mid = torch.load(resumed / "checkpoints" / "step_0000004.pt", weights_only=True)
    assert len(mid["model"]["pool_A._extra_state"]["images"]) == 3  # buffer full (pool_size 3)
    assert cli(["train", "--resume", str(resumed), "--no-progress"]) == 0
    final = torch.load(resumed / "checkpoints" / "step_0000008.pt", weights_only=True)
    for k, v in straight["model"].items():
        if k.endswith("_extra_state"):
            assert torch.equal(v["images"], final["model"][k]["images"]), k
        else:
            assert torch.equal(v, final["model"][k]), k
    assert final["schedulers"] == straight["schedulers"]
    assert final["optimizers"]["g"]["param_groups"][0]["lr"] == 0.0

    # translate a folder of odd-sized, grey and RGBA images
    src = tmp_path / "new"
    src.mkdir()
    Image.fromarray(np.full((21, 35, 3), 90, np.uint8)).save(src / "odd.png")
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(src / "grey.png")
    Image.fromarray(np.full((12, 40, 4), 50, np.uint8)).save(src / "rgba.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = translate(run, src, tmp_path / "out", direction="BtoA", batch_size=2, sheet=True, device="cpu")
    assert n == 3 and any("converting" in str(w.message) for w in caught)
    assert Image.open(tmp_path / "out" / "odd.png").size == (35, 21)
    assert Image.open(tmp_path / "out" / "rgba_sheet.png").size == (80, 12)


def test_paired_loader_warns_when_val_repeats_train(paired_dir):
    shutil.copy(paired_dir / "train" / "0.png", paired_dir / "val" / "copy.png")
    with pytest.warns(UserWarning, match="1 of 4 images are byte-identical"):
        load_data(DataConfig(spec=f"paired:{paired_dir}", size=32), "unpaired")
