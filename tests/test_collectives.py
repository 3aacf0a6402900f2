"""Every tensor gankit hands to a collective is on the process's device (NCCL rejects CPU
tensors), checked with a fake process group: torch.distributed's functions are replaced by
recorders that act as a world of identical ranks.

No GPU is needed: the default device is set to `meta` while the collectives run, so a
tensor made without an explicit `device=` lands on meta instead of the process's device
(the CPU here) and the recorder catches it, exactly as NCCL would catch a CPU tensor.
"""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from gankit.distributed import Dist


class FakeGroup:
    """Records (collective, device) of every tensor; results are those of `world` identical ranks."""

    def __init__(self, monkeypatch, world: int = 2):
        self.world, self.calls = world, []
        for name in ("all_reduce", "broadcast", "all_gather", "barrier", "all_gather_object",
                     "broadcast_object_list", "reduce", "all_to_all", "gather", "scatter"):
            monkeypatch.setattr(dist, name, self._recorder(name))
        monkeypatch.setattr(dist, "is_initialized", lambda: True)

    def _recorder(self, name):
        def collective(*args, **kwargs):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            for a in args:
                if isinstance(a, list):
                    tensors += [t for t in a if isinstance(t, torch.Tensor)]
                    if not all(isinstance(t, torch.Tensor) for t in a):
                        self.calls.append((name, "objects"))
            self.calls += [(name, t.device) for t in tensors]
            if name == "all_reduce" and kwargs.get("op") is None:
                args[0].mul_(self.world)  # SUM over identical ranks
            if name == "all_gather":
                for out in args[0]:
                    out.copy_(args[1])
        return collective

    def devices(self) -> set:
        return {d for _, d in self.calls}


@pytest.fixture
def group(monkeypatch):
    return FakeGroup(monkeypatch)


def test_every_collective_tensor_is_on_the_process_device(group):
    d = Dist(rank=0, local_rank=0, world=2, device=torch.device("cpu"))
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    net(torch.randn(5, 3)).sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    rng = {"torch": torch.get_rng_state(), "step": 3}
    with torch.device("meta"):  # anything made without device= would land here
        d.all_reduce_grads(list(net.parameters()))
        d.broadcast_module(net)
        assert d.any(True) and not d.any(False)
        gathered = d.gather_objects(rng)
        d.barrier()
    names = {n for n, _ in group.calls}
    assert {"all_reduce", "broadcast", "all_gather"} <= names
    assert group.devices() == {torch.device("cpu")}, group.calls
    for p, g in zip(net.parameters(), grads):  # the average of identical ranks is the gradient
        torch.testing.assert_close(p.grad, g)
    assert len(gathered) == 2 and all(torch.equal(r["torch"], rng["torch"]) and r["step"] == 3 for r in gathered)


def test_the_recorder_catches_a_tensor_made_without_a_device(group):
    """The check itself: torch.tensor(...) without device= is not on the process's device."""
    with torch.device("meta"):
        dist.all_reduce(torch.tensor([1.0]))
    assert group.devices() == {torch.device("meta")}


def test_cuda_ranks_bind_their_gpu_before_nccl(monkeypatch):
    """Under torchrun with CUDA, each rank's collectives use cuda:LOCAL_RANK, set before
    init_process_group (NCCL binds the current device)."""
    order = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: order.append(("init", backend)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: order.append(("set_device", str(dev))))
    d = Dist.from_env("cuda")
    assert d.device == torch.device("cuda", 1) and d.world == 2 and d.rank == 1
    assert order == [("set_device", "cuda:1"), ("init", "nccl")]
    monkeypatch.setenv("LOCAL_RANK", "0")
    order.clear()
    assert Dist.from_env("cpu").device == torch.device("cpu") and order == [("init", "gloo")]


def test_stop_requests_cost_a_collective_only_every_few_steps(group):
    one = Dist()
    assert one.should_stop(True, 3) and not one.should_stop(False, 3)
    assert group.calls == []  # one process: no collective at all
    d = Dist(world=2)
    flags = [d.should_stop(step >= 13, step) for step in range(1, 31)]  # signal during step 13
    assert len([c for c in group.calls if c[0] == "all_reduce"]) == 30 // Dist.STOP_CHECK_EVERY
    assert flags.index(True) + 1 == 20, "a request at step 13 is agreed at the next check, step 20"


def test_torchrun_with_one_process_still_forms_a_group(monkeypatch):
    """`torchrun --nproc_per_node 1` on one GPU must run the NCCL collectives (the only way
    to check that path there); a plain `gankit train` with WORLD_SIZE=1 forms no group."""
    inits = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: inits.append(backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: None)
    monkeypatch.setenv("WORLD_SIZE", "1")
    for var in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR"):
        monkeypatch.delenv(var, raising=False)
    assert not Dist.from_env("cuda").enabled and inits == []
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    d = Dist.from_env("cuda")
    assert d.enabled and d.world == 1 and d.device == torch.device("cuda", 0) and inits == ["nccl"]


def test_nccl_barrier_names_the_gpu(group, monkeypatch):
    seen = []
    monkeypatch.setattr(dist, "barrier", lambda **kw: seen.append(kw))
    Dist(world=2, device=torch.device("cuda", 1)).barrier()
    Dist(world=2).barrier()
    assert seen == [{"device_ids": [1]}, {}]
