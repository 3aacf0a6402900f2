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

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..errors import GankitError

Batch = dict[str, torch.Tensor]


@dataclass
class DataInfo:
    """What a model needs to know about its data to build its networks: saved in every
    checkpoint, so a run can be rebuilt (and sampled from) without the data."""
    source: str = ""
    """where the data came from (spec and split), for messages and reports"""
    channels: int = 0
    size: int = 0
    """images: channels and side length at which the model works"""
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    vocab_size: int = 0
    seq_len: int = 0
    start_token: int = 0
    vocab: list[str] | None = None
    """text: id -> word; None for the oracle's token ids"""
    oracle: dict[str, int] | None = None
    """oracle text: the oracle LSTM's sizes {emb_dim, hidden_dim}"""
    paired_eval: bool = False
    """translation data whose held-out pairs are aligned (paired:DIR)"""
    palette: str = ""
    """paired label maps: data.palette as the loader resolved it"""
    held_out_split: str = ""
    """which split the held-out tensors come from (val, test, holdout, ...)"""
    reference: str = ""
    """text: what the BLEU references are"""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        """From a checkpoint's `data_info`; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Dataset:
    kind: str
    """'image' | 'unpaired' | 'text'"""
    tensors: Batch
    """training tensors; keys of equal length share one permutation (image with label)"""
    info: DataInfo = field(default_factory=DataInfo)
    held_out: Batch | None = None
    """evaluation tensors (test split, val/ pairs, holdout), same keys where meaningful"""
    transform: Callable[[Batch], Batch] | None = None
    """batched on-device augmentation applied to every training batch (uses the global RNG)"""
    oracle: nn.Module | None = None
    """oracle text: the oracle LSTM that generated `tensors` (what NLL-oracle scores under)"""
    references: list[list[str]] | None = None
    """real text: the held-out sentences as words, BLEU's references"""

    def __post_init__(self):
        for key, t in self.tensors.items():
            if len(t) == 0:
                raise GankitError(f"data set {self.info.source!r} has no examples for '{key}'")

    def __len__(self) -> int:
        return max(len(t) for t in self.tensors.values())

    def to(self, device) -> "Dataset":
        move = lambda d: None if d is None else {k: v.to(device) for k, v in d.items()}  # noqa: E731
        self.tensors = move(self.tensors)
        self.held_out = move(self.held_out)
        if self.oracle is not None:
            self.oracle.to(device)
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
                where = f" in {self.info.source}" if self.info.source else ""
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
