"""The in-memory data set every model trains from, and its deterministic batch order.

One batch contract (STYLE.md #8): a batch is a dict of tensors —
`{"image"}` or `{"image", "label"}` (float NCHW in [-1, 1], long labels),
`{"a", "b"}` for unpaired translation, `{"tokens"}` (long, B x T) for text.

Everything that fits in memory is decoded once and kept as tensors on the training
device, so a step is a gather, never per-sample Python. The batch order is a pure
function of (seed, step): resuming at step N reproduces exactly the batches a straight
run would have seen, with no sampler state to checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from ..errors import GankitError

Batch = dict[str, torch.Tensor]


@dataclass
class Dataset:
    kind: str
    """'image' | 'unpaired' | 'text'"""
    tensors: Batch
    """training tensors; keys of equal length share one permutation (image with label)"""
    info: dict[str, Any] = field(default_factory=dict)
    """channels, size, num_classes, class_names, vocab, source, ..."""
    held_out: Batch | None = None
    """evaluation tensors (test split, val/ pairs, holdout), same keys where meaningful"""
    transform: Callable[[Batch], Batch] | None = None
    """batched on-device augmentation applied to every training batch (uses the global RNG)"""

    def __post_init__(self):
        for key, t in self.tensors.items():
            if len(t) == 0:
                raise GankitError(f"data set {self.info.get('source', '')!r} has no examples for '{key}'")

    def __len__(self) -> int:
        return max(len(t) for t in self.tensors.values())

    def to(self, device) -> "Dataset":
        move = lambda d: None if d is None else {k: v.to(device) for k, v in d.items()}  # noqa: E731
        self.tensors = move(self.tensors)
        self.held_out = move(self.held_out)
        return self

    def steps_per_epoch(self, batch_size: int, world: int = 1) -> int:
        return max(len(self) // (batch_size * world), 1)

    def batches(self, batch_size: int, seed: int, start_step: int = 0,
                rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """Endless batches from step `start_step` on. With `world` processes, each rank
        takes its slice of the same global batch, so N ranks x B equals one process x N*B."""
        # Keys that belong together (image + label) share one permutation; unpaired
        # domains are shuffled independently, as CycleGAN's unaligned loader does.
        groups: list[list[str]] = []
        for key, t in self.tensors.items():
            match = [g for g in groups if self.kind != "unpaired" and len(self.tensors[g[0]]) == len(t)]
            match[0].append(key) if match else groups.append([key])
        global_batch = batch_size * world
        for keys in groups:
            if len(self.tensors[keys[0]]) < global_batch:
                where = f" in {self.info['source']}" if self.info.get("source") else ""
                raise GankitError(f"batch size {global_batch} is larger than the data set "
                                  f"({len(self.tensors[keys[0]])} examples{where}); lower train.batch_size")
        cache: dict[tuple[int, int], torch.Tensor] = {}
        step = start_step
        while True:
            batch: Batch = {}
            for salt, keys in enumerate(groups):
                n = len(self.tensors[keys[0]])
                per_epoch = n // global_batch
                epoch, k = divmod(step, per_epoch)
                perm = cache.get((salt, epoch))
                if perm is None:
                    if len(cache) > 8:
                        cache.clear()
                    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7919 + salt)
                    perm = cache[(salt, epoch)] = torch.randperm(n, generator=g)
                start = k * global_batch + rank * batch_size
                idx = perm[start:start + batch_size]
                for key in keys:
                    t = self.tensors[key]
                    batch[key] = t[idx.to(t.device)]
            if self.transform is not None:
                batch = self.transform(batch)
            yield batch
            step += 1
