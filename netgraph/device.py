"""Device selection: CUDA when present, else CPU; never hard-coded."""

from __future__ import annotations

import torch

from netgraph.errors import NetgraphError


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if this machine has it, else the first CUDA device, else the CPU.

    A device torch does not know (``tpu9``) or this machine lacks (``cuda`` without a
    GPU, ``cuda:3`` on a two-GPU box) is a :class:`NetgraphError`, not a crash later."""
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise NetgraphError(f"unknown device {requested!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise NetgraphError(f"device {requested!r} asked for, but this machine has no CUDA GPU: use cpu")
        if device.index is not None and device.index >= count:
            raise NetgraphError(f"device {requested!r} asked for, but this machine has {count} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise NetgraphError(f"device {requested!r} asked for, but MPS is not available here: use cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise NetgraphError(f"device {requested!r} is not supported: use cpu, cuda or cuda:N")
    return device
