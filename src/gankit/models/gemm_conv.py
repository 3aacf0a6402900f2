"""DCGAN's 4x4 stride-2 (padding 1) convolutions as explicit GEMMs on CPU.

Why: convolutions are most of a DCGAN-32 step on CPU, and at the low-resolution end (8x8
<-> 4x4, 256-512 channels) oneDNN's bf16 kernels run far below a plain GEMM of the same size
(the profile: docs/benchmarks.md, "DCGAN-32 speed"). There the patch matrix is small, so
im2col + one GEMM per product (output, input gradient, weight gradient) is cheaper. Same arithmetic: bf16 (under
autocast) or fp32 operands, fp32 accumulation inside the GEMM, overlapping patch sums
(col2im) accumulated in fp32 and rounded once, as the conv kernels do.

`Conv2d` / `ConvTranspose2d` are drop-in nn subclasses (same parameters, state_dict keys,
init, spectral-norm parametrization); they take the GEMM path only on CPU, for inputs with
at most `GEMM_MAX_SIDE` pixels a side at the low-resolution end, and never under double
backward (the backward is once-differentiable: R1 turns the path off, see dcgan.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

GEMM_MAX_SIDE = 8
"""the GEMM path is used where the low-resolution side is <= this (8x8 <-> 4x4 at 32 and 64 px)"""


def _patches(x: Tensor, ho: int, wo: int) -> Tensor:
    """(B, H+2, W+2, C) padded NHWC -> (B*ho*wo, 16*C): the 4x4 stride-2 windows, (kh, kw, c) order."""
    B, _, _, C = x.shape
    sB, sH, sW, sC = x.stride()
    return x.as_strided((B, ho, wo, 4, 4, C), (sB, 2 * sH, 2 * sW, sH, sW, sC)).reshape(B * ho * wo, 16 * C)


def _fold(cols: Tensor, B: int, H: int, W: int, C: int) -> Tensor:
    """(B*ho*wo, 16*C) window values -> (B, H, W, C) NHWC: overlapping windows summed in fp32."""
    ho, wo = H // 2, W // 2
    cols = cols.view(B, ho, wo, 4, 4, C)
    acc = torch.promote_types(cols.dtype, torch.float32)  # bf16 windows are summed in fp32
    out = torch.zeros(B, H + 2, W + 2, C, dtype=acc, device=cols.device)
    for kh in range(4):
        for kw in range(4):
            out[:, kh:kh + 2 * ho:2, kw:kw + 2 * wo:2] += cols[:, :, :, kh, kw]
    return out[:, 1:H + 1, 1:W + 1].to(cols.dtype)


def _nhwc(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1)  # a free view for channels_last tensors


def _nchw(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2)  # (B, H, W, C) contiguous -> channels_last NCHW, no copy


def _new_nchw(x: Tensor) -> Tensor:
    """x (B, H, W, C) as a channels_last NCHW tensor of its own: a Function's output must not be
    a view, since the next layer (LeakyReLU) may modify it in place."""
    B, H, W, C = x.shape
    out = torch.empty((B, C, H, W), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    _nhwc(out).copy_(x)
    return out


def _matrix(w: Tensor) -> Tensor:
    """(O, I, 4, 4) -> (O, 16*I) in the patches' (kh, kw, c) order."""
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


class _Conv(torch.autograd.Function):
    """y = conv2d(x, w, stride 2, padding 1), w (O, I, 4, 4)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:
        B, C, H, W = x.shape
        cols = _patches(F.pad(_nhwc(x), (0, 0, 1, 1, 1, 1)), H // 2, W // 2)  # (B*ho*wo, 16C)
        wm = _matrix(w)                                                         # (O, 16C)
        ctx.save_for_backward(cols, wm)
        ctx.shape = (B, C, H, W)
        return _new_nchw((cols @ wm.t()).view(B, H // 2, W // 2, -1))

    @staticmethod
    @once_differentiable
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, gy: Tensor):
        cols, wm = ctx.saved_tensors
        B, C, H, W = ctx.shape
        g = _nhwc(gy).reshape(-1, wm.shape[0]).to(wm.dtype)  # (B*ho*wo, O)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _nchw(_fold(g @ wm, B, H, W, C))
        if ctx.needs_input_grad[1]:
            gw = (g.t() @ cols).view(-1, 4, 4, C).permute(0, 3, 1, 2)
        return gx, gw


class _ConvT(torch.autograd.Function):
    """y = conv_transpose2d(x, w, stride 2, padding 1), w (I, O, 4, 4): the adjoint of _Conv."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:
        B, I, h, wd = x.shape
        x2 = _nhwc(x).reshape(-1, I)          # (B*h*w, I)
        wm = _matrix(w)                       # (I, 16*O)
        ctx.save_for_backward(x2, wm)
        ctx.shape = (B, I, h, wd)
        O = w.shape[1]
        return _new_nchw(_fold(x2 @ wm, B, 2 * h, 2 * wd, O))

    @staticmethod
    @once_differentiable
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, gy: Tensor):
        x2, wm = ctx.saved_tensors
        B, I, h, wd = ctx.shape
        cols = _patches(F.pad(_nhwc(gy.to(wm.dtype)), (0, 0, 1, 1, 1, 1)), h, wd)  # (B*h*w, 16*O)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _nchw((cols @ wm.t()).view(B, h, wd, I))
        if ctx.needs_input_grad[1]:
            gw = (x2.t() @ cols).view(I, 4, 4, -1).permute(0, 3, 1, 2)
        return gx, gw


def _eligible(m: nn.Module, x: Tensor, side: int) -> bool:
    # not under torch.compile: Dynamo does not apply the Functions' autocast casts, and the
    # compiled graph fuses the native convolutions itself
    return (m.gemm and x.device.type == "cpu" and not torch.compiler.is_compiling()
            and side <= GEMM_MAX_SIDE and m.bias is None
            and m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1) and m.groups == 1
            and m.dilation == (1, 1) and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0)


class Conv2d(nn.Conv2d):
    gemm = True

    def forward(self, x: Tensor) -> Tensor:
        if _eligible(self, x, x.shape[2]):
            return _Conv.apply(x, self.weight)
        return super().forward(x)


class ConvTranspose2d(nn.ConvTranspose2d):
    gemm = True

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        if output_size is None and self.output_padding == (0, 0) and _eligible(self, x, 2 * x.shape[2]):
            return _ConvT.apply(x, self.weight)
        return super().forward(x, output_size)
