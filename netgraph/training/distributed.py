"""Data-parallel plumbing, so one script runs single-process or under ``torchrun``.

``torchrun`` describes the job through environment variables (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...): the caller (the CLI) reads the
world size and local rank and passes them to :func:`setup_distributed`; torch's
``env://`` rendezvous reads the rest. Every other helper here is a no-op when
there is no process group, so callers never branch on the launch mode.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from netgraph.device import pick_device
from netgraph.errors import NetgraphError


def setup_distributed(world_size: int = 1, local_rank: int = 0) -> tuple[int, int, torch.device]:
    """Join the process group of a ``world_size``-process job; return ``(rank, world_size, device)``.

    NCCL with GPU ``local_rank`` when CUDA is present, else gloo on the CPU; a
    world of one joins nothing. Safe to call twice: an existing group is reused.
    """
    if world_size <= 1:
        return 0, 1, pick_device()
    if not dist.is_available():
        raise NetgraphError("world_size > 1 but this torch build has no torch.distributed")
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), device


def cleanup_distributed() -> None:
    """Leave the process group (call once at the end of a ``torchrun`` script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def process_device(requested: str | None = None) -> torch.device:
    """This process's device: ``requested``, else its GPU in a NCCL job, else :func:`pick_device`'s."""
    if requested:
        return pick_device(requested)
    if is_distributed() and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return pick_device()


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over ranks in place and return it."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers to every rank.

    DDP syncs parameters, and buffers only at the start of each forward, so after
    the last batch each rank's BatchNorm statistics hold its own shard's update.
    """
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank (``obj`` itself outside a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` in a process group, else ``model`` itself."""
    if not is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
