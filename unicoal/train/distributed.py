"""Multi-process training with ``torchrun`` and ``DistributedDataParallel`` (one process per GPU; gloo on CPU).

``torchrun --nproc_per_node=N -m unicoal train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU).
Every rank holds a full copy of G, D and G_ema and reads a disjoint shard of each batch
(``DistributedSampler``). G and D are wrapped in ``DistributedDataParallel``
(:func:`wrap_ddp`), which copies rank 0's parameters and buffers to every rank when it is built
and all-reduces (averages) the gradients during each backward pass.

A GAN step needs care with DDP, as in StyleGAN2-ADA's loop: each phase runs its own network
through the DDP wrapper and the other one bare (:func:`unwrap`), with that network's parameters
frozen, so the wrapper of the other network expects no gradients. The discriminator phase runs
D twice (fake, real) and differentiates through it twice (R1 is a gradient with respect to the
real slice only, so no parameter hook fires before the single backward). The test
``tests/test_train_ddp.py`` checks that two gloo processes get the single-process gradients.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DistInfo", "init_distributed", "wrap_ddp", "unwrap", "barrier", "cleanup"]


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


def wrap_ddp(module, info: DistInfo):
    """``module`` in ``DistributedDataParallel`` when several processes train, else ``module`` itself.

    The wrapper copies rank 0's parameters and buffers to the other ranks when it is built.
    """
    if module is None or not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [int(info.device.split(":")[1])] if info.device.startswith("cuda:") else None
    # broadcast_buffers=False: the buffers are constant filters and Fourier features, already
    # equal after the initial copy; re-broadcasting them before every forward only costs time.
    # networks that leave parameters unused in some steps (ResViT before its transformer phase,
    # ProvoGAN's other stages) say so with a class attribute
    unused = bool(getattr(module, "has_unused_parameters", False))
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False, find_unused_parameters=unused)


def unwrap(module):
    """The network inside a ``DistributedDataParallel`` wrapper (or ``module`` itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def barrier(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
