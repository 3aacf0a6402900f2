"""DCGAN's GEMM convolutions compute what torch's conv2d / conv_transpose2d compute."""
import pytest
import torch
import torch.nn.functional as F

from gankit import build_config
from gankit.models import gemm_conv
from gankit.trainer import build_model


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_and_transposed_conv_match_torch_with_gradients(channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 5, 8, 8, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_(True)
    w = torch.randn(7, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    for ours, ref, inp in ((gemm_conv._Conv.apply, F.conv2d, x),
                           (gemm_conv._ConvT.apply, F.conv_transpose2d, torch.randn(3, 7, 4, 4, dtype=torch.float64,
                                                                                    requires_grad=True))):
        weight = w if ours is gemm_conv._Conv.apply else w.detach().clone().requires_grad_(True)
        y, r = ours(inp, weight), ref(inp, weight, stride=2, padding=1)
        assert y.shape == r.shape and torch.allclose(y, r, atol=1e-12)
        g = torch.randn_like(r)
        for a, b in zip(torch.autograd.grad(y, (inp, weight), g), torch.autograd.grad(r, (inp, weight), g)):
            assert torch.allclose(a, b, atol=1e-12)


def test_bf16_autocast_stays_close_to_onednn():
    torch.manual_seed(0)
    x = torch.randn(4, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    w = torch.randn(32, 16, 4, 4) * 0.05
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, r = gemm_conv._Conv.apply(x, w), F.conv2d(x, w, stride=2, padding=1)
    assert y.dtype == r.dtype == torch.bfloat16
    assert (y.float() - r.float()).abs().max() <= 0.02 * r.float().abs().max()


def test_dcgan_uses_the_gemm_path_only_at_the_low_resolution_end_and_never_under_r1():
    calls = []
    original = gemm_conv._Conv.apply
    cfg = build_config("dcgan", overrides=["model.channels=8", "data.size=32"])
    model, _ = build_model(cfg, torch.device("cpu"))
    gemm_conv._Conv.apply = lambda x, w: calls.append(x.shape[2]) or original(x, w)
    try:
        model.D(torch.randn(2, 1, 32, 32))  # digits: one channel
        assert calls == [8]  # the 8x8 -> 4x4 layer only
        r1, _ = build_model(build_config("dcgan", overrides=["model.channels=8", "data.size=32", "model.r1_gamma=1"]),
                            torch.device("cpu"))
        calls.clear()
        r1.D(torch.randn(2, 1, 32, 32))
        assert calls == []
    finally:
        gemm_conv._Conv.apply = original


def test_a_dcgan_step_is_the_same_with_and_without_the_gemm_path():
    from gankit.distributed import Dist
    from gankit.trainer import Updater
    results = []
    for flag in (True, False):
        torch.manual_seed(0)
        cfg = build_config("dcgan", overrides=["model.channels=8", "data.size=32", "train.batch_size=8"])
        model, data = build_model(cfg, torch.device("cpu"))
        gemm_conv.Conv2d.gemm = gemm_conv.ConvTranspose2d.gemm = flag
        try:
            model.train_step(next(data.batches(8, 0)), Updater(model.configure_optimizers(), Dist()))
        finally:
            gemm_conv.Conv2d.gemm = gemm_conv.ConvTranspose2d.gemm = True
        results.append(model.state_dict())
    for k, v in results[0].items():
        assert torch.allclose(v.float(), results[1][k].float(), atol=1e-5), k


def test_the_gemm_path_stands_aside_under_torch_compile(monkeypatch):
    """Dynamo does not apply the Functions' autocast casts (compile + bf16 failed), so a
    compiled graph gets the native convolutions."""
    conv = gemm_conv.Conv2d(8, 8, 4, 2, 1, bias=False)
    x = torch.randn(2, 8, 8, 8)
    assert gemm_conv._eligible(conv, x, 8)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not gemm_conv._eligible(conv, x, 8)
