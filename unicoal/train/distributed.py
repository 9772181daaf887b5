"""Multi-process training with ``torchrun`` (one process per GPU; gloo on CPU).

``torchrun --nproc_per_node=N -m unicoal train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU).
Every rank holds a full copy of G, D and G_ema, initialised identically (parameters broadcast
from rank 0) and reads a disjoint shard of each batch (``DistributedSampler``). After each
backward pass :func:`average_gradients` all-reduces the gradients (mean over ranks), which is
exactly what ``DistributedDataParallel`` computes. The explicit all-reduce is used instead of
the DDP wrapper, as in the StyleGAN3 training loop, because a GAN step runs the discriminator
several times per backward pass (fake, real) and differentiates through it twice (R1), which
DDP's autograd hooks do not support; the test ``tests/test_train_ddp.py`` checks that the
gradients equal single-process gradients on the same data.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DistInfo", "init_distributed", "average_gradients", "broadcast_module", "barrier", "cleanup"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but no CUDA device is available (use --device cpu)")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    return device


def init_distributed(device: str | None = "auto") -> DistInfo:
    """Join the process group described by torchrun's environment, if any."""
    import torch
    import torch.distributed as dist

    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=dev)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if dev.startswith("cuda"):
        torch.cuda.set_device(local)
        dev = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.startswith("cuda") else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local, dev)


def broadcast_module(module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    import torch.distributed as dist

    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def average_gradients(params, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flat buffer."""
    import torch
    import torch.distributed as dist

    if not info.enabled:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p))
        offset += n


def barrier(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
