"""Data-parallel plumbing, so one script runs single-process or under ``torchrun``.

``torchrun`` describes the job through environment variables (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...). Every helper here is a no-op when
there is no process group, so callers never branch on the launch mode.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from netgraph.device import pick_device
from netgraph.errors import NetgraphError


def setup_distributed() -> tuple[int, int, torch.device]:
    """Join the ``torchrun`` process group if there is one; return ``(rank, world_size, device)``.

    NCCL with one GPU per local rank when CUDA is present, else gloo on the CPU.
    Safe to call twice: an existing group is reused.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, pick_device()
    if not dist.is_available():
        raise NetgraphError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
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


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` in a process group, else ``model`` itself."""
    if not is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
