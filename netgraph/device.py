"""Device selection: CUDA when present, else CPU; never hard-coded."""

from __future__ import annotations

import torch

from netgraph.errors import NetgraphError


def pick_device(requested: str | None = None) -> torch.device:
    """Return ``requested`` if given, else the first CUDA device, else the CPU.

    A device this machine does not have (``tpu9``, ``cuda`` without a GPU,
    ``cuda:3`` on a one-GPU box) is a :class:`NetgraphError`, before any work starts.
    """
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise NetgraphError(f"unknown device '{requested}': use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise NetgraphError(f"device '{requested}' asked for, but no CUDA GPU is available")
        if device.index is not None and device.index >= count:
            raise NetgraphError(f"device '{requested}' does not exist: this machine has {count} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise NetgraphError(f"device '{requested}' asked for, but MPS is not available")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise NetgraphError(f"device '{requested}' is not supported: use cpu, cuda or cuda:N")
    return device
