"""Multi-process training under `torchrun` (torch.distributed): gloo on CPU, NCCL on CUDA.

GAN steps run several backward passes through shared networks per step (D's loss, then
G's loss through D), which DistributedDataParallel's one-forward-one-backward bucketing
does not fit. Like StyleGAN2-ADA, gankit instead all-reduces each optimizer's gradients
right before its step (one flattened all-reduce per update); with every rank reading its
own slice of the same global batch this is exactly data-parallel SGD.

Every tensor handed to a collective lives on the process's device (`Dist.device`): NCCL
rejects CPU tensors, so even a one-element flag is made on the GPU.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from .errors import GankitError


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """train.device (auto | cpu | cuda[:N] | mps) as a torch.device; under torchrun, auto and
    cuda take the process's local rank."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GankitError("train.device=cuda but no CUDA device is available (use --device cpu)")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name in ("cpu", "mps"):
        return torch.device(name)
    raise GankitError(f"train.device must be auto, cpu or cuda[:N], got '{name}'")


def configure_backend(device: torch.device) -> None:
    """On CUDA: bind the process to its GPU, autotune convolutions, TF32 matmuls."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """where collective tensors live: cuda:LOCAL_RANK under NCCL, else the CPU"""
    grouped: bool = False
    """a process group is up (torchrun), even of one process: the collectives then run, so
    `torchrun --nproc_per_node 1` checks the NCCL path on a single GPU"""

    STOP_CHECK_EVERY = 10
    """steps between the collective that agrees on a stop request (SIGINT/SIGTERM)"""

    @property
    def enabled(self) -> bool:
        return self.world > 1 or self.grouped

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_type: str = "cpu") -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        torchrun = "TORCHELASTIC_RUN_ID" in os.environ and "MASTER_ADDR" in os.environ
        if world <= 1 and not torchrun:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cpu")
        if device_type == "cuda":  # before NCCL starts, so it binds each rank to its own GPU
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        return cls(rank=dist.get_rank(), local_rank=local_rank, world=world, device=device, grouped=True)

    def all_reduce_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Average gradients over ranks in one flat all-reduce."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (as DDP does when it wraps)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any rank (for stop requests)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def should_stop(self, flag: bool, step: int) -> bool:
        """`flag` agreed over ranks. One process: the flag itself, every step, free. Several:
        a collective plus a host sync, so only every STOP_CHECK_EVERY steps (the same steps
        on every rank; a signal waits at most that many steps)."""
        if not self.enabled:
            return flag
        return self.any(flag) if step % self.STOP_CHECK_EVERY == 0 else False

    def gather_objects(self, obj) -> list:
        """`obj` (tensors and plain values, e.g. RNG states) from every rank, in rank order.
        Serialised with torch.save and read back with weights_only=True, so a rank can send
        nothing that runs code; the bytes travel as uint8 tensors on `device`."""
        if not self.enabled:
            return [obj]
        buf = io.BytesIO()
        torch.save(obj, buf)
        payload = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8).to(self.device)
        size = torch.tensor([payload.numel()], dtype=torch.long, device=self.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world)]
        dist.all_gather(sizes, size)
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dtype=torch.uint8, device=self.device)
        padded[:payload.numel()] = payload
        parts = [torch.zeros_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return [torch.load(io.BytesIO(p[:int(n.item())].cpu().numpy().tobytes()), weights_only=True)
                for p, n in zip(parts, sizes)]

    def barrier(self) -> None:
        if not self.enabled:
            return
        if self.device.type == "cuda":  # NCCL's barrier is a collective too: name its GPU
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all ranks, for CPU (gloo) training: torch's
    `nn.SyncBatchNorm` only runs on accelerators. Per channel, one differentiable
    all-reduce of (sum, sum of squares, count); eval mode uses the running statistics."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        # importable only where torch was built with distributed support, checked just above
        from torch.distributed.nn.functional import all_reduce
        c, dims = x.shape[1], [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.full((1,), x.numel() / c, dtype=torch.float32, device=x.device)
        stats = all_reduce(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))  # (2C + 1,)
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm in `module` -> GlooSyncBatchNorm, sharing its parameters and buffers."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlooSyncBatchNorm):
        new = GlooSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child))
    return module
