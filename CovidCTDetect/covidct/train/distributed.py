"""Multi-process training with PyTorch DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node N -m covidct.cli train ...`` (or across nodes with ``--nnodes`` and a
rendezvous endpoint) starts N processes whose environment holds ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup` joins them into one process group (NCCL on CUDA, gloo on CPU), one GPU
per process (``cuda:LOCAL_RANK``). Each process trains on its shard of every epoch
(``DistributedSampler``), gradients are averaged by DDP, validation predictions are gathered from all
ranks, and only rank 0 writes checkpoints, the final model and progress. A single process (no
``WORLD_SIZE`` or ``WORLD_SIZE=1``) runs the same code without a process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import UsageError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True for the process that writes files and reports progress (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device_name: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group when there is one; choose this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if world_size <= 1:
        return DistContext(0, 1, 0, device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"Process {local_rank} of this node has no GPU ({torch.cuda.device_count()} found); "
                "start at most one process per GPU (torchrun --nproc_per_node)."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type == "mps":
        raise UsageError("Distributed training does not support Apple MPS; use --device cpu or a single process.")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, device)


def teardown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for a single process)."""
    if ctx.enabled:
        dist.barrier()


def gather(ctx: DistContext, value) -> list:
    """The list of every rank's ``value`` (any picklable object), in rank order, on every rank."""
    if not ctx.enabled:
        return [value]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when running distributed, else unchanged."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
